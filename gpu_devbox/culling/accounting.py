"""GPU-hours held and busy: the arithmetic of the culler's accounting, pure.

Between two looks at a server (``start``..``end``) its GPUs were *held* the whole time. They
were *idle* for the last ``gpu_idle_seconds`` of it (the server's own idle clock says so) and
are counted *busy* for the rest: the server saw a busy sample at the start of that idle tail.
A server the culler could not read holds its GPUs but is counted busy for none of the time.
A gap longer than ``max_gap`` (the culler was not running) is counted only up to ``max_gap``.
Time is split at local midnight so that each day gets its own share.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Mapping


@dataclasses.dataclass(frozen=True)
class Usage:
    """GPU-seconds held and busy."""

    held: float = 0.0
    busy: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.held + other.held, self.busy + other.busy)

    @property
    def held_hours(self) -> float:
        """GPU-hours held."""
        return self.held / 3600

    @property
    def busy_hours(self) -> float:
        """GPU-hours busy."""
        return self.busy / 3600


def day_of(timestamp: float, tz: datetime.tzinfo) -> str:
    """The local date (``2026-12-01``) of a unix time."""
    return datetime.datetime.fromtimestamp(timestamp, tz).date().isoformat()


def split_days(start: float, end: float, tz: datetime.tzinfo) -> list[tuple[str, float]]:
    """``(date, seconds)`` of each local day that ``start``..``end`` covers, in order."""
    out: list[tuple[str, float]] = []
    at = start
    while at < end:
        local = datetime.datetime.fromtimestamp(at, tz)
        midnight = datetime.datetime.combine(
            local.date() + datetime.timedelta(days=1), datetime.time(), tzinfo=tz
        ).timestamp()
        stop = min(end, midnight)
        out.append((local.date().isoformat(), stop - at))
        at = stop
    return out


def interval_usage(
    start: float | None,
    end: float,
    gpus: int,
    idle_seconds: float | None,
    *,
    max_gap: float,
    tz: datetime.tzinfo,
) -> dict[str, Usage]:
    """Usage per local day between two looks at a server (``start`` ``None``: first look).

    ``idle_seconds`` ``None`` means the server could not be read: held, not busy.
    """
    if start is None or end <= start or gpus <= 0:
        return {}
    start = max(start, end - max_gap)
    span = end - start
    idle = span if idle_seconds is None else min(span, max(0.0, idle_seconds))
    busy_until = end - idle
    out: dict[str, Usage] = {}
    for day, seconds in split_days(start, end, tz):
        out[day] = out.get(day, Usage()) + Usage(held=seconds * gpus)
    for day, seconds in split_days(start, busy_until, tz):
        out[day] = out[day] + Usage(busy=seconds * gpus)
    return out


def totals(
    per_day: Mapping[str, Usage] | Iterable[tuple[str, Usage]], today: str, days: int = 7
) -> tuple[Usage, Usage]:
    """``(today's usage, the last ``days`` days' usage, today included)``."""
    items = per_day.items() if isinstance(per_day, Mapping) else per_day
    first = (datetime.date.fromisoformat(today) - datetime.timedelta(days=days - 1)).isoformat()
    day_total, week_total = Usage(), Usage()
    for day, usage in items:
        if day == today:
            day_total = day_total + usage
        if first <= day <= today:
            week_total = week_total + usage
    return day_total, week_total
