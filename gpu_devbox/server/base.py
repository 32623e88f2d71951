"""What every gpu-devbox handler shares: auth resources, the server state, JSON and input checks."""

from __future__ import annotations

import asyncio
import json
import math
from typing import TYPE_CHECKING, Any

from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web

if TYPE_CHECKING:
    from gpu_devbox.server.state import ServerState

#: The authorization resource of the read-only routes (metrics, checks).
AUTH_RESOURCE = "gpu-devbox"
#: Benchmarks run code on the GPU, so an admin can refuse them separately.
BENCHMARK_AUTH_RESOURCE = "gpu-devbox-benchmarks"

#: Where the extension's REST routes live, under the server's base_url.
API_PREFIX = "/gpu-devbox/api"


class BaseHandler(ExtensionHandlerMixin, APIHandler):
    """A JSON API handler of the gpu-devbox extension.

    Errors are raised as :class:`tornado.web.HTTPError`; ``APIHandler.write_error`` turns them
    into ``{"message": ..., "reason": ...}`` JSON bodies.
    """

    auth_resource = AUTH_RESOURCE

    @property
    def state(self) -> ServerState:
        """The extension's shared state (sampler, stream hub, later features)."""
        state: ServerState = self.settings["gpu_devbox"]
        return state

    def finish_json(self, payload: Any, status: int = 200) -> None:
        """Send ``payload`` as JSON with the given status."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps(payload, allow_nan=False))

    def finish_raw_json(self, text: str) -> None:
        """Send an already-serialised JSON document."""
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(text)

    async def wait_for_first_sample(self, timeout: float = 5.0) -> None:
        """Wait (off the event loop) until the sampler has finished its first tick."""
        sampler = self.state.sampler
        if not sampler.ready:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, sampler.wait_ready, timeout)

    def json_body(self) -> Any:
        """The request body parsed as JSON; a 400 naming the problem when it is not."""
        try:
            return json.loads(self.request.body or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise web.HTTPError(400, f"request body is not valid JSON: {exc}") from exc


def parse_number(
    raw: str | None,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    default: float | None = None,
) -> float | None:
    """Parse a numeric query argument or raise a 400 that names it and says what is allowed."""
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise web.HTTPError(400, f"{name} must be a number, not {raw!r}") from None
    if not math.isfinite(value):
        raise web.HTTPError(400, f"{name} must be a finite number, not {raw!r}")
    if minimum is not None and value < minimum:
        raise web.HTTPError(400, f"{name} must be at least {minimum:g}, not {raw}")
    if maximum is not None and value > maximum:
        raise web.HTTPError(400, f"{name} must be at most {maximum:g}, not {raw}")
    return value
