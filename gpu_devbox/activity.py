"""GPU activity of one server: when its GPUs were last busy, and when an idle policy stops it.

The server extension feeds every sampler tick to a :class:`ServerActivity` and adds its
:meth:`~ServerActivity.document` to ``GET status``; the hub's culler reads those fields and stops
a server whose GPUs stayed idle too long. Everything here is plain arithmetic on the sampler's
GPU documents and a clock: no NVML call, no I/O.

What "busy" means (one sample): a visible GPU's utilization is at or above
:attr:`BusyThresholds.utilization` percent, or its memory used moved by more than
:attr:`BusyThresholds.memory_change` bytes since the previous sample (a job that loads a model or
frees one is working even while no kernel runs). On a MIG-enabled GPU, whose utilization NVML
cannot report, the memory of its visible instances is what counts.

``gpu_busy_at`` is the time of the last busy sample, the server's start until there is one; a
server with no GPU reports ``null``. The idle policy comes from the environment the spawner
sets (:data:`ENV_GPU_IDLE_AFTER`, :data:`ENV_WARN_BEFORE`, :data:`ENV_KEEP_RUNNING`):

* ``stops_at`` = max(``gpu_busy_at`` + ``gpu_idle_after``, ``keep_running.until``);
* ``warning`` = now ≥ ``stops_at`` - ``warn_before``;
* "Keep running" moves ``keep_running.until`` to now + ``gpu_idle_after``, at most
  ``keep_running.max`` times; the count starts again once the GPU is used.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gpu_devbox.gpus.sampler import Snapshot

#: Seconds the GPUs may stay idle before the culler stops the server.
ENV_GPU_IDLE_AFTER = "GPU_DEVBOX_CULL_GPU_IDLE_AFTER"
#: Seconds before the stop at which the user is warned.
ENV_WARN_BEFORE = "GPU_DEVBOX_CULL_WARN_BEFORE"
#: How many times the user may press "Keep running" (each buys ``gpu_idle_after`` seconds).
ENV_KEEP_RUNNING = "GPU_DEVBOX_CULL_KEEP_RUNNING"
CULL_ENV = (ENV_GPU_IDLE_AFTER, ENV_WARN_BEFORE, ENV_KEEP_RUNNING)

#: ``warn_before`` when only ``gpu_idle_after`` is given: 15 minutes (at most the idle limit).
DEFAULT_WARN_BEFORE = 900.0
#: The longest duration a policy may name (a year): anything longer is a typo, not a policy.
MAX_SECONDS = 366 * 86400.0
#: The most "Keep running" presses a policy may allow.
MAX_KEEP_RUNNING = 1000

MIB = 1024 * 1024


class PolicyError(ValueError):
    """The idle policy in the environment is malformed; the message names the variable."""


class KeepRunningRefused(Exception):
    """ "Keep running" cannot be granted: no policy (``status`` 404) or none left (409)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------------------------------------
# what counts as busy
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class BusyThresholds:
    """When a sample counts as GPU activity."""

    #: Utilization (percent) at or above which a GPU is busy.
    utilization: float = 5.0
    #: A change of memory used (bytes) since the previous sample larger than this is activity.
    memory_change: int = 256 * MIB

    def __post_init__(self) -> None:
        if not 0 <= self.utilization <= 100:
            raise ValueError(f"utilization must be between 0 and 100 %, not {self.utilization}")
        if self.memory_change < 0:
            raise ValueError(f"memory_change must be at least 0 bytes, not {self.memory_change}")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _mig_instances(gpu: Mapping[str, Any]) -> list[Mapping[str, Any]] | None:
    """The visible MIG instances of a MIG-enabled GPU, ``None`` for a GPU without MIG."""
    mig = gpu.get("mig") or {}
    if not mig.get("enabled"):
        return None
    return [i for i in mig.get("instances") or [] if isinstance(i, Mapping)]


def memory_used(gpu: Mapping[str, Any]) -> float | None:
    """The memory (bytes) a GPU document says this server's processes hold; ``None``: unknown.

    A MIG-enabled GPU counts its visible instances only: the others may belong to other pods.
    """
    instances = _mig_instances(gpu)
    if instances is None:
        return _number((gpu.get("memory") or {}).get("used"))
    values = [_number((i.get("memory") or {}).get("used")) for i in instances]
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def holds_memory(gpu: Mapping[str, Any]) -> bool:
    """Whether processes hold memory on this GPU (or on its visible MIG instances).

    With the v2 memory API (``reserved`` known) ``used`` is the processes' memory alone; with the
    v1 API of old drivers it includes the driver's reservation, so the process list decides.
    """
    instances = _mig_instances(gpu)
    if instances is not None:
        return any((_number((i.get("memory") or {}).get("used")) or 0) > 0 for i in instances)
    memory = gpu.get("memory") or {}
    used = _number(memory.get("used"))
    if used is not None and memory.get("reserved") is not None and used > 0:
        return True
    processes = gpu.get("processes") or []
    return any(
        (_number(p.get("used_memory")) or 0) > 0 for p in processes if isinstance(p, Mapping)
    )


def is_busy(
    gpu: Mapping[str, Any], previous_memory: float | None, thresholds: BusyThresholds
) -> bool:
    """Whether one GPU's sample counts as activity (``previous_memory``: its last ``used``)."""
    utilization = _number((gpu.get("utilization") or {}).get("gpu"))
    if utilization is not None and utilization >= thresholds.utilization:
        return True
    used = memory_used(gpu)
    return (
        used is not None
        and previous_memory is not None
        and abs(used - previous_memory) > thresholds.memory_change
    )


# ---------------------------------------------------------------------------------------------
# the policy
# ---------------------------------------------------------------------------------------------
def _seconds(env: Mapping[str, str], name: str, *, positive: bool) -> float | None:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        raise PolicyError(f"{name}={raw.strip()[:40]!r} is not a number of seconds") from None
    low = "above 0" if positive else "at least 0"
    if not math.isfinite(value) or value < 0 or (positive and value == 0) or value > MAX_SECONDS:
        raise PolicyError(
            f"{name}={raw.strip()[:40]!r}: must be {low} and at most {MAX_SECONDS:.0f} seconds"
        )
    return value


@dataclasses.dataclass(frozen=True)
class CullPolicy:
    """When an idle server is stopped, and how the user may hold the stop off."""

    #: Seconds the GPUs may stay idle.
    gpu_idle_after: float
    #: Seconds before the stop at which the user is warned.
    warn_before: float = DEFAULT_WARN_BEFORE
    #: How many times "Keep running" may be pressed (per idle spell).
    keep_running: int = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CullPolicy | None:
        """The policy the spawner put in the environment; ``None`` when there is none.

        Raises:
            PolicyError: a variable is set to something that is not a valid value.
        """
        idle_after = _seconds(env, ENV_GPU_IDLE_AFTER, positive=True)
        warn_before = _seconds(env, ENV_WARN_BEFORE, positive=False)
        raw_keep = (env.get(ENV_KEEP_RUNNING) or "").strip()
        keep = 0
        if raw_keep:
            if not raw_keep.isdigit() or int(raw_keep) > MAX_KEEP_RUNNING:
                raise PolicyError(
                    f"{ENV_KEEP_RUNNING}={raw_keep[:40]!r}: must be a whole number from 0 to "
                    f"{MAX_KEEP_RUNNING}"
                )
            keep = int(raw_keep)
        if idle_after is None:
            others = [n for n in (ENV_WARN_BEFORE, ENV_KEEP_RUNNING) if (env.get(n) or "").strip()]
            if others:
                raise PolicyError(f"{', '.join(others)} set without {ENV_GPU_IDLE_AFTER}")
            return None
        if warn_before is None:
            warn_before = min(DEFAULT_WARN_BEFORE, idle_after)
        return cls(gpu_idle_after=idle_after, warn_before=warn_before, keep_running=keep)


@dataclasses.dataclass(frozen=True)
class KeepRunning:
    """How many times "Keep running" was pressed in this idle spell, and until when it holds."""

    used: int = 0
    until: float | None = None


def stops_at(policy: CullPolicy, busy_at: float, keep: KeepRunning) -> float:
    """When the server is stopped unless its GPU is used: the idle limit or "Keep running"."""
    idle_end = busy_at + policy.gpu_idle_after
    return idle_end if keep.until is None else max(idle_end, keep.until)


def cull_document(
    policy: CullPolicy, busy_at: float, keep: KeepRunning, now: float
) -> dict[str, Any]:
    """The ``cull`` object of ``GET status``."""
    end = stops_at(policy, busy_at, keep)
    return {
        "gpu_idle_after": policy.gpu_idle_after,
        "warn_before": policy.warn_before,
        "stops_at": end,
        "warning": now >= end - policy.warn_before,
        "keep_running": {"used": keep.used, "max": policy.keep_running, "until": keep.until},
    }


# ---------------------------------------------------------------------------------------------
# the clock of one server
# ---------------------------------------------------------------------------------------------
class ServerActivity:
    """The idle clock of one server, fed one sample at a time; safe to read from any thread.

    Args:
        policy: the idle policy (``None``: the server is never culled, ``cull`` is null).
        thresholds: what counts as busy.
        started: when the server started (``gpu_busy_at`` until a sample is busy).
        clock: wall clock, seconds since the epoch (tests pass a fake one).
    """

    def __init__(
        self,
        policy: CullPolicy | None = None,
        thresholds: BusyThresholds | None = None,
        *,
        started: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy
        self.thresholds = thresholds or BusyThresholds()
        self._clock = clock
        self._lock = threading.Lock()
        self._busy_at = clock() if started is None else started
        self._memory: dict[str, float | None] = {}
        self._has_gpu = False
        self._held = False
        self._keep = KeepRunning()
        self._warning = False
        self._version = 0

    @property
    def version(self) -> int:
        """Bumped whenever a field other than the idle time changes (the stream pushes it)."""
        return self._version

    def observe(self, timestamp: float, gpus: Iterable[Mapping[str, Any]]) -> bool:
        """Take one sample (every visible GPU's document); returns whether the fields changed."""
        gpus = list(gpus)
        with self._lock:
            busy = False
            memory: dict[str, float | None] = {}
            for gpu in gpus:
                key = str(gpu.get("uuid") or gpu.get("index"))
                memory[key] = memory_used(gpu)
                if is_busy(gpu, self._memory.get(key), self.thresholds):
                    busy = True
            self._memory = memory
            before = (self._busy_at, self._has_gpu, self._held, self._keep, self._warning)
            self._has_gpu = bool(gpus)
            self._held = any(holds_memory(gpu) for gpu in gpus)
            if busy and timestamp > self._busy_at:
                self._busy_at = timestamp
                if self._keep != KeepRunning():
                    self._keep = KeepRunning()  # the GPU was used: a new idle spell begins
            self._warning = self._warning_at(timestamp)
            after = (self._busy_at, self._has_gpu, self._held, self._keep, self._warning)
            if after != before:
                self._version += 1
            return after != before

    def observe_snapshot(self, snapshot: Snapshot) -> None:
        """:meth:`observe` a sampler snapshot (its ``timestamp`` and ``gpus``): a listener."""
        self.observe(snapshot.timestamp, snapshot.gpus)

    def _warning_at(self, now: float) -> bool:
        if self.policy is None or not self._has_gpu:
            return False
        return now >= stops_at(self.policy, self._busy_at, self._keep) - self.policy.warn_before

    def keep_running(self, now: float | None = None) -> dict[str, Any]:
        """Press "Keep running": hold the stop off for ``gpu_idle_after`` more seconds.

        Returns the new ``cull`` document.

        Raises:
            KeepRunningRefused: 404 without a policy (or a GPU), 409 when none are left.
        """
        now = self._clock() if now is None else now
        with self._lock:
            policy = self.policy
            if policy is None:
                raise KeepRunningRefused(
                    404, "no idle policy applies to this server: it is never stopped for idleness"
                )
            if not self._has_gpu:
                raise KeepRunningRefused(
                    404, "this server has no GPU, so it is not stopped for GPU idleness"
                )
            if self._keep.used >= policy.keep_running:
                raise KeepRunningRefused(
                    409,
                    f"'Keep running' was used {self._keep.used} of {policy.keep_running} times; "
                    "use the GPU to keep this server running",
                )
            self._keep = KeepRunning(self._keep.used + 1, now + policy.gpu_idle_after)
            self._warning = self._warning_at(now)
            self._version += 1
            return cull_document(policy, self._busy_at, self._keep, now)

    def document(self, now: float | None = None) -> dict[str, Any]:
        """The activity fields of ``GET status`` at ``now``."""
        now = self._clock() if now is None else now
        with self._lock:
            if not self._has_gpu:
                return {
                    "gpu_busy_at": None,
                    "gpu_idle_seconds": None,
                    "gpu_memory_held": None,
                    "cull": None,
                }
            busy_at = self._busy_at
            return {
                "gpu_busy_at": busy_at,
                "gpu_idle_seconds": max(0.0, now - busy_at),
                "gpu_memory_held": self._held,
                "cull": (
                    None
                    if self.policy is None
                    else cull_document(self.policy, busy_at, self._keep, now)
                ),
            }
