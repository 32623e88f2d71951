"""A fake ``pynvml`` for tests: real pynvml errors and constants, values from a real H100.

This is the test seam for NVML (the machine running the tests has no GPU). It builds on the
simulated backend's pynvml surface, but:

* raises the *real* ``pynvml.NVMLError`` subclasses (``NVMLError_GpuIsLost``, ...) and uses the
  real binding's constants, so the adapter is exercised exactly as with a driver;
* serves the values captured on an H100 (``fixtures/h100-nvml-capture.json``): idle or loaded;
* injects faults: an error from ``nvmlInit``, every call failing from some moment on (a GPU lost
  or the driver gone mid-run), one GPU lost, and entry points an old driver lacks;
* counts every call, so tests can prove that requests never reach NVML;
* lists the compute processes a test sets (:attr:`FakeNVML.processes`), e.g. the PIDs of real
  kernels, with their SM utilization.
"""

from __future__ import annotations

import collections
import json
import pathlib
from typing import Any

import pynvml  # noqa: TID251 - the fake mirrors the real binding's errors and constants

from gpu_devbox.gpus.simulated import SimulatedGPU, SimulatedNVML, _Handle, _Struct

CAPTURE = json.loads(
    (pathlib.Path(__file__).parent / "fixtures" / "h100-nvml-capture.json").read_text()
)


def h100(**overrides: Any) -> SimulatedGPU:
    """A GPU described like the captured H100."""
    idle = CAPTURE["idle"]
    values: dict[str, Any] = {
        "name": idle["name"],
        "compute_capability": tuple(idle["cc"]),
        "memory_total": idle["mem_v2"]["total"],
        "reserved": idle["mem_v2"]["reserved"],
        "power_limit_mw": idle["power_limit_mw"],
        "max_sm_clock": idle["max_clock_sm"],
        "memory_clock": idle["max_clock_mem"],
        "unsupported": frozenset({"fan"}),
    }
    values.update(overrides)
    return SimulatedGPU(**values)


class FakeNVML(SimulatedNVML):
    """pynvml with H100 values and fault injection. Values are fixed: ``state`` picks them."""

    NVMLError = pynvml.NVMLError
    nvmlMemory_v2 = pynvml.nvmlMemory_v2

    def __init__(self, gpus: list[SimulatedGPU] | None = None, *, state: str = "idle") -> None:
        super().__init__(
            gpus if gpus is not None else [h100(), h100()],
            driver_version=CAPTURE["driver"],
            cuda_driver_version=CAPTURE["cuda_driver_v2"],
        )
        self.state = state
        self.calls: collections.Counter[str] = collections.Counter()
        #: nvmlInit fails with this code.
        self.init_error: int | None = None
        #: Every call fails with this code (a driver gone or reloaded mid-run).
        self.fault: int | None = None
        #: Calls on these GPU indices fail with GPU_IS_LOST.
        self.lost: set[int] = set()
        #: Entry points this "driver" lacks (raise FUNCTION_NOT_FOUND, like an old libnvidia-ml).
        self.missing: set[str] = set()
        #: The compute processes per GPU index as (PID, bytes, SM %), replacing the captured
        #: ones; a test sets it (e.g. to the PIDs of real kernels).
        self.processes: dict[int, list[tuple[int, int, int]]] | None = None
        #: The time stamp (µs) of the last process utilization samples.
        self.utilization_stamp = 1_700_000_000_000_000
        #: PCIe counter readings per GPU, consumed one per call (the last one repeats):
        #: lists of (field id, timestamp in µs, value). Default: the captured idle, then loaded.
        self.pcie_readings: dict[int, list[list[tuple[int, int, int]]]] = {
            gpu: [
                [(f["fieldId"], f["ts_us"], f["value"]) for f in CAPTURE[s]["pcie_field_counters"]]
                for s in ("idle", "loaded")
            ]
            for gpu in range(len(self.gpus))
        }

    @property
    def values(self) -> dict[str, Any]:
        """The captured values of the current state."""
        values: dict[str, Any] = CAPTURE[self.state]
        return values

    def _check(self, name: str, handle: _Handle | None = None) -> None:
        self.calls[name] += 1
        if name == "nvmlInit" and self.init_error is not None:
            raise self.NVMLError(self.init_error)
        if self.fault is not None:
            raise self.NVMLError(self.fault)
        if handle is not None and handle.gpu in self.lost:
            raise self.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
        if name in self.missing:
            raise self.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
        super()._check(name, handle)

    @property
    def nvml_calls(self) -> int:
        """How many NVML calls were made so far."""
        return sum(self.calls.values())

    # Fixed values from the capture instead of the simulated waveforms.
    def nvmlDeviceGetMemoryInfo(self, handle: _Handle, version: int | None = None) -> _Struct:
        if handle.mig is not None:
            return super().nvmlDeviceGetMemoryInfo(handle, version)
        self._check("nvmlDeviceGetMemoryInfo", handle)
        if version:
            self._check("nvmlDeviceGetMemoryInfo_v2", handle)
            return _Struct(dict(self.values["mem_v2"]))
        return _Struct(dict(self.values["mem_v1"]))

    def nvmlDeviceGetUtilizationRates(self, handle: _Handle) -> _Struct:
        super().nvmlDeviceGetUtilizationRates(handle)
        return _Struct(dict(self.values["util"]))

    def nvmlDeviceGetTemperatureV(self, handle: _Handle, sensor: int) -> int:
        self._check("nvmlDeviceGetTemperatureV", handle)
        return int(self.values["temp_gpu"])

    def nvmlDeviceGetTemperature(self, handle: _Handle, sensor: int) -> int:
        self._check("nvmlDeviceGetTemperature", handle)
        return int(self.values["temp_gpu"])

    def nvmlDeviceGetPowerUsage(self, handle: _Handle) -> int:
        self._check("nvmlDeviceGetPowerUsage", handle)
        return int(self.values["power_mw"])

    def nvmlDeviceGetClockInfo(self, handle: _Handle, clock: int) -> int:
        self._check("nvmlDeviceGetClockInfo", handle)
        key = "clock_mem" if clock == pynvml.NVML_CLOCK_MEM else "clock_sm"
        return int(self.values[key])

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: _Handle) -> int:
        self._check("nvmlDeviceGetTotalEnergyConsumption", handle)
        return int(self.values["energy_mj"])

    def nvmlDeviceGetFieldValues(self, handle: _Handle, field_ids: list[int]) -> list[_Struct]:
        self._check("nvmlDeviceGetFieldValues", handle)
        queue = self.pcie_readings[handle.gpu]
        reading = queue.pop(0) if len(queue) > 1 else queue[0]
        by_id = {fid: (ts, value) for fid, ts, value in reading}
        out = []
        for fid in field_ids:
            ts, value = by_id[fid]
            out.append(
                _Struct(
                    {
                        "fieldId": fid,
                        "scopeId": 0,
                        "timestamp": ts,
                        "latencyUsec": 0,
                        "valueType": pynvml.NVML_VALUE_TYPE_UNSIGNED_INT,
                        "nvmlReturn": pynvml.NVML_SUCCESS,
                        "value": _Struct({"uiVal": value}),
                    }
                )
            )
        return out

    def _listed(self, gpu: int) -> list[tuple[int, int, int]]:
        if self.processes is not None:
            return list(self.processes.get(gpu, []))
        if self.state == "idle":
            return []
        return [(403, 916_455_424, int(self.values["util"]["gpu"]))]

    def _processes(self, handle: _Handle) -> list[_Struct]:
        return [
            _Struct(
                {
                    "pid": pid,
                    "usedGpuMemory": size,
                    "gpuInstanceId": 0xFFFFFFFF,
                    "computeInstanceId": 0xFFFFFFFF,
                }
            )
            for pid, size, _ in self._listed(handle.gpu)
        ]

    def nvmlDeviceGetProcessUtilization(self, handle: _Handle, since: int) -> list[_Struct]:
        self._check("nvmlDeviceGetProcessUtilization", handle)
        self.utilization_stamp += 1_000_000
        samples = [
            _Struct({"pid": pid, "timeStamp": self.utilization_stamp, "smUtil": util})
            for pid, _, util in self._listed(handle.gpu)
            if util > 0
        ]
        if not samples:
            raise self.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)
        return samples
