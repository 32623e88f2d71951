#!/usr/bin/env python3
"""The reference figures: gpu-devbox's benchmark operations written plainly in PyTorch.

Nothing here comes from gpu-devbox. Each figure is measured the textbook way: warm up, then
time ``--iters`` back-to-back calls between two CUDA events and divide (the mean of a batch,
where gpu-devbox takes the median of per-call events: two methods that must agree).

    python benchmarks/reference_bench.py                 # CUDA device 0, 8192^3 matmuls
    python benchmarks/reference_bench.py --json          # one JSON document
    CUDA_VISIBLE_DEVICES=GPU-<uuid> python benchmarks/reference_bench.py

Figures: matmul TFLOP/s for fp32 (no TF32), tf32, fp16, bf16 (and fp8 e4m3 where the GPU has
it), device-to-device copy GB/s counting bytes read and written, pinned host<->device GB/s.
Exit status 0, or 2 with one line on stderr when there is no PyTorch with CUDA.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from typing import Any

GB = 1e9
TERA = 1e12


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", type=int, default=0, help="CUDA device ordinal (default 0)")
    parser.add_argument("--n", type=int, default=8192, help="matmul size n (n x n x n)")
    parser.add_argument("--iters", type=int, default=20, help="timed iterations per figure")
    parser.add_argument("--warmup", type=int, default=5, help="untimed iterations first")
    parser.add_argument("--copy-bytes", type=int, default=1 << 30, help="bytes per D2D copy")
    parser.add_argument("--transfer-bytes", type=int, default=256 << 20, help="bytes per H2D/D2H")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    return parser.parse_args(argv)


def timed(torch: Any, fn: Any, warmup: int, iters: int) -> float:
    """Mean seconds per call of ``fn`` over ``iters`` calls between two CUDA events."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / 1000.0 / iters


def measure(torch: Any, args: argparse.Namespace) -> dict[str, float | None]:
    device = torch.device("cuda", args.device)
    torch.cuda.set_device(device)
    n = args.n
    figures: dict[str, float | None] = {}

    for name, dtype, precision in (
        ("fp32", torch.float32, "highest"),
        ("tf32", torch.float32, "high"),
        ("fp16", torch.float16, "highest"),
        ("bf16", torch.bfloat16, "highest"),
    ):
        torch.set_float32_matmul_precision(precision)
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        seconds = timed(torch, lambda a=a, b=b: torch.matmul(a, b), args.warmup, args.iters)
        figures[f"matmul_{name}"] = 2 * n**3 / seconds
        del a, b
        torch.cuda.empty_cache()
    torch.set_float32_matmul_precision("highest")

    figures["matmul_fp8"] = fp8_matmul(torch, device, args)
    figures["memory_copy"] = device_copy(torch, device, args)
    figures["h2d_pinned"], figures["d2h_pinned"] = pinned_transfers(torch, device, args)
    return figures


def fp8_matmul(torch: Any, device: Any, args: argparse.Namespace) -> float | None:
    """fp8 e4m3 through ``torch._scaled_mm`` (compute capability 8.9+), else ``None``."""
    if torch.cuda.get_device_capability(device) < (8, 9) or not hasattr(torch, "float8_e4m3fn"):
        return None
    n = args.n
    a = torch.randn(n, n, device=device).to(torch.float8_e4m3fn)
    b = torch.randn(n, n, device=device).to(torch.float8_e4m3fn).t()  # column-major
    one = torch.ones((), device=device)

    def call() -> Any:
        return torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)

    try:
        return 2 * n**3 / timed(torch, call, args.warmup, args.iters)
    except (RuntimeError, TypeError) as exc:
        print(f"reference_bench: fp8 skipped: {exc}".splitlines()[0], file=sys.stderr)
        return None


def device_copy(torch: Any, device: Any, args: argparse.Namespace) -> float:
    """Device-to-device ``copy_`` of ``--copy-bytes``, counting bytes read and written."""
    src = torch.ones(args.copy_bytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    return 2 * args.copy_bytes / timed(torch, lambda: dst.copy_(src), args.warmup, args.iters)


def pinned_transfers(torch: Any, device: Any, args: argparse.Namespace) -> tuple[float, float]:
    """Host-to-device and device-to-host ``copy_`` from and to pinned memory."""
    size = args.transfer_bytes
    host = torch.ones(size, dtype=torch.uint8, pin_memory=True)
    gpu = torch.empty(size, dtype=torch.uint8, device=device)
    h2d = timed(torch, lambda: gpu.copy_(host, non_blocking=True), args.warmup, args.iters)
    d2h = timed(torch, lambda: host.copy_(gpu, non_blocking=True), args.warmup, args.iters)
    return size / h2d, size / d2h


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import torch  # noqa: TID251 - the reference is plain PyTorch on purpose
    except ImportError as exc:
        print(f"reference_bench: needs PyTorch with CUDA ({exc})", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        print(
            f"reference_bench: PyTorch {torch.__version__} ({build}) sees no CUDA device; "
            "run this on a machine with an NVIDIA GPU",
            file=sys.stderr,
        )
        return 2
    if not 0 <= args.device < torch.cuda.device_count():
        print(f"reference_bench: no CUDA device {args.device}", file=sys.stderr)
        return 2
    figures = measure(torch, args)
    props = torch.cuda.get_device_properties(args.device)
    document = {
        "device": props.name,
        "compute_capability": f"{props.major}.{props.minor}",
        "torch": torch.__version__,
        "cuda_runtime": torch.version.cuda,
        "python": platform.python_version(),
        "n": args.n,
        "iters": args.iters,
        "figures": figures,
    }
    if args.json:
        print(json.dumps(document))
        return 0
    print(f"{props.name} · PyTorch {torch.__version__} · CUDA {torch.version.cuda}")
    print(f"matmul {args.n}^3, {args.iters} iterations after {args.warmup} warm-up, CUDA events")
    for key, value in figures.items():
        if value is None:
            print(f"  {key:<14} -")
        elif key.startswith("matmul"):
            print(f"  {key:<14} {value / TERA:8.1f} TFLOP/s")
        else:
            print(f"  {key:<14} {value / GB:8.1f} GB/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
