"""REST routes for GPU metrics and the API description. Every read comes from the sampler cache."""

from __future__ import annotations

import importlib.resources
import json
from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from gpu_devbox._version import __version__
from gpu_devbox.server.base import API_PREFIX, BaseHandler

#: The largest ``since`` accepted, in Unix seconds (the year 2286): any later value is a mistake,
#: not clock skew. A ``since`` after the newest sample simply selects nothing.
MAX_SINCE = 1e10


def load_openapi() -> dict[str, Any]:
    """The shipped OpenAPI document."""
    text = importlib.resources.files("gpu_devbox.server").joinpath("openapi.json").read_text()
    document: dict[str, Any] = json.loads(text)
    return document


class StatusHandler(BaseHandler):
    """``GET status``: is NVML usable, why not, and which versions."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Return the extension and NVML status."""
        await self.wait_for_first_sample()
        self.finish_json(self.state.status())


class GpusHandler(BaseHandler):
    """``GET gpus``: the latest sample of every visible GPU."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Return the latest snapshot (empty ``gpus`` when NVML is unavailable)."""
        await self.wait_for_first_sample()
        self.finish_raw_json(self.state.sampler.snapshot().body)


class HistoryHandler(BaseHandler):
    """``GET gpus/history?since=<unix seconds>``: the kept samples taken after ``since``."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Return the history after ``since`` (all of it when ``since`` is absent)."""
        since = self.query_number("since", minimum=0.0, maximum=MAX_SINCE)
        sampler = self.state.sampler
        samples = sampler.history(since)
        interval = json.dumps(sampler.config.interval)
        span = json.dumps(sampler.config.history_seconds)
        head = f'{{"interval":{interval},"history_seconds":{span},"samples":['
        self.finish_raw_json(b"".join((head.encode(), b",".join(samples), b"]}")))


class OpenAPIHandler(BaseHandler):
    """``GET openapi.json``: the OpenAPI 3.1 description of these routes."""

    @web.authenticated
    @authorized
    def get(self) -> None:
        """Return the OpenAPI document, with this server's base URL filled in."""
        document = load_openapi()
        document["info"]["version"] = __version__
        base = self.base_url.rstrip("/")
        document["servers"] = [{"url": f"{base}{API_PREFIX}"}]
        self.finish_json(document)


ROUTES: list[tuple[str, type[BaseHandler]]] = [
    (f"{API_PREFIX}/status", StatusHandler),
    (f"{API_PREFIX}/gpus", GpusHandler),
    (f"{API_PREFIX}/gpus/history", HistoryHandler),
    (f"{API_PREFIX}/openapi.json", OpenAPIHandler),
]
