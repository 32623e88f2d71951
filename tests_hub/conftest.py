"""Fixtures for the hub tests: a fake Kubernetes API with a kubelet, and a real JupyterHub.

These tests start real processes (JupyterHub, configurable-http-proxy from npm,
jupyterhub-singleuser for every pod), so they run as their own pytest invocation:
``pytest tests_hub`` (``./run-tests`` does it after installing the proxy).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests_hub.fake_api import FakeKube
from tests_hub.fake_kubelet import FakeKubelet, attach


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    """A fake API server with a scheduler but no processes (pods run at once)."""
    fake = FakeKube().start()
    attach(fake, Path("/nonexistent"), run_processes=False)
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeKube, FakeKubelet]]:
    """A fake API server whose kubelet runs each pod's jupyterhub-singleuser."""
    fake = FakeKube().start()
    kubelet = attach(fake, tmp_path_factory.mktemp("pods"))
    yield fake, kubelet
    assert fake.loop is not None
    asyncio.run_coroutine_threadsafe(kubelet.shutdown(), fake.loop).result(timeout=60)
    fake.stop()
