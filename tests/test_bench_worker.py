"""The worker as a real process: its protocol on the CPU (NumPy), and its refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

WORKER = (sys.executable, "-m", "gpu_devbox.bench.worker")


def worker(*args: str, env: dict[str, str] | None = None) -> tuple[int, list[dict[str, Any]], str]:
    proc = subprocess.run(
        [*WORKER, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines()], proc.stderr


def test_a_cpu_run_speaks_the_protocol_in_order() -> None:
    code, events, _ = worker("--sizes", '{"matmul_n": 48, "copy_bytes": 8192}')
    assert code == 0
    kinds = [e["event"] for e in events]
    assert kinds == ["hello", "device"] + ["step", "measurement"] * 3 + ["done"]
    hello = events[0]
    assert hello["backend"] == "numpy"
    assert hello["kind"] == "cpu"
    assert hello["timer"] == "wall_clock"
    assert hello["total"] == 3
    assert hello["pid"] > 0
    assert events[1]["sizes"] == {"matmul_n": 48, "copy_bytes": 8192, "transfer_bytes": 0}
    assert events[1]["device"]["memory_free"] > 0
    steps = [e for e in events if e["event"] == "step"]
    assert [s["index"] for s in steps] == [0, 1, 2]
    matmul = events[3]["measurement"]
    assert matmul["id"] == "matmul_fp32"
    assert matmul["size"] == {"n": 48}
    assert matmul["value"] > 1e6  # even a slow CPU does a million FLOP/s
    copy = events[7]["measurement"]
    assert copy["unit"] == "B/s"
    assert copy["size"] == {"bytes": 8192}


def test_the_default_cpu_sizes_fit_the_suite() -> None:
    code, events, _ = worker("--suite", "quick")
    assert code == 0
    assert events[1]["sizes"]["matmul_n"] == 1024
    assert events[-1] == {"event": "done"}


def test_impossible_sizes_are_a_bad_request() -> None:
    code, events, _ = worker("--sizes", '{"copy_bytes": 1099511627776}')
    assert code == 2
    assert events[-1]["event"] == "error"
    assert events[-1]["code"] == "bad_request"
    assert "sizes.copy_bytes" in events[-1]["message"]
    code, events, _ = worker("--sizes", "{oops")
    assert code == 2
    assert events[-1]["code"] == "bad_request"


def test_gpus_without_a_gpu_library_or_device_are_refused_with_every_reason() -> None:
    # No CUDA device is visible, whatever is installed: torch and cupy both give up.
    code, events, _ = worker("--gpus", "1", env={"CUDA_VISIBLE_DEVICES": ""})
    assert code == 1
    [error] = events
    assert error["code"] == "no_backend"
    assert error["message"].startswith("the GPU benchmark needs PyTorch with CUDA or CuPy: ")
    assert "torch" in error["message"]
    assert "cupy" in error["message"]


def test_numpy_cannot_be_asked_to_measure_a_gpu() -> None:
    code, events, _ = worker("--gpus", "1", "--backend", "numpy")
    assert code == 1
    assert "measures the CPU only" in events[0]["message"]


def test_anything_printed_on_stdout_goes_to_stderr_not_into_the_protocol() -> None:
    script = (
        "import sys\n"
        "from gpu_devbox.bench import worker\n"
        "from gpu_devbox.bench.backends import numpy_backend\n"
        "original = numpy_backend.NumpyBackend.versions\n"
        "def noisy(self):\n"
        "    print('a library chatting on stdout')\n"
        "    return original(self)\n"
        "numpy_backend.NumpyBackend.versions = noisy\n"
        "sys.exit(worker.main(['--sizes', '{\"matmul_n\": 16, \"copy_bytes\": 4096}']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0
    assert "a library chatting on stdout" in proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert events[-1] == {"event": "done"}
