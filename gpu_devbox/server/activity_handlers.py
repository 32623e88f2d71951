"""GPU activity on the server: "Keep running", the simulated load control, Prometheus gauges.

``POST keep-running`` holds off the stop of an idle server for one more ``gpu_idle_after``
(:class:`~gpu_devbox.activity.ServerActivity` decides and counts). ``PUT simulated/load`` pins the
simulated GPUs' load, for tests and demos; it is registered only with the simulated backend, so a
server on real NVML answers it with 404. The activity fields of ``GET status`` come from
:func:`gpu_devbox.server.state.status_document`.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterator
from typing import Any

from jupyter_server.auth.decorator import authorized
from prometheus_client.core import GaugeMetricFamily, Metric
from tornado import web

from gpu_devbox.activity import KeepRunningRefused, ServerActivity
from gpu_devbox.gpus.simulated import PinnedLoad, SimulatedNVML
from gpu_devbox.server import prometheus
from gpu_devbox.server.base import API_PREFIX, BaseHandler

#: The fields ``PUT simulated/load`` accepts.
LOAD_FIELDS = ("utilization", "memory_used", "gpus")
#: Most GPU indices one ``PUT simulated/load`` may name (the simulated backend has at most 64).
MAX_LOAD_GPUS = 64


class KeepRunningHandler(BaseHandler):
    """``POST keep-running``: hold off the stop of an idle server for one more period."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Extend ``keep_running.until`` to now + ``gpu_idle_after``; the new ``cull`` object."""
        activity = self.state.activity
        if activity is None:
            raise web.HTTPError(404, "GPU activity is not tracked on this server")
        try:
            cull = activity.keep_running()
        except KeepRunningRefused as exc:
            raise web.HTTPError(exc.status, str(exc)) from None
        keep = cull["keep_running"]
        stop = datetime.datetime.fromtimestamp(cull["stops_at"], tz=datetime.timezone.utc)
        self.log.info(
            "gpu-devbox: 'Keep running' (%d of %d): this server now stops at %s unless the GPU "
            "is used",
            keep["used"],
            keep["max"],
            stop.isoformat(timespec="seconds"),
        )
        self.state.fanout.publish_status()
        self.finish_json(cull)


def parse_load(body: Any) -> tuple[float | None, int | None, list[int] | None]:
    """``(utilization, memory_used, gpus)`` of a ``PUT simulated/load`` body.

    Raises:
        ValueError: the body is not what the route takes; the message names the field.
    """
    if not isinstance(body, dict):
        raise ValueError('the body must be a JSON object such as {"utilization": 80}')
    unknown = sorted(set(body) - set(LOAD_FIELDS))
    if unknown:
        raise ValueError(f"unknown field {unknown[0][:40]!r}; fields: {', '.join(LOAD_FIELDS)}")
    if "utilization" not in body:
        raise ValueError('utilization is required: a percentage, or null to unpin ("null")')
    utilization = body["utilization"]
    if utilization is not None and (
        isinstance(utilization, bool)
        or not isinstance(utilization, int | float)
        or not math.isfinite(utilization)
        or not 0 <= utilization <= 100
    ):
        raise ValueError("utilization must be a number from 0 to 100, or null")
    memory = _whole(body.get("memory_used"))
    if body.get("memory_used") is not None and (memory is None or memory < 0):
        raise ValueError("memory_used must be a whole number of bytes, at least 0")
    gpus: list[int] | None = None
    if "gpus" in body:
        raw = body["gpus"]
        indices = [_whole(i) for i in raw] if isinstance(raw, list) else []
        if not indices or len(indices) > MAX_LOAD_GPUS or any(i is None for i in indices):
            raise ValueError(
                f"gpus must be a list of 1 to {MAX_LOAD_GPUS} GPU indices (whole numbers)"
            )
        gpus = [i for i in indices if i is not None]
    return (None if utilization is None else float(utilization)), memory, gpus


def _whole(value: Any) -> int | None:
    """``value`` as an int when JSON Schema calls it an integer (``3`` or ``3.0``), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _load_document(pins: dict[int, PinnedLoad | None]) -> dict[str, Any]:
    return {
        "gpus": [
            {
                "index": index,
                "pinned": pin is not None,
                "utilization": None if pin is None else pin.utilization,
                "memory_used": None if pin is None else pin.memory_used,
            }
            for index, pin in sorted(pins.items())
        ]
    }


class SimulatedLoadHandler(BaseHandler):
    """``PUT simulated/load``: pin the simulated GPUs' load (a test and demo control)."""

    @property
    def simulated(self) -> SimulatedNVML:
        """The server's simulated NVML (the route exists only with the simulated backend)."""
        simulated: SimulatedNVML = self.settings["gpu_devbox_simulated"]
        return simulated

    @web.authenticated
    @authorized
    async def put(self) -> None:
        """Pin ``utilization`` (and ``memory_used``) on ``gpus``; null unpins. Every GPU's pin."""
        try:
            utilization, memory, gpus = parse_load(self.json_body())
            pins = self.simulated.pin_load(utilization, memory_used=memory, gpus=gpus)
        except ValueError as exc:
            raise web.HTTPError(400, str(exc)) from None
        self.log.info(
            "gpu-devbox: simulated load on GPU(s) %s %s",
            "all" if gpus is None else ",".join(map(str, gpus)),
            "back to the built-in pattern" if utilization is None else f"pinned at {utilization}%",
        )
        self.finish_json(_load_document(pins))


def routes(*, simulated: bool) -> list[tuple[str, type[BaseHandler]]]:
    """The routes of this module; the load control only with the simulated backend."""
    out: list[tuple[str, type[BaseHandler]]] = [(f"{API_PREFIX}/keep-running", KeepRunningHandler)]
    if simulated:
        out.append((f"{API_PREFIX}/simulated/load", SimulatedLoadHandler))
    return out


class ActivityCollector:
    """Prometheus gauges of a server's GPU activity (none when the server has no GPU)."""

    def __init__(self, activity: ServerActivity, *, prefix: str = "gpu_devbox") -> None:
        if not prometheus.METRIC_PREFIX.match(prefix):
            raise ValueError(f"{prefix!r} is not a valid Prometheus metric name prefix")
        self.activity = activity
        self.prefix = prefix

    def describe(self) -> list[Metric]:
        """Nothing up front, as the GPU collector."""
        return []

    def collect(self) -> Iterator[Metric]:
        """The gauges now (none for a scrape not allowed to see GPU series, or without GPU)."""
        if not prometheus.gpu_series_allowed():
            return
        document = self.activity.document()
        if document["gpu_busy_at"] is None:
            return
        p = self.prefix
        yield GaugeMetricFamily(
            f"{p}_gpu_idle_seconds",
            "Seconds since a visible GPU was last busy (utilization at or above the threshold, "
            "or its memory used changed)",
            value=document["gpu_idle_seconds"],
        )
        yield GaugeMetricFamily(
            f"{p}_gpu_busy_timestamp_seconds",
            "Unix time of the last sample in which a visible GPU was busy (the server's start "
            "until then)",
            value=document["gpu_busy_at"],
        )
        yield GaugeMetricFamily(
            f"{p}_gpu_memory_held",
            "1 when processes hold memory on a visible GPU",
            value=1.0 if document["gpu_memory_held"] else 0.0,
        )
        cull = document["cull"]
        until = cull["keep_running"]["until"] if cull else None
        if until is not None:
            yield GaugeMetricFamily(
                f"{p}_keep_running_until_timestamp_seconds",
                "Unix time until which the user asked this server to keep running",
                value=until,
            )
