"""The attributor on real processes of this machine, and in the sampler.

Here NVML's PIDs are ours (this machine runs in the initial PID namespace): the GPU processes
are real child processes, reported by the fake NVML seam.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from gpu_devbox.attribution import Attributor, Kernel, ProcReader, Workspace
from gpu_devbox.gpus import NvmlAdapter, Sampler, SamplerConfig, VisibleDevices
from tests.fakenvml import FakeNVML

GIB = 1024**3


class CountingReader(ProcReader):
    """The real reader, counting how often it reads the process tree."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def lineage(self, *args: Any, **kwargs: Any) -> Any:
        self.reads += 1
        return super().lineage(*args, **kwargs)


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[bytes]]]:
    started = [subprocess.Popen(["sleep", "60"]), subprocess.Popen(["sleep", "61"])]
    yield started
    for process in started:
        process.kill()
        process.wait()


def gpu_doc(index: int, *pids: int) -> dict[str, Any]:
    return {
        "index": index,
        "uuid": f"GPU-{index}",
        "minor_number": index,
        "mig": {"enabled": False, "instances": []},
        "processes": [
            {
                "pid": pid,
                "used_memory": GIB,
                "gpu_instance_id": None,
                "sm_utilization": 7,
                "local_pid": None,
                "owner": None,
            }
            for pid in pids
        ],
    }


def kernel(pid: int, state: str = "idle") -> Kernel:
    return Kernel("k-1", "python3", "notebooks/train.ipynb", pid, state, 1.0, 1)


def test_real_processes_get_their_owners(children: list[subprocess.Popen[bytes]]) -> None:
    attributor = Attributor(CountingReader())
    assert attributor.method == "pids"
    attributor.set_workspace(Workspace(kernels=(kernel(children[0].pid),), server_pid=os.getpid()))
    [gpu] = attributor.annotate((gpu_doc(0, children[0].pid, children[1].pid, 4_194_000),))
    owners = [(p["local_pid"], p["owner"]) for p in gpu["processes"]]
    assert owners == [
        (
            children[0].pid,
            {
                "type": "kernel",
                "kernel_id": "k-1",
                "kernel_name": "python3",
                "path": "notebooks/train.ipynb",
                "execution_state": "idle",
            },
        ),
        (children[1].pid, {"type": "process", "cmdline": "sleep 61"}),
        (None, {"type": "other"}),
    ]
    assert gpu["processes"][0]["sm_utilization"] == 7


def test_proc_is_read_again_only_when_something_changed(
    children: list[subprocess.Popen[bytes]],
) -> None:
    reader = CountingReader()
    clock = [0.0]
    attributor = Attributor(reader, rescan=5.0, clock=lambda: clock[0])
    attributor.set_workspace(Workspace(kernels=(kernel(children[0].pid),), server_pid=os.getpid()))
    sample = (gpu_doc(0, children[0].pid),)
    attributor.annotate(sample)
    attributor.annotate(sample)
    assert reader.reads == 1
    # a kernel's state changes every second: the owner shows it, without reading /proc again
    attributor.set_workspace(
        Workspace(kernels=(kernel(children[0].pid, "busy"),), server_pid=os.getpid())
    )
    [gpu] = attributor.annotate(sample)
    assert gpu["processes"][0]["owner"]["execution_state"] == "busy"
    assert reader.reads == 1
    # a new process list, a new kernel root or time passing: read again
    attributor.annotate((gpu_doc(0, children[0].pid, children[1].pid),))
    assert reader.reads == 2
    clock[0] = 6.0
    attributor.annotate((gpu_doc(0, children[0].pid, children[1].pid),))
    assert reader.reads == 3


def test_gpus_without_processes_cost_no_proc_reads() -> None:
    reader = CountingReader()
    attributor = Attributor(reader)
    for _ in range(3):
        attributor.annotate((gpu_doc(0), gpu_doc(1)))
    assert reader.reads == 0
    assert attributor.kernels()["gpus"][0]["processes"] == 0


def test_a_failing_reader_leaves_owners_out_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(ProcReader):
        def lineage(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("boom")

    attributor = Attributor(Broken())
    sample = (gpu_doc(0, os.getpid()),)
    with caplog.at_level(logging.ERROR, logger="gpu_devbox.attribution"):
        assert attributor.annotate(sample) is sample
        assert attributor.annotate(sample) is sample
    assert len([r for r in caplog.records if "attribution failed" in r.message]) == 1


def test_holding_since_is_kept_while_the_owner_holds_memory(
    children: list[subprocess.Popen[bytes]],
) -> None:
    now = [1000.0]
    attributor = Attributor(wall=lambda: now[0])
    attributor.set_workspace(Workspace(kernels=(kernel(children[0].pid),), server_pid=os.getpid()))
    attributor.annotate((gpu_doc(0, children[0].pid),))
    now[0] = 1010.0
    attributor.annotate((gpu_doc(0, children[0].pid),))
    [doc] = attributor.kernels()["kernels"]
    assert doc["gpu_since"] == 1000.0
    assert [(g["index"], g["memory"]) for g in doc["gpus"]] == [(0, GIB)]
    attributor.annotate((gpu_doc(0),))
    [doc] = attributor.kernels()["kernels"]
    assert (doc["gpu_since"], doc["gpus"]) == (None, [])


def test_the_namespace_can_be_set_instead_of_detected() -> None:
    assert Attributor(namespace="separate").method == "device_files"
    assert Attributor(namespace="shared").method == "pids"
    with pytest.raises(ValueError, match="namespace must be one of auto, shared, separate"):
        Attributor(namespace="host")


def test_the_sampler_publishes_owners_and_survives_a_failing_annotation(
    children: list[subprocess.Popen[bytes]],
) -> None:
    fake = FakeNVML()
    fake.processes = {0: [(children[0].pid, 2 * GIB, 35)]}
    attributor = Attributor()
    attributor.set_workspace(Workspace(kernels=(kernel(children[0].pid),), server_pid=os.getpid()))
    sampler = Sampler(
        NvmlAdapter(lambda: fake),
        visible=VisibleDevices.from_env({}),
        config=SamplerConfig(interval=1, slow_interval=1),
        annotate=attributor.annotate,
    )
    snapshot = sampler.tick()
    [process] = snapshot.gpus[0]["processes"]
    assert process["owner"]["kernel_id"] == "k-1"
    assert (process["local_pid"], process["sm_utilization"]) == (children[0].pid, 35)
    assert '"kernel_id":"k-1"' in snapshot.json
    assert snapshot.gpus[0]["minor_number"] == 0

    def broken(gpus: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], ...]:
        raise RuntimeError("boom")

    sampler._annotate = broken
    snapshot = sampler.tick()
    assert snapshot.gpus[0]["processes"][0]["owner"] is None
    sampler.stop()
