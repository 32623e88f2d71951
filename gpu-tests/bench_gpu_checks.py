#!/usr/bin/env python3
"""Checks of the GPU benchmark that need a real NVIDIA GPU (with PyTorch or CuPy installed).

    python gpu-tests/bench_gpu_checks.py [--device 0]

1. The quick suite finishes in <= 5 s wall through the runner, worker start included, and
   measures every figure (fp8 may be unsupported before compute capability 8.9).
2. The calling process (the Jupyter server's role) loaded neither torch nor cupy.
3. A cancelled run's worker and its GPU memory are gone within 2 s (read through NVML).
4. A run past its time limit fails with ``timeout`` and frees its GPU memory too.
5. ``gpu-devbox bench`` end to end (printed, not asserted: it adds the CLI's own start).

Prints one line per check and exits 0 when all pass, 1 when one fails, 2 when there is no GPU.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from gpu_devbox.bench import BenchmarkRunner, RunRequest
from gpu_devbox.bench.devices import select_targets
from gpu_devbox.gpus import Sampler, SamplerConfig
from gpu_devbox.gpus.backends import BackendSpec

QUICK_BUDGET_S = 5.0
CANCEL_BUDGET_S = 2.0
#: GPU memory a finished run may leave in use (driver bookkeeping), bytes.
SLACK = 256 << 20


class Gpu:
    """NVML readings of one GPU through gpu-devbox's own sampler."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.sampler = Sampler(
            BackendSpec("nvml").make_adapter(),
            config=SamplerConfig(interval=0.1, slow_interval=0.1, history_seconds=1),
        )

    def snapshot(self) -> tuple[list[dict[str, Any]], str | None]:
        gpus = list(self.sampler.tick().gpus)
        return gpus, self.sampler.status()["nvml"].get("driver_version")

    def used(self) -> int:
        gpus, _ = self.snapshot()
        gpu = next(g for g in gpus if g["index"] == self.index)
        return int(gpu["memory"]["used"])

    def wait_used(self, done: Callable[[int], bool], timeout: float) -> tuple[bool, float, int]:
        start = time.monotonic()
        while True:
            used = self.used()
            if done(used):
                return True, time.monotonic() - start, used
            if time.monotonic() - start > timeout:
                return False, time.monotonic() - start, used
            time.sleep(0.05)


def check(name: str, ok: bool, detail: str, failures: list[str]) -> None:
    print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")
    if not ok:
        failures.append(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", type=int, default=0, help="NVML index")
    args = parser.parse_args(argv)
    gpu = Gpu(args.device)
    gpus, driver = gpu.snapshot()
    if not any(g["index"] == args.device for g in gpus):
        print(f"bench_gpu_checks: no GPU {args.device} visible through NVML", file=sys.stderr)
        return 2
    targets = select_targets(gpus, [args.device], driver_version=driver)
    failures: list[str] = []
    events: list[dict[str, Any]] = []
    runner = BenchmarkRunner(on_event=events.append)

    # 1. quick suite wall time and completeness
    t0 = time.monotonic()
    run = runner.wait(runner.start(RunRequest("quick", targets=targets))["id"], timeout=120)
    wall = time.monotonic() - t0
    if run["state"] != "succeeded":
        print(f"bench_gpu_checks: the quick run {run['state']}: {run['error']}", file=sys.stderr)
        return 2
    device = run["devices"][0]
    check("quick suite wall time", wall <= QUICK_BUDGET_S, f"{wall:.2f} s", failures)
    missing = [
        m["id"]
        for m in device["measurements"]
        if m["status"] != "ok" and not (m["id"] == "matmul_fp8" and "8.9" in (m["reason"] or ""))
    ]
    check("every figure measured", not missing, f"unsupported: {missing or 'none'}", failures)
    for m in device["measurements"]:
        pct = "-" if m["percent_of_peak"] is None else f"{m['percent_of_peak']:.0f}%"
        flag = m["flag"] or ""
        print(f"      {m['label']:<32} {m['value']!s:>22} {m['unit']:<7} {pct:>5} {flag}")

    # 2. the calling process stayed free of GPU libraries
    loaded = sorted({"torch", "cupy"} & set(sys.modules))
    check("no GPU library in the calling process", not loaded, f"loaded: {loaded}", failures)

    # 3. cancel frees the GPU within 2 s
    baseline = gpu.used()
    started = runner.start(RunRequest("full", targets=targets))
    grew, _, peak = gpu.wait_used(lambda used: used > baseline + (1 << 30), timeout=60)
    t0 = time.monotonic()
    cancelled = runner.cancel(started["id"])
    freed, _, after = gpu.wait_used(lambda used: used <= baseline + SLACK, timeout=10)
    elapsed = time.monotonic() - t0
    check(
        "cancel frees GPU memory within 2 s",
        grew and freed and elapsed <= CANCEL_BUDGET_S and cancelled["state"] == "cancelled",
        f"{elapsed:.2f} s; used {baseline >> 20} -> {peak >> 20} -> {after >> 20} MiB",
        failures,
    )

    # 4. a timeout ends the run and frees the GPU
    timed = runner.wait(
        runner.start(RunRequest("full", targets=targets, timeout=4.0))["id"], timeout=30
    )
    freed, waited, after = gpu.wait_used(lambda used: used <= baseline + SLACK, timeout=10)
    code = (timed["error"] or {}).get("code")
    check(
        "timeout fails the run and frees the GPU",
        timed["state"] == "failed" and code == "timeout" and freed,
        f"{timed['state']} ({code}), memory back after {waited:.2f} s",
        failures,
    )

    # 5. the CLI end to end, for the record (on the same GPU)
    t0 = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gpu_devbox",
            "bench",
            "--json",
            "--no-save",
            "--device",
            str(args.device),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    cli_state = json.loads(proc.stdout)["state"] if proc.stdout.strip() else proc.stderr.strip()
    print(f"INFO  gpu-devbox bench --json: {time.monotonic() - t0:.2f} s wall, {cli_state}")

    runner.close()
    gpu.sampler.stop()
    print("all checks passed" if not failures else f"{len(failures)} check(s) failed: {failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
