"""Tools for hostile-client tests: an event-loop lag probe and raw HTTP from another thread.

The test server (pytest-jupyter's) runs on the test's own event loop, so a probe task on that
loop sees every callback the server runs: if a request blocks the loop for 200 ms, the probe's
next wake-up is 200 ms late. The hostile requests are sent from a worker thread with plain
sockets, so building or sending a huge request never runs on the loop being measured.

On a shared machine a wake-up can also be late because the operating system ran another process
(or another thread held the GIL), which no request caused. So the probe also measures the CPU
time the loop's thread used between two wake-ups: a request that blocks the loop burns that CPU
itself. :attr:`LagProbe.blocked` is the worst lateness that the loop's own work explains (the
smaller of the two); :attr:`LagProbe.worst` is the raw lateness, reported alongside.

Python's full garbage collections scan every live object, and the test process holds far more
of them (pytest, hypothesis, the test server's whole import graph) than a server would; one
can cost 100 ms whatever a request did. The probe therefore freezes the objects that exist when
it starts (``gc.freeze``, as long-running servers do after start-up), so that a collection in
the window costs what the requests allocated.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import http.client
import json
import socket
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any


class LagProbe:
    """Wakes up every ``period`` seconds and records how late each wake-up was."""

    def __init__(self, period: float = 0.002) -> None:
        self.period = period
        #: The latest wake-up, in seconds late.
        self.worst = 0.0
        #: The latest wake-up explained by work on the loop's own thread, in seconds.
        self.blocked = 0.0
        self.wakeups = 0

    async def run(self) -> None:
        """Probe until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + self.period
            cpu = time.thread_time()
            await asyncio.sleep(self.period)
            late = loop.time() - expected
            self.worst = max(self.worst, late)
            self.blocked = max(self.blocked, min(late, time.thread_time() - cpu))
            self.wakeups += 1

    def report(self) -> str:
        """Both figures, in milliseconds."""
        return (
            f"the event loop was blocked for {self.blocked * 1000:.0f} ms "
            f"(latest wake-up {self.worst * 1000:.0f} ms late)"
        )


@contextlib.asynccontextmanager
async def lag_probe(period: float = 0.002) -> AsyncIterator[LagProbe]:
    """Run a :class:`LagProbe` on the current loop for the duration of the block."""
    probe = LagProbe(period)
    gc.collect()
    gc.freeze()
    task = asyncio.create_task(probe.run())
    await asyncio.sleep(period * 5)  # let it start
    try:
        yield probe
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        gc.unfreeze()


class Reply:
    """A response read off the wire: status, headers, body (JSON decoded when it is JSON)."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


def request(
    port: int,
    method: str,
    path: str,
    *,
    body: bytes | Iterable[bytes] | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Reply:
    """One HTTP request with ``http.client`` (blocking: call it from a thread).

    An iterable body is sent chunked. A server that answers before the whole body is sent and
    closes the connection is not an error: its answer is read all the same.
    """
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        chunked = body is not None and not isinstance(body, bytes)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
        response = conn.getresponse()
        return Reply(response.status, dict(response.getheaders()), response.read())
    finally:
        conn.close()


def declared_only(port: int, path: str, headers: dict[str, str], length: int) -> Reply:
    """Declare a ``Content-Length`` of ``length`` bytes, send none of it, read the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {length}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        response = http.client.HTTPResponse(sock)
        response.begin()
        return Reply(response.status, dict(response.getheaders()), response.read())
