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
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web, websocket

from gpu_devbox.gpus import Sampler, Snapshot
from gpu_devbox.server.base import AUTH_RESOURCE, parse_number

#: The longest interval a client may ask for, in seconds.
MAX_STREAM_INTERVAL = 3600.0


class StreamHub:
    """Fans snapshots and feature events out to the connected stream clients."""

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler
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
                client.send(message, now)

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


class StreamHandler(
    WebSocketMixin, ExtensionHandlerMixin, JupyterHandler, websocket.WebSocketHandler
):
    """``GET {base_url}gpu-devbox/api/stream?interval=SECONDS`` (websocket)."""

    auth_resource = AUTH_RESOURCE
    interval: float = 1.0
    last_sent: float = 0.0

    @property
    def hub(self) -> StreamHub:
        """The server's stream hub."""
        hub: StreamHub = self.settings["gpu_devbox"].hub
        return hub

    async def pre_get(self) -> None:
        """Authorize the subscriber and validate the requested interval before the upgrade."""
        authorized = await ensure_async(
            self.authorizer.is_authorized(self, self.current_user, "read", AUTH_RESOURCE)
        )
        if not authorized:
            raise web.HTTPError(403)
        requested = parse_number(
            self.get_query_argument("interval", None),
            "interval",
            minimum=0.0,
            maximum=MAX_STREAM_INTERVAL,
            default=self.hub.floor,
        )
        assert requested is not None
        if requested <= 0:
            raise web.HTTPError(400, "interval must be a positive number of seconds")
        self.interval = max(requested, self.hub.floor)

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

    def send(self, message: str, now: float | None) -> None:
        """Write a message; drop the client if its socket is gone."""
        try:
            self.write_message(message)
        except websocket.WebSocketClosedError:
            self.hub.discard(self)
            return
        if now is not None:
            self.last_sent = now
