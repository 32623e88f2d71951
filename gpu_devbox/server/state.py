"""The extension's shared, per-server state, kept in the tornado settings as ``gpu_devbox``."""

from __future__ import annotations

import dataclasses
from typing import Any

from gpu_devbox.activity import ServerActivity
from gpu_devbox.bench.service import BenchmarkService
from gpu_devbox.cuda.service import ChecksService
from gpu_devbox.gpus import Sampler
from gpu_devbox.server.fanout import StreamFanout
from gpu_devbox.server.kernels import KernelsService


@dataclasses.dataclass
class ServerState:
    """Everything the handlers share. One instance per server; built by the extension app."""

    sampler: Sampler
    #: The push stream's fan-out to the connected clients.
    fanout: StreamFanout
    #: The CUDA checks (``GET checks``).
    checks: ChecksService
    #: The GPU benchmark (``None`` until the extension has built it).
    benchmarks: BenchmarkService | None = None
    #: When the GPUs were last busy, and the idle policy (``None``: activity is not tracked).
    activity: ServerActivity | None = None
    #: This server's kernels and terminals for process attribution (``GET kernels``).
    kernels: KernelsService | None = None

    def status(self) -> dict[str, Any]:
        """The ``GET status`` document."""
        return status_document(self.sampler, self.activity)

    def close(self) -> None:
        """Release every resource (threads, NVML) this state holds."""
        if self.benchmarks is not None:
            self.benchmarks.close()
        if self.kernels is not None:
            self.kernels.close()
        self.fanout.close()
        self.checks.cancel()
        self.sampler.stop()


def status_document(sampler: Sampler, activity: ServerActivity | None) -> dict[str, Any]:
    """The sampler's status with the GPU activity fields (all ``null`` without ``activity``)."""
    if activity is None:
        fields = dict.fromkeys(("gpu_busy_at", "gpu_idle_seconds", "gpu_memory_held", "cull"))
    else:
        fields = activity.document()
    return {**sampler.status(), **fields}
