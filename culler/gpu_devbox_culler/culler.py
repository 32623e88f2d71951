"""One decision round, every period: list, read, decide, log, stop, account."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Collection
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge

from gpu_devbox.catalog import Catalog
from gpu_devbox.culling import (
    Action,
    Decision,
    RunningServer,
    decide,
    describe_gpus,
    human_duration,
    running_servers,
)
from gpu_devbox_culler.hub import HubClient, HubError
from gpu_devbox_culler.sources import Reading, ServerSource
from gpu_devbox_culler.store import Look, Store, Summary

log = logging.getLogger("gpu_devbox_culler")

#: Why a server was stopped, as the ``reason`` label of ``culls_total``.
CULL_REASONS = ("gpu-idle", "admin")


class Source(Protocol):
    """Where readings come from (:mod:`gpu_devbox_culler.sources`)."""

    name: str

    async def observe(
        self, servers: list[RunningServer]
    ) -> dict[tuple[str, str], Reading]: ...  # pragma: no cover - a protocol

    def hour_utilization(self) -> dict[tuple[str, str], float] | None: ...  # pragma: no cover


class Metrics:
    """The service's own Prometheus series (on its ``/metrics``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.gpus_held = Gauge(
            "gpu_devbox_culler_gpus_held",
            "GPUs held by running servers the culler looks after",
            registry=self.registry,
        )
        self.gpus_idle = Gauge(
            "gpu_devbox_culler_gpus_idle",
            "GPUs held by servers whose GPUs were idle for at least one culling period",
            registry=self.registry,
        )
        self.unreadable = Gauge(
            "gpu_devbox_culler_unreadable_servers",
            "GPU servers whose GPU activity could not be read in the last round",
            registry=self.registry,
        )
        self.culls = Counter(
            "gpu_devbox_culler_culls",
            "Servers stopped, by reason (gpu-idle: by the culler; admin: from the admin view)",
            ["reason"],
            registry=self.registry,
        )
        for reason in CULL_REASONS:
            self.culls.labels(reason=reason)
        self.round_seconds = Gauge(
            "gpu_devbox_culler_round_duration_seconds",
            "How long the last decision round took",
            registry=self.registry,
        )


@dataclasses.dataclass(frozen=True)
class Row:
    """One server in the admin view."""

    decision: Decision
    reading: Reading
    summary: Summary | None
    utilization_hour: float | None


class Culler:
    """Decides, every period, which GPU servers to stop."""

    def __init__(
        self,
        *,
        hub: HubClient,
        source: Source,
        direct: ServerSource,
        store: Store,
        catalog: Callable[[], Catalog],
        period: float,
        exempt_groups: Collection[str] = (),
        dry_run: bool = False,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.hub = hub
        self.source = source
        self.direct = direct
        self.store = store
        self.catalog = catalog
        self.period = period
        self.exempt_groups = frozenset(exempt_groups)
        self.dry_run = dry_run
        self.metrics = metrics or Metrics()
        self.clock = clock
        #: The last round's view of every GPU server, by key.
        self.rows: dict[tuple[str, str], Row] = {}
        self.updated_at: float | None = None
        self.last_error: str | None = None
        #: The last (action, reason, error) logged per server: a decision is logged at INFO when
        #: it changes, at DEBUG when it repeats (and an unreadable server once).
        self._logged: dict[tuple[str, str], tuple[str, str, str | None]] = {}
        self._stopping: set[tuple[str, str]] = set()
        self._users: dict[tuple[str, str], Any] = {}

    # -- the round --------------------------------------------------------------------------

    async def round(self) -> list[Decision]:
        """List, read, decide, log, stop and account once. Hub errors are logged, not raised."""
        started = time.monotonic()
        try:
            users = await self.hub.users()
        except HubError as exc:
            self._fail(f"cannot list the hub's servers: {exc}")
            return []
        servers = running_servers(users, self.catalog())
        self._users = {
            (u["name"], name): model
            for u in users
            if isinstance(u, dict) and isinstance(u.get("servers"), dict)
            for name, model in u["servers"].items()
        }
        try:
            readings = await self.source.observe(servers)
        except Exception as exc:  # noqa: BLE001 - a source's failure skips this round, logged
            self._fail(f"cannot read GPU activity from {self.source.name}: {exc}")
            return []
        now = self.clock()
        decisions = [self._decide(s, readings.get(s.key), now) for s in servers]
        # a source other than the servers themselves: confirm a stop with the server's own word
        if self.source is not self.direct:
            confirm = [d.server for d in decisions if d.action is Action.CULL]
            if confirm:
                fresh = await self.direct.observe(confirm)
                readings.update(fresh)
                now = self.clock()
                redone = {s.key: self._decide(s, fresh[s.key], now) for s in confirm}
                decisions = [redone.get(d.server.key, d) for d in decisions]
        for decision in decisions:
            self._log(decision, readings.get(decision.server.key))
            if decision.action is Action.CULL:
                await self._cull(decision)
        await self._account(now, decisions, readings)
        self.last_error = None
        self.metrics.round_seconds.set(time.monotonic() - started)
        return decisions

    def _decide(self, server: RunningServer, reading: Reading | None, now: float) -> Decision:
        reading = reading or Reading(None, "no reading")
        return decide(
            server,
            reading.observation,
            now,
            error=reading.error,
            exempt_groups=self.exempt_groups,
        )

    def _fail(self, message: str) -> None:
        if message != self.last_error:
            log.error("gpu-devbox-culler: %s", message)
        self.last_error = message

    async def _cull(self, decision: Decision) -> None:
        server = decision.server
        if self.dry_run:
            await self.store.record_cull(
                self.clock(),
                server.user,
                server.name,
                server.profile,
                decision.reason,
                decision.idle_seconds,
                dry_run=True,
            )
            return
        if server.key in self._stopping:
            return
        self._stopping.add(server.key)
        try:
            await self.hub.stop(server)
        except HubError as exc:
            log.error("gpu-devbox-culler: could not stop %s: %s", server.label, exc)
            return
        finally:
            self._stopping.discard(server.key)
        self.metrics.culls.labels(reason=decision.reason).inc()
        await self.store.record_cull(
            self.clock(),
            server.user,
            server.name,
            server.profile,
            decision.reason,
            decision.idle_seconds,
            dry_run=False,
        )

    def _log(self, decision: Decision, reading: Reading | None) -> None:
        server = decision.server
        error = reading.error if reading is not None else None
        state = (decision.action.value, decision.reason, error)
        changed = self._logged.get(server.key) != state
        self._logged[server.key] = state
        level = logging.INFO if changed or decision.action is Action.CULL else logging.DEBUG
        if decision.reason == "unreadable" and changed:
            level = logging.WARNING
        if not log.isEnabledFor(level):
            return
        observation = reading.observation if reading is not None else None
        names = observation.gpus.names if observation is not None else ()
        verb = decision.action.value
        if decision.action is Action.CULL and self.dry_run:
            verb = "cull (dry run: not stopped)"
        log.log(
            level,
            "gpu-devbox-culler: %s %s: profile %s, GPUs %s, idle %s: %s: %s",
            verb,
            server.label,
            server.profile or "?",
            describe_gpus(names, server.gpus),
            human_duration(decision.idle_seconds),
            decision.reason,
            decision.message,
        )

    async def _account(
        self, now: float, decisions: list[Decision], readings: dict[tuple[str, str], Reading]
    ) -> None:
        looks = []
        held = idle = unreadable = 0
        for d in decisions:
            reading = readings.get(d.server.key) or Reading(None, "no reading")
            observation = reading.observation
            gpus = d.server.gpus
            if observation is not None and observation.gpu_count:
                gpus = observation.gpu_count
            if d.reason == "no-gpu":
                gpus = 0
            held += gpus
            if d.idle_seconds is not None and d.idle_seconds >= self.period:
                idle += gpus
            if d.reason == "unreadable":
                unreadable += 1
            looks.append(
                Look(
                    user=d.server.user,
                    server=d.server.name,
                    gpus=gpus,
                    idle_seconds=d.idle_seconds,
                    utilization=observation.gpus.utilization if observation else None,
                    started=d.server.started,
                )
            )
        self.metrics.gpus_held.set(held)
        self.metrics.gpus_idle.set(idle)
        self.metrics.unreadable.set(unreadable)
        summaries = await self.store.record(now, looks, max_gap=3 * self.period)
        hour = self.source.hour_utilization()
        self.rows = {
            d.server.key: Row(
                decision=d,
                reading=readings.get(d.server.key) or Reading(None, "no reading"),
                summary=summaries.get(d.server.key),
                utilization_hour=(
                    hour.get(d.server.key)
                    if hour is not None
                    else (s.utilization_hour if (s := summaries.get(d.server.key)) else None)
                ),
            )
            for d in decisions
        }
        self.updated_at = now

    # -- the admin view's Stop ----------------------------------------------------------------

    async def stop_from_admin(self, user: str, name: str, admin: str) -> RunningServer:
        """Stop a server the view lists, for an admin.

        Raises:
            KeyError: the culler does not know this server as running.
            HubError: the hub refused.
        """
        row = self.rows[(user, name)]
        server = row.decision.server
        await self.hub.stop(server)
        self.metrics.culls.labels(reason="admin").inc()
        log.info("gpu-devbox-culler: stop %s: asked by %s in the admin view", server.label, admin)
        await self.store.record_cull(
            self.clock(),
            user,
            name,
            server.profile,
            "admin",
            row.decision.idle_seconds,
            dry_run=False,
        )
        del self.rows[(user, name)]
        return server

    def user_model(self, key: tuple[str, str]) -> Any:
        """The hub's last server model for a key (for the view's start and activity times)."""
        return self._users.get(key)

    # -- running ------------------------------------------------------------------------------

    async def run_forever(self) -> None:
        """A round every period (at once when a round took longer than the period)."""
        while True:
            started = time.monotonic()
            try:
                await self.round()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("gpu-devbox-culler: the round failed")
            await asyncio.sleep(max(0.0, self.period - (time.monotonic() - started)))
