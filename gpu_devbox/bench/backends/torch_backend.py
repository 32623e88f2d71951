"""The PyTorch backend: cuBLAS matmuls, cudaMemcpy copies and transfers, timed with CUDA events.

The operations are the ones ``benchmarks/reference_bench.py`` writes out plainly, so that the
two can be compared figure by figure: ``torch.matmul`` into a preallocated output,
``Tensor.copy_`` between byte tensors, ``torch._scaled_mm`` for fp8.

With no GPU asked for it measures the CPU through PyTorch (wall clock, no transfers): only
used when a caller names this backend explicitly.
"""

from __future__ import annotations

import gc
import platform
from typing import Any

from gpu_devbox.bench import host
from gpu_devbox.bench.backends.optional import BackendUnavailable, import_optional
from gpu_devbox.bench.measure import DeviceInfo, Op, Unsupported, wall_clock
from gpu_devbox.bench.suites import Kind

#: fp8 tensor cores arrived with Ada Lovelace (8.9) and Hopper (9.0).
FP8_MIN_CAPABILITY = (8, 9)


class TorchBackend:
    """Measures CUDA devices ``0 .. gpus-1`` (as the worker's CUDA_VISIBLE_DEVICES orders them)."""

    name = "torch"

    def __init__(self, gpus: int) -> None:
        self.torch: Any = import_optional("torch")
        torch = self.torch
        self.kind: Kind = "gpu" if gpus else "cpu"
        self.timer = "device_events" if gpus else "wall_clock"
        if gpus:
            if not torch.cuda.is_available():
                build = (
                    f"built for CUDA {torch.version.cuda}"
                    if torch.version.cuda
                    else "a CPU-only build: install a CUDA build of PyTorch"
                )
                raise BackendUnavailable(
                    f"PyTorch {torch.__version__} sees no CUDA device ({build})"
                )
            if torch.cuda.device_count() < gpus:
                raise BackendUnavailable(
                    f"PyTorch sees {torch.cuda.device_count()} CUDA device(s), not {gpus}"
                )
        self.device: Any = torch.device("cuda", 0) if gpus else torch.device("cpu")
        self._count = gpus or 1
        self._precision = torch.get_float32_matmul_precision()

    def versions(self) -> dict[str, str]:
        """Python, PyTorch, and the CUDA and cuDNN it was built with."""
        torch = self.torch
        versions = {"python": platform.python_version(), "torch": torch.__version__}
        if torch.version.cuda:
            versions["cuda_runtime"] = str(torch.version.cuda)
        try:
            cudnn = torch.backends.cudnn.version()
        except Exception:  # noqa: BLE001 - cuDNN is optional and may fail to load
            cudnn = None
        if cudnn:
            versions["cudnn"] = str(cudnn)
        return versions

    def device_count(self) -> int:
        """The GPUs asked for (or 1: the CPU)."""
        return self._count

    def use(self, ordinal: int) -> DeviceInfo:
        """Select the device, create its context and read its free memory."""
        torch = self.torch
        if self.kind == "cpu":
            return DeviceInfo(0, host.cpu_name(), host.total_memory(), host.available_memory())
        self.device = torch.device("cuda", ordinal)
        torch.cuda.set_device(self.device)
        torch.cuda.init()
        free, total = torch.cuda.mem_get_info(self.device)
        props = torch.cuda.get_device_properties(self.device)
        return DeviceInfo(
            ordinal=ordinal,
            name=str(props.name),
            memory_total=int(total),
            memory_free=int(free),
            compute_capability=f"{props.major}.{props.minor}",
        )

    def host_available(self) -> int:
        """Available host memory."""
        return host.available_memory()

    def matmul(self, dtype: str, n: int) -> Op:
        """``torch.matmul(a, b, out=c)``; fp32 without and tf32 with TF32 tensor cores."""
        torch = self.torch
        if dtype == "fp8":
            return self._fp8(n)
        dtypes = {
            "fp32": torch.float32,
            "tf32": torch.float32,
            "fp16": torch.float16,
            "bf16": torch.bfloat16,
            "fp64": torch.float64,
        }
        if dtype not in dtypes:
            raise Unsupported(f"no {dtype} matmul in the torch backend")
        if dtype == "tf32" and self.kind == "cpu":
            raise Unsupported("tf32 needs an NVIDIA GPU")
        # "highest" keeps fp32 on CUDA cores; "high" lets cuBLAS use TF32 tensor cores.
        torch.set_float32_matmul_precision("high" if dtype == "tf32" else "highest")
        kind = dtypes[dtype]
        a = torch.randn(n, n, device=self.device, dtype=kind)
        b = torch.randn(n, n, device=self.device, dtype=kind)
        c = torch.empty(n, n, device=self.device, dtype=kind)
        return lambda: torch.matmul(a, b, out=c)

    def _fp8(self, n: int) -> Op:
        torch = self.torch
        if self.kind == "cpu":
            raise Unsupported("fp8 needs an NVIDIA GPU")
        if not hasattr(torch, "float8_e4m3fn") or not hasattr(torch, "_scaled_mm"):
            raise Unsupported(f"PyTorch {torch.__version__} has no fp8 matmul")
        capability = tuple(torch.cuda.get_device_capability(self.device))
        if capability < FP8_MIN_CAPABILITY:
            raise Unsupported(
                f"fp8 tensor cores need compute capability 8.9 or newer, not "
                f"{capability[0]}.{capability[1]}"
            )
        a = torch.randn(n, n, device=self.device, dtype=torch.bfloat16).to(torch.float8_e4m3fn)
        # cuBLASLt wants the second operand column-major: a transposed row-major matrix is.
        b = torch.randn(n, n, device=self.device, dtype=torch.bfloat16).to(torch.float8_e4m3fn).t()
        scale = torch.ones((), device=self.device, dtype=torch.float32)

        def op() -> object:
            return torch._scaled_mm(a, b, scale_a=scale, scale_b=scale, out_dtype=torch.bfloat16)

        try:
            op()
            torch.cuda.synchronize(self.device)
        except (RuntimeError, TypeError) as exc:
            raise Unsupported(f"torch._scaled_mm failed: {_first_line(exc)}") from exc
        return op

    def copy(self, nbytes: int) -> Op:
        """``dst.copy_(src)`` between byte tensors on the device (a cudaMemcpy)."""
        torch = self.torch
        src = torch.ones(nbytes, dtype=torch.uint8, device=self.device)
        dst = torch.empty(nbytes, dtype=torch.uint8, device=self.device)
        return lambda: dst.copy_(src)

    def transfer(self, direction: str, memory: str, nbytes: int) -> Op:
        """``copy_`` between a device tensor and a pinned (async) or pageable host tensor."""
        torch = self.torch
        if self.kind == "cpu":
            raise Unsupported("host-device transfers need a GPU")
        pinned = memory == "pinned"
        device = torch.empty(nbytes, dtype=torch.uint8, device=self.device)
        hostbuf = torch.empty(nbytes, dtype=torch.uint8, pin_memory=pinned)
        hostbuf.fill_(1)  # fault every page in before timing
        if direction == "h2d":
            return lambda: device.copy_(hostbuf, non_blocking=pinned)
        return lambda: hostbuf.copy_(device, non_blocking=pinned)

    def launch(self, launches: int) -> Op:
        """``launches`` in-place adds on a one-element tensor, then a synchronize."""
        torch = self.torch
        if self.kind == "cpu":
            raise Unsupported("kernel launches need a GPU")
        x = torch.zeros(1, device=self.device)

        def op() -> None:
            for _ in range(launches):
                x.add_(1.0)
            torch.cuda.synchronize(self.device)

        return op

    def time(self, op: Op, warmup: int, repeats: int, *, wall_clock: bool = False) -> list[float]:
        """CUDA events around each call on the current stream (read after one final sync)."""
        torch = self.torch
        if self.kind == "cpu":
            return _wall(op, warmup, repeats, lambda: None)
        if wall_clock:
            return _wall(op, warmup, repeats, lambda: torch.cuda.synchronize(self.device))
        for _ in range(warmup):
            op()
        torch.cuda.synchronize(self.device)
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
        for start, end in zip(starts, ends, strict=True):
            start.record()
            op()
            end.record()
        torch.cuda.synchronize(self.device)
        return [start.elapsed_time(end) / 1000.0 for start, end in zip(starts, ends, strict=True)]

    def release(self) -> None:
        """Drop the step's tensors and return cached blocks to the driver."""
        gc.collect()
        self.torch.set_float32_matmul_precision(self._precision)
        if self.kind == "gpu":
            self.torch.cuda.empty_cache()

    def is_out_of_memory(self, exc: BaseException) -> bool:
        """``torch.cuda.OutOfMemoryError`` or a RuntimeError that says so."""
        oom = getattr(self.torch.cuda, "OutOfMemoryError", None)
        if oom is not None and isinstance(exc, oom):
            return True
        return isinstance(exc, RuntimeError | MemoryError) and "out of memory" in str(exc).lower()


def _wall(op: Op, warmup: int, repeats: int, sync: Any) -> list[float]:
    return wall_clock(op, warmup, repeats, sync)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
