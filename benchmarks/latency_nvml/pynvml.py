"""A ``pynvml`` stand-in for benchmarks: simulated GPUs behind the latencies of a real H100.

Put this folder first on ``PYTHONPATH`` and every ``import pynvml`` in the process (gpu-devbox's
NVML adapter, jupyterlab-nvdashboard's ``apps/gpu.py``) gets an object with the binding's
surface whose calls take as long as they took on an NVIDIA H100 80GB HBM3 (driver 580.159.04,
persistence mode on; the project's H100 fixtures and the peer study's table):
``nvmlDeviceGetPcieThroughput`` blocks for ~21 ms, total energy ~3.9 ms, a PCIe field-value read
0.34 ms, the cheap per-field reads 2-13 µs (4.5 µs for any read not measured). Waits of 100 µs
or more sleep (the real library releases the GIL inside the driver); shorter ones spin.

The GPUs are gpu-devbox's simulated H100s (``GPU_DEVBOX_SIMULATED_GPUS``, default 8), so both
servers read the same values. Not a test double for the suite: the tests use
``tests/fakenvml.py``.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from gpu_devbox.gpus import errors
from gpu_devbox.gpus.simulated import SimulatedNVML, SimulatedNVMLError, build_gpus

#: Microseconds per call, measured on the H100 (fixtures/h100/README.md; peer study, section 5).
LATENCY_US: dict[str, float] = {
    "nvmlInit": 10_000.0,
    "nvmlInit_v2": 10_000.0,
    "nvmlDeviceGetUtilizationRates": 1.9,
    "nvmlDeviceGetMemoryInfo": 12.8,
    "nvmlDeviceGetTemperature": 2.9,
    "nvmlDeviceGetTemperatureV": 2.9,
    "nvmlDeviceGetPowerUsage": 2.4,
    "nvmlDeviceGetClockInfo": 2.2,
    "nvmlDeviceGetEnforcedPowerLimit": 1.0,
    "nvmlDeviceGetPerformanceState": 1.0,
    "nvmlDeviceGetCurrentClocksEventReasons": 1.0,
    "nvmlDeviceGetTotalEccErrors": 1.0,
    "nvmlDeviceGetComputeRunningProcesses": 8.5,
    "nvmlDeviceGetComputeRunningProcesses_v2": 8.5,
    "nvmlDeviceGetComputeRunningProcesses_v3": 8.5,
    "nvmlDeviceGetEccMode": 160.0,
    "nvmlDeviceGetMigMode": 141.0,
    "nvmlDeviceGetPcieReplayCounter": 180.0,
    "nvmlDeviceGetFieldValues": 340.0,
    "nvmlDeviceGetMaxClockInfo": 1_704.0,
    "nvmlDeviceGetTotalEnergyConsumption": 3_926.0,
    "nvmlDeviceGetPcieThroughput": 20_976.0,
}
#: Any other read ("~4.5 µs per field read").
DEFAULT_US = 4.5
#: Waits this long or longer sleep; shorter ones spin (sleeping overshoots by ~50 µs).
SLEEP_FROM_US = 100.0


def wait(microseconds: float) -> None:
    """Take ``microseconds`` as a driver call would."""
    if microseconds >= SLEEP_FROM_US:
        time.sleep(microseconds / 1e6)
        return
    end = time.perf_counter() + microseconds / 1e6
    while time.perf_counter() < end:
        pass


class NVMLError_NotSupported(SimulatedNVMLError):  # pynvml's name
    """What pynvml raises for ``NVML_ERROR_NOT_SUPPORTED``."""

    def __init__(self, value: int = errors.NVML_ERROR_NOT_SUPPORTED) -> None:
        super().__init__(value)


class NVMLError_LibraryNotFound(SimulatedNVMLError):  # pynvml's name
    """What pynvml raises when libnvidia-ml cannot be loaded."""

    def __init__(self, value: int = errors.NVML_ERROR_LIBRARY_NOT_FOUND) -> None:
        super().__init__(value)


class LatencyNVML(SimulatedNVML):
    """The simulated NVML plus the calls nvdashboard makes, each taking its H100 latency."""

    NVMLError_NotSupported = NVMLError_NotSupported
    NVMLError_LibraryNotFound = NVMLError_LibraryNotFound
    NVML_PCIE_UTIL_TX_BYTES = 0
    NVML_PCIE_UTIL_RX_BYTES = 1
    NVML_NVLINK_MAX_LINKS = 18

    def nvmlInit_v2(self) -> None:
        self.nvmlInit()

    def nvmlDeviceGetPcieThroughput(self, handle: Any, counter: int) -> int:
        """KB/s over the last 20 ms, from the simulated byte counters."""
        self._check("nvmlDeviceGetPcieThroughput", handle)
        field = 197 if counter == self.NVML_PCIE_UTIL_TX_BYTES else 198
        # the class's method: this call's own latency already covers reading the counters
        value = SimulatedNVML.nvmlDeviceGetFieldValues(self, handle, [field])[0]
        return int(value.value.uiVal) % 10_000_000 // 1024

    def nvmlDeviceGetMaxPcieLinkGeneration(self, handle: Any) -> int:
        self._check("nvmlDeviceGetMaxPcieLinkGeneration", handle)
        return 5

    def nvmlDeviceGetMaxPcieLinkWidth(self, handle: Any) -> int:
        self._check("nvmlDeviceGetMaxPcieLinkWidth", handle)
        return 16

    def nvmlDeviceGetNvLinkVersion(self, handle: Any, link: int) -> int:
        raise NVMLError_NotSupported()  # a PCIe H100: no NVLink


def _timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    cost = LATENCY_US.get(name, DEFAULT_US)

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        wait(cost)
        return function(*args, **kwargs)

    return call


def make() -> LatencyNVML:
    """A stand-in with ``GPU_DEVBOX_SIMULATED_GPUS`` GPUs whose calls take their latencies."""
    lib = LatencyNVML(build_gpus(int(os.environ.get("GPU_DEVBOX_SIMULATED_GPUS", "8"))))
    for name in dir(lib):
        if name.startswith("nvml") and callable(getattr(lib, name)):
            # the instance's own attribute wins over the class's method, inner calls included
            setattr(lib, name, _timed(name, getattr(lib, name)))
    return lib


sys.modules[__name__] = make()  # type: ignore[assignment]
