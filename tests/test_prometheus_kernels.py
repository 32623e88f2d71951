"""Per-kernel GPU memory on /metrics: off by default, low-cardinality labels, bounded."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.registry import CollectorRegistry

from gpu_devbox.attribution import Attributor, Kernel, Workspace
from gpu_devbox.server import kernels_prometheus
from gpu_devbox.server.kernels_prometheus import MAX_KERNELS, KernelCollector
from tests.conftest import Fetch
from tests.fakenvml import FakeNVML
from tests.test_prometheus import scrape
from tests.test_server_kernels import kernel_pid, start_session, until

GIB = 1024**3


async def test_kernel_series_are_off_by_default(
    jp_fetch: Fetch, jp_serverapp: Any, fake_nvml: FakeNVML
) -> None:
    session = await start_session(jp_fetch, "a.ipynb")
    fake_nvml.processes = {0: [(kernel_pid(jp_serverapp, session["kernel"]["id"]), GIB, 0)]}

    async def owned() -> bool:
        response = await jp_fetch("gpu-devbox", "api", "kernels")
        return b'"memory": 1073741824' in response.body

    await until(owned)
    metrics = await scrape(jp_fetch)
    assert "gpu_devbox_kernel_memory_used_bytes" not in metrics
    assert "gpu_devbox_processes" not in metrics
    assert "gpu_devbox_memory_used_bytes" in metrics  # the GPU series are there


class TestOn:
    @pytest.fixture
    def gpu_devbox_config(self, gpu_devbox_config: dict[str, Any]) -> dict[str, Any]:
        return {**gpu_devbox_config, "prometheus_kernel_metrics": True}

    async def test_a_kernels_memory_is_exported_by_name_and_short_id(
        self, jp_fetch: Fetch, jp_serverapp: Any, fake_nvml: FakeNVML
    ) -> None:
        session = await start_session(jp_fetch, "train.ipynb")
        kernel_id = session["kernel"]["id"]
        fake_nvml.processes = {1: [(kernel_pid(jp_serverapp, kernel_id), 3 * GIB, 0)]}

        async def exported() -> bool:
            return "gpu_devbox_kernel_memory_used_bytes" in await scrape(jp_fetch)

        await until(exported)
        metrics = await scrape(jp_fetch)
        [sample] = metrics["gpu_devbox_kernel_memory_used_bytes"]
        assert sample.labels == {"gpu": "1", "kernel": kernel_id[:8], "kernel_name": "python3"}
        assert sample.value == 3 * GIB
        counts = {
            (s.labels["gpu"], s.labels["owner"]): s.value for s in metrics["gpu_devbox_processes"]
        }
        assert counts[("1", "kernel")] == 1
        assert counts[("1", "other")] == 0
        assert counts[("0", "kernel")] == 0


@pytest.fixture
def sleepers() -> Iterator[list[int]]:
    processes = [subprocess.Popen(["sleep", "60"]) for _ in range(MAX_KERNELS + 6)]
    yield [p.pid for p in processes]
    for process in processes:
        process.kill()
        process.wait()


def test_at_most_max_kernels_are_exported_the_ones_holding_the_most(
    sleepers: list[int],
) -> None:
    attributor = Attributor(namespace="shared")
    attributor.set_workspace(
        Workspace(
            kernels=tuple(
                Kernel(f"{i:08d}-kernel", "python3", None, pid, "idle", None)
                for i, pid in enumerate(sleepers)
            )
        )
    )
    gpu = {
        "index": 0,
        "uuid": "GPU-0",
        "minor_number": 0,
        "mig": {"enabled": False, "instances": []},
        "processes": [
            {"pid": pid, "used_memory": (i + 1) * GIB, "gpu_instance_id": None}
            for i, pid in enumerate(sleepers)
        ],
    }
    attributor.annotate((gpu,))
    registry = CollectorRegistry()
    unregister = kernels_prometheus.register(KernelCollector(attributor), registry)
    try:
        exported = {
            s.labels["kernel"]: s.value
            for family in registry.collect()
            if family.name == "gpu_devbox_kernel_memory_used_bytes"
            for s in family.samples
        }
    finally:
        unregister()
    assert len(exported) == MAX_KERNELS
    # the 6 kernels holding the least are left out
    assert min(exported.values()) == 7 * GIB
    assert "00000000" not in exported
    assert exported[f"{len(sleepers) - 1:08d}"] == len(sleepers) * GIB
