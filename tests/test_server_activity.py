"""GPU activity on a real jupyter server: status fields, "Keep running", the stream, Prometheus,
and the simulated backend's load control (issue 14, items 1, 3 and 6)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tornado.websocket import WebSocketClientConnection

from tests.conftest import Fetch, fetch_json
from tests.fakenvml import FakeNVML
from tests.openapi import validate_component, validate_response

API = ("gpu-devbox", "api")
GIB = 1024**3
POLICY_ENV = {
    "GPU_DEVBOX_CULL_GPU_IDLE_AFTER": "3600",
    "GPU_DEVBOX_CULL_WARN_BEFORE": "600",
    "GPU_DEVBOX_CULL_KEEP_RUNNING": "2",
}


async def status(jp_fetch: Fetch) -> dict[str, Any]:
    code, body = await fetch_json(jp_fetch, *API, "status")
    assert code == 200
    validate_response("/status", "get", 200, body)
    return dict(body)


async def poll_status(jp_fetch: Fetch, condition: Any, timeout: float = 5.0) -> dict[str, Any]:
    """``GET status`` until ``condition(body)``; the body that met it."""
    deadline = time.monotonic() + timeout
    while True:
        body = await status(jp_fetch)
        if condition(body):
            return body
        assert time.monotonic() < deadline, f"never met: {body}"
        await asyncio.sleep(0.05)


async def keep_running(jp_fetch: Fetch, **kwargs: Any) -> tuple[int, Any]:
    return await fetch_json(jp_fetch, *API, "keep-running", method="POST", body=b"", **kwargs)


async def gauges(jp_fetch: Fetch) -> dict[str, float]:
    response = await jp_fetch("metrics")
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(response.body.decode())
        for sample in family.samples
        if sample.name.startswith(("gpu_devbox_gpu_", "gpu_devbox_keep_running"))
    }


async def read(ws: WebSocketClientConnection, timeout: float = 5) -> dict[str, Any]:
    raw = await asyncio.wait_for(ws.read_message(), timeout)
    assert raw is not None, "the stream closed"
    message: dict[str, Any] = json.loads(raw)
    validate_component("StreamMessage", message)
    return message


async def read_status(ws: WebSocketClientConnection, timeout: float = 5) -> dict[str, Any]:
    while True:
        message = await read(ws, timeout)
        if message["type"] == "status":
            return dict(message["data"])


# ---------------------------------------------------------------------------- item 1
async def test_an_idle_gpu_server_counts_idle_time_from_its_start(jp_fetch: Fetch) -> None:
    before = time.time()
    first = await status(jp_fetch)
    # Two idle H100s (the captured idle values: 0 %, nothing used): never busy since start
    assert first["gpu_busy_at"] <= before
    assert first["gpu_busy_at"] > before - 60
    assert first["gpu_memory_held"] is False
    assert first["cull"] is None  # the spawner gave no policy
    await asyncio.sleep(0.3)
    later = await status(jp_fetch)
    assert later["gpu_busy_at"] == first["gpu_busy_at"]
    assert later["gpu_idle_seconds"] >= first["gpu_idle_seconds"] + 0.25
    assert later["gpu_idle_seconds"] == pytest.approx(time.time() - later["gpu_busy_at"], abs=1)


async def test_a_busy_gpu_moves_gpu_busy_at_and_holds_memory(
    jp_fetch: Fetch, fake_nvml: FakeNVML
) -> None:
    idle = await status(jp_fetch)
    fake_nvml.state = "loaded"  # the captured H100 under load: 100 %, 883 MiB used
    busy = await poll_status(jp_fetch, lambda s: s["gpu_busy_at"] > idle["gpu_busy_at"] + 0.2)
    assert busy["gpu_memory_held"] is True
    assert busy["gpu_idle_seconds"] < 1
    fake_nvml.state = "idle"
    await poll_status(jp_fetch, lambda s: s["gpu_memory_held"] is False)
    await asyncio.sleep(0.5)
    after = await status(jp_fetch)
    assert after["gpu_idle_seconds"] >= 0.4
    # the memory freed (883 MiB) was the last activity; idle ticks since have not moved it
    settled = await status(jp_fetch)
    assert settled["gpu_busy_at"] == after["gpu_busy_at"]


async def test_the_activity_gauges_are_on_metrics(jp_fetch: Fetch, fake_nvml: FakeNVML) -> None:
    body = await status(jp_fetch)
    found = await gauges(jp_fetch)
    assert found["gpu_devbox_gpu_busy_timestamp_seconds"] == body["gpu_busy_at"]
    assert found["gpu_devbox_gpu_idle_seconds"] >= body["gpu_idle_seconds"]
    assert found["gpu_devbox_gpu_memory_held"] == 0.0
    assert "gpu_devbox_keep_running_until_timestamp_seconds" not in found
    fake_nvml.state = "loaded"
    await poll_status(jp_fetch, lambda s: s["gpu_memory_held"])
    assert (await gauges(jp_fetch))["gpu_devbox_gpu_memory_held"] == 1.0


class TestWithoutGpus:
    """A CPU profile (NVIDIA_VISIBLE_DEVICES=void): nothing to judge, everything null."""

    @pytest.fixture
    def jp_server_config(
        self, jp_server_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
    ) -> dict[str, Any]:
        monkeypatch.setenv("NVIDIA_VISIBLE_DEVICES", "void")
        for name, value in POLICY_ENV.items():
            monkeypatch.setenv(name, value)
        return jp_server_config

    async def test_activity_is_null_and_there_is_nothing_to_keep_running(
        self, jp_fetch: Fetch
    ) -> None:
        body = await status(jp_fetch)
        assert [body[k] for k in ("gpu_busy_at", "gpu_idle_seconds", "gpu_memory_held")] == [
            None,
            None,
            None,
        ]
        assert body["cull"] is None
        code, refused = await keep_running(jp_fetch)
        assert code == 404
        assert "no GPU" in refused["message"]
        assert await gauges(jp_fetch) == {}  # absent, not zero


# ---------------------------------------------------------------------------- item 3: policy
class TestWithAPolicy:
    @pytest.fixture
    def jp_server_config(
        self, jp_server_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
    ) -> dict[str, Any]:
        for name, value in POLICY_ENV.items():
            monkeypatch.setenv(name, value)
        return jp_server_config

    async def test_status_says_when_the_server_stops(self, jp_fetch: Fetch) -> None:
        body = await status(jp_fetch)
        assert body["cull"] == {
            "gpu_idle_after": 3600,
            "warn_before": 600,
            "stops_at": body["gpu_busy_at"] + 3600,
            "warning": False,
            "keep_running": {"used": 0, "max": 2, "until": None},
        }

    async def test_keep_running_twice_then_409(self, jp_fetch: Fetch) -> None:
        code, first = await keep_running(jp_fetch)
        now = time.time()
        assert code == 200
        validate_response("/keep-running", "post", 200, first)
        assert first["keep_running"]["used"] == 1
        assert first["keep_running"]["until"] == pytest.approx(now + 3600, abs=2)
        assert first["stops_at"] == first["keep_running"]["until"]
        code, second = await keep_running(jp_fetch)
        assert code == 200
        assert second["keep_running"]["used"] == 2
        assert second["keep_running"]["until"] >= first["keep_running"]["until"]
        code, refused = await keep_running(jp_fetch)
        assert code == 409
        validate_response("/keep-running", "post", 409, refused)
        assert "used 2 of 2 times" in refused["message"]
        # what the hub's culler reads: the extension holds until `until`
        body = await status(jp_fetch)
        assert body["cull"]["keep_running"] == second["keep_running"]
        assert (await gauges(jp_fetch))[
            "gpu_devbox_keep_running_until_timestamp_seconds"
        ] == pytest.approx(second["keep_running"]["until"])

    async def test_a_browser_post_needs_the_xsrf_token(self, jp_fetch: Fetch) -> None:
        response = await jp_fetch(*API, "status")
        login = next(c.split(";")[0] for c in response.headers.get_list("Set-Cookie"))
        token = "gpu-devbox-test-xsrf"
        browser = {"Authorization": "", "Cookie": f"{login}; _xsrf={token}"}
        code, refused = await keep_running(jp_fetch, headers=browser)
        assert code == 403
        assert "_xsrf" in refused["message"]
        assert (await status(jp_fetch))["cull"]["keep_running"]["used"] == 0
        code, _ = await keep_running(jp_fetch, headers={**browser, "X-XSRFToken": token})
        assert code == 200

    async def test_the_stream_pushes_keep_running_at_once(
        self, jp_fetch: Fetch, jp_ws_fetch: Any
    ) -> None:
        ws = await jp_ws_fetch(*API, "stream")
        try:
            hello = await read(ws)
            assert hello["data"]["status"]["cull"]["keep_running"]["used"] == 0
            code, _ = await keep_running(jp_fetch)
            assert code == 200
            pushed = await read_status(ws)
            while pushed["cull"]["keep_running"]["used"] == 0:  # the first tick's status
                pushed = await read_status(ws)
            assert pushed["cull"]["keep_running"]["used"] == 1
        finally:
            ws.close()


class TestAShortPolicy:
    """Seconds instead of hours, so the warning starts while the test watches."""

    @pytest.fixture
    def jp_server_config(
        self, jp_server_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
    ) -> dict[str, Any]:
        monkeypatch.setenv("GPU_DEVBOX_CULL_GPU_IDLE_AFTER", "2")
        monkeypatch.setenv("GPU_DEVBOX_CULL_WARN_BEFORE", "1")
        monkeypatch.setenv("GPU_DEVBOX_CULL_KEEP_RUNNING", "1")
        return jp_server_config

    async def test_the_warning_is_pushed_when_it_starts_and_ends_when_the_gpu_works(
        self, jp_ws_fetch: Any, fake_nvml: FakeNVML
    ) -> None:
        ws = await jp_ws_fetch(*API, "stream")
        try:
            hello = (await read(ws))["data"]["status"]
            if not hello["cull"]["warning"]:
                warned = await read_status(ws)
                while not warned["cull"]["warning"]:
                    warned = await read_status(ws)
                # pushed on the first tick past stops_at - warn_before, not later
                assert time.time() - (warned["cull"]["stops_at"] - 1) < 0.5
            fake_nvml.state = "loaded"
            cleared = await read_status(ws)
            while cleared["cull"]["warning"]:
                cleared = await read_status(ws)
            assert cleared["gpu_idle_seconds"] < 0.5
        finally:
            ws.close()

    async def test_idle_ticks_send_no_status(self, jp_ws_fetch: Any, fake_nvml: FakeNVML) -> None:
        fake_nvml.state = "loaded"  # busy on every tick: the warning stays away
        ws = await jp_ws_fetch(*API, "stream")
        try:
            await read(ws)
            fake_nvml.state = "idle"
            # the change to idle (memory freed) is pushed, then nothing until the warning
            start = time.monotonic()
            statuses = []
            while time.monotonic() - start < 0.8:
                message = await read(ws)
                if message["type"] == "status":
                    statuses.append(message["data"])
            ticks = 0.8 / 0.1
            assert len(statuses) <= 3, f"{len(statuses)} status messages in {ticks:.0f} ticks"
            assert not any(s["cull"]["warning"] for s in statuses)
        finally:
            ws.close()


class TestAMalformedPolicy:
    @pytest.fixture
    def jp_server_config(
        self,
        jp_server_config: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str],
    ) -> dict[str, Any]:
        # capfd first: the server's log (stderr, from its start) is what the test reads
        monkeypatch.setenv("GPU_DEVBOX_CULL_GPU_IDLE_AFTER", "2h")
        return jp_server_config

    async def test_the_server_runs_without_one_and_logs_why(
        self, jp_fetch: Fetch, capfd: pytest.CaptureFixture[str]
    ) -> None:
        body = await status(jp_fetch)
        assert body["cull"] is None
        assert body["gpu_busy_at"] is not None
        code, _ = await keep_running(jp_fetch)
        assert code == 404
        why = "GPU_DEVBOX_CULL_GPU_IDLE_AFTER='2h' is not a number of seconds"
        assert f"gpu-devbox: ignoring the idle policy: {why}" in capfd.readouterr().err


# ---------------------------------------------------------------------------- item 6
class TestSimulatedLoad:
    @pytest.fixture
    def gpu_devbox_config(self) -> dict[str, Any]:
        return {"interval": 0.1, "backend": "simulated", "simulated_gpus": 2}

    async def pin(self, jp_fetch: Fetch, body: Any) -> tuple[int, Any]:
        return await fetch_json(
            jp_fetch, *API, "simulated", "load", method="PUT", body=json.dumps(body)
        )

    async def test_a_test_can_make_the_gpus_idle_then_busy(self, jp_fetch: Fetch) -> None:
        code, pinned = await self.pin(jp_fetch, {"utilization": 0, "memory_used": 8 * GIB})
        assert code == 200
        validate_response("/simulated/load", "put", 200, pinned)
        assert pinned["gpus"] == [
            {"index": i, "pinned": True, "utilization": 0, "memory_used": 8 * GIB} for i in (0, 1)
        ]
        # idle but holding 8 GiB: the clock runs
        idle = await poll_status(
            jp_fetch, lambda s: s["gpu_memory_held"] and s["gpu_idle_seconds"] > 0.5
        )
        code, gpus = await fetch_json(jp_fetch, *API, "gpus")
        assert [g["utilization"]["gpu"] for g in gpus["gpus"]] == [0, 0]
        assert [g["memory"]["used"] for g in gpus["gpus"]] == [8 * GIB, 8 * GIB]
        # one GPU at work is enough
        code, pinned = await self.pin(jp_fetch, {"utilization": 80, "gpus": [1]})
        assert code == 200
        assert [g["utilization"] for g in pinned["gpus"]] == [0, 80]
        busy = await poll_status(jp_fetch, lambda s: s["gpu_busy_at"] > idle["gpu_busy_at"] + 0.5)
        assert busy["gpu_idle_seconds"] < 0.5
        code, gpus = await fetch_json(jp_fetch, *API, "gpus")
        assert gpus["gpus"][1]["utilization"]["gpu"] == 80
        # null: back to the built-in pattern
        code, pinned = await self.pin(jp_fetch, {"utilization": None})
        assert code == 200
        assert [g["pinned"] for g in pinned["gpus"]] == [False, False]

    @pytest.mark.parametrize(
        ("body", "words"),
        [
            ([80], "must be a JSON object"),
            ({}, "utilization is required"),
            ({"utilization": 101}, "from 0 to 100"),
            ({"utilization": "80"}, "from 0 to 100"),
            ({"utilization": True}, "from 0 to 100"),
            ({"utilization": 50, "memory_used": -1}, "memory_used must be a whole number"),
            ({"utilization": 50, "memory_used": 1.5}, "memory_used must be a whole number"),
            ({"utilization": 50, "memory_used": 10**15}, "memory_used must be between 0 and"),
            ({"utilization": None, "memory_used": 0}, "memory_used needs a utilization"),
            ({"utilization": 50, "gpus": []}, "gpus must be a list of 1 to 64"),
            ({"utilization": 50, "gpus": None}, "gpus must be a list"),
            ({"utilization": 50, "gpus": ["0"]}, "gpus must be a list"),
            ({"utilization": 50, "gpus": [2]}, "no simulated GPU 2: this server simulates 2"),
            ({"utilization": 50, "gpus": [-1]}, "no simulated GPU -1"),
            ({"utilization": 50, "load": 1}, "unknown field 'load'"),
        ],
    )
    async def test_bad_input_is_a_400_naming_it(
        self, jp_fetch: Fetch, body: Any, words: str
    ) -> None:
        code, refused = await self.pin(jp_fetch, body)
        assert code == 400
        validate_response("/simulated/load", "put", 400, refused)
        assert words in refused["message"]
        code, untouched = await self.pin(jp_fetch, {"utilization": None, "gpus": [0]})
        assert untouched["gpus"][1]["pinned"] is False  # nothing was pinned by the bad call


async def test_real_nvml_has_no_load_control(jp_fetch: Fetch, fake_nvml: FakeNVML) -> None:
    code, refused = await fetch_json(
        jp_fetch, *API, "simulated", "load", method="PUT", body=json.dumps({"utilization": 90})
    )
    assert code == 404
    assert "no gpu-devbox API route 'simulated/load'" in refused["message"]
    assert fake_nvml.state == "idle"
