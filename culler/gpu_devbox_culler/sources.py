"""Where the culler learns each server's GPU activity.

- :class:`ServerSource` (``--source servers``, the default) asks every server, through the
  hub's proxy with the service's token: ``GET gpu-devbox/api/status`` and ``GET gpus``, with a
  bound on the requests in flight and a time limit per server.
- :class:`PrometheusSource` (``--source prometheus``) reads all of them in one query. A
  server it would stop is read directly first (its own idle clock and "Keep running" decide).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlencode

from gpu_devbox.culling import Observation, RunningServer, Unreadable, parse_gpus, parse_status
from gpu_devbox.culling import prometheus as prom
from gpu_devbox_culler.client import HttpClient, TooLarge


def pool_size(concurrency: int) -> int:
    """Connections for ``concurrency`` servers read at once (two requests each, at the same
    time) and for the hub's and Prometheus' calls beside them."""
    return concurrency * 2 + 4


def http_client(concurrency: int) -> HttpClient:
    """The culler's own HTTP client for reading ``concurrency`` servers at once: its
    connections (:func:`pool_size`) are kept alive from one request to the next."""
    return HttpClient(pool_size(concurrency))


@dataclasses.dataclass(frozen=True)
class Reading:
    """What the culler learnt about one server: an observation, or why there is none."""

    observation: Observation | None
    error: str | None = None


class ServerSource:
    """Reads servers' status through the hub's proxy."""

    name = "servers"

    def __init__(
        self,
        proxy_url: str,
        token: str,
        client: HttpClient,
        *,
        concurrency: int,
        timeout: float,
    ) -> None:
        self.proxy_url = proxy_url.rstrip("/")
        self.token = token
        self.client = client
        self.timeout = timeout
        self.slots = asyncio.Semaphore(concurrency)

    async def _get(self, url: str) -> Any:
        try:
            response = await self.client.fetch(
                "GET",
                url,
                headers={"Authorization": f"token {self.token}", "Accept": "application/json"},
                timeout=self.timeout,
            )
        except asyncio.TimeoutError:
            raise Unreadable(f"no answer within {self.timeout:g} s") from None
        except TooLarge as exc:
            raise Unreadable(str(exc)) from None
        except OSError as exc:
            raise Unreadable(f"cannot connect: {exc}") from None
        code = response.code
        if code == 404:
            raise Unreadable("HTTP 404: the server has no gpu-devbox API")
        if code in (301, 302, 303, 307, 308):
            raise Unreadable(f"HTTP {code}: redirected (stopped or no access)")
        if not 200 <= code < 300:
            raise Unreadable(f"HTTP {code}")
        try:
            return json.loads(response.body)
        except ValueError:
            raise Unreadable("the answer is not JSON") from None

    async def read(self, server: RunningServer) -> Reading:
        """One server's status and GPU list (the list is optional: it only feeds the view)."""
        base = f"{self.proxy_url}{server.url}gpu-devbox/api"
        async with self.slots:
            try:
                status, gpus = await asyncio.wait_for(
                    asyncio.gather(
                        self._get(f"{base}/status"),
                        self._get(f"{base}/gpus"),
                        return_exceptions=True,
                    ),
                    self.timeout + 1,
                )
            except asyncio.TimeoutError:
                return Reading(None, f"no answer within {self.timeout:g} s")
        try:
            if isinstance(status, BaseException):
                raise status
            observation = parse_status(status)
        except Unreadable as exc:
            return Reading(None, str(exc))
        if not isinstance(gpus, BaseException):
            with contextlib.suppress(Unreadable):
                observation = dataclasses.replace(observation, gpus=parse_gpus(gpus))
        return Reading(observation)

    async def observe(self, servers: Sequence[RunningServer]) -> dict[tuple[str, str], Reading]:
        """Every server's reading (at most ``concurrency`` requests in flight)."""
        readings = await asyncio.gather(*(self.read(s) for s in servers))
        return {s.key: r for s, r in zip(servers, readings, strict=True)}

    def hour_utilization(self) -> None:
        """This source has no history: the culler averages its own samples."""
        return


class PrometheusError(Exception):
    """Prometheus could not be asked, or answered garbage."""


class PrometheusSource:
    """Reads every server's GPU activity from Prometheus in one query."""

    name = "prometheus"

    def __init__(
        self,
        url: str,
        client: HttpClient,
        *,
        series: str,
        timeout: float,
        prefix: str = "gpu_devbox",
        user_label: str = "username",
        server_label: str = "servername",
        namespace_label: str = "namespace",
        pod_label: str = "pod",
        busy_utilization: float = 5.0,
        lookback: float = 3 * 3600,
        step: float = 30.0,
        clock: Any = time.time,
    ) -> None:
        self.url = url.rstrip("/")
        self.client = client
        self.series = series
        self.timeout = timeout
        self.prefix = prefix
        self.user_label = user_label
        self.server_label = server_label
        self.namespace_label = namespace_label
        self.pod_label = pod_label
        self.busy_utilization = busy_utilization
        self.lookback = lookback
        self.step = step
        self.clock = clock
        self._hour: dict[tuple[str, str], float] = {}

    async def query(self, expression: str) -> list[prom.Sample]:
        """An instant query's samples.

        Raises:
            PrometheusError: Prometheus cannot be reached or answers garbage.
        """
        try:
            response = await self.client.fetch(
                "POST",
                f"{self.url}/api/v1/query",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                body=urlencode({"query": expression}),
                timeout=self.timeout,
            )
        except asyncio.TimeoutError:
            raise PrometheusError(
                f"Prometheus at {self.url} did not answer within {self.timeout:g} s"
            ) from None
        except OSError as exc:
            raise PrometheusError(f"cannot reach Prometheus at {self.url}: {exc}") from None
        try:
            doc = json.loads(response.body or b"")
        except ValueError:
            raise PrometheusError(f"Prometheus answered HTTP {response.code}, not JSON") from None
        try:
            return prom.parse_vector(doc)
        except prom.PrometheusError as exc:
            raise PrometheusError(str(exc)) from None

    def queries(self) -> tuple[str, str]:
        """(the activity query, the last hour's utilization query)."""
        if self.series == "dcgm":
            return (
                prom.dcgm_query(
                    busy_utilization=self.busy_utilization,
                    lookback=self.lookback,
                    step=self.step,
                    namespace_label=self.namespace_label,
                    pod_label=self.pod_label,
                ),
                prom.dcgm_hour_query(self.namespace_label, self.pod_label),
            )
        return (
            prom.gpu_devbox_query(self.prefix, self.user_label, self.server_label),
            prom.gpu_devbox_hour_query(self.prefix, self.user_label, self.server_label),
        )

    async def observe(self, servers: Sequence[RunningServer]) -> dict[tuple[str, str], Reading]:
        """Every server's reading from one query (a server without series is unreadable)."""
        activity_query, hour_query = self.queries()
        samples, hour = await asyncio.gather(self.query(activity_query), self.query(hour_query))
        now = self.clock()
        out: dict[tuple[str, str], Reading] = {}
        missing = "Prometheus has no GPU series for it"
        if self.series == "dcgm":
            pods = prom.dcgm_activity(
                samples, namespace_label=self.namespace_label, pod_label=self.pod_label
            )
            by_pod = prom.hour_utilization(hour, self.namespace_label, self.pod_label, scale=1)
            self._hour = {}
            for server in servers:
                activity = pods.get(server.pod) if server.pod else None
                if activity is None:
                    why = missing if server.pod else "its pod is unknown (admin:server_state)"
                    out[server.key] = Reading(None, why)
                    continue
                out[server.key] = Reading(
                    prom.dcgm_observation(
                        activity, now=now, started=server.started, lookback=self.lookback
                    )
                )
                if server.pod in by_pod:
                    self._hour[server.key] = by_pod[server.pod]
            return out
        found = prom.gpu_devbox_activity(
            samples, user_label=self.user_label, server_label=self.server_label
        )
        self._hour = prom.hour_utilization(hour, self.user_label, self.server_label)
        for server in servers:
            observation = found.get(server.key)
            out[server.key] = Reading(observation, None if observation else missing)
        return out

    def hour_utilization(self) -> dict[tuple[str, str], float]:
        """Each server's mean utilization over the last hour, from the last round's query."""
        return self._hour


def keys(servers: Iterable[RunningServer]) -> set[tuple[str, str]]:
    """The servers' keys."""
    return {s.key for s in servers}
