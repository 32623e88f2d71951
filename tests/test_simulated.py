"""The simulated backend: plausible, self-consistent GPUs that go through the real adapter."""

from __future__ import annotations

import collections
import random
from typing import Any

import pytest

from gpu_devbox.gpus import NvmlAdapter, Sampler, SamplerConfig, VisibleDevices
from gpu_devbox.gpus.errors import NVML_ERROR_NOT_SUPPORTED
from gpu_devbox.gpus.simulated import PinnedLoad, SimulatedGPU, SimulatedNVML, build_gpus


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# (GPU count, GPUs in MIG mode, seed): small and large machines, with and without MIG
MACHINES = [(1, (), 0), (2, (), 1), (2, (1,), 2), (3, (0, 2), 3), (5, (4,), 4), (8, (), 5)]
RESERVED = build_gpus(1)[0].reserved


def _sampler(
    gpus: list[SimulatedGPU], clock: Clock, seed: int, interval: float, slow: float
) -> Sampler:
    return Sampler(
        NvmlAdapter(lambda: SimulatedNVML(gpus, clock=clock, seed=seed)),
        simulated=True,
        visible=VisibleDevices.from_env({}),
        config=SamplerConfig(interval=interval, slow_interval=slow),
        clock=clock,
    )


def _check_adds_up(
    gpu: dict[str, Any], seen: collections.Counter[str], last: dict[str, list[int]]
) -> None:
    memory, processes = gpu["memory"], gpu["processes"]
    assert processes is not None
    sizes = [p["used_memory"] for p in processes]
    assert memory["used"] == sum(sizes), (memory, processes)
    assert all(0 < size <= memory["used"] for size in sizes)
    assert memory["reserved"] == RESERVED
    assert memory["used"] + memory["reserved"] + memory["free"] == memory["total"]
    if gpu["mig"]["enabled"]:
        instances = gpu["mig"]["instances"]
        assert memory["used"] == sum(i["memory"]["used"] for i in instances)
        assert all(0 <= i["memory"]["used"] <= i["memory"]["total"] for i in instances)
        assert sum(i["memory"]["total"] for i in instances) <= memory["total"] - RESERVED
        assert gpu["utilization"]["gpu"] is None  # NVML cannot tell on a MIG parent
        seen["mig busy" if processes else "mig idle"] += 1
    elif processes:
        assert gpu["utilization"]["gpu"] >= 0
        seen["busy"] += 1
    else:
        assert gpu["utilization"]["gpu"] == 0
        assert gpu["power"]["usage"] == 70.0  # idle
        seen["idle"] += 1
    if sizes != last.get(gpu["uuid"], sizes):
        seen["changes"] += 1
    last[gpu["uuid"]] = sizes


@pytest.mark.parametrize(("count", "mig", "seed"), MACHINES)
@pytest.mark.parametrize(
    ("interval", "slow"), [(1.0, 5.0), (0.7, 3.3), (2.0, 30.0)], ids=["default", "odd", "slow"]
)
def test_processes_and_memory_add_up_in_every_sample(
    count: int, mig: tuple[int, ...], seed: int, interval: float, slow: float
) -> None:
    """What the server serves: memory used is its processes, a MIG parent its instances."""
    clock = Clock(1_800_000_003.3)  # not on a step boundary
    sampler = _sampler(build_gpus(count, mig=mig), clock, seed, interval, slow)
    seen: collections.Counter[str] = collections.Counter()
    last: dict[str, list[int]] = {}
    for _ in range(int(900 / interval)):  # 15 minutes: 45 steps of work
        for gpu in sampler.tick().gpus:
            _check_adds_up(gpu, seen, last)
        clock.now += interval
    # not vacuous: GPUs were busy and idle, and their processes changed
    assert seen["busy"] + seen["mig busy"] > 0
    assert seen["idle"] + seen["mig idle"] > 0
    assert seen["changes"] >= count


@pytest.mark.parametrize(("count", "mig", "seed"), MACHINES)
def test_the_simulated_driver_adds_up_at_any_instant(
    count: int, mig: tuple[int, ...], seed: int
) -> None:
    """The pynvml surface itself, read at random instants, handle by handle."""
    clock = Clock(0.0)
    lib = SimulatedNVML(build_gpus(count, mig=mig), clock=clock, seed=seed)
    lib.nvmlInit()
    rng = random.Random(seed)
    for _ in range(300):
        clock.now = rng.uniform(1.7e9, 1.8e9)
        for index in range(count):
            handle = lib.nvmlDeviceGetHandleByIndex(index)
            v2 = lib.nvmlDeviceGetMemoryInfo(handle, lib.nvmlMemory_v2)
            v1 = lib.nvmlDeviceGetMemoryInfo(handle)
            procs = lib.nvmlDeviceGetComputeRunningProcesses_v3(handle)
            assert v2.used == sum(p.usedGpuMemory for p in procs)
            assert v1.used == v2.used + v2.reserved  # v1 counts the reservation as used
            assert v2.used + v2.reserved + v2.free == v2.total
            assert all(p.usedGpuMemory % (2 * 1024**2) == 0 for p in procs)  # whole pages
            if index not in mig:
                assert {p.gpuInstanceId for p in procs} <= {0xFFFFFFFF}
                util = lib.nvmlDeviceGetUtilizationRates(handle).gpu
                assert (util == 0) if not procs else (0 <= util <= 100)
                continue
            instances = [lib.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot) for slot in range(3)]
            inst_used = [lib.nvmlDeviceGetMemoryInfo(i).used for i in instances]
            assert v2.used == sum(inst_used)
            for inst, used in zip(instances, inst_used, strict=True):
                own = lib.nvmlDeviceGetComputeRunningProcesses_v3(inst)
                assert used == sum(p.usedGpuMemory for p in own)
                gi = lib.nvmlDeviceGetGpuInstanceId(inst)
                assert [p.pid for p in own] == [p.pid for p in procs if p.gpuInstanceId == gi]


def test_with_the_v1_memory_call_used_is_the_processes_plus_the_reservation() -> None:
    clock = Clock(1_800_000_000.0)
    sampler = _sampler(build_gpus(2, unsupported=["memory_v2"]), clock, 0, 1.0, 5.0)
    busy = 0
    for _ in range(600):
        for gpu in sampler.tick().gpus:
            memory, processes = gpu["memory"], gpu["processes"]
            assert memory["reserved"] is None
            assert memory["used"] == sum(p["used_memory"] for p in processes) + RESERVED
            busy += bool(processes)
        clock.now += 1.0
    assert busy > 0


def test_values_stay_in_their_physical_ranges_over_a_day() -> None:
    clock = Clock(1_800_000_000.0)
    gpus = build_gpus(4, mig=[3])
    sampler = Sampler(
        NvmlAdapter(lambda: SimulatedNVML(gpus, clock=clock)),
        simulated=True,
        visible=VisibleDevices.from_env({}),
        config=SamplerConfig(interval=60, slow_interval=60),
        clock=clock,
    )
    for _ in range(24 * 60):
        for gpu in sampler.tick().gpus:
            util, memory, power = gpu["utilization"]["gpu"], gpu["memory"], gpu["power"]
            assert util is None or 0 <= util <= 100
            assert 0 <= memory["used"] <= memory["total"] - memory["reserved"]
            assert 0 < power["usage"] <= power["limit"]
            assert 20 <= gpu["temperature"]["gpu"] <= 90
            assert gpu["clocks"]["sm"] <= gpu["clocks"]["sm_max"]
        clock.now += 60


def test_unsupported_fields_answer_not_supported_like_a_real_gpu() -> None:
    lib = SimulatedNVML(build_gpus(1, unsupported=["power", "pcie"]))
    lib.nvmlInit()
    handle = lib.nvmlDeviceGetHandleByIndex(0)
    for call in (
        lambda: lib.nvmlDeviceGetPowerUsage(handle),
        lambda: lib.nvmlDeviceGetFieldValues(handle, [197, 198]),
    ):
        with pytest.raises(lib.NVMLError) as caught:
            call()
        assert caught.value.value == NVML_ERROR_NOT_SUPPORTED
    assert lib.nvmlDeviceGetUtilizationRates(handle).gpu >= 0


def test_calls_before_init_fail_as_uninitialized() -> None:
    lib = SimulatedNVML(build_gpus(1))
    with pytest.raises(lib.NVMLError):
        lib.nvmlDeviceGetCount()


def test_unknown_simulated_fields_are_refused_with_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown simulated field\(s\) \['fans'\]; allowed:"):
        build_gpus(1, unsupported=["fans"])


# ------------------------------------------------------------- pinned load (a test control)
GIB = 1024**3


def _gpus_at(lib: SimulatedNVML, clock: Clock, seconds: float) -> list[list[dict[str, Any]]]:
    """Every GPU's document, sampled once a second for ``seconds`` through the real adapter."""
    sampler = Sampler(
        NvmlAdapter(lambda: lib),
        simulated=True,
        visible=VisibleDevices.from_env({}),
        config=SamplerConfig(interval=1.0, slow_interval=1.0),
        clock=clock,
    )
    out = []
    for _ in range(int(seconds)):
        out.append(list(sampler.tick().gpus))
        clock.now += 1.0
    return out


def test_a_pinned_load_holds_through_the_pattern_until_lifted() -> None:
    clock = Clock(1_800_000_000.0)
    lib = SimulatedNVML(build_gpus(2), clock=clock)
    lib.pin_load(0, memory_used=8 * GIB)
    # Two minutes: the built-in pattern would have started and stopped work several times
    for gpus in _gpus_at(lib, clock, 120):
        for gpu in gpus:
            assert gpu["utilization"]["gpu"] == 0
            assert gpu["memory"]["used"] == 8 * GIB
            assert sum(p["used_memory"] for p in gpu["processes"]) == 8 * GIB
            assert gpu["power"]["usage"] == 70.0  # idle power: at 0 % the GPU idles
    lib.pin_load(73, gpus=[1])
    last = _gpus_at(lib, clock, 2)[-1]
    assert [g["utilization"]["gpu"] for g in last] == [0, 73]
    assert last[1]["memory"]["used"] > 0  # what a 73 % load usually holds
    assert last[1]["power"]["usage"] > 70.0
    assert lib.pin_load(None) == {0: None, 1: None}
    seen = {g["utilization"]["gpu"] for gpus in _gpus_at(lib, clock, 300) for g in gpus}
    assert len(seen) > 5  # the waveform again


def test_a_pinned_mig_gpu_spreads_its_memory_over_its_instances() -> None:
    lib = SimulatedNVML(build_gpus(1, mig=[0]))
    lib.nvmlInit()
    lib.pin_load(50, memory_used=7 * GIB)
    handle = lib.nvmlDeviceGetHandleByIndex(0)
    used = [
        lib.nvmlDeviceGetMemoryInfo(lib.nvmlDeviceGetMigDeviceHandleByIndex(handle, i)).used
        for i in range(3)
    ]
    assert used == [4 * GIB, 2 * GIB, 1 * GIB]  # 3g.40gb, 2g.20gb, 1g.10gb: by their size
    assert lib.nvmlDeviceGetMemoryInfo(handle, lib.nvmlMemory_v2).used == 7 * GIB


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"utilization": 101.0}, "between 0 and 100"),
        ({"utilization": -1.0}, "between 0 and 100"),
        ({"utilization": 10.0, "gpus": [2]}, "no simulated GPU 2: this server simulates 2"),
        ({"utilization": 10.0, "memory_used": 80 * GIB}, "memory_used must be between 0 and"),
        ({"utilization": None, "memory_used": GIB}, "memory_used needs a utilization"),
    ],
)
def test_a_bad_pin_is_refused_and_changes_nothing(kwargs: dict[str, Any], words: str) -> None:
    lib = SimulatedNVML(build_gpus(2))
    lib.pin_load(20, gpus=[0])
    utilization = kwargs.pop("utilization")
    with pytest.raises(ValueError, match=words):
        lib.pin_load(utilization, **kwargs)
    assert lib.pinned_loads() == {0: PinnedLoad(20.0), 1: None}
