"""The benchmark routes on a server that sees two (fake) H100s: device validation, the default
device, and what a user gets when the image has neither PyTorch nor CuPy."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from tests.conftest import Fetch, fetch_json
from tests.fakenvml import CAPTURE, FakeNVML
from tests.openapi import validate_response

API = ("gpu-devbox", "api", "benchmarks")


async def post(jp_fetch: Fetch, body: Any) -> tuple[int, Any]:
    return await fetch_json(jp_fetch, *API, method="POST", body=json.dumps(body))


async def finished(jp_fetch: Fetch, run_id: str) -> Any:
    deadline = time.monotonic() + 60
    while True:
        code, run = await fetch_json(jp_fetch, *API, run_id)
        assert code == 200
        if run["state"] != "running":
            return run
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"devices": [5]}, "no visible GPU has index 5 (visible: 0, 1)"),
        ({"devices": [1, 1]}, "GPU 1 is listed twice"),
        ({"devices": [-1]}, "integers >= 0"),
        ({"sizes": {"matmul_n": 65536}}, "sizes.matmul_n=65536 needs 64.00 GiB of GPU memory"),
    ],
)
async def test_gpus_the_server_cannot_benchmark_are_400(
    jp_fetch: Fetch, fake_nvml: FakeNVML, body: Any, words: str
) -> None:
    code, answer = await post(jp_fetch, body)
    assert code == 400
    validate_response("/benchmarks", "post", 400, answer)
    assert words in answer["message"]


async def test_without_torch_or_cupy_a_gpu_run_fails_saying_what_to_install(
    jp_fetch: Fetch, fake_nvml: FakeNVML
) -> None:
    # When: no devices named, so the first visible GPU
    code, started = await post(jp_fetch, {})
    assert code == 202
    run = await finished(jp_fetch, started["id"])
    # Then
    validate_response("/benchmarks/{id}", "get", 200, run)
    assert run["request"]["devices"] == [0]
    assert run["state"] == "failed"
    assert run["error"]["code"] == "no_backend"
    assert "needs PyTorch with CUDA or CuPy" in run["error"]["message"]
    assert run["environment"]["driver_version"] == CAPTURE["driver"]
    assert run["timeout"] == 60.0


@pytest.mark.parametrize(
    "gpu_devbox_config",
    [
        {
            "interval": 0.1,
            "benchmark_timeouts": {"quick": 7.5},
            "benchmark_max_memory_fraction": 0.25,
        }
    ],
)
async def test_timeouts_and_memory_fraction_come_from_the_configuration(
    jp_fetch: Fetch, fake_nvml: FakeNVML
) -> None:
    code, started = await post(jp_fetch, {"devices": [1, 0]})
    assert code == 202
    # Two devices: twice the per-device limit.
    assert started["timeout"] == 15.0
    assert started["max_memory_fraction"] == 0.25
    assert started["request"]["devices"] == [1, 0]
    code, listing = await fetch_json(jp_fetch, *API)
    assert listing["suites"]["quick"]["timeout"] == 7.5
    assert listing["suites"]["full"]["timeout"] == 600.0
    await finished(jp_fetch, started["id"])
    # A quarter of 79 GiB free is less than the 23.8 GiB a 40000 matmul needs (half is not).
    code, answer = await post(jp_fetch, {"sizes": {"matmul_n": 40000}})
    assert code == 400
    assert "the benchmark may use 19" in answer["message"]


@pytest.mark.parametrize(
    "gpu_devbox_config", [{"interval": 0.1, "backend": "simulated", "simulated_gpus": 2}]
)
async def test_simulated_gpus_cannot_be_benchmarked_but_the_cpu_can(jp_fetch: Fetch) -> None:
    code, answer = await post(jp_fetch, {"devices": [0]})
    assert code == 400
    assert "simulated" in answer["message"]
    code, started = await post(jp_fetch, {"sizes": {"matmul_n": 32, "copy_bytes": 65536}})
    assert code == 202
    assert started["request"]["devices"] == []
    run = await finished(jp_fetch, started["id"])
    assert run["state"] == "succeeded", run["error"]
