"""The simulated backend: plausible, self-consistent GPUs that go through the real adapter."""

from __future__ import annotations

import pytest

from gpu_devbox.gpus import NvmlAdapter, Sampler, SamplerConfig, VisibleDevices
from gpu_devbox.gpus.errors import NVML_ERROR_NOT_SUPPORTED
from gpu_devbox.gpus.simulated import MEMORY_STEP, SimulatedNVML, build_gpus


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_memory_holds_still_within_a_step_and_processes_agree_with_it() -> None:
    clock = Clock(1_800_000_000.0)  # a step boundary
    lib = SimulatedNVML(build_gpus(1), clock=clock)
    lib.nvmlInit()
    handle = lib.nvmlDeviceGetHandleByIndex(0)
    checked = 0
    for step in range(40):  # 40 steps: the load wave passes through busy and idle phases
        start = 1_800_000_000.0 + step * MEMORY_STEP
        readings = []
        for offset in (1.0, 7.5, MEMORY_STEP - 1):
            clock.now = start + offset
            readings.append(lib.nvmlDeviceGetMemoryInfo(handle, lib.nvmlMemory_v2).used)
        assert len(set(readings)) == 1
        procs = lib.nvmlDeviceGetComputeRunningProcesses_v3(handle)
        if procs:  # a process exists while the load is above 20 %
            assert procs[0].usedGpuMemory == readings[0]
            checked += 1
    assert checked >= 10


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
