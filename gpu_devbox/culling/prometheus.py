"""Reading every server's GPU activity from Prometheus in one query: the queries and their
answers, pure.

Two kinds of series are understood:

- **gpu-devbox's own**, which each server's ``/metrics`` exports: ``<prefix>_gpu_idle_seconds``,
  ``<prefix>_gpu_busy_timestamp_seconds``, ``<prefix>_gpu_memory_held`` (one per server) and
  ``<prefix>_utilization_ratio``, ``<prefix>_memory_used_bytes`` (one per GPU, with a
  ``model`` label). The scrape configuration gives each server's series its user and server
  name as labels (``username`` and ``servername`` by default; an empty or missing server label
  is the default server).
- **dcgm-exporter's** ``DCGM_FI_DEV_GPU_UTIL`` (percent) and ``DCGM_FI_DEV_FB_USED`` (MiB), with
  the ``namespace`` and ``pod`` labels dcgm-exporter adds on Kubernetes. The last time any GPU
  of a pod was at or above the busy utilization is found with a subquery over a look-back
  window; a pod with no busy sample in it has been idle at least that long (or since it
  started).

Idle times from Prometheus lag by up to one scrape interval; they only ever make a server look
*less* idle, and the culler reads a server's own status before it stops it.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from gpu_devbox.culling.observe import GPUs, Observation

#: A Prometheus label name.
LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
#: The label the DCGM query adds to tell its parts apart.
PART = "gpu_devbox_part"
MIB = 1024 * 1024


class PrometheusError(Exception):
    """Prometheus answered something the culler cannot use."""


class Sample(NamedTuple):
    """One element of an instant vector (a tuple: a thousand servers make many of them)."""

    labels: Mapping[str, str]
    value: float


def parse_vector(doc: Any) -> list[Sample]:
    """The samples of a ``/api/v1/query`` answer whose result is an instant vector.

    Raises:
        PrometheusError: an error answer, or not the documented shape.
    """
    if not isinstance(doc, Mapping):
        raise PrometheusError("the answer is not a JSON object")
    if doc.get("status") != "success":
        error = doc.get("error")
        reason = error if isinstance(error, str) else "no error message"
        raise PrometheusError(f"the query failed: {reason[:300]}")
    data = doc.get("data")
    if not isinstance(data, Mapping) or data.get("resultType") != "vector":
        raise PrometheusError("the answer is not an instant vector")
    result = data.get("result")
    if not isinstance(result, list):
        raise PrometheusError("the answer has no result list")
    out: list[Sample] = []
    for item in result:
        try:
            labels = item["metric"]
            raw = item["value"][1]
            value = float(raw)
        except (KeyError, IndexError, TypeError, ValueError):
            raise PrometheusError("a sample is not {metric, value: [time, number]}") from None
        if not isinstance(labels, Mapping) or not isinstance(raw, str):
            raise PrometheusError("a sample is not {metric, value: [time, number]}")
        out.append(Sample(labels, value))
    return out


def check_label(name: str) -> str:
    """A label name, or ValueError."""
    if not LABEL.match(name):
        raise ValueError(f"{name!r} is not a Prometheus label name")
    return name


# -------------------------------------------------------------------------------------------
# gpu-devbox's own series
# -------------------------------------------------------------------------------------------
def _part(expression: str, name: str) -> str:
    """``expression`` with the label :data:`PART` set to ``name`` (to tell the parts apart)."""
    return f'label_replace({expression}, "{PART}", "{name}", "", "")'


def gpu_devbox_query(
    prefix: str = "gpu_devbox", user_label: str = "username", server_label: str = "servername"
) -> str:
    """One query for the activity, memory and utilization of every server.

    Prometheus aggregates per server, so the answer has six small samples per server whatever
    its GPUs and however many labels the scrape adds.
    """
    by = f"{user_label}, {server_label}"
    return " or ".join(
        [
            _part(f"max by ({by}) ({prefix}_gpu_idle_seconds)", "idle"),
            _part(f"max by ({by}) ({prefix}_gpu_busy_timestamp_seconds)", "busy_at"),
            _part(f"max by ({by}) ({prefix}_gpu_memory_held)", "memory_held"),
            _part(f"avg by ({by}) ({prefix}_utilization_ratio)", "utilization"),
            _part(f"sum by ({by}) ({prefix}_memory_used_bytes)", "memory_used"),
            _part(f"count by ({by}, model) ({prefix}_utilization_ratio)", "models"),
        ]
    )


def gpu_devbox_hour_query(prefix: str, user_label: str, server_label: str) -> str:
    """Mean GPU utilization (0-1) of each server over the last hour."""
    return f"avg by ({user_label}, {server_label}) (avg_over_time({prefix}_utilization_ratio[1h]))"


def gpu_devbox_activity(
    samples: Iterable[Sample],
    *,
    user_label: str = "username",
    server_label: str = "servername",
) -> dict[tuple[str, str], Observation]:
    """Observations by ``(user, server name)`` from :func:`gpu_devbox_query`'s answer.

    A server appears once it has an idle series; a NaN idle or busy time (no GPU) is ``None``.
    """
    idle: dict[tuple[str, str], float] = {}
    busy: dict[tuple[str, str], float] = {}
    held: dict[tuple[str, str], bool] = {}
    util: dict[tuple[str, str], float] = {}
    memory: dict[tuple[str, str], int] = {}
    models: dict[tuple[str, str], list[str]] = {}
    for labels, value in samples:
        key = (labels.get(user_label, ""), labels.get(server_label, ""))
        if not key[0]:
            continue
        part = labels.get(PART)
        if part == "idle":
            idle[key] = value
        elif part == "busy_at":
            busy[key] = value
        elif not math.isfinite(value):
            continue
        elif part == "memory_held":
            held[key] = value > 0
        elif part == "utilization":
            util[key] = value * 100
        elif part == "memory_used":
            memory[key] = int(value)
        elif part == "models":
            models.setdefault(key, []).extend([labels.get("model", "GPU")] * max(0, int(value)))
    out: dict[tuple[str, str], Observation] = {}
    for key, seconds in idle.items():
        has_gpu = math.isfinite(seconds) and key in busy and math.isfinite(busy[key])
        names = tuple(sorted(models.get(key, ())))
        out[key] = Observation(
            gpu_busy_at=busy[key] if has_gpu else None,
            gpu_idle_seconds=max(0.0, seconds) if has_gpu else None,
            gpu_memory_held=held.get(key) if has_gpu else None,
            gpu_count=len(names),
            gpus=GPUs(names=names, utilization=util.get(key), memory_used=memory.get(key)),
        )
    return out


def hour_utilization(
    samples: Iterable[Sample], first_label: str, second_label: str, *, scale: float = 100.0
) -> dict[tuple[str, str], float]:
    """Percent utilization over the last hour by the two labels of an hour query."""
    return {
        (s.labels.get(first_label, ""), s.labels.get(second_label, "")): s.value * scale
        for s in samples
        if math.isfinite(s.value)
    }


# -------------------------------------------------------------------------------------------
# dcgm-exporter's series
# -------------------------------------------------------------------------------------------
def dcgm_query(
    *,
    busy_utilization: float,
    lookback: float,
    step: float,
    namespace_label: str = "namespace",
    pod_label: str = "pod",
) -> str:
    """One query: each pod's last busy time, utilization now, memory used and GPU models."""
    by = f"{namespace_label}, {pod_label}"
    window = f"[{int(lookback)}s:{max(1, int(step))}s]"

    return " or ".join(
        [
            _part(
                f"max by ({by}) (max_over_time(timestamp(DCGM_FI_DEV_GPU_UTIL >= "
                f"{busy_utilization:g}){window}))",
                "busy_at",
            ),
            _part(f"avg by ({by}) (DCGM_FI_DEV_GPU_UTIL)", "utilization"),
            _part(f"sum by ({by}) (DCGM_FI_DEV_FB_USED)", "memory_used_mib"),
            _part(f"count by ({by}, modelName) (DCGM_FI_DEV_GPU_UTIL)", "models"),
        ]
    )


def dcgm_hour_query(namespace_label: str = "namespace", pod_label: str = "pod") -> str:
    """Mean GPU utilization (percent) of each pod over the last hour."""
    return f"avg by ({namespace_label}, {pod_label}) (avg_over_time(DCGM_FI_DEV_GPU_UTIL[1h]))"


@dataclasses.dataclass(frozen=True)
class PodActivity:
    """What the DCGM query says about one pod."""

    #: The last busy time in the look-back window (Prometheus' clock), if any.
    busy_at: float | None
    gpus: GPUs
    gpu_count: int


def dcgm_activity(
    samples: Iterable[Sample], *, namespace_label: str = "namespace", pod_label: str = "pod"
) -> dict[tuple[str, str], PodActivity]:
    """Activity by ``(namespace, pod)`` from :func:`dcgm_query`'s answer."""
    busy: dict[tuple[str, str], float] = {}
    util: dict[tuple[str, str], float] = {}
    memory: dict[tuple[str, str], int] = {}
    models: dict[tuple[str, str], list[str]] = {}
    for sample in samples:
        labels = sample.labels
        key = (labels.get(namespace_label, ""), labels.get(pod_label, ""))
        if not key[1] or not math.isfinite(sample.value):
            continue
        part = labels.get(PART)
        if part == "busy_at":
            busy[key] = sample.value
        elif part == "utilization":
            util[key] = sample.value
        elif part == "memory_used_mib":
            memory[key] = int(sample.value * MIB)
        elif part == "models":
            models.setdefault(key, []).extend(
                [labels.get("modelName", "GPU")] * max(0, int(sample.value))
            )
    return {
        key: PodActivity(
            busy_at=busy.get(key),
            gpus=GPUs(
                names=tuple(sorted(models.get(key, ()))),
                utilization=util.get(key),
                memory_used=memory.get(key),
            ),
            gpu_count=len(models.get(key, ())),
        )
        for key in util.keys() | models.keys()
    }


def dcgm_observation(
    activity: PodActivity, *, now: float, started: float | None, lookback: float
) -> Observation:
    """An observation from a pod's DCGM activity, with the time the query was evaluated.

    With no busy sample in the look-back window the GPUs have been idle since the window
    began, or since the server started when that is later.
    """
    if activity.busy_at is not None:
        busy_at = activity.busy_at
    else:
        busy_at = max(now - lookback, started if started is not None else now - lookback)
    busy_at = min(busy_at, now)
    return Observation(
        gpu_busy_at=busy_at,
        gpu_idle_seconds=now - busy_at,
        gpu_memory_held=(activity.gpus.memory_used or 0) > 0
        if activity.gpus.memory_used is not None
        else None,
        gpu_count=activity.gpu_count,
        gpus=activity.gpus,
    )


def summarize(observations: Sequence[Observation]) -> tuple[int, int]:
    """``(servers with a GPU, servers without)`` among observations, for the log."""
    with_gpu = sum(1 for o in observations if o.has_gpu)
    return with_gpu, len(observations) - with_gpu
