"""Choosing where GPU data comes from: real NVML or the simulated backend."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from gpu_devbox._version import __version__
from gpu_devbox.gpus.nvml import NvmlAdapter
from gpu_devbox.gpus.sampler import Sampler, SamplerConfig, Snapshot
from gpu_devbox.gpus.simulated import FIELD_FUNCTIONS, SimulatedNVML, build_gpus

BACKENDS = ("nvml", "simulated")
#: Field groups the simulated backend can declare unsupported.
SIMULATED_FIELDS = tuple(sorted(FIELD_FUNCTIONS))
BACKEND_ENV = "GPU_DEVBOX_BACKEND"


@dataclasses.dataclass(frozen=True)
class BackendSpec:
    """A backend and, for the simulated one, what it simulates."""

    name: str = "nvml"
    simulated_gpus: int = 2
    simulated_mig: Sequence[int] = ()
    simulated_unsupported: Sequence[str] = ()
    #: A JSON file listing the processes the simulated GPUs run (see
    #: :class:`~gpu_devbox.gpus.simulated.ProcessesFile`); ``None``: invented work.
    simulated_processes_file: str | None = None

    def __post_init__(self) -> None:
        if self.name not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {self.name!r}")
        if not 0 <= self.simulated_gpus <= 64:
            raise ValueError(f"simulated GPUs must be between 0 and 64, not {self.simulated_gpus}")
        bad = sorted(set(self.simulated_unsupported) - set(SIMULATED_FIELDS))
        if bad:
            raise ValueError(
                f"unknown simulated field(s) {bad}; allowed: {', '.join(SIMULATED_FIELDS)}"
            )

    @property
    def simulated(self) -> bool:
        """Whether this backend invents its GPUs."""
        return self.name == "simulated"

    def make_simulated(self) -> SimulatedNVML:
        """The simulated NVML this spec describes (whatever the backend's name)."""
        return SimulatedNVML(
            build_gpus(
                self.simulated_gpus,
                mig=self.simulated_mig,
                unsupported=self.simulated_unsupported,
            ),
            processes_file=self.simulated_processes_file,
        )

    def make_adapter(self, simulated: SimulatedNVML | None = None) -> NvmlAdapter:
        """An NVML adapter over this backend (nothing is initialised yet).

        ``simulated``: the simulated NVML to use (the simulated backend only; default: a new
        one), for a caller that keeps a handle on it (the server's load control).
        """
        if not self.simulated:
            return NvmlAdapter()
        lib = simulated if simulated is not None else self.make_simulated()
        return NvmlAdapter(lambda: lib)


def backend_from_env(env: Mapping[str, str] = os.environ) -> str:
    """The backend named by ``GPU_DEVBOX_BACKEND`` ("nvml" when unset).

    Raises:
        ValueError: the variable names no backend.
    """
    value = env.get(BACKEND_ENV, "nvml").strip().lower() or "nvml"
    if value not in BACKENDS:
        raise ValueError(f"{BACKEND_ENV}={value!r} is not one of {', '.join(BACKENDS)}")
    return value


def sample_once(spec: BackendSpec, *, rate_window: float = 0.0) -> tuple[Snapshot, dict[str, Any]]:
    """Open NVML (or the simulated backend), sample once, close it: ``(snapshot, status)``.

    For command-line tools; a server keeps a :class:`~gpu_devbox.gpus.sampler.Sampler` running
    instead. With ``rate_window`` seconds, two samples are taken that far apart, so rates (PCIe
    throughput) are known.
    """
    interval = max(rate_window, 1.0)
    sampler = Sampler(
        spec.make_adapter(),
        simulated=spec.simulated,
        config=SamplerConfig(interval=interval, slow_interval=interval, history_seconds=interval),
        version=__version__,
    )
    try:
        snapshot = sampler.tick()
        if rate_window > 0:
            time.sleep(rate_window)
            snapshot = sampler.tick()
        return snapshot, sampler.status()
    finally:
        sampler.stop()
