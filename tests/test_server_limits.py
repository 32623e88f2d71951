"""Hostile clients (issue 10, items 10 and 11): huge, deep, wide and repeated input.

Every request here gets a clear 4xx with a short JSON message, and none of them may hold the
server's event loop for more than 50 ms: a lag probe on the loop the server runs on measures it
while the requests are sent from another thread.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from gpu_devbox.bench.devices import MAX_DEVICES
from gpu_devbox.server.limits import MAX_BODY_BYTES, MAX_JSON_DEPTH, MAX_JSON_ITEMS
from tests.loop_probe import Reply, declared_only, lag_probe, request

#: The most one request may hold the event loop, in seconds (the project's rule).
MAX_LAG = 0.050
API = "gpu-devbox/api"


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def chunks(total: int, size: int = 8192) -> Iterator[bytes]:
    for start in range(0, total, size):
        yield b" " * min(size, total - start)


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


# (id, method, route, body, expected status, words the message must contain)
HOSTILE: list[tuple[str, str, str, Any, int, str]] = [
    # The issue's own attack, and the same list shaped to slip under the body limit.
    ("20000-devices", "POST", "benchmarks", dumps({"devices": list(range(20_000))}), 413, "larger"),
    (
        "30000-zero-devices",
        "POST",
        "benchmarks",
        b'{"devices":[' + b",".join([b"0"] * 30_000) + b"]}",
        400,
        f"devices has 30000 entries; at most {MAX_JSON_ITEMS}",
    ),
    (
        "1000-distinct-devices",
        "POST",
        "benchmarks",
        dumps({"devices": list(range(1000))}),
        400,
        f"at most {MAX_DEVICES}",
    ),
    ("repeated-devices", "POST", "benchmarks", dumps({"devices": [3] * 900}), 400, "at most"),
    # Depth (item 11): every shape of nesting, under and over the body limit.
    ("deep-array-over-limit", "POST", "benchmarks", b"[" * (MAX_BODY_BYTES + 1), 413, "larger"),
    ("deep-array", "POST", "benchmarks", b"[" * 30_000 + b"]" * 30_000, 400, "nested"),
    ("deep-unterminated", "POST", "benchmarks", b"[" * 60_000, 400, ""),
    ("deep-object", "POST", "benchmarks", b'{"a":' * 9000 + b"1" + b"}" * 9000, 400, "nested"),
    (
        "deep-just-over",
        "POST",
        "benchmarks",
        dumps({"sizes": {"matmul_n": nested(MAX_JSON_DEPTH)}}),
        400,
        "nested more than",
    ),
    ("deep-in-devices", "POST", "benchmarks", dumps({"devices": nested(900)}), 400, "nested"),
    # Width and size of values.
    (
        "wide-sizes",
        "POST",
        "benchmarks",
        dumps({"sizes": {f"k{i}": 0 for i in range(5000)}}),
        400,
        "sizes has 5000 entries",
    ),
    ("many-fields", "POST", "benchmarks", dumps({f"k{i}": 0 for i in range(900)}), 400, "unknown"),
    ("long-suite", "POST", "benchmarks", dumps({"suite": "x" * 60_000}), 400, "unknown suite"),
    (
        "huge-integer",
        "POST",
        "benchmarks",
        b'{"sizes": {"matmul_n": ' + b"9" * 4000 + b"}}",
        400,
        "outside the allowed range",
    ),
    ("integer-past-python", "POST", "benchmarks", b'{"suite":' + b"9" * 9000 + b"}", 400, "JSON"),
    ("not-utf8", "POST", "benchmarks", b'{"suite": "\xff\xfe"}', 400, "JSON"),
    # Bodies on every route, whatever the method.
    ("chunked-over-limit", "POST", "benchmarks", "chunked", 413, "larger"),
    ("get-with-a-body", "GET", "status", b"x" * (MAX_BODY_BYTES + 1), 413, "larger"),
    ("delete-with-a-body", "DELETE", "benchmarks/abc", b"x" * (2 * MAX_BODY_BYTES), 413, "larger"),
    ("stream-with-a-body", "GET", "stream", b"x" * (MAX_BODY_BYTES + 1), 413, "larger"),
    ("metrics-with-a-body", "GET", "/metrics", b"x" * (MAX_BODY_BYTES + 1), 413, "larger"),
    ("metrics-chunked", "GET", "/metrics", "chunked", 413, "larger"),
    # Path arguments.
    ("long-run-id", "GET", "benchmarks/" + "a" * 30_000, None, 404, "no benchmark run"),
    ("long-run-id-delete", "DELETE", "benchmarks/" + "%C3%A9" * 5000, None, 404, "no benchmark"),
    # Query arguments.
    ("long-limit", "GET", "benchmarks?limit=" + "9" * 30_000, None, 400, "characters long"),
    ("long-since", "GET", "gpus/history?since=" + "1" * 20_000, None, 400, "characters long"),
    ("repeated-since", "GET", "gpus/history?" + "&".join(["since=1"] * 1000), None, 400, "1000"),
    ("repeated-refresh", "GET", "checks?" + "&".join(["refresh=0"] * 3), None, 400, "3 times"),
    ("long-interval", "GET", "stream?interval=" + "5" * 10_000, None, 400, "characters long"),
]


@pytest.fixture
def send(
    http_server_client: Any, jp_http_port: int, jp_base_url: str, jp_auth_header: dict[str, str]
) -> Callable[..., Any]:
    """Send one raw request to the listening test server from a worker thread."""

    async def send(method: str, route: str, body: Any = None) -> Reply:
        # "/metrics" is the server's; every other route is under the extension's API prefix
        prefix = "" if route.startswith("/") else f"/{API}/"
        path = f"{jp_base_url.rstrip('/')}{prefix}{route}"
        headers = {**jp_auth_header, "Content-Type": "application/json"}
        if body == "chunked":
            body = chunks(4 * MAX_BODY_BYTES)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            None, lambda: request(jp_http_port, method, path, body=body, headers=headers)
        )

    return send


@pytest.mark.parametrize(
    ("method", "route", "body", "status", "words"),
    [case[1:] for case in HOSTILE],
    ids=[case[0] for case in HOSTILE],
)
async def test_hostile_input_is_a_short_4xx_and_never_blocks_the_loop(
    send: Callable[..., Any], method: str, route: str, body: Any, status: int, words: str
) -> None:
    async with lag_probe() as probe:
        reply = await send(method, route, body)
        # a second one on a fresh connection: the server is still answering
        again = await send(method, route, body)
    assert (reply.status, again.status) == (status, status), reply.body[:300]
    assert reply.headers["Content-Type"].startswith("application/json")
    message = reply.json()["message"]
    assert words in message
    assert len(message) < 300, message
    assert probe.wakeups > 0
    assert probe.blocked < MAX_LAG, probe.report()


async def test_a_declared_huge_body_is_refused_before_it_is_sent(
    http_server_client: Any, jp_http_port: int, jp_base_url: str, jp_auth_header: dict[str, str]
) -> None:
    path = f"{jp_base_url.rstrip('/')}/{API}/benchmarks"
    loop = asyncio.get_running_loop()
    async with lag_probe() as probe:
        reply = await loop.run_in_executor(
            None, declared_only, jp_http_port, path, jp_auth_header, 10**12
        )
    assert reply.status == 413
    assert f"larger than {MAX_BODY_BYTES} bytes" in reply.json()["message"]
    assert probe.blocked < MAX_LAG, probe.report()


async def test_a_flood_of_hostile_requests_leaves_the_loop_responsive(
    send: Callable[..., Any],
) -> None:
    bodies = [case[3] for case in HOSTILE if case[1] == "POST" and case[3] != "chunked"]
    replies = []
    async with lag_probe() as probe:
        for start in range(0, 3 * len(bodies), 3):  # three clients at a time
            batch = (bodies * 3)[start : start + 3]
            replies += await asyncio.gather(*(send("POST", "benchmarks", body) for body in batch))
        status = await send("GET", "status")
    assert {r.status for r in replies} <= {400, 413}
    assert status.status == 200
    assert probe.blocked < MAX_LAG, probe.report()
