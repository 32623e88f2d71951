"""The culler's accounting in SQLite: GPU-hours held and busy per server and day, the last hour
of utilization samples, and the culls. It survives a restart of the service.

Every call runs in one worker thread that owns the connection, so the event loop never waits
on the disk.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import datetime
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from gpu_devbox.culling import Usage, day_of, interval_usage, totals

SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    day TEXT NOT NULL, user TEXT NOT NULL, server TEXT NOT NULL,
    held REAL NOT NULL DEFAULT 0, busy REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (day, user, server)
);
CREATE TABLE IF NOT EXISTS seen (
    user TEXT NOT NULL, server TEXT NOT NULL, at REAL NOT NULL, PRIMARY KEY (user, server)
);
CREATE TABLE IF NOT EXISTS utilization (
    at REAL NOT NULL, user TEXT NOT NULL, server TEXT NOT NULL, percent REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS utilization_server ON utilization (user, server, at);
CREATE TABLE IF NOT EXISTS culls (
    at REAL NOT NULL, user TEXT NOT NULL, server TEXT NOT NULL, profile TEXT,
    reason TEXT NOT NULL, idle REAL, dry_run INTEGER NOT NULL
);
"""
#: Days of accounting kept.
KEEP_DAYS = 90


@dataclasses.dataclass(frozen=True)
class Look:
    """One look at a server in a round, for the accounting."""

    user: str
    server: str
    gpus: int
    #: Seconds idle (``None``: unreadable, counted held but not busy).
    idle_seconds: float | None
    #: Mean utilization now, percent (``None``: unknown).
    utilization: float | None
    #: When the hub started it (unix s), if known: no time before it is counted.
    started: float | None = None


@dataclasses.dataclass(frozen=True)
class Summary:
    """A server's accounting as the admin view shows it."""

    today: Usage
    week: Usage
    #: Mean utilization over the last hour (the culler's own samples), percent.
    utilization_hour: float | None


class Store:
    """The SQLite database at ``path`` (created when missing)."""

    def __init__(self, path: str, *, tz: datetime.tzinfo | None = None) -> None:
        self.path = path
        self.tz = tz or datetime.datetime.now().astimezone().tzinfo or datetime.timezone.utc
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="culler-db")
        self._db: sqlite3.Connection | None = None

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            db = sqlite3.connect(self.path, timeout=30)
            db.executescript(SCHEMA)
            db.execute("PRAGMA journal_mode=WAL")
            self._db = db
        return self._db

    async def open(self) -> None:
        """Create the tables (or fail now, with the reason, when the file cannot be used)."""
        await self._run(self._connect)

    async def close(self) -> None:
        """Close the database and its thread."""

        def close() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await self._run(close)
        self._thread.shutdown(wait=True)

    # -- a round --------------------------------------------------------------------------

    async def record(
        self, now: float, looks: Sequence[Look], *, max_gap: float
    ) -> dict[tuple[str, str], Summary]:
        """Account the time since each server's last look; forget servers no longer running.

        Returns every looked-at server's summary.
        """
        return await self._run(self._record, now, list(looks), max_gap)  # type: ignore[no-any-return]

    def _record(
        self, now: float, looks: list[Look], max_gap: float
    ) -> dict[tuple[str, str], Summary]:
        db = self._connect()
        with db:
            previous = {(u, s): at for u, s, at in db.execute("SELECT user, server, at FROM seen")}
            current = {(look.user, look.server) for look in looks}
            gone = [key for key in previous if key not in current]
            db.executemany("DELETE FROM seen WHERE user = ? AND server = ?", gone)
            rows: list[tuple[str, str, str, float, float]] = []
            for look in looks:
                start = previous.get((look.user, look.server))
                if start is not None and look.started is not None:
                    start = max(start, look.started)
                for day, usage in interval_usage(
                    start, now, look.gpus, look.idle_seconds, max_gap=max_gap, tz=self.tz
                ).items():
                    rows.append((day, look.user, look.server, usage.held, usage.busy))
            db.executemany(
                "INSERT INTO usage (day, user, server, held, busy) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (day, user, server) DO UPDATE SET "
                "held = held + excluded.held, busy = busy + excluded.busy",
                rows,
            )
            db.executemany(
                "INSERT INTO seen (user, server, at) VALUES (?, ?, ?) "
                "ON CONFLICT (user, server) DO UPDATE SET at = excluded.at",
                [(look.user, look.server, now) for look in looks],
            )
            db.executemany(
                "INSERT INTO utilization (at, user, server, percent) VALUES (?, ?, ?, ?)",
                [
                    (now, look.user, look.server, look.utilization)
                    for look in looks
                    if look.utilization is not None
                ],
            )
            db.execute("DELETE FROM utilization WHERE at < ?", (now - 3600,))
            oldest = (
                datetime.date.fromisoformat(day_of(now, self.tz))
                - datetime.timedelta(days=KEEP_DAYS)
            ).isoformat()
            db.execute("DELETE FROM usage WHERE day < ?", (oldest,))
        return self._summaries(now, current)

    def _summaries(
        self, now: float, servers: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], Summary]:
        db = self._connect()
        today = day_of(now, self.tz)
        first = (datetime.date.fromisoformat(today) - datetime.timedelta(days=6)).isoformat()
        per_server: dict[tuple[str, str], dict[str, Usage]] = {}
        for day, user, server, held, busy in db.execute(
            "SELECT day, user, server, held, busy FROM usage WHERE day >= ? AND day <= ?",
            (first, today),
        ):
            per_server.setdefault((user, server), {})[day] = Usage(held, busy)
        hour = {
            (user, server): avg
            for user, server, avg in db.execute(
                "SELECT user, server, AVG(percent) FROM utilization WHERE at >= ? "
                "GROUP BY user, server",
                (now - 3600,),
            )
        }
        out = {}
        for key in servers:
            day_usage, week_usage = totals(per_server.get(key, {}), today)
            out[key] = Summary(day_usage, week_usage, hour.get(key))
        return out

    async def record_cull(
        self,
        at: float,
        user: str,
        server: str,
        profile: str | None,
        reason: str,
        idle: float | None,
        *,
        dry_run: bool,
    ) -> None:
        """Remember a stop (or, with ``--dry-run``, one that would have happened)."""

        def insert() -> None:
            db = self._connect()
            with db:
                db.execute(
                    "INSERT INTO culls (at, user, server, profile, reason, idle, dry_run) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (at, user, server, profile, reason, idle, int(dry_run)),
                )

        await self._run(insert)

    async def culls(self, limit: int = 100) -> list[dict[str, Any]]:
        """The most recent culls, newest first."""

        def select() -> list[dict[str, Any]]:
            db = self._connect()
            rows = db.execute(
                "SELECT at, user, server, profile, reason, idle, dry_run FROM culls "
                "ORDER BY at DESC LIMIT ?",
                (limit,),
            )
            names = ("at", "user", "server", "profile", "reason", "idle_seconds", "dry_run")
            return [dict(zip(names, row, strict=True)) for row in rows]

        return await self._run(select)  # type: ignore[no-any-return]
