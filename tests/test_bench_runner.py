"""The runner's lifecycle with real subprocesses: the real worker (NumPy, tiny sizes) and a fake
worker that hangs, crashes or lies, to prove that every run ends, and ends the way it should."""

from __future__ import annotations

import os
import pathlib
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from gpu_devbox.bench import BenchmarkRunner, History, RunFinished, RunnerBusy, RunRequest

FAKE = pathlib.Path(__file__).parent / "bench_workers" / "fake_worker.py"
TINY = {"matmul_n": 32, "copy_bytes": 64 * 1024}


def fake(mode: str) -> tuple[str, ...]:
    return (sys.executable, str(FAKE), mode)


def gone(pid: int) -> bool:
    """No such process, or only its zombie (no memory, nothing running)."""
    try:
        state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


class Events:
    """Collects runner events and lets a test wait for one."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self._cond = threading.Condition()

    def __call__(self, event: dict[str, Any]) -> None:
        with self._cond:
            self.items.append(event)
            self._cond.notify_all()

    def wait_for(self, kind: str, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.items:
                    if event["event"] == kind:
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {kind!r} event in {timeout} s: {self.items}")
                self._cond.wait(left)

    def kinds(self) -> list[str]:
        with self._cond:
            return [e["event"] for e in self.items]


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def history(tmp_path: pathlib.Path) -> History:
    return History(tmp_path / "history.jsonl")


@pytest.fixture
def runners() -> Iterator[list[BenchmarkRunner]]:
    made: list[BenchmarkRunner] = []
    yield made
    for runner in made:
        runner.close()


def make(runners: list[BenchmarkRunner], **kwargs: Any) -> BenchmarkRunner:
    runner = BenchmarkRunner(**kwargs)
    runners.append(runner)
    return runner


def test_a_real_cpu_run_succeeds_and_is_recorded(
    runners: list[BenchmarkRunner], events: Events, history: History
) -> None:
    runner = make(runners, history=history, on_event=events)
    # When
    first = runner.start(RunRequest("quick", sizes=TINY))
    run = runner.wait(first["id"], timeout=60)
    # Then
    assert first["state"] == "running"
    assert run["state"] == "succeeded", run["error"]
    assert run["environment"]["backend"] == "numpy"
    assert run["environment"]["versions"]["numpy"]
    [device] = run["devices"]
    assert device["index"] is None
    assert device["datasheet"]["model"] is None
    ids = [m["id"] for m in device["measurements"]]
    assert ids == ["matmul_fp32", "matmul_fp64", "memory_copy"]
    for m in device["measurements"]:
        assert m["status"] == "ok"
        assert m["value"] > 0
        assert m["spread"]["min"] <= m["value"] <= m["spread"]["max"]
        assert m["repeats"] == 5
    assert device["measurements"][0]["size"] == {"n": 32}
    assert run["progress"] == {"done": 3, "total": 3, "fraction": 1.0, "step": None}
    kinds = events.kinds()
    assert kinds[0] == "started"
    assert kinds[-1] == "finished"
    assert kinds.count("measurement") == 3
    assert kinds.count("step") == 3
    fractions = [e["progress"]["fraction"] for e in events.items]
    assert fractions == sorted(fractions)
    assert [r["id"] for r in history.read().runs] == [run["id"]]
    assert runner.running_id is None


def test_only_one_run_at_a_time(runners: list[BenchmarkRunner], events: Events) -> None:
    runner = make(runners, worker_argv=fake("hang"), on_event=events)
    first = runner.start(RunRequest("quick"))
    # When / Then
    with pytest.raises(RunnerBusy) as busy:
        runner.start(RunRequest("quick"))
    assert busy.value.running_id == first["id"]
    assert runner.running_id == first["id"]
    runner.cancel(first["id"])
    # Once it is over, the next run may start.
    second = runner.start(RunRequest("quick", sizes=TINY))
    assert second["id"] != first["id"]


def test_cancel_kills_the_worker_and_its_children_within_2_s(
    runners: list[BenchmarkRunner],
    events: Events,
    history: History,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pidfile = tmp_path / "child.pid"
    monkeypatch.setenv("FAKE_WORKER_CHILD_PIDFILE", str(pidfile))
    runner = make(runners, worker_argv=fake("hang"), on_event=events, history=history)
    started = runner.start(RunRequest("quick"))
    worker_pid = started["environment"]["worker_pid"]
    assert events.wait_for("progress")["progress"]["total"] == 3
    events.wait_for("step")
    child_pid = int(pidfile.read_text())
    assert not gone(child_pid)
    # When
    t0 = time.monotonic()
    run = runner.cancel(started["id"])
    elapsed = time.monotonic() - t0
    # Then
    assert elapsed < 2.0
    assert run["state"] == "cancelled"
    assert run["error"] is None
    assert gone(worker_pid)
    deadline = time.monotonic() + 2.0
    while not gone(child_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(child_pid), "the worker's child outlived the cancel"
    assert events.kinds()[-1] == "finished"
    assert history.read().runs[0]["state"] == "cancelled"
    with pytest.raises(RunFinished):
        runner.cancel(started["id"])


def test_a_run_past_its_timeout_fails_and_its_worker_is_killed(
    runners: list[BenchmarkRunner],
) -> None:
    runner = make(runners, worker_argv=fake("hang"))
    t0 = time.monotonic()
    started = runner.start(RunRequest("quick", timeout=1.0))
    # When
    run = runner.wait(started["id"], timeout=10)
    # Then
    assert time.monotonic() - t0 < 5
    assert run["state"] == "failed"
    assert run["error"]["code"] == "timeout"
    assert "1 s" in run["error"]["message"]
    assert gone(started["environment"]["worker_pid"])


@pytest.mark.parametrize(
    ("mode", "code", "words"),
    [
        ("sigkill", "killed", "SIGKILL"),
        ("exit3", "crashed", "status 3: fake worker: the device vanished"),
        ("raise", "crashed", "RuntimeError: fake worker exploded"),
        ("oom", "out_of_memory", "tried to allocate 80 GiB"),
        ("noise", "protocol", "without reporting a result"),
    ],
)
def test_a_worker_that_dies_ends_as_a_failed_run_with_the_reason(
    runners: list[BenchmarkRunner], history: History, mode: str, code: str, words: str
) -> None:
    runner = make(runners, worker_argv=fake(mode), history=history)
    # When
    started = runner.start(RunRequest("quick"))
    run = runner.wait(started["id"], timeout=30)
    # Then
    assert run["state"] == "failed"
    assert run["error"]["code"] == code
    assert words in run["error"]["message"]
    assert history.read().runs[0]["error"]["code"] == code
    assert runner.running_id is None


def test_killing_the_real_worker_mid_run_is_reported(
    runners: list[BenchmarkRunner], events: Events
) -> None:
    # Big enough that the run is still measuring when it is killed.
    runner = make(runners, on_event=events)
    started = runner.start(RunRequest("full", sizes={"matmul_n": 2048}))
    events.wait_for("step")
    # When
    os.kill(started["environment"]["worker_pid"], signal.SIGKILL)
    run = runner.wait(started["id"], timeout=30)
    # Then
    assert run["state"] == "failed"
    assert run["error"] == {
        "code": "killed",
        "message": "the worker was killed by SIGKILL (the kernel's out-of-memory killer sends it)",
    }


def test_sizes_beyond_the_memory_allowed_fail_in_the_worker(runners: list[BenchmarkRunner]) -> None:
    runner = make(runners)
    run = runner.wait(
        runner.start(RunRequest("quick", sizes={"copy_bytes": 1 << 40}))["id"], timeout=30
    )
    assert run["state"] == "failed"
    assert run["error"]["code"] == "bad_request"
    assert "sizes.copy_bytes" in run["error"]["message"]


def test_a_gpu_run_without_torch_or_cupy_fails_with_what_to_install(
    runners: list[BenchmarkRunner],
) -> None:
    from gpu_devbox.bench import DeviceTarget

    target = DeviceTarget(0, "GPU-00000000-0000-0000-0000-000000000000", "NVIDIA H100 80GB HBM3")
    runner = make(runners)
    run = runner.wait(runner.start(RunRequest("quick", targets=(target,)))["id"], timeout=60)
    assert run["state"] == "failed"
    assert run["error"]["code"] == "no_backend"
    assert "PyTorch with CUDA or CuPy" in run["error"]["message"]
    assert run["request"]["devices"] == [0]
    assert run["environment"]["backend"] is None


def test_close_cancels_the_run_in_progress(events: Events) -> None:
    runner = BenchmarkRunner(worker_argv=fake("hang"), on_event=events)
    started = runner.start(RunRequest("quick"))
    events.wait_for("step")
    # When
    runner.close()
    # Then
    assert runner.get(started["id"])["state"] == "cancelled"  # type: ignore[index]
    assert gone(started["environment"]["worker_pid"])
    with pytest.raises(RuntimeError, match="closed"):
        runner.start(RunRequest("quick"))
