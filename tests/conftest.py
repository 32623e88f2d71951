"""Shared fixtures: a jupyter server with gpu-devbox loaded, and the fake NVML seam."""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError, HTTPResponse

from tests.fakenvml import FakeNVML

pytest_plugins = ["pytest_jupyter.jupyter_server"]

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
