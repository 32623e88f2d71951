"""The push stream's fan-out: the sampler's snapshots and feature events to every client.

The sampler thread never touches a socket: it hands each snapshot to the event loop with
``call_soon_threadsafe``, where one pre-serialised message is written to every due client.
Clients are the stream's websocket handlers (:mod:`gpu_devbox.server.stream`); this module sees
them only as :class:`StreamClient`, so it needs neither tornado nor the handlers.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any, Protocol

from gpu_devbox.gpus import Sampler, Snapshot

#: Bytes one client may have waiting for its socket before ``gpus`` frames are skipped.
MAX_PENDING_BYTES = 256 * 1024
#: Seconds between two pings of a client, and the time it has to answer (0: no pings).
PING_INTERVAL = 30.0


class StreamClient(Protocol):
    """What the fan-out needs of a connected client."""

    #: Seconds between two ``gpus`` frames for this client.
    interval: float
    #: When (``time.monotonic()``) it was last sent a ``gpus`` frame.
    last_sent: float

    def send(self, message: str | bytes, now: float | None, *, droppable: bool = False) -> None:
        """Write one message (skipped when ``droppable`` and the client is behind)."""

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Close the connection."""


class StreamFanout:
    """Fans snapshots and feature events out to the connected stream clients."""

    def __init__(
        self,
        sampler: Sampler,
        *,
        max_pending: int = MAX_PENDING_BYTES,
        ping_interval: float = PING_INTERVAL,
        status: Callable[[], dict[str, Any]] | None = None,
        status_version: Callable[[], object] | None = None,
    ) -> None:
        self.sampler = sampler
        #: The ``status`` document (default: the sampler's); ``status_version`` says when parts
        #: that are not the sampler's changed (the GPU activity fields).
        self.status = status or sampler.status
        self._extra_version = status_version or (lambda: None)
        #: Bytes a client may have waiting before its ``gpus`` frames are skipped.
        self.max_pending = max_pending
        #: Seconds between pings, and to answer one (0: no pings).
        self.ping_interval = ping_interval
        self.clients: set[StreamClient] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._status_version: object = -1
        self._unsubscribe = sampler.subscribe(self._from_sampler_thread)

    @property
    def floor(self) -> float:
        """The shortest interval a client can get: the sampling interval."""
        return self.sampler.config.interval

    def add(self, client: StreamClient) -> None:
        """Register a connected client (called on the event loop)."""
        self._loop = asyncio.get_running_loop()
        self.clients.add(client)

    def discard(self, client: StreamClient) -> None:
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
        version = (snapshot.status_version, self._extra_version())
        if version != self._status_version:
            self._status_version = version
            self.publish("status", self.status())
        message = snapshot.frame  # serialised by the sampler thread: nothing to encode here
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

    def publish_status(self) -> None:
        """Send the status to every client now (it changed between two samples)."""
        self._status_version = (self.sampler.snapshot().status_version, self._extra_version())
        self.publish("status", self.status())

    def publish_threadsafe(self, kind: str, data: Any) -> None:
        """Like :meth:`publish`, from any thread."""
        loop = self._loop
        if loop is not None and self.clients and not loop.is_closed():
            loop.call_soon_threadsafe(self.publish, kind, data)
