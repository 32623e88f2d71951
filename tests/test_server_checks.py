"""``GET gpu-devbox/api/checks`` against a real jupyter server, the fake NVML and real probes.

The kernelspecs the server probes are real: the echo kernel pytest-jupyter installs, the native
python3 kernel, and kernelspecs written here whose interpreter is this one. A kernelspec's
``env`` puts a ``sitecustomize`` on its PYTHONPATH that appends a line to a file every time
that interpreter starts, which counts the real probe subprocesses.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
import platform
import sys
import time
from typing import Any

import jsonschema
import pytest

from gpu_devbox.cuda.model import facts_schema
from tests.conftest import Fetch, fetch_json
from tests.fakenvml import CAPTURE, FakeNVML
from tests.openapi import validate_response

SITECUSTOMIZE = """\
import os, time
counter = os.environ.get("GPU_DEVBOX_TEST_COUNTER")
if counter:
    with open(counter, "a") as handle:
        handle.write("probe\\n")
if os.environ.get("GPU_DEVBOX_TEST_SLEEP"):
    time.sleep(float(os.environ["GPU_DEVBOX_TEST_SLEEP"]))
"""


def write_kernelspec(kernel_dir: pathlib.Path, name: str, env: dict[str, str]) -> None:
    folder = kernel_dir / name
    folder.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Test {name}",
        "language": "python",
        "env": env,
    }
    (folder / "kernel.json").write_text(json.dumps(spec))


@pytest.fixture
def counter(jp_kernel_dir: str, tmp_path: pathlib.Path) -> pathlib.Path:
    """A kernelspec ``counting`` whose every probe adds a line to the returned file."""
    site = tmp_path / "site-counting"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    path = tmp_path / "probes.txt"
    path.write_text("")
    env = {"PYTHONPATH": str(site), "GPU_DEVBOX_TEST_COUNTER": str(path)}
    write_kernelspec(pathlib.Path(jp_kernel_dir), "counting", env)
    return path


def probes(path: pathlib.Path) -> int:
    return len(path.read_text().splitlines())


async def test_checks_judge_the_fake_h100s(
    jp_fetch: Fetch, fake_nvml: FakeNVML, counter: pathlib.Path
) -> None:
    code, body = await fetch_json(jp_fetch, "gpu-devbox", "api", "checks")
    assert code == 200
    validate_response("/checks", "get", 200, body)
    jsonschema.Draft202012Validator(facts_schema()).validate(body["facts"])
    nvml = body["facts"]["nvml"]
    assert nvml["driver_version"] == CAPTURE["driver"]
    assert nvml["cuda_driver_version"] == "13.0"
    assert [g["compute_capability"] for g in nvml["gpus"]] == ["9.0", "9.0"]
    by_id = {c["id"]: c for c in body["checks"] if "environment" not in c}
    assert by_id["nvml"]["status"] == "pass"
    assert "2 GPU(s) visible" in by_id["nvml"]["detail"]
    # The server's own interpreter was really probed, in a subprocess.
    envs = {e["name"]: e for e in body["facts"]["environments"]}
    assert envs["server"]["status"] == "ok"
    assert envs["server"]["python_version"] == platform.python_version()
    assert envs["kernel:counting"]["status"] == "ok"
    assert envs["kernel:counting"]["display_name"] == "Test counting"
    assert probes(counter) == 1


async def test_checks_are_cached_and_refresh_regathers(
    jp_fetch: Fetch, fake_nvml: FakeNVML, counter: pathlib.Path
) -> None:
    _, first = await fetch_json(jp_fetch, "gpu-devbox", "api", "checks")
    _, cached = await fetch_json(jp_fetch, "gpu-devbox", "api", "checks")
    assert probes(counter) == 1
    assert cached["gathered_at"] == first["gathered_at"]
    code, fresh = await fetch_json(jp_fetch, "gpu-devbox", "api", "checks", params={"refresh": "1"})
    assert code == 200
    assert probes(counter) == 2
    assert fresh["checks"] == first["checks"]  # nothing changed on this machine


async def test_concurrent_requests_share_one_gathering(
    jp_fetch: Fetch, fake_nvml: FakeNVML, counter: pathlib.Path
) -> None:
    results = await asyncio.gather(
        *(
            fetch_json(jp_fetch, "gpu-devbox", "api", "checks", params={"refresh": "true"})
            for _ in range(4)
        )
    )
    assert [code for code, _ in results] == [200] * 4
    assert probes(counter) == 1
    assert len({body["gathered_at"] for _, body in results}) == 1


async def test_nvml_facts_are_fresh_without_refresh(
    jp_fetch: Fetch, fake_nvml: FakeNVML, jp_serverapp: Any
) -> None:
    _, before = await fetch_json(jp_fetch, "gpu-devbox", "api", "checks")
    assert next(c for c in before["checks"] if c["id"] == "nvml")["status"] == "pass"
    # The driver goes away mid-run: the sampler sees it on its next tick.
    fake_nvml.fault = 18  # LIB_RM_VERSION_MISMATCH
    state = jp_serverapp.web_app.settings["gpu_devbox"]
    deadline = time.monotonic() + 10
    while state.sampler.status()["nvml"]["available"] and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    _, after = await fetch_json(jp_fetch, "gpu-devbox", "api", "checks")
    nvml = next(c for c in after["checks"] if c["id"] == "nvml")
    assert nvml["status"] == "fail"
    assert "Reboot the node" in nvml["remedy"]
    assert after["gathered_at"] == before["gathered_at"]  # no regathering was needed


@pytest.mark.parametrize("value", ["2", "maybe", "1.0", "-1"])
async def test_bad_refresh_is_a_400_naming_it(
    jp_fetch: Fetch, fake_nvml: FakeNVML, value: str
) -> None:
    code, body = await fetch_json(
        jp_fetch, "gpu-devbox", "api", "checks", params={"refresh": value}
    )
    assert code == 400
    assert "refresh" in body["message"]
    assert repr(value) in body["message"]
    validate_response("/checks", "get", 400, body)


async def test_unauthenticated_requests_are_refused(jp_fetch: Fetch, fake_nvml: FakeNVML) -> None:
    code, body = await fetch_json(
        jp_fetch, "gpu-devbox", "api", "checks", headers={"Authorization": ""}
    )
    assert code == 403
    validate_response("/checks", "get", 403, body)


@pytest.fixture
def gpu_devbox_config() -> dict[str, Any]:
    """A short probe timeout, so the sleeping kernelspec below times out quickly."""
    return {"interval": 0.1, "slow_interval": 0.2, "history_seconds": 30, "checks_probe_timeout": 8}


async def test_a_hanging_environment_times_out_and_is_reported(
    jp_fetch: Fetch, fake_nvml: FakeNVML, jp_kernel_dir: str, tmp_path: pathlib.Path
) -> None:
    site = tmp_path / "site-sleepy"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    write_kernelspec(
        pathlib.Path(jp_kernel_dir),
        "sleepy",
        {"PYTHONPATH": str(site), "GPU_DEVBOX_TEST_SLEEP": "60"},
    )
    started = time.monotonic()
    code, body = await fetch_json(jp_fetch, "gpu-devbox", "api", "checks")
    assert code == 200
    assert time.monotonic() - started < 30
    envs = {e["name"]: e for e in body["facts"]["environments"]}
    assert envs["kernel:sleepy"]["status"] == "timeout"
    assert envs["server"]["status"] == "ok"
    row = next(
        c
        for c in body["checks"]
        if c["id"] == "framework-cuda" and c.get("environment", "").startswith("kernel sleepy")
    )
    assert row["status"] == "warn"
    assert "did not finish in 8 s" in row["detail"]
