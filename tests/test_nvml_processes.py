"""What the adapter reads for process attribution: minor numbers, per-process SM utilization,
MIG instances of processes; and the simulated backend's processes file."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess

import pynvml  # noqa: TID251 - tests raise the real binding's error codes
import pytest

from gpu_devbox.gpus import NvmlAdapter
from gpu_devbox.gpus.backends import BackendSpec
from gpu_devbox.gpus.simulated import SimulatedNVML, _Struct, build_gpus, parse_processes
from tests.fakenvml import FakeNVML, h100

GIB = 1024**3


def test_each_gpu_has_its_device_files_minor_number() -> None:
    fake = FakeNVML([h100(minor_number=3), h100()])
    _, devices = NvmlAdapter(lambda: fake).open()
    assert [d.minor_number for d in devices] == [3, 1]
    assert devices[0].static_dict()["minor_number"] == 3


def test_an_unknown_minor_number_is_null() -> None:
    fake = FakeNVML()
    fake.missing.add("nvmlDeviceGetMinorNumber")
    _, devices = NvmlAdapter(lambda: fake).open()
    assert devices[0].minor_number is None


def test_process_utilization_is_the_mean_of_the_new_samples_and_zero_for_idle_processes() -> None:
    fake = FakeNVML()
    fake.processes = {0: [(4001, GIB, 0), (4002, GIB, 0)]}

    def samples(handle: object, since: int) -> list[_Struct]:
        fake.calls["since"] = since
        return [
            _Struct({"pid": 4001, "timeStamp": 10, "smUtil": 90}),  # already seen: not counted
            _Struct({"pid": 4001, "timeStamp": 20, "smUtil": 40}),
            _Struct({"pid": 4001, "timeStamp": 30, "smUtil": 60}),
        ]

    fake.nvmlDeviceGetProcessUtilization = samples  # type: ignore[method-assign]
    adapter = NvmlAdapter(lambda: fake)
    _, devices = adapter.open()
    devices[0]._utilization_seen = 10
    processes = adapter.sample(devices[0], slow=True)["processes"]
    assert [(p["pid"], p["sm_utilization"]) for p in processes] == [(4001, 50), (4002, 0)]
    assert fake.calls["since"] == 10
    assert devices[0]._utilization_seen == 30


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (pynvml.NVML_ERROR_NOT_FOUND, 0),  # no process used the SMs
        (pynvml.NVML_SUCCESS, 0),  # the binding's "error" for a success with no samples
        (pynvml.NVML_ERROR_NOT_SUPPORTED, None),  # MIG, GPUs before Maxwell
        (pynvml.NVML_ERROR_NO_PERMISSION, None),
    ],
)
def test_process_utilization_errors(error: int, expected: int | None) -> None:
    fake = FakeNVML()
    fake.processes = {0: [(4001, GIB, 0)]}

    def failing(handle: object, since: int) -> list[_Struct]:
        raise pynvml.NVMLError(error)

    fake.nvmlDeviceGetProcessUtilization = failing  # type: ignore[method-assign]
    adapter = NvmlAdapter(lambda: fake)
    _, devices = adapter.open()
    [process] = adapter.sample(devices[0], slow=True)["processes"]
    assert process["sm_utilization"] == expected


def test_a_gpu_lost_while_reading_process_utilization_is_fatal() -> None:
    from gpu_devbox.gpus.errors import NvmlUnavailable

    fake = FakeNVML()

    def lost(handle: object, since: int) -> list[_Struct]:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)

    fake.nvmlDeviceGetProcessUtilization = lost  # type: ignore[method-assign]
    adapter = NvmlAdapter(lambda: fake)
    _, devices = adapter.open()
    with pytest.raises(NvmlUnavailable):
        adapter.sample(devices[0], slow=True)


def test_processes_re_read_between_slow_readings_keep_the_last_utilization() -> None:
    fake = FakeNVML()
    fake.processes = {0: [(4001, GIB, 35)]}
    adapter = NvmlAdapter(lambda: fake)
    _, devices = adapter.open()
    adapter.sample(devices[0], slow=True)
    fake.processes = {0: [(4001, 2 * GIB, 80)]}
    # memory use changed: the processes are read at once, their utilization at the slow cadence
    fake.state = "loaded"
    [process] = adapter.sample(devices[0], slow=False)["processes"]
    assert (process["used_memory"], process["sm_utilization"]) == (2 * GIB, 35)


def test_mig_processes_carry_their_gpu_instance_and_no_utilization() -> None:
    lib = SimulatedNVML(build_gpus(1, mig=[0]))
    adapter = NvmlAdapter(lambda: lib)
    _, devices = adapter.open()
    processes = adapter.sample(devices[0], slow=True)["processes"] or []
    assert processes, "the simulated MIG instances run work at this time"
    assert {p["gpu_instance_id"] for p in processes} <= {1, 2, 3}
    assert {p["sm_utilization"] for p in processes} == {None}


def test_simulated_processes_split_the_gpus_utilization_by_memory() -> None:
    clock = [1000.0]
    lib = SimulatedNVML(build_gpus(1), clock=lambda: clock[0])
    adapter = NvmlAdapter(lambda: lib)
    _, devices = adapter.open()
    for t in range(0, 200, 20):
        clock[0] = 1000.0 + t
        sample = adapter.sample(devices[0], slow=True)
        processes = sample["processes"]
        if processes:
            total = sum(p["sm_utilization"] for p in processes)
            assert abs(total - sample["utilization"]["gpu"]) <= len(processes)
            return
    pytest.fail("no simulated work in 200 s")


# ------------------------------------------------------------------------------------------
# the processes file
# ------------------------------------------------------------------------------------------
def test_the_processes_file_replaces_invented_work_while_its_processes_live(
    tmp_path: pathlib.Path,
) -> None:
    control = tmp_path / "processes.json"
    adapter = BackendSpec(
        name="simulated", simulated_gpus=2, simulated_processes_file=str(control)
    ).make_adapter()
    _, devices = adapter.open()
    control.write_text("[]")  # (without the file, the GPUs run their invented work)
    assert adapter.sample(devices[0], slow=True)["processes"] == []
    assert adapter.sample(devices[0], slow=True)["memory"]["used"] == 0
    child = subprocess.Popen(["sleep", "30"])
    try:
        control.write_text(
            json.dumps(
                [
                    {"gpu": 0, "pid": child.pid, "used_memory": 2 * GIB, "sm_utilization": 25},
                    # NVML's host PID 99999 for the process this server sees as `child`
                    {"gpu": 1, "pid": 99999, "used_memory": GIB, "local_pid": child.pid},
                ]
            )
        )
        first = adapter.sample(devices[0], slow=True)
        assert [(p["pid"], p["used_memory"], p["sm_utilization"]) for p in first["processes"]] == [
            (child.pid, 2 * GIB, 25)
        ]
        assert first["memory"]["used"] == 2 * GIB
        second = adapter.sample(devices[1], slow=True)
        assert [p["pid"] for p in second["processes"]] == [99999]
        child.kill()
        child.wait()
        # the process is gone: so is its memory, as the driver frees it
        assert adapter.sample(devices[0], slow=True)["processes"] == []
        assert adapter.sample(devices[1], slow=True)["memory"]["used"] == 0
        # without the file the invented work is back: a test or demo gives control back
        control.unlink()
        invented = [adapter.sample(devices[i], slow=True)["processes"] for i in (0, 1)]
        assert all(p["pid"] >= 4000 for ps in invented for p in ps)
    finally:
        child.kill()
        child.wait()


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("{", "not JSON"),
        ('{"gpu": 0}', "must be a JSON list"),
        ("[1]", "process 0 is not an object"),
        ('[{"gpu": 0, "pid": 1}]', "used_memory is missing"),
        ('[{"gpu": 0, "pid": 1, "used_memory": 1, "owner": "me"}]', "unknown key(s) ['owner']"),
        ('[{"gpu": 0, "pid": -1, "used_memory": 1}]', "pid must be a whole number"),
        ('[{"gpu": 0, "pid": true, "used_memory": 1}]', "pid must be a whole number"),
    ],
)
def test_a_bad_processes_file_names_what_is_wrong(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=re.escape(error)):
        parse_processes(text)


def test_an_invalid_processes_file_runs_nothing_and_says_why(tmp_path: pathlib.Path) -> None:
    control = tmp_path / "processes.json"
    control.write_text("[{")
    lib = SimulatedNVML(build_gpus(1), processes_file=str(control))
    lib.nvmlInit()
    assert lib.nvmlDeviceGetComputeRunningProcesses_v3(lib.nvmlDeviceGetHandleByIndex(0)) == []
    assert lib.processes_file is not None
    assert lib.processes_file.error is not None
    assert "not JSON" in lib.processes_file.error
    control.write_text(json.dumps([{"gpu": 0, "pid": os.getpid(), "used_memory": 5}]))
    assert len(lib.nvmlDeviceGetComputeRunningProcesses_v3(lib.nvmlDeviceGetHandleByIndex(0))) == 1
    assert lib.processes_file.error is None
