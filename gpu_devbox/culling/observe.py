"""What a server says about its GPUs: its ``GET gpu-devbox/api/status`` and ``GET gpus``.

The culler believes a server only as far as its answer is well formed: anything else (not
JSON, a field of the wrong type, a number that is not finite, no GPU-activity fields at all) is
an :class:`Unreadable` with a sentence saying what was wrong, and an unreadable server is never
culled for that.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any


class Unreadable(Exception):
    """A server's answer the culler cannot use; the message says why, in a few words."""


@dataclasses.dataclass(frozen=True)
class KeepRunning:
    """The server's "Keep running" record."""

    used: int
    max: int
    #: Unix seconds (server clock) until which the user asked to keep the server.
    until: float | None


@dataclasses.dataclass(frozen=True)
class ServerCull:
    """The policy the server runs under, as it reports it (``status.cull``)."""

    gpu_idle_after: float
    warn_before: float
    stops_at: float
    warning: bool
    keep_running: KeepRunning


@dataclasses.dataclass(frozen=True)
class GPUs:
    """What the culler shows of a server's GPUs (from ``GET gpus`` or Prometheus)."""

    #: Model names, one per visible GPU.
    names: tuple[str, ...] = ()
    #: Mean utilization of the visible GPUs now, in percent; ``None`` when none reports it.
    utilization: float | None = None
    #: GPU memory used, summed over the GPUs, in bytes; ``None`` when unknown.
    memory_used: int | None = None


@dataclasses.dataclass(frozen=True)
class Observation:
    """A server's GPU activity at one moment."""

    #: Unix seconds, server clock, of the last busy sample; ``None`` when it has no GPU.
    gpu_busy_at: float | None
    #: Seconds the GPUs have been idle, by the server's own clock; ``None``: no GPU.
    gpu_idle_seconds: float | None
    #: Whether processes hold GPU memory; ``None``: no GPU or unknown.
    gpu_memory_held: bool | None
    #: The server's culling record; ``None`` when it runs without a policy.
    cull: ServerCull | None = None
    #: How many GPUs the server sees.
    gpu_count: int | None = None
    gpus: GPUs = GPUs()

    @property
    def has_gpu(self) -> bool:
        """Whether the server reports GPU activity at all (it has a GPU)."""
        return self.gpu_idle_seconds is not None

    @property
    def server_now(self) -> float | None:
        """The server's clock when it answered (``gpu_busy_at + gpu_idle_seconds``)."""
        if self.gpu_busy_at is None or self.gpu_idle_seconds is None:
            return None
        return self.gpu_busy_at + self.gpu_idle_seconds


def _number(doc: Mapping[str, Any], key: str, *, nullable: bool = True) -> float | None:
    value = doc.get(key)
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Unreadable(f"{key} is not a number")
    return float(value)


def _integer(doc: Mapping[str, Any], key: str) -> int:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise Unreadable(f"{key} is not a whole number")
    return value


def parse_cull(raw: Any) -> ServerCull | None:
    """The ``cull`` object of a status document (``None`` stays ``None``).

    Raises:
        Unreadable: it is not the contract's shape.
    """
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise Unreadable("cull is not an object")
    keep = raw.get("keep_running")
    if not isinstance(keep, Mapping):
        raise Unreadable("cull.keep_running is not an object")
    warning = raw.get("warning")
    if not isinstance(warning, bool):
        raise Unreadable("cull.warning is not true or false")
    return ServerCull(
        gpu_idle_after=_number(raw, "gpu_idle_after", nullable=False) or 0.0,
        warn_before=_number(raw, "warn_before", nullable=False) or 0.0,
        stops_at=_number(raw, "stops_at", nullable=False) or 0.0,
        warning=warning,
        keep_running=KeepRunning(
            used=_integer(keep, "used"), max=_integer(keep, "max"), until=_number(keep, "until")
        ),
    )


def parse_status(doc: Any) -> Observation:
    """A server's ``GET gpu-devbox/api/status`` document.

    Raises:
        Unreadable: not the contract's document, or a server without GPU-activity fields (an
            older gpu-devbox).
    """
    if not isinstance(doc, Mapping):
        raise Unreadable("the status is not a JSON object")
    if "gpu_idle_seconds" not in doc or "gpu_busy_at" not in doc:
        raise Unreadable("its gpu-devbox reports no GPU activity (gpu_idle_seconds)")
    busy_at = _number(doc, "gpu_busy_at")
    idle = _number(doc, "gpu_idle_seconds")
    if (busy_at is None) != (idle is None):
        raise Unreadable("gpu_busy_at and gpu_idle_seconds disagree about having a GPU")
    if idle is not None and idle < 0:
        raise Unreadable("gpu_idle_seconds is negative")
    held = doc.get("gpu_memory_held")
    if held is not None and not isinstance(held, bool):
        raise Unreadable("gpu_memory_held is not true, false or null")
    count = doc.get("visible_gpu_count")
    return Observation(
        gpu_busy_at=busy_at,
        gpu_idle_seconds=idle,
        gpu_memory_held=held,
        cull=parse_cull(doc.get("cull")),
        gpu_count=count if isinstance(count, int) and not isinstance(count, bool) else None,
    )


def parse_gpus(doc: Any) -> GPUs:
    """A server's ``GET gpu-devbox/api/gpus`` document: names, mean utilization, memory.

    Raises:
        Unreadable: not a ``{"gpus": [...]}`` document.
    """
    if not isinstance(doc, Mapping) or not isinstance(doc.get("gpus"), Sequence):
        raise Unreadable("the GPU list is not a JSON object with gpus")
    names: list[str] = []
    utilizations: list[float] = []
    memory: int | None = None
    for gpu in doc["gpus"]:
        if not isinstance(gpu, Mapping):
            raise Unreadable("a GPU in the list is not an object")
        name = gpu.get("name")
        names.append(name if isinstance(name, str) else "GPU")
        util = gpu.get("utilization")
        value = util.get("gpu") if isinstance(util, Mapping) else None
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            utilizations.append(float(value))
        mem = gpu.get("memory")
        used = mem.get("used") if isinstance(mem, Mapping) else None
        if isinstance(used, int) and not isinstance(used, bool) and used >= 0:
            memory = (memory or 0) + used
    return GPUs(
        names=tuple(names),
        utilization=sum(utilizations) / len(utilizations) if utilizations else None,
        memory_used=memory,
    )


def describe_gpus(names: Sequence[str], count: int) -> str:
    """``2 x H100-80GB-HBM3`` (with a multiplication sign); mixed models each with a count."""
    if not names:
        return f"{count} GPU" + ("s" if count != 1 else "")
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    return ", ".join(f"{n} \u00d7 {name}" for name, n in counts.items())
