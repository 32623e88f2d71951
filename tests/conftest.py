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

#: Tests that need the package's *sources* (not only the repository's documents and scripts):
#: the built labextension's place in the source tree, and an install from the source tree.
#: The installed-wheel stage (.ci/test-installed-wheel.sh) runs the rest against the wheel, in a
#: copy of the repository without gpu_devbox/ and spawner/, and deselects these with
#: ``-m "not source_tree"``.
SOURCE_TREE_MODULES = frozenset({"test_labextension_package", "test_quickstart"})
#: Single tests elsewhere that need the package's sources: they build a wheel from the checkout
#: or look for the labextension built into it.
SOURCE_TREE_TESTS = frozenset(
    {
        "test_images_files.py::test_the_wheel_step_builds_the_wheel_with_the_panel",
        "test_images_files.py::test_build_sh_bakes_the_catalogs_images_with_docker",
        "test_images_files.py::test_the_smoke_test_passes_here_with_the_gpu_parts_skipped",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests that need the source tree (see SOURCE_TREE_MODULES)."""
    for item in items:
        test = f"{item.path.name}::{getattr(item, 'originalname', item.name)}"
        if item.path.stem in SOURCE_TREE_MODULES or test in SOURCE_TREE_TESTS:
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
