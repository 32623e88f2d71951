"""GPU metrics on jupyter-server's own ``/metrics``, read from the sampler's cache at scrape time.

Names use Prometheus base units (bytes, watts, joules, hertz, celsius, ratios) with the labels
``gpu`` (NVML index), ``uuid`` and ``model``. With ``c.GPUDevbox.prometheus_dcgm_names = True``
the collector also emits the DCGM-exporter names that existing Grafana dashboards query
(``DCGM_FI_DEV_GPU_UTIL`` in percent, ``DCGM_FI_DEV_FB_USED`` in MiB, ...), with DCGM's labels.
A scrape never calls NVML.

Who may see the series is decided per scrape by :mod:`gpu_devbox.server.metrics_handler`, which
serves ``/metrics`` in place of jupyter-server's handler: a user the authorizer refuses ``read``
on the ``gpu-devbox`` resource gets the rest of the server's metrics but none of these.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
import socket
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, CollectorRegistry

from gpu_devbox.gpus import Sampler

METRIC_PREFIX = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_MIB = 1024 * 1024
_MHZ = 1_000_000

# (suffix, help, path in the GPU document, scale to base units)
_GAUGES: tuple[tuple[str, str, tuple[str, str], float], ...] = (
    ("utilization_ratio", "GPU utilization (0-1)", ("utilization", "gpu"), 0.01),
    (
        "memory_utilization_ratio",
        "Share of time GPU memory was read or written (0-1)",
        ("utilization", "memory"),
        0.01,
    ),
    ("memory_total_bytes", "Total GPU memory", ("memory", "total"), 1),
    ("memory_used_bytes", "GPU memory used by processes", ("memory", "used"), 1),
    ("memory_reserved_bytes", "GPU memory reserved by the driver", ("memory", "reserved"), 1),
    ("memory_free_bytes", "Free GPU memory", ("memory", "free"), 1),
    ("temperature_celsius", "GPU core temperature", ("temperature", "gpu"), 1),
    ("power_watts", "Power draw", ("power", "usage"), 1),
    ("power_limit_watts", "Enforced power limit", ("power", "limit"), 1),
    ("sm_clock_hertz", "SM clock", ("clocks", "sm"), _MHZ),
    ("memory_clock_hertz", "Memory clock", ("clocks", "memory"), _MHZ),
    ("pcie_transmit_bytes_per_second", "PCIe transmit throughput", ("pcie", "tx"), 1),
    ("pcie_receive_bytes_per_second", "PCIe receive throughput", ("pcie", "rx"), 1),
    (
        "ecc_uncorrected_volatile_errors",
        "Uncorrected ECC errors since the last driver load",
        ("ecc", "uncorrected_volatile"),
        1,
    ),
)

# DCGM-exporter compatible aliases: (name, help, path, scale from our JSON units).
_DCGM: tuple[tuple[str, str, tuple[str, str], float], ...] = (
    ("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", ("utilization", "gpu"), 1),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "Memory utilization (in %).", ("utilization", "memory"), 1),
    ("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).", ("memory", "used"), 1 / _MIB),
    ("DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB).", ("memory", "free"), 1 / _MIB),
    ("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C).", ("temperature", "gpu"), 1),
    ("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W).", ("power", "usage"), 1),
    ("DCGM_FI_DEV_SM_CLOCK", "SM clock frequency (in MHz).", ("clocks", "sm"), 1),
    ("DCGM_FI_DEV_MEM_CLOCK", "Memory clock frequency (in MHz).", ("clocks", "memory"), 1),
)


#: Whether the scrape in progress may see GPU series (set by the ``/metrics`` handler per request;
#: a collection outside any request, e.g. a test or another exporter, sees them).
_GPU_SERIES_ALLOWED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "gpu_devbox_gpu_series_allowed", default=True
)


@contextlib.contextmanager
def gpu_series(allowed: bool) -> Iterator[None]:
    """Collect GPU series (``allowed``) or none of them within the block."""
    token = _GPU_SERIES_ALLOWED.set(allowed)
    try:
        yield
    finally:
        _GPU_SERIES_ALLOWED.reset(token)


def _value(gpu: dict[str, Any], path: tuple[str, str]) -> float | None:
    group = gpu.get(path[0]) or {}
    value = group.get(path[1])
    return None if value is None else float(value)


class GpuCollector:
    """A Prometheus collector over a :class:`~gpu_devbox.gpus.Sampler`'s latest snapshot."""

    def __init__(
        self,
        sampler: Sampler,
        *,
        prefix: str = "gpu_devbox",
        dcgm_names: bool = False,
        hostname: Callable[[], str] = socket.gethostname,
    ) -> None:
        if not METRIC_PREFIX.match(prefix):
            raise ValueError(f"{prefix!r} is not a valid Prometheus metric name prefix")
        self.sampler = sampler
        self.prefix = prefix
        self.dcgm_names = dcgm_names
        self._hostname = hostname()

    def describe(self) -> list[Metric]:
        """Nothing up front: names depend on configuration, and scraping must stay cheap."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Yield the current metrics (none for a scrape not allowed to see GPU series)."""
        if not _GPU_SERIES_ALLOWED.get():
            return
        status = self.sampler.status()
        nvml = status["nvml"]
        p = self.prefix
        up = GaugeMetricFamily(f"{p}_nvml_up", "1 when NVML is usable by this server")
        up.add_metric([], 1.0 if nvml["available"] else 0.0)
        yield up
        info = GaugeMetricFamily(
            f"{p}_info",
            "gpu-devbox and driver versions",
            labels=["version", "driver_version", "cuda_driver_version", "simulated"],
        )
        info.add_metric(
            [
                status["version"],
                nvml["driver_version"] or "",
                nvml["cuda_driver_version"] or "",
                "true" if status["simulated"] else "false",
            ],
            1.0,
        )
        yield info

        gpus = self.sampler.snapshot().gpus
        labels = ["gpu", "uuid", "model"]
        for suffix, help_text, path, scale in _GAUGES:
            family = GaugeMetricFamily(f"{p}_{suffix}", help_text, labels=labels)
            for gpu in gpus:
                value = _value(gpu, path)
                if value is not None:
                    family.add_metric([str(gpu["index"]), gpu["uuid"], gpu["name"]], value * scale)
            yield family
        energy = CounterMetricFamily(
            f"{p}_energy_joules", "Energy used since the driver loaded", labels=labels
        )
        for gpu in gpus:
            value = _value(gpu, ("energy", "total"))
            if value is not None:
                energy.add_metric([str(gpu["index"]), gpu["uuid"], gpu["name"]], value)
        yield energy

        if self.dcgm_names:
            yield from self._dcgm(gpus)

    def _dcgm(self, gpus: tuple[dict[str, Any], ...]) -> Iterator[Metric]:
        labels = ["gpu", "UUID", "device", "modelName", "Hostname"]
        for name, help_text, path, scale in _DCGM:
            family = GaugeMetricFamily(name, help_text, labels=labels)
            for gpu in gpus:
                value = _value(gpu, path)
                if value is not None:
                    family.add_metric(
                        [
                            str(gpu["index"]),
                            gpu["uuid"],
                            f"nvidia{gpu['index']}",
                            gpu["name"],
                            self._hostname,
                        ],
                        value * scale,
                    )
            yield family


def register(collector: GpuCollector, registry: CollectorRegistry = REGISTRY) -> Callable[[], None]:
    """Register ``collector`` (jupyter-server serves ``REGISTRY``); returns the unregisterer."""
    registry.register(collector)

    def unregister() -> None:
        with contextlib.suppress(KeyError):  # already gone
            registry.unregister(collector)

    return unregister
