"""The NVML adapter: the only code in gpu-devbox that calls NVML.

Design rules (see the project's peer study for the measurements behind them):

* ``pynvml`` (from NVIDIA's ``nvidia-ml-py``) is imported and initialised lazily, under a lock,
  by :meth:`NvmlAdapter.open`, never at import time.
* Every NVML error is either *field-level* (the device cannot answer this question: the value
  becomes ``None``, i.e. JSON ``null``) or *fatal* (raised as :class:`NvmlUnavailable` with a
  stated :class:`~gpu_devbox.gpus.errors.Reason`).
* Memory comes from ``nvmlDeviceGetMemoryInfo_v2`` (used / reserved / total, as nvidia-smi
  reports them) with a v1 fallback for drivers that lack it.
* PCIe throughput is computed from the field-value byte counters (ids 197/198) and their
  microsecond timestamps, handling counter wrap-around. ``nvmlDeviceGetPcieThroughput`` blocks
  for ~20 ms per call and is deliberately never used.
* Static facts are read once per :meth:`open`, the device's minor number (``/dev/nvidia<minor>``,
  which process attribution matches open device files against) among them.
* Compute processes carry their GPU instance (MIG) and their SM utilization from
  ``nvmlDeviceGetProcessUtilization``, read at the slow cadence; both PIDs are the host's.
* Which values are read, how and when comes from the field table
  (:data:`gpu_devbox.gpus.fields.FIELDS`): this module knows NVML's calling conventions, the
  table knows the fields.

The adapter works on any object with pynvml's surface, so the simulated backend
(:mod:`gpu_devbox.gpus.simulated`) and the test fakes run through exactly this code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import operator
import re
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

from gpu_devbox.gpus import fields, reading
from gpu_devbox.gpus.errors import (
    FIELD_UNAVAILABLE_CODES,
    NVML_ERROR_FUNCTION_NOT_FOUND,
    NVML_ERROR_NO_PERMISSION,
    NVML_ERROR_NOT_FOUND,
    NVML_SUCCESS,
    NvmlUnavailable,
    Reason,
    ReasonCode,
    reason_for,
    reason_for_nvml_error,
)

# NVML constants (nvml.h); read from the library when it has them.
_FI_PCIE_TX_BYTES = 197
_FI_PCIE_RX_BYTES = 198
_MIG_ENABLE = 1
#: ``gpuInstanceId`` of a process on a GPU without MIG.
_NO_INSTANCE = 0xFFFFFFFF
_ARGUMENT_VERSION_MISMATCH = 25

# nvmlValueType_t -> (union member, counter width in bits)
_VALUE_TYPES: dict[int, tuple[str, int]] = {
    0: ("dVal", 0),
    1: ("uiVal", 32),
    2: ("ulVal", 64),
    3: ("ullVal", 64),
    4: ("sllVal", 64),
    5: ("siVal", 32),
    6: ("usVal", 16),
}

#: nvmlValueType_t -> (reads the counter from a field value, counter width in bits)
_COUNTER_READERS: dict[int, tuple[Callable[[Any], Any], int]] = {
    value_type: (operator.attrgetter(f"value.{member}"), bits)
    for value_type, (member, bits) in _VALUE_TYPES.items()
}

_MIG_PROFILE = re.compile(r"MIG\s+(\S+)")


_Reader = Callable[["Device"], dict[str, dict[str, Any]]]


def _unopened(device: Any) -> dict[str, dict[str, Any]]:
    raise RuntimeError("NVML is not open")


def _unopened_tick(device: Any, template: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    raise RuntimeError("NVML is not open")


def _import_pynvml() -> Any:
    import pynvml  # noqa: TID251 - this adapter is the one sanctioned importer

    return pynvml


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


@dataclasses.dataclass(frozen=True)
class SystemInfo:
    """Driver-level facts read once at :meth:`NvmlAdapter.open`."""

    driver_version: str | None
    cuda_driver_version: str | None
    nvml_version: str | None


@dataclasses.dataclass
class Device:
    """One physical GPU: its static facts (read once) and the adapter's per-device state."""

    index: int
    handle: Any
    uuid: str
    name: str
    serial: str | None
    pci_bus_id: str | None
    compute_capability: str | None
    #: The values read at open that stay put (the static fields of the field table, and the
    #: total memory), by group and key: a GPU that cannot be read later still shows them.
    known: dict[str, dict[str, Any]]
    #: Why this GPU could not be read when NVML was opened (``None``: it could).
    error: Reason | None = None
    #: The PCIe counters' last readings: TX value and time (µs), then RX value and time.
    _pcie_last: list[int | None] = dataclasses.field(
        default_factory=lambda: [None, None, None, None], repr=False
    )
    #: Memory in use when processes (and MIG instances) were last read: a change means they
    #: changed too, so they are read again at once rather than at the slow cadence.
    _used_when_listed: int | None = dataclasses.field(default=None, repr=False)
    _mig_enabled: bool = dataclasses.field(default=False, repr=False)
    #: The number of ``/dev/nvidia<minor>`` (``nvmlDeviceGetMinorNumber``); ``None`` when unknown.
    minor_number: int | None = None
    #: SM utilization per PID from the last slow reading (``None``: NVML cannot report it).
    _process_utilization: dict[int, int] | None = dataclasses.field(default=None, repr=False)
    #: The newest sample time NVML gave for process utilization (µs): the next reading's start.
    _utilization_seen: int = dataclasses.field(default=0, repr=False)

    @classmethod
    def unreadable(cls, index: int, reason: Reason) -> Device:
        """A GPU NVML counts but cannot describe (lost, or failing): only its index is known."""
        return cls(
            index=index,
            handle=None,
            uuid=f"GPU-index-{index}",
            name="unknown NVIDIA GPU",
            serial=None,
            pci_bus_id=None,
            compute_capability=None,
            known=_known(),
            error=reason,
        )

    @property
    def memory_total(self) -> int | None:
        """Total memory in bytes, as read at open."""
        total: int | None = self.known["memory"]["total"]
        return total

    @property
    def power_limit(self) -> float | None:
        """The enforced power limit in watts."""
        limit: float | None = self.known["power"]["limit"]
        return limit

    @property
    def max_clocks(self) -> dict[str, int | None]:
        """The highest SM and memory clocks in MHz."""
        clocks = self.known["clocks"]
        return {"sm": clocks["sm_max"], "memory": clocks["memory_max"]}

    def static_dict(self) -> dict[str, Any]:
        """The static facts in API form (a new dict: the caller may add to it)."""
        return self.identity.copy()

    @functools.cached_property
    def template(self) -> dict[str, Any]:
        """The start of this GPU's document with nothing after its per-tick groups (see
        :func:`gpu_devbox.gpus.reading.template`); never change it."""
        return reading.template(self.identity, {})

    @functools.cached_property
    def identity(self) -> dict[str, Any]:
        """The static facts in API form, made once and shared: never change it (copy it with
        :meth:`static_dict`, or merge it into a new dict)."""
        return {
            "index": self.index,
            "uuid": self.uuid,
            "name": self.name,
            "serial": self.serial,
            "pci_bus_id": self.pci_bus_id,
            "compute_capability": self.compute_capability,
            "minor_number": self.minor_number,
        }


def _known() -> dict[str, dict[str, Any]]:
    """The values a device keeps from its opening, all ``None`` until read: the static fields
    of the table and the total memory, by group and key."""
    known: dict[str, dict[str, Any]] = {}
    for field in fields.STATIC:
        known.setdefault(field.group, {})[field.key] = None
    known.setdefault("memory", {})["total"] = None
    return known


class _MemoryInfo(NamedTuple):
    total: int | None
    used: int | None
    reserved: int | None
    free: int | None


def _no_answer(device: Device) -> None:
    """The answer of a call this binding lacks."""


def cuda_version_string(encoded: int | None) -> str | None:
    """Turn NVML's ``1000 * major + 10 * minor`` encoding into ``"major.minor"``."""
    if encoded is None or encoded <= 0:
        return None
    return f"{encoded // 1000}.{(encoded % 1000) // 10}"


class NvmlAdapter:
    """Opens NVML, reads static facts once and samples devices on request.

    Not thread-safe for concurrent sampling: one sampler thread owns an adapter. ``open`` and
    ``close`` are guarded by a lock so a shutdown from another thread is safe.

    Args:
        load_library: returns an object with pynvml's surface; defaults to importing
            ``pynvml``. Raising ``ImportError`` is reported as "library not found".
    """

    def __init__(self, load_library: Callable[[], Any] | None = None) -> None:
        self._load_library = load_library or _import_pynvml
        self._lib: Any = None
        self._lock = threading.Lock()
        self._open = False
        # Which API variants this driver answers; learnt on first use.
        self._memory_v2 = True
        self._learnt: dict[fields.Nvml, int] = {}
        # NVML constants, read from the binding once at open (it may differ from nvml.h's).
        self._pcie_fields = [_FI_PCIE_TX_BYTES, _FI_PCIE_RX_BYTES]
        # The binding's functions the dedicated readers call on every tick, looked up at open.
        self._memory_info: Callable[..., Any] | None = None
        self._memory_version: Any = None
        self._field_values: Callable[..., Any] | None = None
        self._process_utilization_fn: Callable[..., Any] | None = None
        # The field table's readers, compiled for the binding at open: by cadence.
        self._read_static: _Reader = _unopened
        self._read_fast: reading.TickReader = _unopened_tick
        self._read_slow: _Reader = _unopened

    # -------------------------------------------------------------------------------------
    # lifecycle
    # -------------------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        """Whether NVML is initialised."""
        return self._open

    def open(self) -> tuple[SystemInfo, list[Device]]:
        """Initialise NVML and read the system's and every device's static facts.

        Raises:
            NvmlUnavailable: NVML cannot be initialised or enumerated.
        """
        with self._lock:
            if self._lib is None:
                try:
                    self._lib = self._load_library()
                except ImportError as exc:
                    raise NvmlUnavailable(
                        reason_for(
                            ReasonCode.LIBRARY_NOT_FOUND,
                            detail=f"the nvidia-ml-py binding is not importable: {exc}",
                        )
                    ) from exc
            if not self._open:
                self._fatal_call("nvmlInit")
                self._open = True
                self._memory_info = getattr(self._lib, "nvmlDeviceGetMemoryInfo", None)
                self._memory_version = getattr(self._lib, "nvmlMemory_v2", None)
                self._field_values = getattr(self._lib, "nvmlDeviceGetFieldValues", None)
                self._process_utilization_fn = getattr(
                    self._lib, "nvmlDeviceGetProcessUtilization", None
                )
                self._pcie_fields = [
                    self._const("NVML_FI_DEV_PCIE_COUNT_TX_BYTES", _FI_PCIE_TX_BYTES),
                    self._const("NVML_FI_DEV_PCIE_COUNT_RX_BYTES", _FI_PCIE_RX_BYTES),
                ]
                # Compiled after the binding's functions and constants above: they use them.
                self._read_static = self._reader(fields.Cadence.STATIC)
                self._read_fast = self._tick_reader()
                self._read_slow = self._reader(fields.Cadence.SLOW)
            try:
                return self._read_system(), self._read_devices()
            except NvmlUnavailable:
                self._shutdown_locked()
                raise

    def close(self) -> None:
        """Shut NVML down if it is open. Never raises."""
        with self._lock:
            self._shutdown_locked()

    def _shutdown_locked(self) -> None:
        if self._open:
            self._open = False
            # If the driver is already gone there is nothing left to release.
            with contextlib.suppress(self._lib.NVMLError):
                self._lib.nvmlShutdown()

    # -------------------------------------------------------------------------------------
    # calling conventions
    # -------------------------------------------------------------------------------------
    def _error_code(self, exc: BaseException) -> int:
        return int(getattr(exc, "value", 999))

    def _fatal_call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call an NVML function whose failure makes NVML unusable."""
        fn = getattr(self._lib, name, None)
        if fn is None:
            raise NvmlUnavailable(
                reason_for(ReasonCode.UNKNOWN, detail=f"the NVML binding has no {name}")
            )
        try:
            return fn(*args, **kwargs)
        except self._lib.NVMLError as exc:
            code = self._error_code(exc)
            raise NvmlUnavailable(reason_for_nvml_error(code, self._error_text(code))) from exc

    def _field(
        self, name: str, *args: Any, tolerate: frozenset[int] = frozenset(), **kwargs: Any
    ) -> Any:
        """Call an NVML query; ``None`` when this device or driver cannot answer it."""
        fn = getattr(self._lib, name, None)
        if fn is None:
            return None  # this binding predates the function
        try:
            return fn(*args, **kwargs)
        except self._lib.NVMLError as exc:
            code = self._error_code(exc)
            if code in FIELD_UNAVAILABLE_CODES or code in tolerate:
                return None
            raise NvmlUnavailable(reason_for_nvml_error(code, self._error_text(code))) from exc

    def _call(
        self,
        fn: Callable[..., Any] | None,
        *args: Any,
        tolerate: frozenset[int] = frozenset(),
        **kwargs: Any,
    ) -> Any:
        """Call a function of the binding; ``None`` when this device or driver cannot answer."""
        if fn is None:
            return None  # this binding predates the function
        try:
            return fn(*args, **kwargs)
        except self._lib.NVMLError as exc:
            code = self._error_code(exc)
            if code in FIELD_UNAVAILABLE_CODES or code in tolerate:
                return None
            raise NvmlUnavailable(reason_for_nvml_error(code, self._error_text(code))) from exc

    def _tolerated(self, exc: Any, tolerate: frozenset[int] = frozenset()) -> None:
        """``None`` for an NVML error that means "this field is unavailable" (``tolerate``: more
        such codes); else raise. The per-tick readers call the binding in place and come here
        only on an error, so a tick that succeeds pays for no extra call.

        Raises:
            NvmlUnavailable: the error makes NVML (or this GPU) unusable.
        """
        code = self._error_code(exc)
        if code in FIELD_UNAVAILABLE_CODES or code in tolerate:
            return
        raise NvmlUnavailable(reason_for_nvml_error(code, self._error_text(code))) from exc

    def _error_text(self, code: int) -> str:
        texts = getattr(getattr(self._lib, "NVMLError", None), "_errcode_to_string", {})
        return str(texts.get(code, ""))

    def _const(self, name: str, default: int) -> int:
        return int(getattr(self._lib, name, default))

    # -------------------------------------------------------------------------------------
    # static facts
    # -------------------------------------------------------------------------------------
    def _read_system(self) -> SystemInfo:
        driver = self._field("nvmlSystemGetDriverVersion")
        cuda = self._field("nvmlSystemGetCudaDriverVersion_v2", tolerate=_LIB_MISSING)
        if cuda is None:
            cuda = self._field("nvmlSystemGetCudaDriverVersion")
        nvml_version = self._field("nvmlSystemGetNVMLVersion")
        return SystemInfo(
            driver_version=_text(driver) if driver is not None else None,
            cuda_driver_version=cuda_version_string(cuda),
            nvml_version=_text(nvml_version) if nvml_version is not None else None,
        )

    def _read_devices(self) -> list[Device]:
        """Every GPU's static facts; one that fails is kept as :meth:`Device.unreadable`.

        Raises:
            NvmlUnavailable: every GPU failed (the driver, not one GPU, is the problem).
        """
        count = int(self._fatal_call("nvmlDeviceGetCount"))
        devices = []
        failures = []
        for index in range(count):
            try:
                handle = self._fatal_call("nvmlDeviceGetHandleByIndex", index)
                devices.append(self._describe(index, handle))
            except NvmlUnavailable as exc:  # noqa: PERF203 - one GPU's fault stays its own
                failures.append(exc)
                devices.append(Device.unreadable(index, exc.reason))
        if failures and len(failures) == count:
            raise failures[0]
        return devices

    def _describe(self, index: int, handle: Any) -> Device:
        uuid = self._field("nvmlDeviceGetUUID", handle)
        name = self._field("nvmlDeviceGetName", handle)
        serial = self._field("nvmlDeviceGetSerial", handle)
        pci = self._field("nvmlDeviceGetPciInfo", handle)
        cc = self._field("nvmlDeviceGetCudaComputeCapability", handle)
        minor = self._field("nvmlDeviceGetMinorNumber", handle)
        device = Device(
            index=index,
            handle=handle,
            uuid=_text(uuid) if uuid is not None else f"GPU-index-{index}",
            name=_text(name) if name is not None else "unknown NVIDIA GPU",
            serial=_text(serial) if serial is not None else None,
            pci_bus_id=_text(pci.busId) if pci is not None else None,
            compute_capability=f"{cc[0]}.{cc[1]}" if cc is not None else None,
            known=_known(),
            minor_number=int(minor) if minor is not None else None,
        )
        for group, values in self._read_static(device).items():
            device.known[group].update(values)
        device.known["memory"]["total"] = self._memory(device).total
        return device

    # -------------------------------------------------------------------------------------
    # the field table's calls
    # -------------------------------------------------------------------------------------
    def _sources(self, cadence: fields.Cadence) -> dict[fields.Nvml, reading.Source]:
        """How the reader of ``cadence`` gets each call's answer, for this binding."""
        sources: dict[fields.Nvml, reading.Source] = {}
        for call in reading.calls(cadence):
            if call.reader == "memory":
                sources[call] = self._memory_inline()
                continue
            if call.reader == "pcie":
                sources[call] = self._pcie_inline()
                continue
            functions = [getattr(self._lib, name, None) for name in call.functions]
            args = tuple(self._const(name, value) for name, value in call.args)
            first = self._learnt.get(call, 0)
            fallback = None
            if first < len(functions) - 1:
                fallback = functools.partial(self._fallback, cadence, call, functions, args, first)
            fn = functions[first]
            if fn is not None:
                sources[call] = reading.Call(fn, args, fallback)
            else:
                sources[call] = fallback or _no_answer
        return sources

    def _reader(self, cadence: fields.Cadence) -> _Reader:
        """The table's reader of ``cadence`` (static or slow), compiled for this binding."""
        return reading.compile_reader(
            cadence, self._sources(cadence), error=self._lib.NVMLError, tolerated=self._tolerated
        )

    def _tick_reader(self) -> reading.TickReader:
        """The table's per-tick reader, compiled for this binding."""
        return reading.compile_tick_reader(
            self._sources(fields.Cadence.FAST),
            error=self._lib.NVMLError,
            tolerated=self._tolerated,
        )

    def _memory_inline(self) -> reading.Inline | reading.Ask:
        """The memory information, asked in place while the driver answers v2.

        Any error goes to :meth:`_memory`, which applies the rules (a field NVML cannot give,
        or v1 from then on: the reader is then compiled again to ask :meth:`_memory` itself).
        """
        if not (self._memory_v2 and self._memory_info and self._memory_version is not None):
            return self._memory
        lines = [
            "try:",
            "    {a} = memory_info(handle, version=memory_version)",
            "except error:",
            "    {a} = memory(device)",
        ]
        lines += [f"{{a}}_{member} = {{a}}.{member}" for member in _MemoryInfo._fields]
        return reading.Inline(
            tuple(lines),
            {
                "memory_info": self._memory_info,
                "memory_version": self._memory_version,
                "memory": self._memory,
            },
        )

    def _pcie_inline(self) -> reading.Inline:
        """The PCIe rates from NVML's byte counters, written into the reader.

        Two counters per GPU on every tick: as a function of their own they cost more than
        their arithmetic. A counter of the value type an H100 reports is computed in place; any
        other (and a counter NVML could not read) goes through :func:`_counter_rate`, which
        gives the same rates.
        """
        field_values = self._field_values
        if field_values is None:  # this binding predates the function
            return reading.Inline(("{a}_tx = {a}_rx = None",))
        member, bits = _VALUE_TYPES[_PCIE_VALUE_TYPE]
        lines = [
            "try:",
            "    {a} = pcie_values(handle, pcie_fields)",
            "except error as exc:",
            "    {a} = tolerated(exc)",
            "{a}_tx = {a}_rx = None",
            "if {a} is not None and len({a}) >= 2:",
            "    last = device._pcie_last",
        ]
        for index, name in enumerate(("tx", "rx")):  # the order of self._pcie_fields
            at = 2 * index
            lines += [
                f"    counter = {{a}}[{index}]",
                f"    if counter.nvmlReturn or counter.valueType != {_PCIE_VALUE_TYPE}:",
                f"        {{a}}_{name} = counter_rate(last, {at}, counter)",
                "    else:",
                f"        value = counter.value.{member}",
                "        stamp = counter.timestamp",
                f"        then = last[{at + 1}]",
                "        if then is not None and stamp > then:",
                f"            delta = value - last[{at}]",
                "            if delta < 0:",
                f"                delta += {1 << bits}",
                "            elapsed = stamp - then",
                f"            {{a}}_{name} = (delta * 1000000 + elapsed // 2) // elapsed",
                f"        last[{at}] = value",
                f"        last[{at + 1}] = stamp",
            ]
        return reading.Inline(
            tuple(lines),
            {
                "pcie_values": field_values,
                "pcie_fields": self._pcie_fields,
                "counter_rate": _counter_rate,
            },
        )

    def _fallback(
        self,
        cadence: fields.Cadence,
        call: fields.Nvml,
        functions: list[Callable[..., Any] | None],
        args: tuple[int, ...],
        tried: int,
        device: Device,
    ) -> Any:
        """Try the entry points of ``call`` after the one that did not answer.

        A per-tick call remembers the entry point that answered (or the last one), so the next
        ticks go straight to it: an old driver lacks the newer entry point for good.
        """
        last = len(functions) - 1
        index = tried + 1
        while True:
            value = self._call(functions[index], device.handle, *args)
            if value is not None or index == last:
                break
            index += 1
        if cadence is not fields.Cadence.STATIC:
            self._learnt[call] = index
            if cadence is fields.Cadence.FAST:
                self._read_fast = self._tick_reader()
            else:
                self._read_slow = self._reader(cadence)
        return value

    # -------------------------------------------------------------------------------------
    # per-tick fields
    # -------------------------------------------------------------------------------------
    def _memory(self, device: Device) -> _MemoryInfo:
        handle = device.handle
        memory_info = self._memory_info
        if memory_info is None:  # this binding predates the function
            return _MemoryInfo(None, None, None, None)
        if self._memory_v2:
            version = self._memory_version
            if version is not None:
                try:
                    info = memory_info(handle, version=version)
                except self._lib.NVMLError as exc:
                    self._tolerated(exc, _VERSION_MISMATCH)  # raises unless no answer here
                    info = None
                if info is not None:
                    # The binding's ``nvmlMemory_v2_t``: its members are the four values, as
                    # integers already; the reader takes them from it as they are.
                    return info  # type: ignore[no-any-return]
            # Old driver (before R510) or binding: learn it once and use v1 from now on.
            self._memory_v2 = False
            if self._open:
                self._read_fast = self._tick_reader()
        try:
            info = memory_info(handle)
        except self._lib.NVMLError as exc:
            self._tolerated(exc)  # raises unless the field is unavailable
            info = None
        if info is None:
            return _MemoryInfo(None, None, None, None)
        # v1 counts reserved memory as used; it cannot be separated.
        return _MemoryInfo(int(info.total), int(info.used), None, int(info.free))

    def read(
        self, device: Device, *, slow: bool, template: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
        """Read one device's current values, and its costly ones when ``slow`` (or when its
        memory use changed: then its processes and MIG instances).

        Args:
            template: what the document starts from (:func:`gpu_devbox.gpus.reading.template`:
                the static facts, the per-tick groups and what the caller keeps between costly
                readings); by default the static facts and the per-tick groups alone.

        Returns:
            The GPU document, as one new dict the caller may complete; its history entry; and
            the costly values read now by group (``None`` when none were), which the caller
            puts in their place.

        Raises:
            NvmlUnavailable: NVML itself failed (GPU lost, driver gone, ...).
        """
        document, entry = self._read_fast(device, template or device.template)
        used = document["memory"]["used"]
        if slow:
            fresh = self.sample_slow(device)
        elif used != device._used_when_listed:
            # Memory use changed since the processes were listed: so did they (or the MIG
            # instances' use). Read them now, so a card never shows memory without its process.
            fresh = {"processes": self._processes(device)}
            if device._mig_enabled:
                fresh["mig"] = self.mig(device)
        else:
            return document, entry, None
        device._used_when_listed = used
        device._mig_enabled = bool(fresh.get("mig", {}).get("enabled", device._mig_enabled))
        return document, entry, fresh

    def sample(self, device: Device, *, slow: bool) -> dict[str, Any]:
        """The GPU document of :meth:`read`, with the costly values read now merged in."""
        document, _, fresh = self.read(device, slow=slow)
        if fresh is not None:
            document.update(fresh)
        return document

    def sample_slow(self, device: Device) -> dict[str, Any]:
        """Read the costly fields: energy (~4 ms on an H100), ECC, processes (with their SM
        utilization) and MIG."""
        sample: dict[str, Any] = self._read_slow(device)
        device._process_utilization = self._process_utilization(device)
        sample["processes"] = self._processes(device)
        sample["mig"] = self.mig(device)
        return sample

    def _process_utilization(self, device: Device) -> dict[int, int] | None:
        """Each busy process's mean SM utilization (%) since the last reading, by PID.

        ``nvmlDeviceGetProcessUtilization`` returns the samples newer than the time it is given,
        only for processes that used the SMs; "Not Found" (or, from some drivers through the
        binding, a bare success with no samples) means no process did. ``None`` when this GPU or
        driver cannot report it (MIG, GPUs before Maxwell, no permission).
        """
        fn = self._process_utilization_fn
        if fn is None:
            return None
        try:
            samples = fn(device.handle, device._utilization_seen)
        except self._lib.NVMLError as exc:
            code = self._error_code(exc)
            if code in (NVML_ERROR_NOT_FOUND, NVML_SUCCESS):
                return {}
            if code in FIELD_UNAVAILABLE_CODES or code == NVML_ERROR_NO_PERMISSION:
                return None
            raise NvmlUnavailable(reason_for_nvml_error(code, self._error_text(code))) from exc
        sums: dict[int, list[int]] = {}
        newest = device._utilization_seen
        for sample in samples:
            stamp = int(sample.timeStamp)
            if stamp <= device._utilization_seen:
                continue  # already counted by the previous reading
            newest = max(newest, stamp)
            total = sums.setdefault(int(sample.pid), [0, 0])
            total[0] += int(sample.smUtil)
            total[1] += 1
        device._utilization_seen = newest
        return {pid: round(total / count) for pid, (total, count) in sums.items()}

    def _processes(self, device: Device) -> list[dict[str, Any]] | None:
        """The compute processes of ``device``, with what attribution fills in left ``None``."""
        handle = device.handle
        procs = None
        for name in (
            "nvmlDeviceGetComputeRunningProcesses_v3",
            "nvmlDeviceGetComputeRunningProcesses_v2",
            "nvmlDeviceGetComputeRunningProcesses",
        ):
            procs = self._field(name, handle, tolerate=frozenset({NVML_ERROR_NO_PERMISSION}))
            if procs is not None:
                break
        if procs is None:
            return None
        utilization = device._process_utilization
        out = []
        for p in procs:
            pid = int(p.pid)
            instance = getattr(p, "gpuInstanceId", None)
            out.append(
                {
                    "pid": pid,
                    "used_memory": int(p.usedGpuMemory) if p.usedGpuMemory is not None else None,
                    # NVML's "no instance" (0xFFFFFFFF) on a GPU without MIG
                    "gpu_instance_id": int(instance)
                    if instance is not None and int(instance) != _NO_INSTANCE
                    else None,
                    "sm_utilization": None if utilization is None else utilization.get(pid, 0),
                    # filled in by process attribution (gpu_devbox.attribution), when it runs
                    "local_pid": None,
                    "owner": None,
                }
            )
        return out

    def mig(self, device: Device) -> dict[str, Any]:
        """MIG mode and the MIG instances of one GPU."""
        mode = self._field("nvmlDeviceGetMigMode", device.handle)
        if mode is None:
            return {"capable": False, "enabled": False, "pending": None, "instances": []}
        enabled = int(mode[0]) == self._const("NVML_DEVICE_MIG_ENABLE", _MIG_ENABLE)
        result: dict[str, Any] = {
            "capable": True,
            "enabled": enabled,
            "pending": int(mode[1]) == self._const("NVML_DEVICE_MIG_ENABLE", _MIG_ENABLE),
            "instances": [],
        }
        if not enabled:
            return result
        slots = self._field("nvmlDeviceGetMaxMigDeviceCount", device.handle) or 0
        for slot in range(int(slots)):
            mig = self._field(
                "nvmlDeviceGetMigDeviceHandleByIndex",
                device.handle,
                slot,
                tolerate=frozenset({NVML_ERROR_NOT_FOUND}),
            )
            if mig is None:
                continue  # an empty slot
            result["instances"].append(self._mig_instance(mig))
        return result

    def _mig_instance(self, handle: Any) -> dict[str, Any]:
        name = self._field("nvmlDeviceGetName", handle)
        uuid = self._field("nvmlDeviceGetUUID", handle)
        memory = self._field("nvmlDeviceGetMemoryInfo", handle)
        name_text = _text(name) if name is not None else None
        profile = _MIG_PROFILE.search(name_text) if name_text else None
        return {
            "uuid": _text(uuid) if uuid is not None else None,
            "name": name_text,
            "profile": profile.group(1) if profile else None,
            "gpu_instance_id": self._field("nvmlDeviceGetGpuInstanceId", handle),
            "compute_instance_id": self._field("nvmlDeviceGetComputeInstanceId", handle),
            "memory": {
                "total": int(memory.total) if memory is not None else None,
                "used": int(memory.used) if memory is not None else None,
            },
        }


_LIB_MISSING = frozenset({NVML_ERROR_FUNCTION_NOT_FOUND})
#: The value type of NVML's PCIe byte counters on an H100 (``valueType`` 1: an unsigned 32-bit
#: integer, in the capture of ``shared/fixtures``): the per-tick reader computes these in place.
_PCIE_VALUE_TYPE = 1
_VERSION_MISMATCH = frozenset({_ARGUMENT_VERSION_MISMATCH})


#: A value type this table does not know: read as an unsigned 64-bit counter.
_UNKNOWN_VALUE_TYPE = (operator.attrgetter("value.ullVal"), 64)


def _counter_rate(last: list[int | None], at: int, field: Any) -> int | None:
    """Whole bytes per second from one NVML field-value counter and its previous reading.

    ``last[at]`` and ``last[at + 1]`` hold the counter's previous value and time (µs), and
    receive this reading's. The per-tick reader computes the same in place for the value type
    an H100 reports (:meth:`NvmlAdapter._pcie_inline`) and calls this for any other.
    """
    if field.nvmlReturn:
        return None
    read, bits = _COUNTER_READERS.get(field.valueType, _UNKNOWN_VALUE_TYPE)
    value: int = read(field)
    timestamp: int = field.timestamp
    before = last[at]
    then = last[at + 1]
    last[at] = value
    last[at + 1] = timestamp
    if before is None or then is None or timestamp <= then:
        return None  # the first reading only sets the baseline; or no time passed
    delta = value - before
    if delta < 0:
        if not bits:
            return None
        delta += 1 << bits  # the counter wrapped around
    elapsed = timestamp - then
    # Rounded to the nearest whole byte per second in integers: exact for any counter.
    return int((delta * 1_000_000 + elapsed // 2) // elapsed)
