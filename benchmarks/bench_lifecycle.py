#!/usr/bin/env python3
"""What a benchmark run costs around the measurements: worker start, cancel, a whole CPU run.

    python benchmarks/bench_lifecycle.py [--repeats 10]

Runs on any machine (the CPU backend). Prints:

- worker start: from ``BenchmarkRunner.start`` to the worker's ``hello`` (Python start, the
  worker's imports, NumPy) — the fixed cost every run pays before its first measurement;
- GPU library import: how long ``import torch`` / ``import cupy`` take in a fresh process, where
  installed (the largest part of the quick suite's 5 s budget on a GPU machine);
- cancel: from ``cancel()`` to the worker being gone (target: under 2 s), mid-measurement;
- the quick suite on the CPU, end to end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

from gpu_devbox.bench import BenchmarkRunner, RunRequest


class Waiter:
    """Lets the caller wait for a runner event by kind."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.seen: dict[str, float] = {}

    def __call__(self, event: dict[str, Any]) -> None:
        with self.cond:
            self.seen.setdefault(event["event"], time.perf_counter())
            self.cond.notify_all()

    def wait(self, kind: str, timeout: float = 60) -> float:
        with self.cond:
            if not self.cond.wait_for(lambda: kind in self.seen, timeout):
                raise RuntimeError(f"no {kind} event within {timeout} s")
            return self.seen[kind]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def import_time(module: str) -> float | None:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    return float(proc.stdout) if proc.returncode == 0 else None


def summary(values: list[float]) -> str:
    return f"p50 {statistics.median(values) * 1000:7.1f} ms   max {max(values) * 1000:7.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.repeats} repeats")

    starts, cancels = [], []
    for _ in range(args.repeats):
        waiter = Waiter()
        runner = BenchmarkRunner(on_event=waiter)
        t0 = time.perf_counter()
        started = runner.start(RunRequest("full", sizes={"matmul_n": 2048}))
        starts.append(waiter.wait("progress") - t0)
        waiter.wait("step")
        t1 = time.perf_counter()
        run = runner.cancel(started["id"])
        cancels.append(time.perf_counter() - t1)
        assert run["state"] == "cancelled"
        assert gone(started["environment"]["worker_pid"])
        runner.close()
    print(f"worker start to hello (numpy):   {summary(starts)}")
    print(f"cancel to worker gone:           {summary(cancels)}   (target < 2000 ms)")

    for module in ("torch", "cupy"):
        seconds = import_time(module)
        text = "not installed" if seconds is None else f"{seconds * 1000:7.1f} ms"
        print(f"import {module:<6} in a fresh process: {text}")

    walls = []
    for _ in range(3):
        runner = BenchmarkRunner()
        t0 = time.perf_counter()
        run = runner.wait(runner.start(RunRequest("quick"))["id"], timeout=300)
        walls.append(time.perf_counter() - t0)
        assert run["state"] == "succeeded", run["error"]
    figures = ", ".join(
        f"{m['id']} {m['value'] / 1e9:.1f} G{m['unit']}" for m in run["devices"][0]["measurements"]
    )
    print(f"quick suite on the CPU, whole run: {summary(walls)}")
    print(f"  last run: {figures} (sizes {run['devices'][0]['sizes']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
