#!/usr/bin/env python3
"""gpu-devbox's benchmark against the plain-PyTorch reference, side by side, on one GPU.

    python benchmarks/compare_bench.py                     # GPU 0 (NVML index), quick suite
    python benchmarks/compare_bench.py --device 1 --suite full --rounds 3

Runs ``gpu-devbox bench --json`` and ``benchmarks/reference_bench.py`` on the same GPU (the
reference is pointed at it by UUID), alternating ``--rounds`` times so that warm-up and clock
drift hit both alike, takes the median of the rounds per figure, and prints a table.

Criterion (issue 4): matmul (fp32, tf32, fp16, bf16) and device-to-device bandwidth within
``--tolerance`` (3%) of the reference. Exit status 0 when all are, 1 when one is not, 2 when a
side could not run (no GPU, no PyTorch with CUDA, a failed run): the reason is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
CRITERIA = ("matmul_fp32", "matmul_tf32", "matmul_fp16", "matmul_bf16", "memory_copy")
INFORMATIVE = ("matmul_fp8", "h2d_pinned", "d2h_pinned")


class CannotRun(Exception):
    """One side could not produce figures."""


def run_devbox(device: int, suite: str) -> dict[str, Any]:
    argv = [sys.executable, "-m", "gpu_devbox", "bench", "--json", "--no-save"]
    argv += ["--suite", suite, "--device", str(device)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    if proc.returncode == 2:
        raise CannotRun(f"gpu-devbox bench refused: {proc.stderr.strip()}")
    try:
        run: dict[str, Any] = json.loads(proc.stdout)
    except ValueError:
        raise CannotRun(f"gpu-devbox bench printed no run: {proc.stderr.strip()}") from None
    if run["state"] != "succeeded":
        raise CannotRun(f"gpu-devbox run {run['state']}: {(run.get('error') or {}).get('message')}")
    if not run["devices"] or run["devices"][0]["index"] is None:
        raise CannotRun("gpu-devbox measured the CPU: no GPU is visible to it")
    return run


def run_reference(uuid: str, sizes: dict[str, int]) -> dict[str, Any]:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": uuid}
    argv = [sys.executable, str(HERE / "reference_bench.py"), "--json"]
    argv += ["--n", str(sizes["matmul_n"]), "--copy-bytes", str(sizes["copy_bytes"])]
    argv += ["--transfer-bytes", str(sizes["transfer_bytes"])]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, env=env, check=False)
    if proc.returncode != 0:
        raise CannotRun(proc.stderr.strip() or f"reference_bench exited {proc.returncode}")
    document: dict[str, Any] = json.loads(proc.stdout)
    return document


def devbox_figures(run: dict[str, Any]) -> dict[str, float | None]:
    return {m["id"]: m["value"] for m in run["devices"][0]["measurements"]}


def median_of(rounds: list[dict[str, float | None]], key: str) -> float | None:
    values = [r[key] for r in rounds if r.get(key) is not None]
    return statistics.median(values) if values else None  # type: ignore[type-var]


def show(value: float | None, key: str) -> str:
    if value is None:
        return "-"
    return f"{value / 1e12:.1f} TFLOP/s" if key.startswith("matmul") else f"{value / 1e9:.0f} GB/s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", type=int, default=0, help="NVML index (default 0)")
    parser.add_argument("--suite", choices=["quick", "full"], default="quick")
    parser.add_argument("--rounds", type=int, default=2, help="alternations (default 2)")
    parser.add_argument("--tolerance", type=float, default=0.03, help="allowed |ratio - 1|")
    args = parser.parse_args(argv)

    devbox_rounds: list[dict[str, float | None]] = []
    reference_rounds: list[dict[str, float | None]] = []
    try:
        for _ in range(max(1, args.rounds)):
            run = run_devbox(args.device, args.suite)
            device = run["devices"][0]
            n = device["sizes"]["matmul_n"]
            reference = run_reference(device["uuid"], device["sizes"])
            devbox_rounds.append(devbox_figures(run))
            reference_rounds.append(reference["figures"])
    except CannotRun as exc:
        print(f"compare_bench: cannot compare: {exc}", file=sys.stderr)
        return 2

    env = run["environment"]
    print(
        f"GPU {device['index']} {device['name']} · datasheet: {device['datasheet'].get('model')} · "
        f"driver {device.get('driver_version')} · gpu-devbox {env.get('gpu_devbox')} "
        f"({env.get('backend')} {env['versions'].get(env.get('backend') or '', '')}) vs reference "
        f"(PyTorch {reference['torch']}) · {args.suite} suite, matmul n={n}, "
        f"median of {len(devbox_rounds)} round(s)"
    )
    rows = judge(devbox_rounds, reference_rounds, args.tolerance)
    print(f"| figure | gpu-devbox | reference | ratio | within {args.tolerance:.0%} |")
    print("|---|---|---|---|---|")
    for key, ours, theirs, ratio, ok in rows:
        verdict = "(not a criterion)" if ok is None else ("yes" if ok else "**NO**")
        ratio_text = "-" if ratio is None else f"{ratio:.3f}"
        print(f"| {key} | {show(ours, key)} | {show(theirs, key)} | {ratio_text} | {verdict} |")
    failed = [key for key, _, _, _, ok in rows if ok is False]
    if failed:
        print(f"FAIL: outside {args.tolerance:.0%}: {', '.join(failed)}")
        return 1
    print(f"PASS: every matmul and the device bandwidth within {args.tolerance:.0%}")
    return 0


Row = tuple[str, float | None, float | None, float | None, bool | None]


def judge(
    devbox_rounds: list[dict[str, float | None]],
    reference_rounds: list[dict[str, float | None]],
    tolerance: float,
) -> list[Row]:
    """Per figure: (id, gpu-devbox, reference, ratio, within tolerance or None if informative).

    A criterion figure missing on either side is a failure, never a pass.
    """
    rows: list[Row] = []
    for key in CRITERIA + INFORMATIVE:
        ours, theirs = median_of(devbox_rounds, key), median_of(reference_rounds, key)
        ratio = ours / theirs if ours and theirs else None
        ok = None
        if key in CRITERIA:
            ok = ratio is not None and abs(ratio - 1) <= tolerance
        rows.append((key, ours, theirs, ratio, ok))
    return rows


if __name__ == "__main__":
    sys.exit(main())
