"""GPU metrics on jupyter-server's own ``/metrics``, read from the sampler's cache at scrape time.

Names use Prometheus base units (bytes, watts, joules, hertz, celsius, ratios) with the labels
``gpu`` (NVML index), ``uuid`` and ``model``. With ``c.GPUDevbox.prometheus_dcgm_names = True``
the collector also emits the DCGM-exporter names that existing Grafana dashboards query
(``DCGM_FI_DEV_GPU_UTIL`` in percent, ``DCGM_FI_DEV_FB_USED`` in MiB, ...), with DCGM's labels.
Both lists, with their help and scale, come from the field table
(:data:`gpu_devbox.gpus.fields.FIELDS`).
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
from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry

from gpu_devbox.gpus import Sampler, fields

METRIC_PREFIX = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")

#: The field table's rows with a Prometheus metric: gauges first, then counters (each in table
#: order), as (path in the GPU document, metric).
_METRICS: tuple[tuple[tuple[str, str], fields.Prometheus], ...] = tuple(
    ((f.group, f.key), f.prometheus)
    for counter in (False, True)
    for f in fields.FIELDS
    if f.prometheus is not None and f.prometheus.counter is counter
)
#: The rows with a dcgm-exporter alias.
_DCGM: tuple[tuple[tuple[str, str], fields.Dcgm], ...] = tuple(
    ((f.group, f.key), f.dcgm) for f in fields.FIELDS if f.dcgm is not None
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


def gpu_series_allowed() -> bool:
    """Whether the scrape in progress may see GPU series (for other collectors of GPU data)."""
    return _GPU_SERIES_ALLOWED.get()


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
        for path, metric in _METRICS:
            kind = CounterMetricFamily if metric.counter else GaugeMetricFamily
            family = kind(f"{p}_{metric.name}", metric.help, labels=labels)
            for gpu in gpus:
                value = _value(gpu, path)
                if value is not None:
                    family.add_metric(
                        [str(gpu["index"]), gpu["uuid"], gpu["name"]], value * metric.scale
                    )
            yield family

        if self.dcgm_names:
            yield from self._dcgm(gpus)

    def _dcgm(self, gpus: tuple[dict[str, Any], ...]) -> Iterator[Metric]:
        labels = ["gpu", "UUID", "device", "modelName", "Hostname"]
        for path, alias in _DCGM:
            family = GaugeMetricFamily(alias.name, alias.help, labels=labels)
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
                        value * alias.scale,
                    )
            yield family


def register(collector: Collector, registry: CollectorRegistry = REGISTRY) -> Callable[[], None]:
    """Register ``collector`` (jupyter-server serves ``REGISTRY``); returns the unregisterer."""
    registry.register(collector)

    def unregister() -> None:
        with contextlib.suppress(KeyError):  # already gone
            registry.unregister(collector)

    return unregister
