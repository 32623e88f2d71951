"""GPU metrics: the NVML adapter, the simulated backend, device visibility and the sampler.

Plain Python: nothing here imports jupyter_server or tornado.
"""

from __future__ import annotations

from gpu_devbox.gpus.errors import NvmlUnavailable, Reason, ReasonCode
from gpu_devbox.gpus.nvml import NvmlAdapter
from gpu_devbox.gpus.sampler import Sampler, SamplerConfig, Snapshot
from gpu_devbox.gpus.visible import VisibleDevices

__all__ = [
    "NvmlAdapter",
    "NvmlUnavailable",
    "Reason",
    "ReasonCode",
    "Sampler",
    "SamplerConfig",
    "Snapshot",
    "VisibleDevices",
]
