"""Compute libraries the benchmark worker can measure with, chosen in this order.

``torch`` (PyTorch with CUDA), else ``cupy``, for GPUs; ``numpy`` for the CPU when no GPU is
visible. Only the worker process imports these modules: the Jupyter server never does, so it
never loads a CUDA library or creates a CUDA context.
"""

from __future__ import annotations

import importlib
from typing import Any

from gpu_devbox.bench.measure import Backend

#: The backends a caller can name; ``auto`` picks one.
BACKEND_NAMES = ("auto", "torch", "cupy", "numpy")


class BackendUnavailable(Exception):
    """No usable backend; the message says what is missing and how to get it."""


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


def import_optional(name: str) -> Any:
    """Import a compute library by name, or raise :class:`BackendUnavailable` saying why not."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise BackendUnavailable(f"{name} is not importable ({exc})") from exc
    except Exception as exc:  # a broken install raises anything at import
        raise BackendUnavailable(f"importing {name} failed: {type(exc).__name__}: {exc}") from exc


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
