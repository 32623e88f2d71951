"""The cull decision for one server: pure, from what it said, its policy and the time.

A server is stopped when its GPUs have been idle longer than its profile's ``gpu_idle_after``
(by the server's own idle clock) and no "Keep running" it was granted is still running. A
"Keep running" is honoured for at most one ``gpu_idle_after`` from the moment the server
answered, whatever date it claims. A server in an exempt group, a profile with ``cull: false``,
a server that reports no GPU and a server that could not be read are never stopped.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Collection

from gpu_devbox.culling.observe import Observation
from gpu_devbox.culling.servers import RunningServer


class Action(str, enum.Enum):
    """What the culler does with a server this round."""

    CULL = "cull"  # stop it
    WARN = "warn"  # leave it; the user is being warned
    KEEP = "keep"  # leave it
    SKIP = "skip"  # never culled (exempt, no policy, no GPU, unreadable)


#: Every reason a decision can give, and its action.
REASONS: dict[str, Action] = {
    "gpu-idle": Action.CULL,
    "warning": Action.WARN,
    "busy": Action.KEEP,
    "keep-running": Action.KEEP,
    "exempt-group": Action.SKIP,
    "no-policy": Action.SKIP,
    "no-gpu": Action.SKIP,
    "unreadable": Action.SKIP,
}


@dataclasses.dataclass(frozen=True)
class Decision:
    """One server's decision, with what the log line and the admin view say about it."""

    server: RunningServer
    action: Action
    #: A key of :data:`REASONS`.
    reason: str
    #: The reason in words, for the log and the admin view.
    message: str
    #: Seconds the GPUs have been idle (``None``: unknown).
    idle_seconds: float | None = None
    #: Unix seconds (the culler's clock) at which the server is stopped unless its GPUs are
    #: used; ``None`` when it never is.
    stops_at: float | None = None

    @property
    def warning(self) -> bool:
        """Whether the server is in its warning period (or past it)."""
        return self.action in (Action.WARN, Action.CULL)


def human_duration(seconds: float | None) -> str:
    """``45 s``, ``12 min``, ``1 h 45 min``, ``2 d 3 h``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    total = max(0, int(seconds))
    if total < 60:
        return f"{total} s"
    minutes, _ = divmod(total, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


def keep_running_left(observation: Observation, limit: float) -> float | None:
    """Seconds of "Keep running" the server still has (at most ``limit``); ``None``: none.

    Measured on the server's clock (``until`` minus the time it answered), so a clock that
    differs from the culler's does not matter.
    """
    cull = observation.cull
    now = observation.server_now
    if cull is None or cull.keep_running.until is None or now is None:
        return None
    left = min(cull.keep_running.until - now, limit)
    return left if left > 0 else None


def decide(
    server: RunningServer,
    observation: Observation | None,
    now: float,
    *,
    error: str | None = None,
    exempt_groups: Collection[str] = (),
) -> Decision:
    """The decision for ``server`` given what it said (or why it could not be read)."""

    def made(
        reason: str, message: str, idle: float | None = None, stops: float | None = None
    ) -> Decision:
        return Decision(server, REASONS[reason], reason, message, idle, stops)

    idle = observation.gpu_idle_seconds if observation is not None else None
    exempt = sorted(set(server.groups) & set(exempt_groups))
    if exempt:
        return made("exempt-group", f"in the exempt group {exempt[0]}", idle)
    policy = server.policy
    if policy is None:
        return made("no-policy", f"profile {server.profile or '?'} is not culled", idle)
    if observation is None:
        return made("unreadable", f"cannot read its GPU activity: {error or 'no answer'}")
    if idle is None:
        return made("no-gpu", "the server reports no GPU")
    limit = float(policy.gpu_idle_after)
    keep = keep_running_left(observation, limit)
    stops_in = max(limit - idle, keep or 0.0)
    stops_at = now + stops_in
    allowed = f"{human_duration(idle)} of {human_duration(limit)} allowed"
    if idle > limit and keep is None:
        return made("gpu-idle", f"GPUs idle longer than {human_duration(limit)}", idle, now)
    if policy.warn_before > 0 and stops_in <= policy.warn_before:
        return made("warning", f"stops in {human_duration(stops_in)} ({allowed})", idle, stops_at)
    if keep is not None and keep > limit - idle:
        return made("keep-running", f"Keep running for {human_duration(keep)} more", idle, stops_at)
    return made("busy", f"GPUs idle {allowed}", idle, stops_at)
