"""The culler's HTTP client: one pool of kept-alive connections for every request it makes.

A round reads two answers from each server through the hub's proxy; opening a new connection
for each (what tornado's simple client does) cost most of a round's time for a thousand
servers. This client keeps at most ``max_clients`` connections to each host and reuses them,
stores no cookies, follows no redirects, and reads at most :data:`MAX_BODY` bytes of an answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import NamedTuple

import aiohttp

#: The largest answer read from a server, the hub or Prometheus.
MAX_BODY = 32 * 1024 * 1024


class Response(NamedTuple):
    """An answer's status code and body (whatever the code)."""

    code: int
    body: bytes


class ConnectionFailed(OSError):
    """No answer: the connection failed or broke, or the answer was garbage or too large."""


class TooLarge(ConnectionFailed):
    """The answer is larger than :data:`MAX_BODY` (it is not read)."""


class HttpClient:
    """Requests over a bounded pool of kept-alive connections (made within the event loop)."""

    def __init__(self, max_clients: int) -> None:
        self.max_clients = max_clients
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_clients),
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=None),
            )
        return self._session

    async def fetch(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        timeout: float,
        body: str | None = None,
    ) -> Response:
        """One request, answered within ``timeout`` seconds (waiting for a connection included).

        Raises:
            asyncio.TimeoutError: no whole answer within ``timeout``.
            ConnectionFailed: no answer (refused, reset, garbage HTTP, too large).
        """
        session = self._open()
        try:
            async with session.request(
                method,
                url,
                headers=dict(headers),
                data=body,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                return Response(response.status, await _read(response))
        except asyncio.TimeoutError:
            raise  # aiohttp's timeouts are ClientErrors too: they stay timeouts
        except aiohttp.ClientError as exc:
            raise ConnectionFailed(str(exc) or type(exc).__name__) from None

    async def close(self) -> None:
        """Close every connection."""
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _read(response: aiohttp.ClientResponse) -> bytes:
    length = response.content_length
    if length is not None:
        if length > MAX_BODY:
            raise TooLarge(f"the answer is larger than {MAX_BODY // 2**20} MiB")
        return await response.read()
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > MAX_BODY:
            raise TooLarge(f"the answer is larger than {MAX_BODY // 2**20} MiB")
        chunks.append(chunk)
    return b"".join(chunks)
