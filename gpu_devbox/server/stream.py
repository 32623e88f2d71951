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

The sampler thread never touches a socket: it hands each snapshot to the event loop with
``call_soon_threadsafe``, where one pre-serialised message is written to every due client.

Back-pressure: the server counts, per client, the bytes handed to its socket that the operating
system has not yet taken (:attr:`StreamHandler.pending`). While they exceed
:attr:`StreamHub.max_pending`, ``gpus`` frames are skipped for that client (each one supersedes
the last, so a slow client simply gets fewer); other messages are always queued. A client whose
backlog passes four times that is closed with code 1008 and the reason ``client too slow``. The
server also pings every client every ``ping_interval`` seconds and closes one that does not answer
within the same time (reason ``ping timed out``).
"""

from __future__ import annotations

import asyncio
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

from gpu_devbox.gpus import Sampler, Snapshot
from gpu_devbox.server import limits
from gpu_devbox.server.base import AUTH_RESOURCE, BodyLimit, http_error, write_json_error

#: The longest interval a client may ask for, in seconds.
MAX_STREAM_INTERVAL = 3600.0
#: Bytes one client may have waiting for its socket before ``gpus`` frames are skipped.
MAX_PENDING_BYTES = 256 * 1024
#: A client whose backlog passes this many times :data:`MAX_PENDING_BYTES` is closed.
CLOSE_FACTOR = 4
#: Seconds between two pings of a client, and the time it has to answer (0: no pings).
PING_INTERVAL = 30.0
#: The close code and reason given to a client that does not keep up (1008: policy violation).
TOO_SLOW = (1008, "client too slow")


class StreamHub:
    """Fans snapshots and feature events out to the connected stream clients."""

    def __init__(
        self,
        sampler: Sampler,
        *,
        max_pending: int = MAX_PENDING_BYTES,
        ping_interval: float = PING_INTERVAL,
    ) -> None:
        self.sampler = sampler
        #: Bytes a client may have waiting before its ``gpus`` frames are skipped.
        self.max_pending = max_pending
        #: Seconds between pings, and to answer one (0: no pings).
        self.ping_interval = ping_interval
        self.clients: set[StreamHandler] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._status_version = -1
        self._unsubscribe = sampler.subscribe(self._from_sampler_thread)

    @property
    def floor(self) -> float:
        """The shortest interval a client can get: the sampling interval."""
        return self.sampler.config.interval

    def add(self, client: StreamHandler) -> None:
        """Register a connected client (called on the event loop)."""
        self._loop = asyncio.get_running_loop()
        self.clients.add(client)

    def discard(self, client: StreamHandler) -> None:
        """Forget a client that went away."""
        self.clients.discard(client)

    def close(self) -> None:
        """Stop listening to the sampler and close every client."""
        self._unsubscribe()
        for client in list(self.clients):
            client.close(1001, "server shutting down")
        self.clients.clear()

    def _from_sampler_thread(self, snapshot: Snapshot) -> None:
        loop = self._loop
        if loop is None or not self.clients or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._fan_out, snapshot)

    def _fan_out(self, snapshot: Snapshot) -> None:
        if snapshot.status_version != self._status_version:
            self._status_version = snapshot.status_version
            self.publish("status", self.sampler.status())
        message = '{"type":"gpus","data":' + snapshot.json + "}"
        now = time.monotonic()
        slack = 0.1 * self.floor  # tolerate jitter between ticks
        for client in list(self.clients):
            if now - client.last_sent >= client.interval - slack:
                client.send(message, now, droppable=True)

    def publish(self, kind: str, data: Any) -> None:
        """Send one event to every client now (call on the event loop)."""
        message = json.dumps({"type": kind, "data": data}, allow_nan=False)
        for client in list(self.clients):
            client.send(message, None)

    def publish_threadsafe(self, kind: str, data: Any) -> None:
        """Like :meth:`publish`, from any thread."""
        loop = self._loop
        if loop is not None and self.clients and not loop.is_closed():
            loop.call_soon_threadsafe(self.publish, kind, data)


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
    def hub(self) -> StreamHub:
        """The server's stream hub."""
        hub: StreamHub = self.settings["gpu_devbox"].hub
        return hub

    # Tornado's own websocket pings (seconds), not jupyter-server's millisecond ones.
    @property
    def ping_interval(self) -> float:
        """Seconds between two pings of this client (0: none)."""
        return self.hub.ping_interval

    @property
    def ping_timeout(self) -> float:
        """Seconds the client has to answer a ping before it is closed."""
        return self.hub.ping_interval

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
                default=self.hub.floor,
            )
        except limits.LimitError as exc:
            raise http_error(exc) from None
        assert requested is not None
        if requested <= 0:
            raise web.HTTPError(400, "interval must be a positive number of seconds")
        self.interval = max(requested, self.hub.floor)
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
        self.hub.add(self)
        sampler = self.hub.sampler
        hello = {"interval": self.interval, "floor": self.hub.floor, "status": sampler.status()}
        self.send(json.dumps({"type": "hello", "data": hello}), None)
        self.send('{"type":"gpus","data":' + sampler.snapshot().json + "}", time.monotonic())

    def on_message(self, message: str | bytes) -> None:
        """Clients have nothing to say; the stream is one-way."""

    def on_close(self) -> None:
        """Forget this client."""
        self.hub.discard(self)

    def send(self, message: str, now: float | None, *, droppable: bool = False) -> None:
        """Write a message, or skip it (``droppable``) while the client is behind.

        A client whose backlog grows past :data:`CLOSE_FACTOR` times the limit is closed.
        """
        limit = self.hub.max_pending
        if droppable and self.pending > limit:
            self.dropped += 1
            return
        try:
            written = self.write_message(message)
        except websocket.WebSocketClosedError:
            self.hub.discard(self)
            return
        size = len(message)
        self.pending += size
        written.add_done_callback(lambda future: self._written(size, future))
        if now is not None:
            self.last_sent = now
        if self.pending > CLOSE_FACTOR * limit:
            self.hub.discard(self)
            self.close(*TOO_SLOW)

    def _written(self, size: int, future: Future[None]) -> None:
        self.pending -= size
        if not future.cancelled():
            future.exception()  # a closed socket: nothing more to do, and nothing to log
