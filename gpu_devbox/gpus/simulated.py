"""A simulated NVML, for demos and tests on machines without an NVIDIA GPU.

:class:`SimulatedNVML` implements the part of pynvml's surface that
:class:`~gpu_devbox.gpus.nvml.NvmlAdapter` uses, so simulated GPUs flow through exactly the code
real GPUs do. Its static facts default to what a real H100 SXM reports (driver 580.159.04,
80 GB HBM3, 700 W limit; see the project's H100 fixtures), and its live values follow smooth
waveforms so charts move.

It is never chosen implicitly: the server uses it only with ``c.GPUDevbox.backend =
"simulated"`` (or ``GPU_DEVBOX_BACKEND=simulated``), and every payload then says
``"simulated": true``.

Simulated GPUs add up, at every instant:

* Work comes and goes in steps of :data:`MEMORY_STEP` seconds. During a step each GPU (or each
  MIG instance) runs a fixed set of compute processes, or none when its load was low as the
  step began; allocations are whole 2 MiB pages.
* A GPU's memory ``used`` (``nvmlDeviceGetMemoryInfo_v2``, as ``nvidia-smi`` shows it) is
  exactly the sum of its processes' ``usedGpuMemory``; ``reserved`` is the driver's fixed
  reservation (480 MiB on an H100); ``free`` is the rest. The v1 call counts the reservation
  as used, as a real driver does.
* A MIG instance's ``used`` is the sum of its processes; the MIG-enabled parent's ``used`` is
  the sum of its instances', and its processes are theirs (with their GPU instance ids). The
  parent reports no utilization (NVML cannot, there); its power and temperature follow its
  instances' work.
* A GPU with no process is idle: 0 % utilization, idle power, clocks and temperature.
* Each process's SM utilization (``nvmlDeviceGetProcessUtilization``) is the GPU's, split by
  memory; a MIG GPU cannot report it, as on real hardware.

For tests of process attribution (and demos of it), a *processes file*
(``c.GPUDevbox.simulated_processes_file``, :class:`ProcessesFile`) replaces the invented work:
the simulated GPUs then run exactly the processes it lists, each for as long as the process it
names lives, as a real driver frees a process's memory when it exits.

Tests and demos can pin a GPU's load (:meth:`SimulatedNVML.pin_load`; on a server, ``PUT
gpu-devbox/api/simulated/load``): it then reports that utilization, and holds the memory asked
for (or what that load usually holds), until the pin is changed or lifted. Real GPUs have no such
control. A processes file, while it exists, decides the processes of every GPU, pinned or not.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import threading
import time
import types
from collections.abc import Callable, Iterable
from typing import Any

from gpu_devbox.gpus import errors, fields

#: Names ``simulated_unsupported`` accepts, and the NVML functions each one makes answer "Not
#: Supported": those of the field table (:mod:`gpu_devbox.gpus.fields`), and the rest.
FIELD_FUNCTIONS: dict[str, tuple[str, ...]] = {
    **fields.unsupported_functions(),
    "memory_v2": (),  # handled in nvmlDeviceGetMemoryInfo: the v2 call fails, v1 works
    "processes": (
        "nvmlDeviceGetComputeRunningProcesses_v3",
        "nvmlDeviceGetComputeRunningProcesses_v2",
        "nvmlDeviceGetComputeRunningProcesses",
    ),
    "serial": ("nvmlDeviceGetSerial",),
    "process_utilization": ("nvmlDeviceGetProcessUtilization",),
    "minor_number": ("nvmlDeviceGetMinorNumber",),
    "fan": ("nvmlDeviceGetFanSpeed",),  # an H100 SXM has no fan of its own
}

#: Seconds a simulated GPU's processes and their memory hold still: work changes in steps.
MEMORY_STEP = 20.0
#: Allocations are whole pages of this size, as CUDA's are.
PAGE = 2 * 1024**2
#: Below this load at the start of a step, a GPU (or MIG instance) runs no process.
IDLE_BELOW = 0.2

# Profiles a simulated MIG GPU can be split into (H100 80GB names; memory in GiB).
MIG_PROFILES: dict[str, int] = {"1g.10gb": 10, "2g.20gb": 20, "3g.40gb": 40, "4g.40gb": 40}


class SimulatedNVMLError(Exception):
    """Mirrors ``pynvml.NVMLError``: the return code is in ``value``."""

    _errcode_to_string: dict[int, str] = {  # noqa: RUF012 - pynvml's own class attribute shape
        errors.NVML_ERROR_NOT_SUPPORTED: "Not Supported",
        errors.NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
        errors.NVML_ERROR_NOT_FOUND: "Not Found",
        errors.NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
        errors.NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
        errors.NVML_ERROR_FUNCTION_NOT_FOUND: "Function Not Found",
        errors.NVML_ERROR_GPU_IS_LOST: "GPU is lost",
        errors.NVML_ERROR_LIB_RM_VERSION_MISMATCH: "Driver/library version mismatch",
        errors.NVML_ERROR_UNINITIALIZED: "Uninitialized",
        errors.NVML_ERROR_UNKNOWN: "Unknown Error",
    }

    def __init__(self, value: int) -> None:
        super().__init__(self._errcode_to_string.get(value, f"NVML error {value}"))
        self.value = value


@dataclasses.dataclass
class SimulatedGPU:
    """The static description of one simulated GPU."""

    name: str = "NVIDIA H100 80GB HBM3"
    compute_capability: tuple[int, int] = (9, 0)
    memory_total: int = 85_520_809_984
    reserved: int = 503_316_480
    power_limit_mw: int = 700_000
    idle_power_mw: int = 70_000
    max_sm_clock: int = 1980
    memory_clock: int = 2619
    #: MIG profiles of the instances this GPU is split into; ``None`` means MIG is disabled.
    mig: list[str] | None = None
    #: Field groups (keys of :data:`FIELD_FUNCTIONS`) this GPU answers with "Not Supported".
    unsupported: frozenset[str] = frozenset()
    #: The minor number of its ``/dev/nvidia<minor>``; ``None``: its index.
    minor_number: int | None = None


@dataclasses.dataclass(frozen=True)
class ListedProcess:
    """One compute process of a processes file."""

    gpu: int
    #: The PID NVML reports (the host's, for a server in its own PID namespace).
    pid: int
    used_memory: int
    #: The process as this server sees it: the entry lasts while it lives (default: ``pid``).
    local_pid: int | None = None
    #: MIG instance (index among the GPU's instances) it runs on; ``None`` without MIG.
    instance: int | None = None
    #: Its SM utilization in %; ``None``: the GPU's load.
    sm_utilization: int | None = None

    @property
    def alive(self) -> bool:
        """Whether the process it follows still runs (a zombie does not: its memory is freed)."""
        pid = self.local_pid if self.local_pid is not None else self.pid
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            return False
        state = stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3]
        return state not in (b"Z", b"X", b"")


_LISTED_KEYS = {f.name for f in dataclasses.fields(ListedProcess)}


def parse_processes(text: str) -> list[ListedProcess]:
    """The processes of a processes file: a JSON list of objects, one per process.

    Raises:
        ValueError: the text is not such a list (the message names what is wrong).
    """
    try:
        data = json.loads(text) if text.strip() else []
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(data, list):
        raise ValueError("must be a JSON list of processes")
    out = []
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise ValueError(f"process {i} is not an object")
        unknown = sorted(set(item) - _LISTED_KEYS)
        if unknown:
            raise ValueError(f"process {i}: unknown key(s) {unknown}")
        for key in ("gpu", "pid", "used_memory"):
            if key not in item:
                raise ValueError(f"process {i}: {key} is missing")
        for key, value in item.items():
            if value is not None and (type(value) is not int or value < 0):
                raise ValueError(f"process {i}: {key} must be a whole number >= 0")
        out.append(ListedProcess(**item))
    return out


class ProcessesFile:
    """A JSON file listing the processes the simulated GPUs run (a test and demo control).

    ``[{"gpu": 0, "pid": 4242, "used_memory": 2147483648}]`` runs process 4242 on GPU 0 with
    2 GiB for as long as process 4242 lives. Optional keys: ``local_pid`` (the process to follow
    when ``pid`` is what NVML would report from outside this server's PID namespace),
    ``instance`` (a MIG instance) and ``sm_utilization`` (%). The file is read again whenever it
    changes; while it is empty or invalid, the GPUs run nothing (:attr:`error` says why it is
    invalid); while it does not exist, they run their invented work (:meth:`processes` is
    ``None``), so a test or a demo can take control and give it back.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.error: str | None = None
        self._stamp: tuple[int, int] | None = None
        self._listed: list[ListedProcess] = []

    def processes(self) -> list[ListedProcess] | None:
        """The listed processes that still run; ``None`` while the file does not exist."""
        try:
            info = os.stat(self.path)
        except OSError:
            self._stamp, self._listed, self.error = None, [], None
            return None
        stamp = (info.st_mtime_ns, info.st_size)
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                with open(self.path, encoding="utf-8") as f:
                    self._listed = parse_processes(f.read())
                self.error = None
            except (OSError, ValueError) as exc:
                self._listed, self.error = [], f"{self.path}: {exc}"
        return [p for p in self._listed if p.alive]


@dataclasses.dataclass(frozen=True)
class PinnedLoad:
    """A load a test pinned on a simulated GPU (:meth:`SimulatedNVML.pin_load`)."""

    #: Percent the GPU reports, 0 to 100.
    utilization: float
    #: Bytes its processes hold; ``None``: what that load usually holds.
    memory_used: int | None = None


@dataclasses.dataclass(frozen=True)
class _Handle:
    gpu: int
    mig: int | None = None


class _Struct(types.SimpleNamespace):
    """Attribute bag standing in for pynvml's ctypes structures (plain attribute reads)."""

    def __init__(self, fields: dict[str, Any]) -> None:
        super().__init__(**fields)


def build_gpus(
    count: int, *, mig: Iterable[int] = (), unsupported: Iterable[str] = ()
) -> list[SimulatedGPU]:
    """Describe ``count`` H100-like GPUs; those in ``mig`` are split into three instances."""
    bad = set(unsupported) - set(FIELD_FUNCTIONS) - {"memory_v2"}
    if bad:
        raise ValueError(
            f"unknown simulated field(s) {sorted(bad)}; allowed: {sorted(FIELD_FUNCTIONS)}"
        )
    mig_set = set(mig)
    return [
        SimulatedGPU(
            mig=["3g.40gb", "2g.20gb", "1g.10gb"] if i in mig_set else None,
            unsupported=frozenset(unsupported),
        )
        for i in range(count)
    ]


class SimulatedNVML:
    """A pynvml stand-in with simulated GPUs. Thread-safe for one sampler plus readers."""

    NVMLError = SimulatedNVMLError
    nvmlMemory_v2 = 0x02000028
    NVML_TEMPERATURE_GPU = 0
    NVML_CLOCK_SM = 1
    NVML_CLOCK_MEM = 2
    NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 1
    NVML_VOLATILE_ECC = 0
    NVML_FI_DEV_PCIE_COUNT_TX_BYTES = 197
    NVML_FI_DEV_PCIE_COUNT_RX_BYTES = 198
    NVML_DEVICE_MIG_ENABLE = 1

    def __init__(
        self,
        gpus: list[SimulatedGPU] | None = None,
        *,
        driver_version: str = "580.159.04",
        cuda_driver_version: int = 13000,
        clock: Callable[[], float] = time.time,
        seed: int = 0,
        processes_file: str | None = None,
    ) -> None:
        self.gpus = gpus if gpus is not None else build_gpus(2)
        #: When set, the GPUs run the processes it lists instead of invented work.
        self.processes_file = ProcessesFile(processes_file) if processes_file else None
        self.driver_version = driver_version
        self.cuda_driver_version = cuda_driver_version
        self._clock = clock
        self._lock = threading.Lock()
        self._initialized = 0
        self._rng = random.Random(seed)  # noqa: S311 - phases of a demo waveform, not secrets
        self._phase = [self._rng.uniform(0, 2 * math.pi) for _ in self.gpus]
        self._pcie_bytes = [[0.0, 0.0] for _ in self.gpus]
        self._pcie_last = [self._clock() for _ in self.gpus]
        self._energy_mj = [2_096_357.0 for _ in self.gpus]
        self._energy_last = [self._clock() for _ in self.gpus]
        #: Loads pinned by a test or a demo (:meth:`pin_load`), by GPU index.
        self._pinned: dict[int, PinnedLoad] = {}

    # ------------------------------------------------------------------ plumbing
    def _check(self, name: str, handle: _Handle | None = None) -> None:
        """Raise what a real driver would before answering ``name``."""
        if not self._initialized and name != "nvmlInit":
            raise self.NVMLError(errors.NVML_ERROR_UNINITIALIZED)
        if handle is not None:
            gpu = self.gpus[handle.gpu]
            for group in gpu.unsupported:
                if name in FIELD_FUNCTIONS.get(group, ()):
                    raise self.NVMLError(errors.NVML_ERROR_NOT_SUPPORTED)

    def _gpu(self, handle: _Handle) -> SimulatedGPU:
        return self.gpus[handle.gpu]

    def load(self, gpu: int, now: float | None = None, *, instance: int = 0) -> float:
        """The demand on GPU ``gpu`` (or its MIG ``instance``) in [0, 1] at time ``now``.

        A smooth waveform; whether work actually runs is decided per step (:meth:`busy`).
        """
        t = self._clock() if now is None else now
        phase = self._phase[gpu] + 1.9 * instance
        wave = 0.5 + 0.45 * math.sin(2 * math.pi * t / 45.0 + phase)
        ripple = 0.05 * math.sin(2 * math.pi * t / 7.0 + 2 * phase)
        return min(1.0, max(0.0, wave + ripple))

    def _step_start(self, now: float) -> float:
        return now - now % MEMORY_STEP

    def _work(self, gpu: int, instance: int | None, now: float) -> list[tuple[int, int]]:
        """The processes, as (pid, bytes), on a GPU without MIG or on one MIG instance.

        Fixed for the whole step that ``now`` falls in: set by the load as the step began
        (or by the load a test pinned, :meth:`pin_load`).
        """
        listed = self.processes_file.processes() if self.processes_file is not None else None
        if listed is not None:
            return [
                (p.pid, p.used_memory) for p in listed if p.gpu == gpu and p.instance == instance
            ]
        pinned = self._pinned.get(gpu)
        if pinned is not None:
            return self._pinned_work(gpu, instance, pinned)
        demand = self.load(gpu, self._step_start(now), instance=instance or 0)
        if demand < IDLE_BELOW:
            return []
        return self._work_for(gpu, instance, demand)

    def _work_for(self, gpu: int, instance: int | None, demand: float) -> list[tuple[int, int]]:
        """The processes a GPU (or MIG instance) runs at ``demand`` in (0, 1]."""
        device = self.gpus[gpu]
        if instance is None:
            capacity = device.memory_total - device.reserved
            share = 0.05 + 0.6 * demand
            # a busier GPU runs a second, smaller process (a data loader, a second notebook)
            split = [0.7, 0.3] if demand >= 0.6 else [1.0]
            base_pid = 4000 + 10 * gpu
        else:
            assert device.mig is not None
            capacity = MIG_PROFILES.get(device.mig[instance], 10) * 1024**3
            share = 0.1 + 0.8 * demand
            split = [1.0]
            base_pid = 5000 + 100 * gpu + 10 * instance
        total = int(capacity * share)
        return [
            (base_pid + slot, max(PAGE, int(total * part) // PAGE * PAGE))
            for slot, part in enumerate(split)
        ]

    def _pinned_work(
        self, gpu: int, instance: int | None, pinned: PinnedLoad
    ) -> list[tuple[int, int]]:
        """The processes of a GPU whose load is pinned: its memory, or the load's usual share."""
        if pinned.memory_used is None:
            demand = pinned.utilization / 100.0
            return self._work_for(gpu, instance, demand) if demand > 0 else []
        if instance is None:
            size = pinned.memory_used
            base_pid = 4000 + 10 * gpu
        else:
            sizes = self._instance_sizes(gpu)
            size = pinned.memory_used * sizes[instance] // sum(sizes)
            base_pid = 5000 + 100 * gpu + 10 * instance
        pages = -(-size // PAGE)  # whole pages, rounded up: any allocation holds one
        return [(base_pid, pages * PAGE)] if pages else []

    def _instance_sizes(self, gpu: int) -> list[int]:
        """The memory (bytes) of each MIG instance of GPU ``gpu``."""
        return [MIG_PROFILES.get(profile, 10) * 1024**3 for profile in self.gpus[gpu].mig or []]

    def capacity(self, gpu: int) -> int:
        """The memory (bytes) processes can use on GPU ``gpu`` (all its MIG instances')."""
        device = self.gpus[gpu]
        if device.mig is not None:
            return sum(self._instance_sizes(gpu))
        return device.memory_total - device.reserved

    def pin_load(
        self,
        utilization: float | None,
        *,
        memory_used: int | None = None,
        gpus: Iterable[int] | None = None,
    ) -> dict[int, PinnedLoad | None]:
        """Pin GPUs' load until changed (a test and demo control; real GPUs have none).

        Args:
            utilization: percent (0 to 100) the GPUs report from now on; ``None`` returns them
                to the built-in pattern.
            memory_used: bytes their processes hold (one process per GPU or MIG instance,
                whole 2 MiB pages); ``None``: what the load usually holds.
            gpus: NVML indices (default: every GPU).

        Returns:
            Every GPU's pinned load (``None``: the built-in pattern), by index.

        Raises:
            ValueError: a value out of range or an unknown GPU; nothing is changed then.
        """
        indices = list(range(len(self.gpus))) if gpus is None else list(gpus)
        unknown = [i for i in indices if not 0 <= i < len(self.gpus)]
        if unknown:
            raise ValueError(
                f"no simulated GPU {unknown[0]}: this server simulates {len(self.gpus)} "
                f"(indices 0 to {len(self.gpus) - 1})"
            )
        if utilization is None:
            if memory_used is not None:
                raise ValueError("memory_used needs a utilization (null returns to the pattern)")
            pinned = None
        else:
            if not 0 <= utilization <= 100:
                raise ValueError(f"utilization must be between 0 and 100, not {utilization}")
            if memory_used is not None:
                for i in indices:
                    if not 0 <= memory_used <= self.capacity(i):
                        raise ValueError(
                            f"memory_used must be between 0 and {self.capacity(i)} bytes on GPU "
                            f"{i}, not {memory_used}"
                        )
            pinned = PinnedLoad(float(utilization), memory_used)
        with self._lock:
            table = dict(self._pinned)
            for i in indices:
                if pinned is None:
                    table.pop(i, None)
                else:
                    table[i] = pinned
            self._pinned = table  # one assignment: the sampler thread sees all or nothing
        return self.pinned_loads()

    def pinned_loads(self) -> dict[int, PinnedLoad | None]:
        """Every GPU's pinned load (``None``: it follows the built-in pattern), by index."""
        table = self._pinned
        return {i: table.get(i) for i in range(len(self.gpus))}

    def _used(self, gpu: int, instance: int | None, now: float) -> int:
        return sum(size for _, size in self._work(gpu, instance, now))

    def busy(self, gpu: int, now: float | None = None) -> float:
        """How hard GPU ``gpu`` works at ``now`` in [0, 1]: its load while it runs processes.

        A MIG-enabled GPU works as much as its instances do, weighted by their memory. A GPU
        whose load a test pinned works exactly that hard.
        """
        pinned = self._pinned.get(gpu)
        if pinned is not None:
            return pinned.utilization / 100.0
        t = self._clock() if now is None else now
        device = self.gpus[gpu]
        if device.mig is None:
            return self.load(gpu, t) if self._work(gpu, None, t) else 0.0
        sizes = [MIG_PROFILES.get(profile, 10) for profile in device.mig]
        working = sum(
            size * self.load(gpu, t, instance=i)
            for i, size in enumerate(sizes)
            if self._work(gpu, i, t)
        )
        return working / sum(sizes) if sizes else 0.0

    # ------------------------------------------------------------------ system
    def nvmlInit(self) -> None:
        self._check("nvmlInit")
        with self._lock:
            self._initialized += 1

    def nvmlShutdown(self) -> None:
        self._check("nvmlShutdown")
        with self._lock:
            self._initialized = max(0, self._initialized - 1)

    def nvmlSystemGetDriverVersion(self) -> str:
        self._check("nvmlSystemGetDriverVersion")
        return self.driver_version

    def nvmlSystemGetCudaDriverVersion_v2(self) -> int:
        self._check("nvmlSystemGetCudaDriverVersion_v2")
        return self.cuda_driver_version

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        self._check("nvmlSystemGetCudaDriverVersion")
        return self.cuda_driver_version

    def nvmlSystemGetNVMLVersion(self) -> str:
        self._check("nvmlSystemGetNVMLVersion")
        return f"{self.cuda_driver_version // 1000}.{self.driver_version}"

    def nvmlDeviceGetCount(self) -> int:
        self._check("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Handle:
        self._check("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self.gpus):
            raise self.NVMLError(errors.NVML_ERROR_INVALID_ARGUMENT)
        return _Handle(index)

    # ------------------------------------------------------------------ static facts
    def nvmlDeviceGetUUID(self, handle: _Handle) -> str:
        self._check("nvmlDeviceGetUUID", handle)
        if handle.mig is not None:
            return f"MIG-5e0c8a1d-{handle.gpu:04x}-4{handle.mig:03x}-8000-00000000{handle.gpu:04x}"
        return f"GPU-29b8a7a4-a578-6140-8ee1-527f74f5{handle.gpu:04x}"

    def nvmlDeviceGetName(self, handle: _Handle) -> str:
        self._check("nvmlDeviceGetName", handle)
        gpu = self._gpu(handle)
        if handle.mig is not None and gpu.mig is not None:
            return f"{gpu.name} MIG {gpu.mig[handle.mig]}"
        return gpu.name

    def nvmlDeviceGetSerial(self, handle: _Handle) -> str:
        self._check("nvmlDeviceGetSerial", handle)
        return f"17528240264{handle.gpu:02d}"

    def nvmlDeviceGetPciInfo(self, handle: _Handle) -> _Struct:
        self._check("nvmlDeviceGetPciInfo", handle)
        return _Struct({"busId": f"00000000:{0x18 + 0x10 * handle.gpu:02X}:00.0"})

    def nvmlDeviceGetMinorNumber(self, handle: _Handle) -> int:
        self._check("nvmlDeviceGetMinorNumber", handle)
        minor = self._gpu(handle).minor_number
        return handle.gpu if minor is None else minor

    def nvmlDeviceGetCudaComputeCapability(self, handle: _Handle) -> tuple[int, int]:
        self._check("nvmlDeviceGetCudaComputeCapability", handle)
        return self._gpu(handle).compute_capability

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: _Handle) -> int:
        self._check("nvmlDeviceGetEnforcedPowerLimit", handle)
        return self._gpu(handle).power_limit_mw

    def nvmlDeviceGetPowerManagementLimit(self, handle: _Handle) -> int:
        self._check("nvmlDeviceGetPowerManagementLimit", handle)
        return self._gpu(handle).power_limit_mw

    def nvmlDeviceGetMaxClockInfo(self, handle: _Handle, clock: int) -> int:
        self._check("nvmlDeviceGetMaxClockInfo", handle)
        gpu = self._gpu(handle)
        return gpu.max_sm_clock if clock == self.NVML_CLOCK_SM else gpu.memory_clock

    # ------------------------------------------------------------------ live values
    def nvmlDeviceGetMemoryInfo(self, handle: _Handle, version: int | None = None) -> _Struct:
        self._check("nvmlDeviceGetMemoryInfo", handle)
        gpu = self._gpu(handle)
        if version and "memory_v2" in gpu.unsupported:
            raise self.NVMLError(errors.NVML_ERROR_FUNCTION_NOT_FOUND)
        now = self._clock()
        if handle.mig is not None and gpu.mig is not None:
            total = MIG_PROFILES.get(gpu.mig[handle.mig], 10) * 1024**3
            used = self._used(handle.gpu, handle.mig, now)
            return _Struct({"total": total, "used": used, "free": total - used, "reserved": 0})
        if gpu.mig is not None:
            used = sum(self._used(handle.gpu, i, now) for i in range(len(gpu.mig)))
        else:
            used = self._used(handle.gpu, None, now)
        free = gpu.memory_total - gpu.reserved - used
        if version:
            return _Struct(
                {"total": gpu.memory_total, "reserved": gpu.reserved, "used": used, "free": free}
            )
        return _Struct({"total": gpu.memory_total, "used": used + gpu.reserved, "free": free})

    def nvmlDeviceGetUtilizationRates(self, handle: _Handle) -> _Struct:
        self._check("nvmlDeviceGetUtilizationRates", handle)
        if self._gpu(handle).mig is not None:
            # A MIG-enabled parent cannot report utilization (as on real hardware).
            raise self.NVMLError(errors.NVML_ERROR_NOT_SUPPORTED)
        busy = self.busy(handle.gpu)
        return _Struct({"gpu": round(100 * busy), "memory": round(35 * busy)})

    def nvmlDeviceGetPowerUsage(self, handle: _Handle) -> int:
        self._check("nvmlDeviceGetPowerUsage", handle)
        gpu = self._gpu(handle)
        span = gpu.power_limit_mw - gpu.idle_power_mw
        return int(gpu.idle_power_mw + 0.95 * span * self.busy(handle.gpu))

    def nvmlDeviceGetClockInfo(self, handle: _Handle, clock: int) -> int:
        self._check("nvmlDeviceGetClockInfo", handle)
        gpu = self._gpu(handle)
        if clock == self.NVML_CLOCK_MEM:
            return gpu.memory_clock
        return round(345 + (gpu.max_sm_clock * 0.7 - 345) * self.busy(handle.gpu))

    def nvmlDeviceGetFieldValues(self, handle: _Handle, field_ids: list[int]) -> list[_Struct]:
        self._check("nvmlDeviceGetFieldValues", handle)
        now = self._clock()
        with self._lock:
            dt = max(0.0, now - self._pcie_last[handle.gpu])
            self._pcie_last[handle.gpu] = now
            load = self.busy(handle.gpu, now)
            counters = self._pcie_bytes[handle.gpu]
            counters[0] += dt * (2e6 + 3e8 * load)  # bytes/s transmitted
            counters[1] += dt * (4e6 + 9e8 * load)  # bytes/s received
            snapshot = list(counters)
        out = []
        for fid in field_ids:
            which = {
                self.NVML_FI_DEV_PCIE_COUNT_TX_BYTES: 0,
                self.NVML_FI_DEV_PCIE_COUNT_RX_BYTES: 1,
            }
            if fid not in which:
                out.append(_struct_field(fid, now, errors.NVML_ERROR_NOT_SUPPORTED, 0))
                continue
            # Like the H100: a 32-bit counter (valueType 1) that wraps around.
            value = int(snapshot[which[fid]]) % (1 << 32)
            out.append(_struct_field(fid, now, 0, value))
        return out

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: _Handle) -> int:
        self._check("nvmlDeviceGetTotalEnergyConsumption", handle)
        now = self._clock()
        with self._lock:
            dt = max(0.0, now - self._energy_last[handle.gpu])
            self._energy_last[handle.gpu] = now
            self._energy_mj[handle.gpu] += dt * self.nvmlDeviceGetPowerUsage(handle)
            return int(self._energy_mj[handle.gpu])

    def nvmlDeviceGetComputeRunningProcesses_v3(self, handle: _Handle) -> list[_Struct]:
        self._check("nvmlDeviceGetComputeRunningProcesses_v3", handle)
        return self._processes(handle)

    def nvmlDeviceGetComputeRunningProcesses_v2(self, handle: _Handle) -> list[_Struct]:
        self._check("nvmlDeviceGetComputeRunningProcesses_v2", handle)
        return self._processes(handle)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: _Handle) -> list[_Struct]:
        self._check("nvmlDeviceGetComputeRunningProcesses", handle)
        return self._processes(handle)

    def nvmlDeviceGetProcessUtilization(self, handle: _Handle, since: int) -> list[_Struct]:
        """One sample per busy process: the GPU's utilization split by the processes' memory.

        Raises "Not Supported" on a MIG GPU and "Not Found" when no process is busy, as NVML.
        """
        self._check("nvmlDeviceGetProcessUtilization", handle)
        if self._gpu(handle).mig is not None:
            raise self.NVMLError(errors.NVML_ERROR_NOT_SUPPORTED)
        now = self._clock()
        stamp = int(now * 1_000_000)
        work = self._work(handle.gpu, None, now)
        fixed: dict[int, int | None] = {}
        if self.processes_file is not None:
            listed = self.processes_file.processes() or []
            fixed = {p.pid: p.sm_utilization for p in listed}
        total = sum(size for _, size in work) or 1
        busy = 100 * self.busy(handle.gpu, now)
        samples = []
        for pid, size in work:
            share = fixed.get(pid)
            util = round(busy * size / total) if share is None else share
            if util > 0 and stamp > since:
                samples.append(
                    _Struct(
                        {
                            "pid": pid,
                            "timeStamp": stamp,
                            "smUtil": util,
                            "memUtil": round(util * 0.35),
                            "encUtil": 0,
                            "decUtil": 0,
                        }
                    )
                )
        if not samples:
            raise self.NVMLError(errors.NVML_ERROR_NOT_FOUND)
        return samples

    def _processes(self, handle: _Handle) -> list[_Struct]:
        now = self._clock()
        gpu = self._gpu(handle)
        if gpu.mig is None:
            places: list[int | None] = [None]
        elif handle.mig is None:
            places = list(range(len(gpu.mig)))  # a MIG parent lists its instances' processes
        else:
            places = [handle.mig]
        return [
            _Struct(
                {
                    "pid": pid,
                    "usedGpuMemory": size,
                    # as NVML: the GPU and compute instance of a MIG process; else "none"
                    "gpuInstanceId": 0xFFFFFFFF if place is None else 1 + place,
                    "computeInstanceId": 0xFFFFFFFF if place is None else 0,
                }
            )
            for place in places
            for pid, size in self._work(handle.gpu, place, now)
        ]

    # ------------------------------------------------------------------ MIG
    def nvmlDeviceGetMigMode(self, handle: _Handle) -> list[int]:
        self._check("nvmlDeviceGetMigMode", handle)
        gpu = self._gpu(handle)
        if gpu.compute_capability < (8, 0):
            raise self.NVMLError(errors.NVML_ERROR_NOT_SUPPORTED)
        enabled = 1 if gpu.mig is not None else 0
        return [enabled, enabled]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: _Handle) -> int:
        self._check("nvmlDeviceGetMaxMigDeviceCount", handle)
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: _Handle, index: int) -> _Handle:
        self._check("nvmlDeviceGetMigDeviceHandleByIndex", handle)
        gpu = self._gpu(handle)
        if gpu.mig is None:
            raise self.NVMLError(errors.NVML_ERROR_INVALID_ARGUMENT)
        if index >= len(gpu.mig):
            raise self.NVMLError(errors.NVML_ERROR_NOT_FOUND)
        return _Handle(handle.gpu, index)

    def nvmlDeviceGetGpuInstanceId(self, handle: _Handle) -> int:
        self._check("nvmlDeviceGetGpuInstanceId", handle)
        return 1 + (handle.mig or 0)

    def nvmlDeviceGetComputeInstanceId(self, handle: _Handle) -> int:
        self._check("nvmlDeviceGetComputeInstanceId", handle)
        return 0


def _table_answer(name: str, members: tuple[tuple[str | None, Callable[[float], int]], ...]) -> Any:
    """The simulated NVML function ``name``: the field table's curves at the GPU's load."""

    def answer(self: SimulatedNVML, handle: _Handle, *args: Any) -> Any:
        self._check(name, handle)
        load = self.busy(handle.gpu)
        if len(members) == 1 and members[0][0] is None:
            return members[0][1](load)
        return _Struct({str(member): curve(load) for member, curve in members})

    answer.__name__ = answer.__qualname__ = name
    return answer


def _table_calls() -> dict[str, tuple[tuple[str | None, Callable[[float], int]], ...]]:
    """The NVML functions of the field table's rows that give a ``simulate`` curve."""
    calls: dict[str, list[tuple[str | None, Callable[[float], int]]]] = {}
    for field in fields.FIELDS:
        if field.simulate is not None:
            for name in field.nvml.functions:
                calls.setdefault(name, []).append((field.nvml.member, field.simulate))
    return {name: tuple(members) for name, members in calls.items()}


# The simulated GPUs answer the calls of the table's simulated fields from the table itself.
for _name, _members in _table_calls().items():
    setattr(SimulatedNVML, _name, _table_answer(_name, _members))


def _struct_field(field_id: int, now: float, ret: int, value: int) -> _Struct:
    return _Struct(
        {
            "fieldId": field_id,
            "scopeId": 0,
            "timestamp": int(now * 1_000_000),
            "latencyUsec": 0,
            "valueType": 1,
            "nvmlReturn": ret,
            "value": _Struct({"uiVal": value}),
        }
    )
