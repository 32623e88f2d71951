"""CUDA compatibility: dated data tables, fact gathering and the pure checks over them.

Plain Python: nothing here imports jupyter_server or tornado, and nothing here imports pynvml
(NVML facts come from :mod:`gpu_devbox.gpus`). Importing a framework (torch, cupy, ...) only
ever happens in a probe subprocess.
"""

from __future__ import annotations

from gpu_devbox.cuda.compat import (
    Mechanism,
    Verdict,
    compat_active,
    compat_branches,
    driver_runs_cuda,
    max_cuda_for_driver,
    min_driver_for_cuda,
    mvc_floor,
)

__all__ = [
    "Mechanism",
    "Verdict",
    "compat_active",
    "compat_branches",
    "driver_runs_cuda",
    "max_cuda_for_driver",
    "min_driver_for_cuda",
    "mvc_floor",
]
