"""The README's promise: ``jupyter lab`` comes up and serves the API on a machine with no GPU."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A real ``jupyter lab`` process on the real NVML backend (this machine has no GPU)."""
    port, token = free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPU_DEVBOX_")}
    env.update({"JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "HOME": str(tmp_path)})
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            "--allow-root",
            f"--port={port}",
            "--ip=127.0.0.1",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={tmp_path}",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5)  # noqa: S310
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline, "jupyter lab did not come up in 90 s"
                time.sleep(0.5)
        yield base, token
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
        assert "Traceback" not in out, out


def get(base: str, token: str, path: str) -> tuple[int, bytes]:
    request = urllib.request.Request(  # noqa: S310 - a loopback http URL built here
        base + path, headers={"Authorization": f"token {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        return response.status, response.read()


def test_jupyter_lab_serves_the_gpu_api_without_a_gpu(lab: tuple[str, str]) -> None:
    base, token = lab
    code, body = get(base, token, "/gpu-devbox/api/status")
    status = json.loads(body)
    assert code == 200
    assert status["nvml"]["available"] is False
    assert status["nvml"]["reason_code"] == "library_not_found"
    assert "utility" in status["nvml"]["remedy"]
    code, body = get(base, token, "/gpu-devbox/api/gpus")
    assert (code, json.loads(body)["gpus"]) == (200, [])
    code, _ = get(base, token, "/lab")
    assert code == 200
