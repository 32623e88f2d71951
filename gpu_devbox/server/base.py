"""What every gpu-devbox handler shares: auth resources, the server state, JSON and input limits.

Request bodies are streamed (``@web.stream_request_body``) so that a body over
:data:`~gpu_devbox.server.limits.MAX_BODY_BYTES` is refused with 413 as soon as its size is
known (from ``Content-Length``, or while a chunked body arrives), never read whole into memory.
"""

from __future__ import annotations

import asyncio
import http.client
import json
from typing import TYPE_CHECKING, Any, cast

from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web

from gpu_devbox.quote import brief
from gpu_devbox.server import limits

if TYPE_CHECKING:
    from gpu_devbox.server.state import ServerState

#: The authorization resource of the read-only routes (metrics, checks).
AUTH_RESOURCE = "gpu-devbox"
#: Benchmarks run code on the GPU, so an admin can refuse them separately.
BENCHMARK_AUTH_RESOURCE = "gpu-devbox-benchmarks"

#: Where the extension's REST routes live, under the server's base_url.
API_PREFIX = "/gpu-devbox/api"


def http_error(exc: limits.LimitError) -> web.HTTPError:
    """The HTTP error a limit violation is answered with."""
    return web.HTTPError(exc.status, str(exc))


def write_json_error(handler: web.RequestHandler, status_code: int, **kwargs: Any) -> None:
    """Finish ``handler`` with a JSON ``{"message", "reason"}`` error, as jupyter's APIs do.

    For handlers that are not ``APIHandler``s (the stream, ``/metrics``), whose base class
    would render an HTML page.
    """
    handler.set_header("Content-Type", "application/json; charset=UTF-8")
    if status_code == 405:
        handler.set_header("Allow", ", ".join(allowed_methods(type(handler))))
    phrase = http.client.responses.get(status_code, "Unknown HTTP Error")
    reply: dict[str, Any] = {"message": phrase, "reason": None}
    exc = (kwargs.get("exc_info") or (None, None, None))[1]
    if isinstance(exc, web.HTTPError):
        reply = {"message": exc.log_message or phrase, "reason": exc.reason}
    handler.finish(json.dumps(reply))


def allowed_methods(handler: type[web.RequestHandler]) -> list[str]:
    """The HTTP methods ``handler`` implements, for the ``Allow`` header of a 405."""
    unimplemented = web.RequestHandler._unimplemented_method
    return [
        method
        for method in handler.SUPPORTED_METHODS
        if getattr(handler, method.lower(), unimplemented) is not unimplemented
    ]


class BodyLimit:
    """Mixin: a request body over :attr:`max_body_bytes` is answered with 413, never kept.

    Use it first among the bases of a ``@web.stream_request_body`` handler. A declared
    ``Content-Length`` over the limit is refused before authentication; a chunked body is
    counted as it arrives and refused as soon as it passes the limit (tornado then closes the
    connection rather than read the rest). A 405 names the allowed methods in ``Allow``.
    """

    #: The largest body this route accepts, in bytes.
    max_body_bytes = limits.MAX_BODY_BYTES

    _body: bytearray
    _body_refused = False

    async def prepare(self, **kwargs: Any) -> Any:
        """Refuse a body declared too large (413) before anything else is done."""
        handler = cast(web.RequestHandler, self)
        self._body = bytearray()
        try:
            limits.check_content_length(
                handler.request.headers.get("Content-Length"), self.max_body_bytes
            )
        except limits.LimitError as exc:
            raise http_error(exc) from None
        result = super().prepare(**kwargs)  # type: ignore[misc]
        if result is not None:
            await result
        return None

    def data_received(self, chunk: bytes) -> None:
        """Keep the body up to the limit; past it, answer 413 (tornado drops the rest)."""
        handler = cast(web.RequestHandler, self)
        if handler._finished or self._body_refused:
            return
        if len(self._body) + len(chunk) > self.max_body_bytes:
            self._body_refused = True
            self._body = bytearray()
            error = web.HTTPError(413, limits.too_large(self.max_body_bytes))
            handler.send_error(413, exc_info=(web.HTTPError, error, None))
            return
        self._body += chunk

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """The base class's error page; a 405 also says which methods this route allows."""
        if status_code == 405:
            handler = cast(web.RequestHandler, self)
            handler.set_header("Allow", ", ".join(allowed_methods(type(handler))))
        super().write_error(status_code, **kwargs)  # type: ignore[misc]


@web.stream_request_body
class BaseHandler(BodyLimit, ExtensionHandlerMixin, APIHandler):
    """A JSON API handler of the gpu-devbox extension.

    Errors are raised as :class:`tornado.web.HTTPError`; ``APIHandler.write_error`` turns them
    into ``{"message": ..., "reason": ...}`` JSON bodies.
    """

    auth_resource = AUTH_RESOURCE

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """A client's error (an HTTPError below 500) as the JSON body APIHandler writes.

        jupyter-server before 2.18 logs every error it writes with a traceback, a 400 for a bad
        query parameter included; the log then reads like a crash. This writes the same body
        and logs one line, on every jupyter-server. Server errors keep the base class's path.
        """
        exc_info = kwargs.get("exc_info")
        error = exc_info[1] if exc_info else None
        if not isinstance(error, web.HTTPError) or status_code >= 500:
            super().write_error(status_code, **kwargs)
            return
        if status_code == 405:
            self.set_header("Allow", ", ".join(allowed_methods(type(self))))
        message = error.log_message or http.client.responses.get(status_code, "Unknown HTTP Error")
        self.set_header("Content-Type", "application/json")
        self.log.warning("wrote error: %r", message)
        self.finish(json.dumps({"message": message, "reason": error.reason}))

    @property
    def state(self) -> ServerState:
        """The extension's shared state (sampler, stream fan-out, later features)."""
        state: ServerState = self.settings["gpu_devbox"]
        return state

    def finish_json(self, payload: Any, status: int = 200) -> None:
        """Send ``payload`` as JSON with the given status."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps(payload, allow_nan=False))

    def finish_raw_json(self, text: str | bytes) -> None:
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
        """The request body parsed as JSON within the limits; a 400 or 413 naming the problem."""
        try:
            return limits.parse_json_body(bytes(self._body), self.max_body_bytes)
        except limits.LimitError as exc:
            raise http_error(exc) from None

    def query_value(self, name: str) -> str | None:
        """A query argument given at most once, unstripped (``None`` when absent)."""
        try:
            return limits.single_query_value(self.get_query_arguments(name, strip=False), name)
        except limits.LimitError as exc:
            raise http_error(exc) from None

    def query_number(
        self,
        name: str,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        default: float | None = None,
    ) -> float | None:
        """A numeric query argument, or a 400 naming it and what is allowed."""
        try:
            return limits.parse_number(
                self.query_value(name), name, minimum=minimum, maximum=maximum, default=default
            )
        except limits.LimitError as exc:
            raise http_error(exc) from None

    def query_flag(self, name: str) -> bool:
        """A boolean query argument (absent: false), or a 400 naming it."""
        try:
            return limits.parse_flag(self.query_value(name), name)
        except limits.LimitError as exc:
            raise http_error(exc) from None


class NotFoundHandler(BaseHandler):
    """Any other path under the API prefix: a JSON 404 naming it, not jupyter-server's page."""

    def _not_found(self, path: str) -> None:
        raise web.HTTPError(
            404, f"no gpu-devbox API route {brief(path, 60)}; see {API_PREFIX}/openapi.json"
        )

    @web.authenticated
    def get(self, path: str) -> None:
        """404."""
        self._not_found(path)

    @web.authenticated
    def post(self, path: str) -> None:
        """404."""
        self._not_found(path)

    @web.authenticated
    def put(self, path: str) -> None:
        """404."""
        self._not_found(path)

    @web.authenticated
    def patch(self, path: str) -> None:
        """404."""
        self._not_found(path)

    @web.authenticated
    def delete(self, path: str) -> None:
        """404."""
        self._not_found(path)


#: Registered after every other route of the extension.
FALLBACK_ROUTE = (f"{API_PREFIX}/(.*)", NotFoundHandler)
