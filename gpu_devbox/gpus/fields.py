"""The GPU field table: every measured value of a GPU document, described once.

Each :class:`GpuField` row says where a value sits in the payload (``group.key``), how the NVML
adapter reads it (entry points, constants, structure member, unit conversion), its unit and JSON
type, when it is read (:class:`Cadence`), whether the panel charts it (then it is kept in the
history), its Prometheus name, help and scale, and its dcgm-exporter alias. Everything else is
derived from this table:

* the adapter (:mod:`gpu_devbox.gpus.nvml`) reads exactly these fields, at their cadence;
* the sampler and :mod:`gpu_devbox.gpus.payload` build the GPU documents, the documents of GPUs
  that cannot be read and the history entries from it;
* the simulated backend (:mod:`gpu_devbox.gpus.simulated`) answers the entry points of rows that
  give a ``simulate`` curve, and lets any row's group be declared unsupported;
* the Prometheus collector (``gpu_devbox.server.prometheus``) exports the rows that name a
  Prometheus metric or a DCGM alias;
* the ``Gpu`` and ``HistoryGpu`` schemas of the OpenAPI document, the TypeScript types generated
  from it, and the field reference in the docs (``gpu-devbox metrics --fields --markdown``).

Adding a metric that one NVML call answers is one row here (and a test): see CONTRIBUTING.md.
The structured parts of a GPU document (identity, ``processes``, ``mig``, ``reason``) are not
metrics; :mod:`gpu_devbox.gpus.payload` describes them.

Plain Python: this module does not import ``pynvml``.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable


class Cadence(enum.Enum):
    """When a field is read."""

    #: Once, when NVML is opened (the GPU's limits and maxima).
    STATIC = "static"
    #: Every ``c.GPUDevbox.interval`` seconds.
    FAST = "fast"
    #: Every ``c.GPUDevbox.slow_interval`` seconds (costly or slow-changing values).
    SLOW = "slow"


@dataclasses.dataclass(frozen=True)
class Nvml:
    """How the adapter reads a field from NVML.

    Fields whose ``Nvml`` is equal share one call per device and tick.
    """

    #: NVML entry points in order of preference. A per-tick field remembers the first that
    #: answers (an old driver lacks the newer one); a static field tries them all each time.
    functions: tuple[str, ...]
    #: NVML constants passed after the device handle: (name in the binding, value in nvml.h).
    args: tuple[tuple[str, int], ...] = ()
    #: The member of the structure the call returns; ``None`` when it returns the value itself.
    member: str | None = None
    #: NVML's units per payload unit: 1000 turns milliwatts into watts. Values with ``per == 1``
    #: are NVML's integers, passed on as integers.
    per: float = 1
    #: A dedicated reader of the adapter decodes the answer (``"memory"``: the v2 memory
    #: information with its v1 fallback; ``"pcie"``: rates from NVML's byte counters).
    reader: str | None = None

    @property
    def call(self) -> str:
        """The call as the docs show it, e.g. ``nvmlDeviceGetClockInfo(NVML_CLOCK_SM)``."""
        args = ", ".join(name for name, _ in self.args)
        calls = [f"{name}({args})" if args else name for name in self.functions]
        if self.member and not self.reader:
            calls = [f"{call}.{self.member}" for call in calls]
        return ", else ".join(calls)


@dataclasses.dataclass(frozen=True)
class Prometheus:
    """A Prometheus metric of a field (its name follows ``c.GPUDevbox.prometheus_prefix``)."""

    name: str
    help: str
    #: Multiplies the payload value into Prometheus' base unit (percent to ratio: 0.01).
    scale: float = 1
    #: A counter (it only grows: energy) rather than a gauge.
    counter: bool = False
    #: The unit as the docs show it.
    unit: str = ""


@dataclasses.dataclass(frozen=True)
class Dcgm:
    """The name NVIDIA's dcgm-exporter gives the same value, with its unit and help."""

    name: str
    help: str
    #: Multiplies the payload value into dcgm-exporter's unit (bytes to MiB: 1/2**20).
    scale: float = 1


@dataclasses.dataclass(frozen=True)
class GpuField:
    """One measured value of a GPU document: ``gpu[group][key]``."""

    group: str
    key: str
    #: The unit as the docs and the OpenAPI description show it.
    unit: str
    #: ``"integer"`` or ``"number"``: the JSON Schema type (the value may also be ``null``).
    type: str
    cadence: Cadence
    nvml: Nvml
    description: str
    #: Charted by the panel: kept in ``GET gpus/history`` and the server's history.
    charted: bool = False
    prometheus: Prometheus | None = None
    dcgm: Dcgm | None = None
    #: The name ``c.GPUDevbox.simulated_unsupported`` uses to make the simulated GPUs answer
    #: this field's entry points with "Not Supported" (``None``: only by a special rule).
    unsupported_as: str | None = None
    #: For the simulated backend: NVML's raw value at a load between 0 and 1. Fields whose
    #: values hang together with others (memory and processes, power and energy, clocks and the
    #: GPU's datasheet) are answered by the simulated backend's own methods instead.
    simulate: Callable[[float], int] | None = None

    @property
    def path(self) -> str:
        """``group.key``, as the docs name the field."""
        return f"{self.group}.{self.key}"


_MIB = 1024 * 1024
_MHZ = 1_000_000

_UTILIZATION = Nvml(("nvmlDeviceGetUtilizationRates",))
_MEMORY = Nvml(("nvmlDeviceGetMemoryInfo",), reader="memory")
_PCIE = Nvml(("nvmlDeviceGetFieldValues",), reader="pcie")
_CLOCK_SM = ("NVML_CLOCK_SM", 1)
_CLOCK_MEM = ("NVML_CLOCK_MEM", 2)

#: Every measured field, in the order of the GPU document (and of the Prometheus output).
FIELDS: tuple[GpuField, ...] = (
    GpuField(
        "utilization",
        "gpu",
        "%",
        "number",
        Cadence.FAST,
        dataclasses.replace(_UTILIZATION, member="gpu"),
        "Share of the last sample period in which a kernel ran; `null` on a MIG-enabled GPU "
        "(NVML cannot report it there).",
        charted=True,
        prometheus=Prometheus("utilization_ratio", "GPU utilization (0-1)", 0.01, unit="0-1"),
        dcgm=Dcgm("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %)."),
        unsupported_as="utilization",
    ),
    GpuField(
        "utilization",
        "memory",
        "%",
        "number",
        Cadence.FAST,
        dataclasses.replace(_UTILIZATION, member="memory"),
        "Share of the last sample period in which GPU memory was read or written.",
        charted=True,
        prometheus=Prometheus(
            "memory_utilization_ratio",
            "Share of time GPU memory was read or written (0-1)",
            0.01,
            unit="0-1",
        ),
        dcgm=Dcgm("DCGM_FI_DEV_MEM_COPY_UTIL", "Memory utilization (in %)."),
        unsupported_as="utilization",
    ),
    GpuField(
        "memory",
        "total",
        "bytes",
        "integer",
        Cadence.FAST,
        dataclasses.replace(_MEMORY, member="total"),
        "Total GPU memory, as `nvidia-smi` reports it.",
        prometheus=Prometheus("memory_total_bytes", "Total GPU memory", unit="bytes"),
    ),
    GpuField(
        "memory",
        "used",
        "bytes",
        "integer",
        Cadence.FAST,
        dataclasses.replace(_MEMORY, member="used"),
        "Memory used by processes (`nvmlDeviceGetMemoryInfo_v2`, as `nvidia-smi` reports it; "
        "with the v1 API of drivers before R510 it includes the driver's reservation).",
        charted=True,
        prometheus=Prometheus("memory_used_bytes", "GPU memory used by processes", unit="bytes"),
        dcgm=Dcgm("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).", 1 / _MIB),
    ),
    GpuField(
        "memory",
        "reserved",
        "bytes",
        "integer",
        Cadence.FAST,
        dataclasses.replace(_MEMORY, member="reserved"),
        "Reserved by the driver; `null` with the v1 API of drivers before R510.",
        charted=True,
        prometheus=Prometheus(
            "memory_reserved_bytes", "GPU memory reserved by the driver", unit="bytes"
        ),
    ),
    GpuField(
        "memory",
        "free",
        "bytes",
        "integer",
        Cadence.FAST,
        dataclasses.replace(_MEMORY, member="free"),
        "Memory neither used nor reserved.",
        prometheus=Prometheus("memory_free_bytes", "Free GPU memory", unit="bytes"),
        dcgm=Dcgm("DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB).", 1 / _MIB),
    ),
    GpuField(
        "temperature",
        "gpu",
        "°C",
        "number",
        Cadence.FAST,
        Nvml(
            ("nvmlDeviceGetTemperatureV", "nvmlDeviceGetTemperature"),
            args=(("NVML_TEMPERATURE_GPU", 0),),
        ),
        "GPU core temperature.",
        charted=True,
        prometheus=Prometheus("temperature_celsius", "GPU core temperature", unit="°C"),
        dcgm=Dcgm("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C)."),
        unsupported_as="temperature",
        simulate=lambda load: round(33 + 24 * load),
    ),
    GpuField(
        "power",
        "usage",
        "W",
        "number",
        Cadence.FAST,
        Nvml(("nvmlDeviceGetPowerUsage",), per=1000.0),
        "Power draw.",
        charted=True,
        prometheus=Prometheus("power_watts", "Power draw", unit="W"),
        dcgm=Dcgm("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W)."),
        unsupported_as="power",
    ),
    GpuField(
        "power",
        "limit",
        "W",
        "number",
        Cadence.STATIC,
        Nvml(
            ("nvmlDeviceGetEnforcedPowerLimit", "nvmlDeviceGetPowerManagementLimit"),
            per=1000.0,
        ),
        "The enforced power limit.",
        prometheus=Prometheus("power_limit_watts", "Enforced power limit", unit="W"),
        unsupported_as="power_limit",
    ),
    GpuField(
        "clocks",
        "sm",
        "MHz",
        "integer",
        Cadence.FAST,
        Nvml(("nvmlDeviceGetClockInfo",), args=(_CLOCK_SM,)),
        "SM (graphics) clock.",
        charted=True,
        prometheus=Prometheus("sm_clock_hertz", "SM clock", _MHZ, unit="Hz"),
        dcgm=Dcgm("DCGM_FI_DEV_SM_CLOCK", "SM clock frequency (in MHz)."),
        unsupported_as="clocks",
    ),
    GpuField(
        "clocks",
        "memory",
        "MHz",
        "integer",
        Cadence.FAST,
        Nvml(("nvmlDeviceGetClockInfo",), args=(_CLOCK_MEM,)),
        "Memory clock.",
        charted=True,
        prometheus=Prometheus("memory_clock_hertz", "Memory clock", _MHZ, unit="Hz"),
        dcgm=Dcgm("DCGM_FI_DEV_MEM_CLOCK", "Memory clock frequency (in MHz)."),
        unsupported_as="clocks",
    ),
    GpuField(
        "clocks",
        "sm_max",
        "MHz",
        "integer",
        Cadence.STATIC,
        Nvml(("nvmlDeviceGetMaxClockInfo",), args=(_CLOCK_SM,)),
        "Highest SM clock.",
        unsupported_as="clocks",
    ),
    GpuField(
        "clocks",
        "memory_max",
        "MHz",
        "integer",
        Cadence.STATIC,
        Nvml(("nvmlDeviceGetMaxClockInfo",), args=(_CLOCK_MEM,)),
        "Highest memory clock.",
        unsupported_as="clocks",
    ),
    GpuField(
        "pcie",
        "tx",
        "bytes/s",
        "number",
        Cadence.FAST,
        dataclasses.replace(_PCIE, member="tx"),
        "PCIe transmit throughput, from NVML's byte counter (field 197) and its timestamps; "
        "`null` in the first sample.",
        charted=True,
        prometheus=Prometheus(
            "pcie_transmit_bytes_per_second", "PCIe transmit throughput", unit="bytes/s"
        ),
        unsupported_as="pcie",
    ),
    GpuField(
        "pcie",
        "rx",
        "bytes/s",
        "number",
        Cadence.FAST,
        dataclasses.replace(_PCIE, member="rx"),
        "PCIe receive throughput, from NVML's byte counter (field 198) and its timestamps; "
        "`null` in the first sample.",
        charted=True,
        prometheus=Prometheus(
            "pcie_receive_bytes_per_second", "PCIe receive throughput", unit="bytes/s"
        ),
        unsupported_as="pcie",
    ),
    GpuField(
        "energy",
        "total",
        "J",
        "number",
        Cadence.SLOW,
        Nvml(("nvmlDeviceGetTotalEnergyConsumption",), per=1000.0),
        "Energy used since the driver loaded (the call takes about 4 ms on an H100).",
        prometheus=Prometheus(
            "energy_joules", "Energy used since the driver loaded", counter=True, unit="J"
        ),
        unsupported_as="energy",
    ),
    GpuField(
        "ecc",
        "uncorrected_volatile",
        "count",
        "integer",
        Cadence.SLOW,
        Nvml(
            ("nvmlDeviceGetTotalEccErrors",),
            args=(("NVML_MEMORY_ERROR_TYPE_UNCORRECTED", 1), ("NVML_VOLATILE_ECC", 0)),
        ),
        "Uncorrected ECC errors since the driver loaded.",
        prometheus=Prometheus(
            "ecc_uncorrected_volatile_errors",
            "Uncorrected ECC errors since the last driver load",
            unit="count",
        ),
        unsupported_as="ecc",
        simulate=lambda load: 0,
    ),
)


def _groups(fields: tuple[GpuField, ...]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    order: dict[str, list[str]] = {}
    for f in fields:
        order.setdefault(f.group, []).append(f.key)
    return tuple((group, tuple(keys)) for group, keys in order.items())


#: Every group of measured fields with its keys, in document order.
GROUPS = _groups(FIELDS)
#: The groups read at the slow cadence (the sampler keeps their last values between readings).
SLOW_GROUPS = tuple(dict.fromkeys(f.group for f in FIELDS if f.cadence is Cadence.SLOW))
#: The charted groups and keys: what a history entry keeps of a GPU document.
CHARTED = _groups(tuple(f for f in FIELDS if f.charted))
#: Fields read once, when NVML is opened: a GPU that cannot be read later keeps them.
STATIC = tuple(f for f in FIELDS if f.cadence is Cadence.STATIC)


def null_groups() -> dict[str, dict[str, None]]:
    """Every group with ``null`` values: a GPU whose values cannot be read."""
    return {group: dict.fromkeys(keys) for group, keys in GROUPS}


def unsupported_functions() -> dict[str, tuple[str, ...]]:
    """``simulated_unsupported`` names and the NVML entry points each one disables."""
    out: dict[str, list[str]] = {}
    for f in FIELDS:
        if f.unsupported_as is not None:
            names = out.setdefault(f.unsupported_as, [])
            names.extend(n for n in f.nvml.functions if n not in names)
    return {name: tuple(functions) for name, functions in out.items()}
