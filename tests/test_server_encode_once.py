"""Each sample is serialised once, in the sampler's thread: the event loop only writes bytes.

A real jupyter server samples the fake NVML every 0.1 s; several stream clients and ``GET gpus``
/ ``GET gpus/history`` requests read every sample. The sampler counts the snapshots and history
entries it serialises by thread: the event loop's thread (the one this test runs on) must stay at
zero however many clients read, and every client must get the document the sampler encoded.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest

from gpu_devbox.gpus.sampler import ENCODES
from tests.conftest import Fetch, fetch_json

API = ("gpu-devbox", "api")


async def gpus_messages(ws: Any, count: int) -> list[dict[str, Any]]:
    out = []
    while len(out) < count:
        raw = await asyncio.wait_for(ws.read_message(), 5)
        assert raw is not None, "the stream closed"
        message = json.loads(raw)
        if message["type"] == "gpus":
            out.append(message["data"])
    return out


@pytest.mark.parametrize("clients", [1, 8])
async def test_no_sample_is_serialised_on_the_event_loop(
    jp_fetch: Fetch, jp_ws_fetch: Any, clients: int
) -> None:
    loop_thread = threading.current_thread().name
    status, _ = await fetch_json(jp_fetch, *API, "gpus")  # the sampler has ticked
    assert status == 200
    before_loop, before_sampler = ENCODES[loop_thread], ENCODES["gpu-devbox-sampler"]
    sockets = [
        await jp_ws_fetch(*API, "stream", params={"interval": "0.1"}) for _ in range(clients)
    ]
    try:
        received = await asyncio.gather(*(gpus_messages(ws, 4) for ws in sockets))
        for _ in range(5):
            status, document = await fetch_json(jp_fetch, *API, "gpus")
            assert status == 200
            assert len(document["gpus"]) == 2
            status, history = await fetch_json(jp_fetch, *API, "gpus", "history")
            assert status == 200
            assert history["samples"]
    finally:
        for ws in sockets:
            ws.close()
    assert ENCODES[loop_thread] == before_loop  # nothing serialised on the loop
    ticks = ENCODES["gpu-devbox-sampler"] - before_sampler
    assert ticks >= 4  # the sampler serialised each tick itself (snapshot and history entry)
    for messages in received:
        assert all(len(m["gpus"]) == 2 and m["gpus"][0]["uuid"] for m in messages)
        stamps = [m["timestamp"] for m in messages]
        assert stamps == sorted(stamps)


def test_every_published_field_of_a_snapshot_is_serialised() -> None:
    import dataclasses

    from gpu_devbox.gpus import Snapshot

    @dataclasses.dataclass(frozen=True)
    class WithOwners(Snapshot):
        owners: tuple[str, ...] = ()

    snapshot = WithOwners(1.5, False, ({"index": 0},), 3, ("kernel-a",)).encode()
    document = json.loads(snapshot.body)
    assert document == {
        "timestamp": 1.5,
        "simulated": False,
        "gpus": [{"index": 0}],
        "owners": ["kernel-a"],
    }  # status_version is internal
    assert json.loads(snapshot.frame) == {"type": "gpus", "data": document}
