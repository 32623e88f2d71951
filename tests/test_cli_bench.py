"""``gpu-devbox bench`` as a user runs it: a real process, a real worker, a real terminal."""

from __future__ import annotations

import json
import os
import pathlib
import pty
import select
import shutil
import signal
import subprocess
import sys
import time

import pytest

TINY = ["--matmul-n", "32", "--copy-bytes", "65536"]


@pytest.fixture
def env(tmp_path: pathlib.Path) -> dict[str, str]:
    """No real GPUs (simulated ones, or none), and a private Jupyter data directory."""
    return {
        **os.environ,
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),
        "GPU_DEVBOX_BACKEND": "simulated",
        "GPU_DEVBOX_SIMULATED_GPUS": "0",
    }


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("gpu-devbox") or sys.executable
    argv = [exe, *args] if exe != sys.executable else [exe, "-m", "gpu_devbox", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, check=False)


def test_json_output_is_the_run_and_it_lands_in_the_history(
    env: dict[str, str], tmp_path: pathlib.Path
) -> None:
    proc = cli("bench", "--json", *TINY, env=env)
    assert proc.returncode == 0, proc.stderr
    run = json.loads(proc.stdout)
    assert run["state"] == "succeeded"
    assert run["suite"] == "quick"
    assert run["environment"]["backend"] == "numpy"
    assert [m["id"] for m in run["devices"][0]["measurements"]] == [
        "matmul_fp32",
        "matmul_fp64",
        "memory_copy",
    ]
    history = (tmp_path / "data" / "gpu_devbox" / "benchmarks.jsonl").read_text().splitlines()
    assert json.loads(history[-1])["id"] == run["id"]
    assert proc.stderr == ""  # no progress bar when the output is not a terminal


def test_the_table_shows_measured_peak_and_percent(env: dict[str, str]) -> None:
    proc = cli("bench", "--suite", "full", "--no-save", *TINY, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("gpu-devbox bench · full suite · numpy ")
    assert "CPU · " in proc.stdout
    header = next(line for line in lines if "MEASUREMENT" in line)
    assert header.split() == [
        "MEASUREMENT",
        "MEASURED",
        "PEAK",
        "%",
        "OF",
        "PEAK",
        "SPREAD",
        "(MIN-MAX)",
    ]
    fp64 = next(line for line in lines if "matmul fp64" in line)
    assert "FLOP/s" in fp64
    assert lines[-1].endswith("succeeded.")
    assert proc.stderr.startswith("gpu-devbox bench: no GPU is visible; measuring the CPU.")
    assert not (pathlib.Path(env["JUPYTER_DATA_DIR"]) / "gpu_devbox").exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--suite", "slow"], "invalid choice: 'slow'"),
        (["--device", "0"], "no visible GPU has index 0 (visible: none)"),
        (["--device", "x"], "'x' is not an integer"),
        (["--matmul-n", "8"], "8 is outside the allowed range 16 to 65536"),
        (["--copy-bytes", str(1 << 40)], "--copy-bytes=1099511627776 needs 2048.00 GiB"),
        (["--timeout", "0"], "outside the allowed range"),
        (["--max-memory-fraction", "2"], "outside the allowed range"),
        (["--backend", "numpy", "--device", "0"], "leave out --device"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(env: dict[str, str], args: list[str], words: str) -> None:
    proc = cli("bench", *args, env=env)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert words in proc.stderr


def test_simulated_gpus_are_not_benchmarked(env: dict[str, str]) -> None:
    proc = cli("bench", "--device", "1", env={**env, "GPU_DEVBOX_SIMULATED_GPUS": "2"})
    assert proc.returncode == 2
    assert "simulated" in proc.stderr


def test_a_run_that_fails_exits_1_with_the_reason(env: dict[str, str]) -> None:
    proc = cli("bench", "--timeout", "1", "--suite", "full", "--matmul-n", "4096", env=env)
    assert proc.returncode == 1
    assert "timed out" not in proc.stderr
    assert "failed: stopped after 1 s, the time limit of the 'full' suite" in proc.stdout


def test_on_a_terminal_a_progress_bar_runs_and_ctrl_c_cancels(env: dict[str, str]) -> None:
    # Given the command on a pseudo-terminal, measuring something slow enough to interrupt
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gpu_devbox", "bench", "--suite", "full", "--matmul-n", "2048"],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=env,
    )
    os.close(terminal)
    screen = b""
    deadline = time.monotonic() + 60
    try:
        while b"matmul fp32" not in screen:
            assert time.monotonic() < deadline, screen
            ready, _, _ = select.select([controller], [], [], 1)
            if ready:
                screen += os.read(controller, 4096)
        # Then the bar shows the step being measured
        assert b"[" in screen
        assert b"0/3 matmul fp32" in screen
        # When the user presses Ctrl-C
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(controller)
    # Then the command stops at once with 130, the worker cancelled with it
    assert code == 130
    history = pathlib.Path(env["JUPYTER_DATA_DIR"]) / "gpu_devbox" / "benchmarks.jsonl"
    assert json.loads(history.read_text().splitlines()[-1])["state"] == "cancelled"
