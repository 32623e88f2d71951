"""The push stream: one websocket per client, fed from the sampler's shared snapshots.

Wire format: every message is a JSON object ``{"type": ..., "data": ...}``:

``hello``
    Sent once on connect: the effective interval (the requested one, clamped to the floor) and
    the current status.
``status``
    The ``GET status`` document, whenever it changes (e.g. NVML lost or recovered).
``gpus``
    The ``GET gpus`` document, at most once per client interval.
other types
    Published by other features (e.g. ``benchmark`` progress), sent to every client at once.

The sampler's snapshots reach every client through the server's
:class:`~gpu_devbox.server.fanout.StreamFanout`; this module is the websocket handler.

Back-pressure: the server counts, per client, the bytes handed to its socket that the operating
system has not yet taken (:attr:`StreamHandler.pending`). While they exceed
:attr:`StreamFanout.max_pending`, ``gpus`` frames are skipped for that client (each one supersedes
the last, so a slow client simply gets fewer); other messages are always queued. A client whose
backlog passes four times that is closed with code 1008 and the reason ``client too slow``. The
server also pings every client every ``ping_interval`` seconds and closes one that does not answer
within the same time (reason ``ping timed out``).
"""

from __future__ import annotations

import json
import time
from asyncio import Future
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web, websocket

from gpu_devbox.server import limits
from gpu_devbox.server.base import AUTH_RESOURCE, BodyLimit, http_error, write_json_error
from gpu_devbox.server.fanout import StreamFanout

#: The longest interval a client may ask for, in seconds.
MAX_STREAM_INTERVAL = 3600.0
#: A client whose backlog passes this many times :data:`MAX_PENDING_BYTES` is closed.
CLOSE_FACTOR = 4
#: The close code and reason given to a client that does not keep up (1008: policy violation).
TOO_SLOW = (1008, "client too slow")


@web.stream_request_body
class StreamHandler(
    BodyLimit, WebSocketMixin, ExtensionHandlerMixin, JupyterHandler, websocket.WebSocketHandler
):
    """``GET {base_url}gpu-devbox/api/stream?interval=SECONDS`` (websocket).

    Every refusal before the upgrade (401/403, a bad interval, a request that is not a websocket
    handshake) is a JSON ``{"message", "reason"}`` body, like the REST routes'.
    """

    auth_resource = AUTH_RESOURCE
    interval: float = 1.0
    last_sent: float = 0.0
    #: Bytes written to this client that its socket has not taken yet.
    pending: int = 0
    #: ``gpus`` frames skipped because the client was behind.
    dropped: int = 0

    @property
    def fanout(self) -> StreamFanout:
        """The server's stream fan-out."""
        fanout: StreamFanout = self.settings["gpu_devbox"].fanout
        return fanout

    # Tornado's own websocket pings (seconds), not jupyter-server's millisecond ones.
    @property
    def ping_interval(self) -> float:
        """Seconds between two pings of this client (0: none)."""
        return self.fanout.ping_interval

    @property
    def ping_timeout(self) -> float:
        """Seconds the client has to answer a ping before it is closed."""
        return self.fanout.ping_interval

    @property
    def max_message_size(self) -> int:
        """Clients have nothing to say: a message over the body limit closes the connection."""
        return limits.MAX_BODY_BYTES

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Errors before the upgrade are JSON, like every other route of the extension."""
        write_json_error(self, status_code, **kwargs)

    def on_connection_close(self) -> None:
        """The connection went away, possibly while a request body was still arriving."""
        web.RequestHandler.on_connection_close(self)  # ends a streamed body's wait
        super().on_connection_close()

    async def pre_get(self) -> None:
        """Authorize the subscriber and check the handshake and interval before the upgrade."""
        authorized = await ensure_async(
            self.authorizer.is_authorized(self, self.current_user, "read", AUTH_RESOURCE)
        )
        if not authorized:
            raise web.HTTPError(403, "this user may not read gpu-devbox metrics")
        try:
            requested = limits.parse_number(
                limits.single_query_value(
                    self.get_query_arguments("interval", strip=False), "interval"
                ),
                "interval",
                minimum=0.0,
                maximum=MAX_STREAM_INTERVAL,
                default=self.fanout.floor,
            )
        except limits.LimitError as exc:
            raise http_error(exc) from None
        assert requested is not None
        if requested <= 0:
            raise web.HTTPError(400, "interval must be a positive number of seconds")
        self.interval = max(requested, self.fanout.floor)
        self._check_handshake()

    def _check_handshake(self) -> None:
        """What tornado would refuse with a plain-text page, refused here as JSON."""
        headers = self.request.headers
        if headers.get("Upgrade", "").lower() != "websocket":
            raise web.HTTPError(
                400, "this route is a websocket: send the handshake (Upgrade: websocket)"
            )
        connection = {part.strip().lower() for part in headers.get("Connection", "").split(",")}
        if "upgrade" not in connection:
            raise web.HTTPError(400, 'a websocket handshake needs "Connection: Upgrade"')
        if headers.get("Sec-WebSocket-Version") != "13" or not headers.get("Sec-WebSocket-Key"):
            raise web.HTTPError(
                400, "a websocket handshake needs Sec-WebSocket-Key and Sec-WebSocket-Version: 13"
            )
        if not self.check_origin(headers.get("Origin")):
            raise web.HTTPError(403, "cross-origin websockets are not allowed on this server")

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        """Upgrade to a websocket after authentication, authorization and input checks."""
        await self.pre_get()
        result = super().get(*args, **kwargs)
        if result is not None:
            await result

    def open(self, *args: str, **kwargs: str) -> None:
        """Greet the client and send the latest snapshot without waiting for the next tick."""
        self.fanout.add(self)
        sampler = self.fanout.sampler
        hello = {
            "interval": self.interval,
            "floor": self.fanout.floor,
            "status": self.fanout.status(),
        }
        self.send(json.dumps({"type": "hello", "data": hello}), None)
        self.send(sampler.snapshot().frame, time.monotonic())

    def on_message(self, message: str | bytes) -> None:
        """Clients have nothing to say; the stream is one-way."""

    def on_close(self) -> None:
        """Forget this client."""
        self.fanout.discard(self)

    def send(self, message: str | bytes, now: float | None, *, droppable: bool = False) -> None:
        """Write a message, or skip it (``droppable``) while the client is behind.

        A client whose backlog grows past :data:`CLOSE_FACTOR` times the limit is closed.
        """
        limit = self.fanout.max_pending
        if droppable and self.pending > limit:
            self.dropped += 1
            return
        try:
            written = self.write_message(message)
        except websocket.WebSocketClosedError:
            self.fanout.discard(self)
            return
        size = len(message)
        self.pending += size
        written.add_done_callback(lambda future: self._written(size, future))
        if now is not None:
            self.last_sent = now
        if self.pending > CLOSE_FACTOR * limit:
            self.fanout.discard(self)
            self.close(*TOO_SLOW)

    def _written(self, size: int, future: Future[None]) -> None:
        self.pending -= size
        if not future.cancelled():
            future.exception()  # a closed socket: nothing more to do, and nothing to log
