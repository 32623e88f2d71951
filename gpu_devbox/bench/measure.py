"""Turning timed operations into figures: the backend contract, statistics and one step.

A backend (torch, cupy, numpy) only knows how to *prepare* an operation (allocate, fill) and
how to *time* it: with device events on a GPU, with the wall clock on the CPU. Everything else,
warm-up, repeats, work per call, median and spread, lives here once, so the three backends
report figures computed the same way.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from gpu_devbox.bench.suites import MEASUREMENTS, Kind, Sizes, SuiteSpec

Op = Callable[[], object]

#: Shortest duration a timer is trusted with (a faster call is counted as this long).
MIN_DURATION = 1e-9


class Unsupported(Exception):
    """This backend or device cannot take this measurement; the message says why."""


@dataclasses.dataclass(frozen=True)
class DeviceInfo:
    """What a backend reports about the device it measures."""

    ordinal: int
    name: str
    memory_total: int | None
    memory_free: int | None
    compute_capability: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The device as a JSON object."""
        return dataclasses.asdict(self)


class Backend(Protocol):
    """What the worker needs from a compute library."""

    #: ``torch``, ``cupy`` or ``numpy``.
    name: str
    #: ``gpu`` or ``cpu``.
    kind: Kind
    #: How durations are taken: ``device_events`` or ``wall_clock``.
    timer: str

    def versions(self) -> dict[str, str]:
        """Library and runtime versions, for the report and the history."""

    def device_count(self) -> int:
        """How many devices this backend can measure."""

    def use(self, ordinal: int) -> DeviceInfo:
        """Make ``ordinal`` the current device (creating its context) and describe it."""

    def host_available(self) -> int:
        """Bytes of host memory available now."""

    def matmul(self, dtype: str, n: int) -> Op:
        """An ``n x n @ n x n`` product in ``dtype``, inputs filled with random values.

        Raises:
            Unsupported: this dtype cannot be multiplied here.
        """

    def copy(self, nbytes: int) -> Op:
        """A copy of ``nbytes`` between two buffers in device (or, on the CPU, host) memory."""

    def transfer(self, direction: str, memory: str, nbytes: int) -> Op:
        """A copy of ``nbytes`` host-to-device (``h2d``) or back, from pinned or pageable memory."""

    def launch(self, launches: int) -> Op:
        """``launches`` tiny kernels back to back, then a wait until they are done."""

    def time(self, op: Op, warmup: int, repeats: int, *, wall_clock: bool = False) -> list[float]:
        """Run ``op`` ``warmup`` times untimed, then ``repeats`` times; seconds per timed call."""

    def release(self) -> None:
        """Give back cached memory after a step."""

    def is_out_of_memory(self, exc: BaseException) -> bool:
        """Whether ``exc`` means the device (or host) ran out of memory."""


def spread(durations: Sequence[float]) -> tuple[float, dict[str, float]]:
    """The median of ``durations`` and its spread: min, first quartile, third quartile, max."""
    values = sorted(max(d, MIN_DURATION) for d in durations)
    if not values:
        raise ValueError("no durations")
    median = statistics.median(values)
    if len(values) >= 2:
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    else:
        q1 = q3 = values[0]
    return median, {"min": values[0], "q1": q1, "q3": q3, "max": values[-1]}


def wall_clock(op: Op, warmup: int, repeats: int, sync: Callable[[], object]) -> list[float]:
    """Time ``op`` with the wall clock, waiting for the device (``sync``) after each call."""
    for _ in range(warmup):
        op()
    sync()
    durations = []
    for _ in range(repeats):
        start = time.perf_counter()
        op()
        sync()
        durations.append(time.perf_counter() - start)
    return durations


def base_record(step: str, timer: str) -> dict[str, Any]:
    """The fields every measurement record has, before a value is known."""
    spec = MEASUREMENTS[step]
    return {
        "id": spec.id,
        "kind": spec.kind,
        "label": spec.label,
        "unit": spec.unit,
        "dtype": spec.dtype,
        "memory": spec.memory,
        "direction": spec.direction,
        "status": "ok",
        "reason": None,
        "value": None,
        "spread": None,
        "warmup": 0,
        "repeats": 0,
        "size": {},
        "timer": timer,
    }


def run_step(backend: Backend, step: str, sizes: Sizes, spec: SuiteSpec) -> dict[str, Any]:
    """Take one measurement; ``status`` is ``unsupported`` (with the reason) when it cannot be.

    Raises whatever the backend raises for real failures (out of memory, a driver error): the
    worker turns those into a failed run.
    """
    kind = backend.kind
    record = base_record(step, "wall_clock" if step == "launch_latency" else backend.timer)
    measurement = MEASUREMENTS[step]
    warmup, repeats = spec.warmup[kind], spec.repeats[kind]
    divisor = 1.0
    try:
        if measurement.kind == "matmul":
            n = sizes.matmul_n
            op = backend.matmul(measurement.dtype or "fp32", n)
            work = 2.0 * n**3
            record["size"] = {"n": n}
        elif measurement.kind == "memory_bandwidth":
            op = backend.copy(sizes.copy_bytes)
            work = 2.0 * sizes.copy_bytes  # every byte is read once and written once
            record["size"] = {"bytes": sizes.copy_bytes}
        elif measurement.kind == "transfer":
            op = backend.transfer(
                measurement.direction or "h2d", measurement.memory or "pinned", sizes.transfer_bytes
            )
            work = float(sizes.transfer_bytes)
            record["size"] = {"bytes": sizes.transfer_bytes}
        else:
            op = backend.launch(spec.launches)
            work = 0.0
            divisor = float(spec.launches)
            record["size"] = {"launches": spec.launches}
    except Unsupported as exc:
        record.update(status="unsupported", reason=str(exc))
        return record
    try:
        durations = backend.time(op, warmup, repeats, wall_clock=measurement.kind == "latency")
    except Unsupported as exc:
        record.update(status="unsupported", reason=str(exc))
        return record
    finally:
        del op
        backend.release()
    median, quartiles = spread([d / divisor for d in durations])
    if measurement.kind == "latency":
        record["value"] = median
        record["spread"] = quartiles
    else:
        record["value"] = work / median
        # A longer duration is a lower rate: the spread of the rate runs the other way.
        record["spread"] = {
            "min": work / quartiles["max"],
            "q1": work / quartiles["q3"],
            "q3": work / quartiles["q1"],
            "max": work / quartiles["min"],
        }
    record["warmup"], record["repeats"] = warmup, repeats
    return record
