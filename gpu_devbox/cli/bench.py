"""Benchmark a GPU (or, without one, the CPU) and compare each figure with the datasheet peak.

The measurements run in a separate worker process (PyTorch, else CuPy; NumPy on the CPU), the
same one the Jupyter server uses, and the run is appended to the benchmark history in Jupyter's
data directory. Exit status: 0 when the run succeeded, 1 when it failed, 2 on bad input, 130
when interrupted with Ctrl-C (the run is cancelled and its worker stopped).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from gpu_devbox.cli import CliError
from gpu_devbox.cli.bench_report import ProgressBar, render_report
from gpu_devbox.cli.common import bounded_float, bounded_int, print_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``gpu-devbox bench``."""
    from gpu_devbox.bench.suites import SIZE_LIMITS, SUITES

    parser.add_argument(
        "--suite",
        choices=list(SUITES),
        default="quick",
        help="quick: every figure in ~5 s on an H100; full: more repeats, larger copies",
    )
    parser.add_argument(
        "--device",
        metavar="N",
        type=bounded_int(0, 1023),
        action="append",
        help="GPU index as `gpu-devbox metrics` shows it (repeat for several; default: the "
        "first visible GPU, or the CPU when there is none)",
    )
    parser.add_argument("--json", action="store_true", help="print the run as JSON")
    parser.add_argument(
        "--backend",
        choices=["auto", "torch", "cupy", "numpy"],
        default="auto",
        help="compute library (default: torch, else cupy; numpy benchmarks the CPU)",
    )
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=bounded_float(1, 86_400),
        help="stop the run after this long (default: the suite's limit per device)",
    )
    parser.add_argument(
        "--max-memory-fraction",
        metavar="F",
        type=bounded_float(0.01, 0.95),
        default=0.5,
        help="share of free GPU (and host) memory the run may use (default 0.5)",
    )
    for key, help_text in (
        ("matmul_n", "n of the n x n x n matmuls (default: the suite's, shrunk to fit)"),
        ("copy_bytes", "bytes per memory copy"),
        ("transfer_bytes", "bytes per host-device transfer"),
    ):
        low, high = SIZE_LIMITS[key]
        parser.add_argument(
            "--" + key.replace("_", "-"),
            dest=key,
            metavar="N",
            type=bounded_int(low, high),
            help=help_text,
        )
    parser.add_argument(
        "--no-save", action="store_true", help="do not append the run to the benchmark history"
    )


def run(args: argparse.Namespace) -> int:
    """Run the benchmark in a worker process and report it."""
    from gpu_devbox.bench.service import BadRequest, BenchmarkConfig, BenchmarkService

    body: dict[str, Any] = {"suite": args.suite}
    sizes = {k: getattr(args, k) for k in ("matmul_n", "copy_bytes", "transfer_bytes")}
    sizes = {k: v for k, v in sizes.items() if v is not None}
    if sizes:
        body["sizes"] = sizes
    if args.backend == "numpy":
        if args.device:
            raise CliError("--backend numpy benchmarks the CPU; leave out --device")
        body["devices"] = []
        gpus: list[dict[str, Any]] = []
        simulated, driver, reason = False, None, None
    else:
        if args.device is not None:
            body["devices"] = args.device
        gpus, simulated, driver, reason = _visible_gpus()

    bar = ProgressBar(sys.stderr) if not args.json and sys.stderr.isatty() else None
    try:
        config = BenchmarkConfig(max_memory_fraction=args.max_memory_fraction)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    service = BenchmarkService(config, on_event=bar.update if bar else None, save=not args.no_save)
    try:
        request = service.build_request(
            body, gpus, simulated=simulated, driver_version=driver, backend=args.backend
        )
    except BadRequest as exc:
        message = str(exc)
        for key in sizes:  # name the option the user typed, not the API field
            message = message.replace(f"sizes.{key}", "--" + key.replace("_", "-"))
        raise CliError(message) from None
    if not request.targets and args.backend != "numpy" and not args.json:
        note = "the GPUs are simulated" if simulated and gpus else "no GPU is visible"
        detail = f" {reason}" if reason and not gpus else ""
        print(f"gpu-devbox bench: {note}; measuring the CPU.{detail}", file=sys.stderr)
    if args.timeout is not None:
        from dataclasses import replace

        request = replace(request, timeout=args.timeout)
    document = service.submit(request)
    try:
        document = service.runner.wait(document["id"])
    except KeyboardInterrupt:
        service.cancel(document["id"])
        if bar:
            bar.clear()
        raise
    if bar:
        bar.clear()
    if args.json:
        print_json(document)
    else:
        sys.stdout.write(render_report(document))
        sys.stdout.flush()
    return 0 if document["state"] == "succeeded" else 1


def _visible_gpus() -> tuple[list[dict[str, Any]], bool, str | None, str | None]:
    """One NVML reading: the visible GPUs, whether they are simulated, the driver version, and
    why NVML shows none (if it does not)."""
    from gpu_devbox.gpus.backends import BackendSpec, backend_from_env, sample_once

    try:
        count = int(os.environ.get("GPU_DEVBOX_SIMULATED_GPUS", "2"))
        spec = BackendSpec(name=backend_from_env(), simulated_gpus=count)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    snapshot, status = sample_once(spec)
    nvml = status["nvml"]
    return list(snapshot.gpus), spec.simulated, nvml.get("driver_version"), nvml.get("reason")
