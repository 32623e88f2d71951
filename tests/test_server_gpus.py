"""End-to-end tests of the GPU routes against a real jupyter server and the fake NVML."""

from __future__ import annotations

from tests.conftest import Fetch, fetch_json
from tests.fakenvml import CAPTURE, FakeNVML


async def test_status_reports_driver_and_cuda(jp_fetch: Fetch, fake_nvml: FakeNVML) -> None:
    # When
    code, body = await fetch_json(jp_fetch, "gpu-devbox", "api", "status")
    # Then
    assert code == 200
    assert body["nvml"]["available"] is True
    assert body["nvml"]["driver_version"] == CAPTURE["driver"]
    assert body["nvml"]["cuda_driver_version"] == "13.0"
    assert body["simulated"] is False
    assert body["visible_gpu_count"] == 2


async def test_gpus_match_the_h100_capture(jp_fetch: Fetch, fake_nvml: FakeNVML) -> None:
    code, body = await fetch_json(jp_fetch, "gpu-devbox", "api", "gpus")
    assert code == 200
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
