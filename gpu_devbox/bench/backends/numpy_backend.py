"""The CPU backend: NumPy matmuls (through its BLAS) and memory copies, timed by the wall clock."""

from __future__ import annotations

import gc
import platform
from typing import Any

from gpu_devbox.bench import host
from gpu_devbox.bench.backends.optional import import_optional
from gpu_devbox.bench.measure import DeviceInfo, Op, Unsupported, wall_clock
from gpu_devbox.bench.suites import Kind

#: The dtypes NumPy multiplies through BLAS (float16 has no BLAS path: it would crawl).
DTYPES = {"fp32": "float32", "fp64": "float64"}


class NumpyBackend:
    """Measures the host CPU and its memory."""

    name = "numpy"
    kind: Kind = "cpu"
    timer = "wall_clock"

    def __init__(self) -> None:
        self.np: Any = import_optional("numpy")
        self.rng = self.np.random.default_rng(0)

    def versions(self) -> dict[str, str]:
        """Python, NumPy and (when NumPy says) its BLAS."""
        versions = {"python": platform.python_version(), "numpy": self.np.__version__}
        blas = _blas(self.np)
        if blas:
            versions["blas"] = blas
        return versions

    def device_count(self) -> int:
        """One: the CPU."""
        return 1

    def use(self, ordinal: int) -> DeviceInfo:
        """Describe the CPU."""
        return DeviceInfo(
            ordinal=0,
            name=host.cpu_name(),
            memory_total=host.total_memory(),
            memory_free=host.available_memory(),
        )

    def host_available(self) -> int:
        """Available host memory."""
        return host.available_memory()

    def matmul(self, dtype: str, n: int) -> Op:
        """``numpy.matmul`` into a preallocated output."""
        if dtype not in DTYPES:
            raise Unsupported(f"NumPy has no fast {dtype} matmul on the CPU")
        np = self.np
        kind = DTYPES[dtype]
        a = self.rng.standard_normal((n, n), dtype=kind)
        b = self.rng.standard_normal((n, n), dtype=kind)
        c = np.empty((n, n), dtype=kind)
        return lambda: np.matmul(a, b, out=c)

    def copy(self, nbytes: int) -> Op:
        """``numpy.copyto`` between two byte buffers (pages touched first)."""
        np = self.np
        src = np.ones(nbytes, dtype=np.uint8)
        dst = np.zeros(nbytes, dtype=np.uint8)
        return lambda: np.copyto(dst, src)

    def transfer(self, direction: str, memory: str, nbytes: int) -> Op:
        """There is no device to transfer to."""
        raise Unsupported("host-device transfers need a GPU")

    def launch(self, launches: int) -> Op:
        """There are no kernels to launch."""
        raise Unsupported("kernel launches need a GPU")

    def time(self, op: Op, warmup: int, repeats: int, *, wall_clock: bool = False) -> list[float]:
        """The wall clock around each call (NumPy calls return when done)."""
        return _wall(op, warmup, repeats)

    def release(self) -> None:
        """Free the step's buffers now."""
        gc.collect()

    def is_out_of_memory(self, exc: BaseException) -> bool:
        """NumPy raises MemoryError (or its ``_ArrayMemoryError`` subclass)."""
        return isinstance(exc, MemoryError)


def _wall(op: Op, warmup: int, repeats: int) -> list[float]:
    return wall_clock(op, warmup, repeats, lambda: None)


def _blas(np: Any) -> str | None:
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 - older NumPy has no dict mode; the BLAS name is optional
        return None
