"""The CuPy backend, used when PyTorch is missing: fp32/fp16 matmuls, copies and transfers.

CuPy's ``matmul`` chooses TF32 for the whole process from ``CUPY_TF32`` at import time, and has
no bfloat16 or fp8 arrays, so tf32, bf16 and fp8 are reported as unsupported here (the runner
sets ``CUPY_TF32=0`` so that fp32 really is fp32). Copies and transfers are plain
``cudaMemcpyAsync`` calls, as PyTorch's ``copy_`` makes them.
"""

from __future__ import annotations

import gc
import platform
from typing import Any

from gpu_devbox.bench import host
from gpu_devbox.bench.backends.optional import BackendUnavailable, import_optional
from gpu_devbox.bench.measure import DeviceInfo, Op, Unsupported, wall_clock
from gpu_devbox.bench.suites import Kind

# cudaMemcpyKind values (CUDA runtime API).
HOST_TO_DEVICE = 1
DEVICE_TO_HOST = 2
DEVICE_TO_DEVICE = 3


class CupyBackend:
    """Measures CUDA devices ``0 .. gpus-1`` with CuPy."""

    name = "cupy"
    kind: Kind = "gpu"
    timer = "device_events"

    def __init__(self, gpus: int) -> None:
        if not gpus:
            raise BackendUnavailable("the cupy backend measures GPUs only")
        self.cp: Any = import_optional("cupy")
        self.np: Any = import_optional("numpy")
        try:
            count = int(self.cp.cuda.runtime.getDeviceCount())
        except Exception as exc:  # CUDARuntimeError and friends: no usable driver
            raise BackendUnavailable(f"CuPy cannot use CUDA: {exc}") from exc
        if count < gpus:
            raise BackendUnavailable(f"CuPy sees {count} CUDA device(s), not {gpus}")
        self._count = gpus

    def versions(self) -> dict[str, str]:
        """Python, CuPy, NumPy and the CUDA runtime CuPy uses."""
        runtime = int(self.cp.cuda.runtime.runtimeGetVersion())
        return {
            "python": platform.python_version(),
            "cupy": self.cp.__version__,
            "numpy": self.np.__version__,
            "cuda_runtime": f"{runtime // 1000}.{runtime % 1000 // 10}",
        }

    def device_count(self) -> int:
        """The GPUs asked for."""
        return self._count

    def use(self, ordinal: int) -> DeviceInfo:
        """Select the device, create its context and read its free memory."""
        cp = self.cp
        cp.cuda.Device(ordinal).use()
        free, total = cp.cuda.runtime.memGetInfo()
        props = cp.cuda.runtime.getDeviceProperties(ordinal)
        name = props["name"]
        return DeviceInfo(
            ordinal=ordinal,
            name=name.decode() if isinstance(name, bytes) else str(name),
            memory_total=int(total),
            memory_free=int(free),
            compute_capability=f"{props['major']}.{props['minor']}",
        )

    def host_available(self) -> int:
        """Available host memory."""
        return host.available_memory()

    def matmul(self, dtype: str, n: int) -> Op:
        """``cupy.matmul(a, b, out=c)`` for fp32 and fp16."""
        cp = self.cp
        kinds = {"fp32": cp.float32, "fp16": cp.float16}
        if dtype not in kinds:
            raise Unsupported(f"the CuPy backend has no {dtype} matmul; install PyTorch for it")
        a = cp.random.standard_normal((n, n), dtype=cp.float32).astype(kinds[dtype])
        b = cp.random.standard_normal((n, n), dtype=cp.float32).astype(kinds[dtype])
        c = cp.empty((n, n), dtype=kinds[dtype])
        return lambda: cp.matmul(a, b, out=c)

    def _memcpy(self, dst: int, src: int, nbytes: int, kind: int) -> Op:
        runtime = self.cp.cuda.runtime
        stream = self.cp.cuda.get_current_stream().ptr
        return lambda: runtime.memcpyAsync(dst, src, nbytes, kind, stream)

    def copy(self, nbytes: int) -> Op:
        """A device-to-device ``cudaMemcpyAsync``."""
        cp = self.cp
        src = cp.ones(nbytes, dtype=cp.uint8)
        dst = cp.empty(nbytes, dtype=cp.uint8)
        op = self._memcpy(dst.data.ptr, src.data.ptr, nbytes, DEVICE_TO_DEVICE)
        return _keep(op, src, dst)

    def transfer(self, direction: str, memory: str, nbytes: int) -> Op:
        """``cudaMemcpyAsync`` between device memory and pinned or pageable host memory."""
        cp, np = self.cp, self.np
        device = cp.empty(nbytes, dtype=cp.uint8)
        if memory == "pinned":
            pinned = cp.cuda.alloc_pinned_memory(nbytes)
            hostbuf = np.frombuffer(pinned, dtype=np.uint8, count=nbytes)
        else:
            pinned = None
            hostbuf = np.empty(nbytes, dtype=np.uint8)
        hostbuf.fill(1)  # fault every page in before timing
        host_ptr = int(hostbuf.ctypes.data)
        if direction == "h2d":
            op = self._memcpy(device.data.ptr, host_ptr, nbytes, HOST_TO_DEVICE)
        else:
            op = self._memcpy(host_ptr, device.data.ptr, nbytes, DEVICE_TO_HOST)
        return _keep(op, device, hostbuf, pinned)

    def launch(self, launches: int) -> Op:
        """``launches`` in-place adds on a one-element array, then a device synchronize."""
        cp = self.cp
        x = cp.zeros(1, dtype=cp.float32)

        def op() -> None:
            for _ in range(launches):
                x.__iadd__(1.0)
            cp.cuda.runtime.deviceSynchronize()

        return op

    def time(self, op: Op, warmup: int, repeats: int, *, wall_clock: bool = False) -> list[float]:
        """CUDA events around each call on the current stream (read after one final sync)."""
        cp = self.cp
        if wall_clock:
            return _wall(op, warmup, repeats, cp.cuda.runtime.deviceSynchronize)
        for _ in range(warmup):
            op()
        cp.cuda.runtime.deviceSynchronize()
        pairs = [(cp.cuda.Event(), cp.cuda.Event()) for _ in range(repeats)]
        for start, end in pairs:
            start.record()
            op()
            end.record()
        cp.cuda.runtime.deviceSynchronize()
        return [cp.cuda.get_elapsed_time(start, end) / 1000.0 for start, end in pairs]

    def release(self) -> None:
        """Return pooled device and pinned memory to the driver."""
        gc.collect()
        self.cp.get_default_memory_pool().free_all_blocks()
        self.cp.get_default_pinned_memory_pool().free_all_blocks()

    def is_out_of_memory(self, exc: BaseException) -> bool:
        """CuPy's OutOfMemoryError, or a CUDA error that says so."""
        oom = getattr(self.cp.cuda.memory, "OutOfMemoryError", None)
        if oom is not None and isinstance(exc, oom):
            return True
        return "out of memory" in str(exc).lower() or "memory allocation" in str(exc).lower()


def _keep(op: Op, *buffers: object) -> Op:
    """Tie the buffers' lifetime to the operation (raw pointers do not keep them alive)."""

    def call() -> object:
        return op()

    call.buffers = buffers  # type: ignore[attr-defined]
    return call


def _wall(op: Op, warmup: int, repeats: int, sync: Any) -> list[float]:
    return wall_clock(op, warmup, repeats, sync)
