"""REST routes of the GPU benchmark, authorized on their own resource (``gpu-devbox-benchmarks``).

``POST benchmarks`` starts a run (202), ``GET benchmarks/{id}`` follows it, ``DELETE
benchmarks/{id}`` cancels it, ``GET benchmarks`` lists the history. The handlers only validate and
delegate: the run itself is a worker subprocess owned by :class:`BenchmarkService`, and anything
that may block (starting or killing a process, reading the history file) runs off the event loop.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_path_join
from tornado import web

from gpu_devbox.bench.run import RunRequest
from gpu_devbox.bench.runner import RunFinished, RunnerBusy
from gpu_devbox.bench.service import BadRequest, BenchmarkService, Disabled
from gpu_devbox.quote import brief
from gpu_devbox.server.base import API_PREFIX, BENCHMARK_AUTH_RESOURCE, BaseHandler

T = TypeVar("T")

#: Most runs ``GET benchmarks`` returns at once.
MAX_LIMIT = 1000
#: Run ids are 32 hex digits; a longer one names no run, and is not looked for.
MAX_ID_LENGTH = 64


class BenchmarkBase(BaseHandler):
    """Shared by the benchmark routes: the resource, the service, blocking calls off the loop."""

    auth_resource = BENCHMARK_AUTH_RESOURCE

    @property
    def service(self) -> BenchmarkService:
        """The server's benchmark service."""
        service = self.state.benchmarks
        if service is None:
            raise web.HTTPError(503, "the benchmark service is not running")
        return service

    async def off_loop(self, func: Callable[..., T], *args: Any) -> T:
        """Run a blocking call in the default executor."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, functools.partial(func, *args))

    async def find(self, run_id: str) -> dict[str, Any]:
        """A run of this server or of the history, or a 404 that quotes the id in brief."""
        document = None
        if len(run_id) <= MAX_ID_LENGTH:
            document = await self.off_loop(self.service.get, run_id)
        if document is None:
            raise web.HTTPError(404, f"no benchmark run with id {brief(run_id)}")
        return document


class BenchmarksHandler(BenchmarkBase):
    """``GET benchmarks`` (history) and ``POST benchmarks`` (start a run)."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """The run in progress and the recorded runs, newest first (``?limit=N``, default 50)."""
        limit = self.query_number("limit", minimum=1, maximum=MAX_LIMIT)
        if limit is not None and limit != int(limit):
            raise web.HTTPError(400, f"limit must be a whole number, not {limit}")
        listing = await self.off_loop(self.service.listing, int(limit or 50))
        self.finish_json(listing)

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Start a run: ``{"suite": "quick"|"full", "devices": [indices], "sizes": {...}}``."""
        service = self.service
        if not service.config.enabled:
            raise web.HTTPError(
                403, "benchmarks are disabled on this server (c.GPUDevbox.benchmarks_enabled)"
            )
        body = self.json_body()
        await self.wait_for_first_sample()
        sampler = self.state.sampler
        status = sampler.status()
        try:
            request: RunRequest = service.build_request(
                body,
                sampler.snapshot().gpus,
                simulated=bool(status.get("simulated")),
                driver_version=status["nvml"].get("driver_version"),
            )
        except BadRequest as exc:
            raise web.HTTPError(400, str(exc)) from None
        try:
            document = await self.off_loop(service.submit, request)
        except RunnerBusy as exc:
            self.finish_json(
                {"message": str(exc), "reason": "busy", "running_id": exc.running_id}, status=409
            )
            return
        except Disabled as exc:
            raise web.HTTPError(403, str(exc)) from None
        except OSError as exc:
            raise web.HTTPError(500, f"the benchmark worker could not start: {exc}") from None
        location = url_path_join(self.base_url, API_PREFIX, "benchmarks", document["id"])
        self.set_header("Location", location)
        self.finish_json(document, status=202)


class BenchmarkHandler(BenchmarkBase):
    """``GET benchmarks/{id}`` (progress and results) and ``DELETE benchmarks/{id}`` (cancel)."""

    @web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        """The run's document, from this server's runs or the history."""
        self.finish_json(await self.find(run_id))

    @web.authenticated
    @authorized
    async def delete(self, run_id: str) -> None:
        """Cancel a run in progress; its worker is gone when this returns."""
        service = self.service
        try:
            document = await self.off_loop(service.cancel, run_id)
        except RunFinished as exc:
            raise web.HTTPError(409, str(exc)) from None
        except KeyError:
            recorded = await self.find(run_id)
            raise web.HTTPError(
                409, f"benchmark {run_id} already finished ({recorded['state']})"
            ) from None
        self.finish_json(document)


ROUTES: list[tuple[str, type[BaseHandler]]] = [
    (f"{API_PREFIX}/benchmarks", BenchmarksHandler),
    (f"{API_PREFIX}/benchmarks/([^/]+)", BenchmarkHandler),
]
