"""Per-kernel GPU memory on ``/metrics`` (``c.GPUDevbox.prometheus_kernel_metrics``: off by
default).

Two families, read from the attribution of the sampler's latest sample at scrape time:

* ``<prefix>_kernel_memory_used_bytes{gpu, kernel, kernel_name}``: the GPU memory a kernel holds
  where it is known exactly (memory shared with other kernels that cannot be split honestly is
  left out). ``kernel`` is the first 8 characters of the kernel id, ``kernel_name`` its
  kernelspec: low-cardinality labels, and at most :data:`MAX_KERNELS` kernels (the ones holding
  the most memory) per scrape, so a server with many kernels cannot flood a Prometheus server.
* ``<prefix>_processes{gpu, owner}``: how many compute processes each GPU runs, by owner type
  (``kernel``, ``terminal``, ``process``, ``other``, ``uncertain``).

Only scrapes allowed to see GPU series get them (see :mod:`gpu_devbox.server.metrics_handler`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, CollectorRegistry

from gpu_devbox.attribution import Attributor
from gpu_devbox.server import prometheus

#: The most kernels exported per scrape.
MAX_KERNELS = 64
#: Characters of a kernel id in the ``kernel`` label.
SHORT_ID = 8
OWNER_TYPES = ("kernel", "terminal", "process", "other", "uncertain")


class KernelCollector:
    """A Prometheus collector of per-kernel GPU memory over an :class:`Attributor`."""

    def __init__(self, attributor: Attributor, *, prefix: str = "gpu_devbox") -> None:
        if not prometheus.METRIC_PREFIX.match(prefix):
            raise ValueError(f"{prefix!r} is not a valid Prometheus metric name prefix")
        self.attributor = attributor
        self.prefix = prefix

    def describe(self) -> list[Metric]:
        """Nothing up front (as the GPU collector)."""
        return []

    def collect(self) -> Iterator[Metric]:
        """The two families (none for a scrape not allowed to see GPU series)."""
        if not prometheus._GPU_SERIES_ALLOWED.get():
            return
        document = self.attributor.kernels()
        memory = GaugeMetricFamily(
            f"{self.prefix}_kernel_memory_used_bytes",
            "GPU memory a kernel holds (where known exactly), by the first 8 characters of its id",
            labels=["gpu", "kernel", "kernel_name"],
        )
        held = []
        for kernel in document["kernels"]:
            rows = [(str(g["index"]), g["memory"]) for g in kernel["gpus"] if g["memory"]]
            if rows:
                total = sum(m for _, m in rows)
                held.append((total, kernel["id"][:SHORT_ID], kernel["name"], rows))
        # the kernels holding the most memory, in a stable order
        for _, kernel_id, name, rows in sorted(sorted(held, key=lambda k: -k[0])[:MAX_KERNELS]):
            for gpu, value in rows:
                memory.add_metric([gpu, kernel_id, name], float(value))
        yield memory

        processes = GaugeMetricFamily(
            f"{self.prefix}_processes",
            "Compute processes on the GPU, by whose they are",
            labels=["gpu", "owner"],
        )
        counts: dict[str, dict[str, int]] = {}
        for gpu in document["gpus"]:
            row = counts.setdefault(str(gpu["index"]), dict.fromkeys(OWNER_TYPES, 0))
            row["other"] = gpu["others"]
            row["uncertain"] = gpu["uncertain"]
        for kind, items in (
            ("kernel", document["kernels"]),
            ("terminal", document["terminals"]),
            ("process", document["processes"]),
        ):
            for item in items:
                for gpu in item["gpus"]:
                    certain = sum(1 for p in gpu["processes"] if p["certain"])
                    counts.setdefault(str(gpu["index"]), dict.fromkeys(OWNER_TYPES, 0))[kind] += (
                        certain
                    )
        for gpu, row in sorted(counts.items()):
            for kind in OWNER_TYPES:
                processes.add_metric([gpu, kind], float(row[kind]))
        yield processes


def register(
    collector: KernelCollector, registry: CollectorRegistry = REGISTRY
) -> Callable[[], None]:
    """Register ``collector``; returns the unregisterer."""
    registry.register(collector)

    def unregister() -> None:
        with contextlib.suppress(KeyError):
            registry.unregister(collector)

    return unregister
