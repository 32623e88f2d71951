"""A benchmark worker dies with its parent (issue 10, item 14), tested with SIGKILL of a real one.

The parent is a real Python process running a real :class:`BenchmarkRunner` with the real worker
(CPU backend, a matmul big enough to keep it busy); the test kills that parent with SIGKILL, as
the OOM killer would kill a Jupyter server, and checks that the worker is gone at once instead of
running on until its next write.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest

from gpu_devbox.bench import lifeline
from gpu_devbox.bench.run import RunRequest
from gpu_devbox.bench.runner import BenchmarkRunner

pytestmark = pytest.mark.slow

#: How long a worker may outlive its parent, in seconds ("at once", with room for a busy CI).
GRACE = 1.0

PARENT = textwrap.dedent(
    """
    import sys, threading, time
    from gpu_devbox.bench.run import RunRequest
    from gpu_devbox.bench.runner import BenchmarkRunner

    stepping = threading.Event()

    def on_event(event):
        if event["event"] == "step":
            stepping.set()

    runner = BenchmarkRunner(on_event=on_event)
    document = runner.start(
        RunRequest(suite="full", targets=(), sizes={"matmul_n": 3072}, timeout=600)
    )
    assert stepping.wait(120), "the worker never started measuring"
    print(document["environment"]["worker_pid"], flush=True)
    time.sleep(600)
    """
)

WATCHED_CHILD = textwrap.dedent(
    """
    import time
    from gpu_devbox.bench import lifeline
    assert lifeline.bind_to_parent(pdeathsig=False)  # the pipe alone, as off Linux
    print("armed", flush=True)
    time.sleep(600)
    """
)

PIPE_PARENT = textwrap.dedent(
    """
    import os, subprocess, sys, time
    env = dict(os.environ, {env}=str(os.getpid()))
    child = subprocess.Popen(
        [sys.executable, "-c", sys.argv[1]], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        env=env, start_new_session=True,
    )
    assert child.stdout.readline() == b"armed\\n"
    print(child.pid, flush=True)
    time.sleep(600)
    """
).format(env=lifeline.PARENT_ENV)


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for a reaper has stopped running)."""
    try:
        fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    return fields[0] not in {"Z", "X"}


def gone_within(pid: int, seconds: float) -> float | None:
    """Seconds until ``pid`` stopped running, or ``None`` if it still ran after ``seconds``."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if not alive(pid):
            return time.monotonic() - started
        time.sleep(0.01)
    return None


def start_parent(script: str, *args: str) -> tuple[subprocess.Popen[str], int]:
    parent = subprocess.Popen(
        [sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    line = parent.stdout.readline()
    assert line.strip().isdigit(), f"the parent did not start its child: {line!r}"
    return parent, int(line)


def kill_hard(parent: subprocess.Popen[str], child: int) -> float | None:
    try:
        assert alive(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        return gone_within(child, GRACE + 5)
    finally:
        if alive(child):
            os.kill(child, signal.SIGKILL)
        if parent.stdout is not None:
            parent.stdout.close()


@pytest.mark.timeout(180)
def test_the_worker_dies_at_once_when_its_server_is_killed() -> None:
    parent, worker = start_parent(PARENT)
    took = kill_hard(parent, worker)
    assert took is not None, "the worker outlived its killed parent"
    assert took < GRACE, f"the worker lived on {took:.2f} s after its parent was killed"


@pytest.mark.timeout(60)
def test_without_the_parent_death_signal_the_pipe_still_ends_the_worker() -> None:
    parent, child = start_parent(PIPE_PARENT, WATCHED_CHILD)
    took = kill_hard(parent, child)
    assert took is not None, "the watched child outlived its killed parent"
    assert took < GRACE, f"the watched child lived on {took:.2f} s"


def test_a_worker_whose_parent_is_already_gone_exits_at_once() -> None:
    env = {**os.environ, lifeline.PARENT_ENV: "1"}  # not our parent: it "died" before we armed
    result = subprocess.run(
        [sys.executable, "-m", "gpu_devbox.bench.worker", "--suite", "quick"],
        env=env,
        stdin=subprocess.PIPE,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == lifeline.EXIT_ORPHANED
    assert result.stdout == b""  # it measured nothing


def test_run_by_hand_the_worker_has_no_lifeline() -> None:
    assert lifeline.bind_to_parent({}) is False
    assert lifeline.watch_pipe(os.open(os.devnull, os.O_RDONLY)) is None


@pytest.mark.timeout(120)
def test_a_run_started_by_a_short_lived_thread_outlives_that_thread() -> None:
    # Linux's parent-death signal follows the *thread* that forked: the runner must not fork
    # from the caller's thread (a request's executor thread may end before the run does).
    measuring = threading.Event()
    runner = BenchmarkRunner(on_event=lambda e: e["event"] == "step" and measuring.set())
    started: dict[str, Any] = {}
    request = RunRequest(suite="quick", targets=(), sizes={"matmul_n": 1024}, timeout=100)

    def caller() -> None:
        started.update(runner.start(request))
        measuring.wait(60)  # the worker has armed its lifelines; now this thread ends

    thread = threading.Thread(target=caller)
    thread.start()
    thread.join()
    assert runner.running_id == started["id"]  # still measuring when the caller is gone
    run = runner.wait(started["id"], 100)
    assert run["state"] == "succeeded", run["error"]
