"""The checks service on its own: caching, kernelspecs off, stopping mid-probe, config checks."""

from __future__ import annotations

import asyncio
import os
import pathlib
import sys
from typing import Any

import pytest
from traitlets import TraitError

from gpu_devbox.cuda import environments
from gpu_devbox.cuda.facts import nvml_facts
from gpu_devbox.cuda.service import ChecksService
from gpu_devbox.gpus import Sampler
from gpu_devbox.gpus.backends import BackendSpec
from gpu_devbox.server.app import GPUDevbox
from gpu_devbox.server.checks_handlers import make_service


@pytest.fixture
def sampler() -> Any:
    spec = BackendSpec(name="simulated", simulated_gpus=1)
    sampler = Sampler(spec.make_adapter(), simulated=True)
    sampler.tick()
    yield sampler
    sampler.stop()


def test_without_kernelspecs_only_the_server_is_probed(sampler: Sampler) -> None:
    service = make_service(sampler, None, probe_timeout=60)
    document = asyncio.run(service.document())
    envs = document["facts"]["environments"]
    assert [(e["name"], e["status"]) for e in envs] == [("server", "ok"), ("kernel:*", "skipped")]
    assert document["facts"]["nvml"]["gpus"][0]["name"] == "NVIDIA H100 80GB HBM3"
    assert service.gatherings == 1


def test_stopping_kills_a_probe_in_flight(sampler: Sampler, tmp_path: pathlib.Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import time\ntime.sleep(60)\n")
    service = ChecksService(
        lambda: nvml_facts(sampler.status(), sampler.snapshot().gpus),
        probe_timeout=120,
        env={**os.environ, "PYTHONPATH": str(site)},
        server_python=sys.executable,
    )

    async def scenario() -> list[int]:
        request = asyncio.ensure_future(service.document())
        for _ in range(200):  # wait until the probe process runs
            await asyncio.sleep(0.05)
            if environments._RUNNING:
                break
        pids = list(environments._RUNNING)
        assert pids, "the probe never started"
        await service.close()
        with pytest.raises(asyncio.CancelledError):
            await request
        return pids

    pids = asyncio.run(scenario())
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not environments._RUNNING


def test_probe_timeout_is_validated() -> None:
    with pytest.raises(TraitError, match="checks_probe_timeout must be between 1 and 600"):
        GPUDevbox(checks_probe_timeout=0.5)
    assert GPUDevbox(checks_probe_timeout=30).checks_probe_timeout == 30
