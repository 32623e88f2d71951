"""A push-stream client that stops reading (issue 10, item 12): the server's memory stays bounded.

The client is a raw socket that completes the websocket handshake and then never reads again,
with 64 simulated GPUs pushed ten times a second (about 0.9 MB/s). The server-side socket's send
buffer is shrunk to what a congested network leaves, so the backlog shows in the server's own
buffers within seconds instead of after the operating system's megabytes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gpu_devbox.server.fanout import MAX_PENDING_BYTES
from gpu_devbox.server.state import ServerState
from gpu_devbox.server.stream import CLOSE_FACTOR, TOO_SLOW, StreamHandler

API = "gpu-devbox/api"
#: The listening test server: (app, port, base URL, auth header).
Server = tuple[Any, int, str, dict[str, str]]
#: What the server lets one client have pending (the default).
LIMIT = MAX_PENDING_BYTES


@pytest.fixture
def gpu_devbox_config() -> dict[str, Any]:
    return {
        "interval": 0.1,
        "backend": "simulated",
        "simulated_gpus": 64,
        "stream_ping_interval": 0,  # this test is about buffers; pings have their own test
    }


def state_of(serverapp: Any) -> ServerState:
    state: ServerState = serverapp.web_app.settings["gpu_devbox"]
    return state


async def stalled_client(port: int, path: str, headers: dict[str, str]) -> socket.socket:
    """Open the stream with a raw socket, read the 101 and nothing after it."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    await loop.sock_sendall(sock, ("\r\n".join(lines) + "\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += await loop.sock_recv(sock, 1)  # one byte at a time: never past the headers
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


@pytest.fixture
def server(
    jp_serverapp: Any,
    http_server_client: Any,
    jp_http_port: int,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
) -> Server:
    """The listening test server: (app, port, base URL, auth header)."""
    return jp_serverapp, jp_http_port, jp_base_url, jp_auth_header


@contextlib.asynccontextmanager
async def stalled_stream(
    server: Server,
) -> AsyncIterator[StreamHandler]:
    """The server's handler of a client that has stopped reading."""
    jp_serverapp, jp_http_port, jp_base_url, jp_auth_header = server
    fanout = state_of(jp_serverapp).fanout
    assert fanout.max_pending == LIMIT
    path = f"{jp_base_url.rstrip('/')}/{API}/stream?interval=0.1"
    sock = await stalled_client(jp_http_port, path, jp_auth_header)
    try:
        deadline = time.monotonic() + 5
        while not fanout.clients:
            assert time.monotonic() < deadline, "the stream never opened"
            await asyncio.sleep(0.01)
        [handler] = fanout.clients
        assert handler.ws_connection is not None
        server_socket = handler.ws_connection.stream.socket
        server_socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        yield handler
    finally:
        sock.close()


def buffered(handler: StreamHandler) -> int:
    """Bytes tornado holds in its own write buffer for this client (what grows unbounded)."""
    connection = handler.ws_connection
    if connection is None:
        return 0
    return len(connection.stream._write_buffer)


async def test_a_client_that_stops_reading_loses_frames_not_server_memory(
    server: Server,
) -> None:
    async with stalled_stream(server) as stalled:
        await check_bounded(stalled)


async def check_bounded(stalled: StreamHandler) -> None:
    sampler = state_of_handler(stalled).sampler
    deadline = time.monotonic() + 10
    while len(sampler.snapshot().json) <= 30_000 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # the first sample of 64 GPUs may not be taken yet
    frame = len(sampler.snapshot().json)
    assert frame > 30_000  # 64 GPUs: 3 s of frames is over a megabyte
    peak = 0
    for _ in range(30):  # 3 s at 10 frames a second
        await asyncio.sleep(0.1)
        peak = max(peak, buffered(stalled), stalled.pending)
    # At most the limit plus the one frame that crossed it (and the greeting) stay pending.
    assert peak <= LIMIT + 2 * frame, f"{peak} bytes held for one client that stopped reading"
    assert stalled.dropped > 0
    assert stalled in state_of_handler(stalled).fanout.clients  # dropping frames, not the client


async def test_a_client_whose_backlog_of_events_grows_is_closed(
    server: Server,
) -> None:
    async with stalled_stream(server) as stalled:
        check_closed(stalled)


def check_closed(stalled: StreamHandler) -> None:
    fanout = state_of_handler(stalled).fanout
    event = {"text": "x" * 60_000}
    for _ in range(CLOSE_FACTOR * LIMIT // 60_000 + 2):  # events are never dropped...
        fanout.publish("benchmark", event)
    assert stalled not in fanout.clients  # ... so past the hard limit the client is closed
    assert stalled.ws_connection is None or stalled.ws_connection.is_closing()
    assert stalled.close_code is None or stalled.close_code == TOO_SLOW[0]


def state_of_handler(handler: StreamHandler) -> ServerState:
    state: ServerState = handler.settings["gpu_devbox"]
    return state


class TestPings:
    @pytest.fixture
    def gpu_devbox_config(self) -> dict[str, Any]:
        return {"interval": 0.1, "backend": "simulated", "stream_ping_interval": 0.3}

    async def test_a_client_that_never_answers_pings_is_disconnected(
        self,
        jp_serverapp: Any,
        http_server_client: Any,
        jp_http_port: int,
        jp_base_url: str,
        jp_auth_header: dict[str, str],
    ) -> None:
        fanout = state_of(jp_serverapp).fanout
        path = f"{jp_base_url.rstrip('/')}/{API}/stream"
        sock = await stalled_client(jp_http_port, path, jp_auth_header)
        try:
            await asyncio.sleep(0.1)
            assert len(fanout.clients) == 1
            deadline = time.monotonic() + 5
            while fanout.clients:  # a ping, 0.3 s to answer, then closed
                assert time.monotonic() < deadline, "a silent client was never disconnected"
                await asyncio.sleep(0.05)
        finally:
            sock.close()

    async def test_a_client_that_answers_pings_stays(self, jp_ws_fetch: Any) -> None:
        ws = await jp_ws_fetch(*API.split("/"), "stream")
        try:
            await asyncio.sleep(1.5)  # several pings, each answered by tornado's client
            ws.write_message("still here")
            assert await asyncio.wait_for(ws.read_message(), 5) is not None
        finally:
            ws.close()
