"""Shared fixtures: a jupyter server with gpu-devbox loaded, and the fake NVML seam."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError, HTTPResponse

from tests.fakenvml import FakeNVML

pytest_plugins = ["pytest_jupyter.jupyter_server"]

#: Test modules that read the repository itself (Dockerfiles, scripts, docs, the Lab extension's
#: sources) rather than the installed package. They run in the source tree's stage of
#: ./run-tests; the installed-wheel stage (.ci/test-installed-wheel.sh) deselects them with
#: ``-m "not source_tree"``.
SOURCE_TREE_MODULES = frozenset(
    {
        "test_bench_scripts",
        "test_doctor_gpu_script",
        "test_generated_docs",
        "test_gpu_test_scripts",
        "test_images_files",
        "test_images_plan",
        "test_labextension_package",
        "test_quickstart",
        "test_spawner_config_files",
    }
)
#: Single tests elsewhere that check a document of the repository against the code.
SOURCE_TREE_TESTS = frozenset({"test_catalog.py::test_the_documented_catalog_and_its_errors"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests that need the source tree (see SOURCE_TREE_MODULES)."""
    for item in items:
        module = item.path.stem
        if module in SOURCE_TREE_MODULES or f"{item.path.name}::{item.name}" in SOURCE_TREE_TESTS:
            item.add_marker(pytest.mark.source_tree)


def pytest_sessionstart(session: pytest.Session) -> None:
    """In the installed-wheel stage, refuse to test a gpu_devbox imported from the source tree."""
    if os.environ.get("GPU_DEVBOX_TEST_INSTALLED") == "1":
        import gpu_devbox

        if "site-packages" not in gpu_devbox.__file__:
            raise pytest.UsageError(
                f"GPU_DEVBOX_TEST_INSTALLED=1 but gpu_devbox comes from {gpu_devbox.__file__}"
            )


Fetch = Callable[..., Awaitable[HTTPResponse]]


@pytest.fixture
def fake_nvml(monkeypatch: pytest.MonkeyPatch) -> FakeNVML:
    """Install a fake ``pynvml`` (two idle H100s) where the adapter will import it."""
    fake = FakeNVML()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    return fake


@pytest.fixture
def gpu_devbox_config() -> dict[str, Any]:
    """``c.GPUDevbox`` settings for the test server; override or extend in a test module."""
    return {"interval": 0.1, "slow_interval": 0.2, "history_seconds": 30}


@pytest.fixture
def jp_server_config(fake_nvml: FakeNVML, gpu_devbox_config: dict[str, Any]) -> dict[str, Any]:
    """A server that loads gpu-devbox and refuses unauthenticated requests."""
    return {
        "ServerApp": {
            "jpserver_extensions": {"gpu_devbox": True},
            "allow_unauthenticated_access": False,
        },
        "GPUDevbox": gpu_devbox_config,
    }


async def fetch_json(fetch: Fetch, *parts: str, **kwargs: Any) -> tuple[int, Any]:
    """Fetch and decode JSON; returns (status, body) for successes and HTTP errors alike."""
    try:
        response = await fetch(*parts, **kwargs)
    except HTTPClientError as err:
        body = err.response.body if err.response is not None else b""
        return err.code, json.loads(body or b"null")
    return response.code, json.loads(response.body)
