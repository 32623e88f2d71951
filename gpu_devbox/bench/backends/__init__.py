"""Compute libraries the benchmark worker can measure with, chosen in this order.

``torch`` (PyTorch with CUDA), else ``cupy``, for GPUs; ``numpy`` for the CPU when no GPU is
visible. Only the worker process imports these modules: the Jupyter server never does, so it
never loads a CUDA library or creates a CUDA context.
"""

from __future__ import annotations

from typing import Any

from gpu_devbox.bench.backends.optional import BackendUnavailable
from gpu_devbox.bench.measure import Backend

#: The backends a caller can name; ``auto`` picks one.
BACKEND_NAMES = ("auto", "torch", "cupy", "numpy")

__all__ = ["BACKEND_NAMES", "BackendUnavailable", "select_backend"]


def _torch(gpus: int) -> Backend:
    from gpu_devbox.bench.backends.torch_backend import TorchBackend

    return TorchBackend(gpus)


def _cupy(gpus: int) -> Backend:
    from gpu_devbox.bench.backends.cupy_backend import CupyBackend

    return CupyBackend(gpus)


def _numpy(gpus: int) -> Backend:
    from gpu_devbox.bench.backends.numpy_backend import NumpyBackend

    if gpus:
        raise BackendUnavailable("the numpy backend measures the CPU only; ask for no GPU")
    return NumpyBackend()


def select_backend(name: str, gpus: int) -> Backend:
    """The backend to measure ``gpus`` GPUs with (0: the CPU).

    ``auto`` tries torch, then cupy for GPUs, and numpy for the CPU.

    Raises:
        BackendUnavailable: no backend can do it; the message gives every reason.
    """
    makers = {"torch": _torch, "cupy": _cupy, "numpy": _numpy}
    if name != "auto":
        if name not in makers:
            raise BackendUnavailable(f"unknown backend {name!r}; one of {BACKEND_NAMES}")
        return makers[name](gpus)
    if not gpus:
        try:
            return _numpy(0)
        except BackendUnavailable as exc:
            raise BackendUnavailable(f"the CPU benchmark needs NumPy: {exc}") from exc
    reasons = []
    for candidate in ("torch", "cupy"):
        backend, reason = _try(makers[candidate], gpus)
        if backend is not None:
            return backend
        reasons.append(reason)
    raise BackendUnavailable(
        "the GPU benchmark needs PyTorch with CUDA or CuPy: " + "; ".join(reasons)
    )


def _try(maker: Any, gpus: int) -> tuple[Backend | None, str]:
    try:
        return maker(gpus), ""
    except BackendUnavailable as exc:
        return None, str(exc)
