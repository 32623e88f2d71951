"""End-to-end tests of the GPU routes against a real jupyter server and the fake NVML."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any

import pynvml  # noqa: TID251 - tests raise the real binding's error codes
import pytest
from tornado.httpclient import HTTPClientError
from tornado.websocket import WebSocketClientConnection

from tests.conftest import Fetch, fetch_json
from tests.fakenvml import CAPTURE, FakeNVML
from tests.openapi import validate_component, validate_response

API = ("gpu-devbox", "api")


async def wait_for(condition: Any, timeout: float = 5.0) -> None:
    """Poll ``condition()`` on the event loop until it is true."""
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_status_reports_driver_and_cuda(jp_fetch: Fetch) -> None:
    # When
    code, body = await fetch_json(jp_fetch, *API, "status")
    # Then
    assert code == 200
    validate_response("/status", "get", 200, body)
    assert body["nvml"]["available"] is True
    assert body["nvml"]["reason"] is None
    assert body["nvml"]["driver_version"] == CAPTURE["driver"]
    assert body["nvml"]["cuda_driver_version"] == "13.0"
    assert body["simulated"] is False
    assert body["visible_gpu_count"] == 2


async def test_gpus_match_the_h100_capture(jp_fetch: Fetch) -> None:
    code, body = await fetch_json(jp_fetch, *API, "gpus")
    assert code == 200
    validate_response("/gpus", "get", 200, body)
    gpu = body["gpus"][0]
    idle = CAPTURE["idle"]
    assert gpu["name"] == idle["name"]
    assert gpu["compute_capability"] == "9.0"
    # v2 memory API: nothing used, 480 MiB reserved, exactly as nvidia-smi reports it.
    assert gpu["memory"] == {
        "total": idle["mem_v2"]["total"],
        "used": 0,
        "reserved": idle["mem_v2"]["reserved"],
        "free": idle["mem_v2"]["free"],
    }
    assert gpu["power"] == {"usage": idle["power_mw"] / 1000, "limit": 700.0}
    assert abs(body["timestamp"] - time.time()) < 60


async def test_requests_are_served_from_the_cache(jp_fetch: Fetch, fake_nvml: FakeNVML) -> None:
    await fetch_json(jp_fetch, *API, "gpus")
    fake_nvml.calls.clear()
    started = time.monotonic()
    for _ in range(20):
        await fetch_json(jp_fetch, *API, "gpus")
        await fetch_json(jp_fetch, *API, "status")
    elapsed = time.monotonic() - started
    # The sampler ticks every 0.1 s meanwhile; the 40 requests add no NVML calls of their own.
    ticks = elapsed / 0.1 + 2
    assert fake_nvml.calls["nvmlDeviceGetUtilizationRates"] <= 2 * ticks


async def test_history_returns_samples_after_since(jp_fetch: Fetch) -> None:
    async def two_samples() -> bool:
        _, body = await fetch_json(jp_fetch, *API, "gpus", "history")
        return len(body["samples"]) >= 2

    await wait_for(two_samples)
    code, body = await fetch_json(jp_fetch, *API, "gpus", "history")
    assert code == 200
    validate_response("/gpus/history", "get", 200, body)
    stamps = [s["timestamp"] for s in body["samples"]]
    assert stamps == sorted(stamps)
    assert body["interval"] == 0.1
    _, later = await fetch_json(jp_fetch, *API, "gpus", "history", params={"since": stamps[-2]})
    assert [s["timestamp"] for s in later["samples"]][:1] == [stamps[-1]]
    _, none = await fetch_json(
        jp_fetch, *API, "gpus", "history", params={"since": time.time() + 60}
    )
    assert none["samples"] == []


@pytest.mark.parametrize(
    ("since", "words"),
    [
        ("abc", "since must be a number"),
        ("-5", "since must be at least 0"),
        ("nan", "finite"),
        ("inf", "finite"),
        ("1e300", "since must be at most"),
    ],
)
async def test_bad_since_is_a_400_naming_it(jp_fetch: Fetch, since: str, words: str) -> None:
    code, body = await fetch_json(jp_fetch, *API, "gpus", "history", params={"since": since})
    assert code == 400
    validate_response("/gpus/history", "get", 400, body)
    assert words in body["message"]


async def test_openapi_document_is_served_with_this_server_url(
    jp_fetch: Fetch, jp_base_url: str
) -> None:
    code, body = await fetch_json(jp_fetch, *API, "openapi.json")
    assert code == 200
    assert body["openapi"].startswith("3.1")
    assert body["servers"] == [{"url": jp_base_url.rstrip("/") + "/gpu-devbox/api"}]
    assert "/gpus/history" in body["paths"]


# --------------------------------------------------------------------------- faults


INIT_FAULTS = [
    (pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, "library_not_found"),
    (pynvml.NVML_ERROR_DRIVER_NOT_LOADED, "driver_not_loaded"),
    (pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH, "driver_library_mismatch"),
    (pynvml.NVML_ERROR_NO_PERMISSION, "no_permission"),
    (pynvml.NVML_ERROR_GPU_IS_LOST, "gpu_lost"),
    (pynvml.NVML_ERROR_UNKNOWN, "unknown"),
]


class TestInitFaults:
    @pytest.fixture(params=INIT_FAULTS, ids=[r for _, r in INIT_FAULTS])
    def init_fault(self, fake_nvml: FakeNVML, request: pytest.FixtureRequest) -> tuple[int, str]:
        code, reason = request.param
        fake_nvml.init_error = code
        return code, reason

    @pytest.fixture
    def jp_server_config(
        self, jp_server_config: dict[str, Any], init_fault: tuple[int, str]
    ) -> dict[str, Any]:
        # Depending on the fault makes sure it is injected before the server starts.
        return jp_server_config

    async def test_init_errors_leave_the_server_up_and_explain(
        self, jp_fetch: Fetch, init_fault: tuple[int, str]
    ) -> None:
        await check_init_fault(jp_fetch, *init_fault)


async def check_init_fault(jp_fetch: Fetch, code: int, reason: str) -> None:
    """NVML failing at init: the server is up, status explains, gpus is empty."""
    status_code, status = await fetch_json(jp_fetch, *API, "status")
    assert status_code == 200
    validate_response("/status", "get", 200, status)
    assert status["nvml"]["available"] is False
    assert status["nvml"]["reason_code"] == reason
    assert status["nvml"]["nvml_error"] == code
    assert status["nvml"]["reason"]
    assert status["nvml"]["remedy"]
    gpus_code, gpus = await fetch_json(jp_fetch, *API, "gpus")
    assert (gpus_code, gpus["gpus"]) == (200, [])
    # The rest of the server is unaffected.
    api_code, _ = await fetch_json(jp_fetch, "api", "status")
    assert api_code == 200


@pytest.mark.parametrize(("code", "reason"), INIT_FAULTS, ids=[r for _, r in INIT_FAULTS])
async def test_errors_mid_stream_empty_the_gpus_then_recover(
    jp_fetch: Fetch, fake_nvml: FakeNVML, code: int, reason: str
) -> None:
    _, before = await fetch_json(jp_fetch, *API, "gpus")
    assert len(before["gpus"]) == 2
    fake_nvml.fault = code

    async def failed() -> bool:
        _, status = await fetch_json(jp_fetch, *API, "status")
        return bool(status["nvml"]["reason_code"] == reason)

    await wait_for(failed)
    code_gpus, gpus = await fetch_json(jp_fetch, *API, "gpus")
    assert (code_gpus, gpus["gpus"]) == (200, [])
    fake_nvml.fault = None

    async def recovered() -> bool:
        _, body = await fetch_json(jp_fetch, *API, "gpus")
        return len(body["gpus"]) == 2

    await wait_for(recovered)  # the first retry comes after 1 s of backoff


# --------------------------------------------------------------------------- the stream


async def read_until(ws: WebSocketClientConnection, kind: str, timeout: float = 5) -> Any:
    while True:
        raw = await asyncio.wait_for(ws.read_message(), timeout)
        assert raw is not None, "the stream closed"
        message = json.loads(raw)
        validate_component("StreamMessage", message)  # every message is one the document names
        if message["type"] == kind:
            return message["data"]


async def test_stream_greets_then_pushes_samples(jp_ws_fetch: Any) -> None:
    ws = await jp_ws_fetch(*API, "stream", params={"interval": "0.2"})
    try:
        hello = json.loads(await asyncio.wait_for(ws.read_message(), 5))
        validate_component("StreamMessage", hello)
        assert hello["type"] == "hello"
        assert hello["data"]["interval"] == 0.2
        assert hello["data"]["status"]["nvml"]["available"] is True
        stamps = []
        for _ in range(4):
            data = await read_until(ws, "gpus")
            validate_response("/gpus", "get", 200, data)
            stamps.append(data["timestamp"])
        gaps = [b - a for a, b in itertools.pairwise(stamps[1:])]
        assert all(gap >= 0.15 for gap in gaps), gaps  # at most one message per 0.2 s
    finally:
        ws.close()


async def test_stream_interval_below_the_floor_is_raised_to_it(jp_ws_fetch: Any) -> None:
    ws = await jp_ws_fetch(*API, "stream", params={"interval": "0.001"})
    try:
        hello = await read_until(ws, "hello")
        assert hello["interval"] == hello["floor"] == 0.1
    finally:
        ws.close()


async def test_stream_pushes_status_changes(jp_ws_fetch: Any, fake_nvml: FakeNVML) -> None:
    ws = await jp_ws_fetch(*API, "stream")
    try:
        await read_until(ws, "gpus")
        fake_nvml.fault = pynvml.NVML_ERROR_GPU_IS_LOST
        status = await read_until(ws, "status")
        while status["nvml"]["reason_code"] != "gpu_lost":
            status = await read_until(ws, "status")
        assert status["nvml"]["available"] is False
        assert (await read_until(ws, "gpus"))["gpus"] == []
    finally:
        ws.close()


@pytest.mark.parametrize("interval", ["abc", "0", "-1", "nan", "99999"])
async def test_stream_refuses_bad_intervals_before_upgrading(
    jp_ws_fetch: Any, interval: str
) -> None:
    with pytest.raises(HTTPClientError) as caught:
        await jp_ws_fetch(*API, "stream", params={"interval": interval})
    assert caught.value.code == 400


# --------------------------------------------------------------------------- simulated


class TestSimulated:
    @pytest.fixture
    def gpu_devbox_config(self) -> dict[str, Any]:
        return {
            "interval": 0.1,
            "backend": "simulated",
            "simulated_gpus": 3,
            "simulated_mig": [2],
            "simulated_unsupported": ["power"],
        }

    async def test_every_payload_says_simulated(
        self, jp_fetch: Fetch, jp_ws_fetch: Any, fake_nvml: FakeNVML
    ) -> None:
        _, status = await fetch_json(jp_fetch, *API, "status")
        _, gpus = await fetch_json(jp_fetch, *API, "gpus")
        assert status["simulated"] is True
        assert gpus["simulated"] is True
        assert len(gpus["gpus"]) == 3
        assert gpus["gpus"][0]["power"]["usage"] is None
        assert [i["profile"] for i in gpus["gpus"][2]["mig"]["instances"]] == [
            "3g.40gb",
            "2g.20gb",
            "1g.10gb",
        ]
        ws = await jp_ws_fetch(*API, "stream")
        try:
            assert (await read_until(ws, "hello"))["status"]["simulated"] is True
            assert (await read_until(ws, "gpus"))["simulated"] is True
        finally:
            ws.close()
        assert fake_nvml.nvml_calls == 0  # the real-backend seam was never touched


class TestStartedWithoutGpus:
    """A CPU image or profile sets NVIDIA_VISIBLE_DEVICES=void: no NVML, an honest status."""

    @pytest.fixture
    def jp_server_config(
        self, jp_server_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
    ) -> dict[str, Any]:
        monkeypatch.setenv("NVIDIA_VISIBLE_DEVICES", "void")
        return jp_server_config

    async def test_status_says_so_and_nvml_is_not_touched(
        self, jp_fetch: Fetch, fake_nvml: FakeNVML
    ) -> None:
        _, status = await fetch_json(jp_fetch, *API, "status")
        validate_response("/status", "get", 200, status)
        assert status["nvml"]["reason_code"] == "no_visible_gpu"
        assert (
            "NVIDIA_VISIBLE_DEVICES=none: this server was started without GPUs"
            in (status["nvml"]["reason"])
        )
        _, gpus = await fetch_json(jp_fetch, *API, "gpus")
        assert gpus["gpus"] == []
        assert fake_nvml.nvml_calls == 0


async def test_one_lost_gpu_keeps_the_others_streaming(
    jp_fetch: Fetch, jp_ws_fetch: Any, fake_nvml: FakeNVML
) -> None:
    ws = await jp_ws_fetch(*API, "stream")
    try:
        await read_until(ws, "gpus")
        # When GPU 0 falls off the bus (NVML_ERROR_GPU_IS_LOST on that device only)
        fake_nvml.lost.add(0)
        data = await read_until(ws, "gpus")
        while data["gpus"][0]["reason"] is None:
            data = await read_until(ws, "gpus")
        # Then the stream carries on with both GPUs: the lost one with its reason, no values
        validate_response("/gpus", "get", 200, data)
        lost, alive = data["gpus"]
        assert lost["reason"]["code"] == "gpu_lost"
        assert lost["reason"]["nvml_error"] == pynvml.NVML_ERROR_GPU_IS_LOST
        assert lost["utilization"] == {"gpu": None, "memory": None}
        assert alive["reason"] is None
        assert alive["utilization"]["gpu"] == CAPTURE["idle"]["util"]["gpu"]
        later = await read_until(ws, "gpus")
        assert later["timestamp"] > data["timestamp"]
        assert later["gpus"][1]["memory"]["used"] is not None
    finally:
        ws.close()
    _, status = await fetch_json(jp_fetch, *API, "status")
    assert status["nvml"]["available"] is True
    _, gpus = await fetch_json(jp_fetch, *API, "gpus")
    assert [g["reason"] and g["reason"]["code"] for g in gpus["gpus"]] == ["gpu_lost", None]
