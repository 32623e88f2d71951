"""The per-GPU documents the sampler publishes: a sample, a GPU that cannot be read, history.

Every GPU document has the same shape (the ``Gpu`` schema of the OpenAPI document), whether its
values were read or not: a GPU that NVML cannot read right now keeps its static facts, has
``null`` for every measured value and says why in ``reason``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gpu_devbox.gpus import fields
from gpu_devbox.gpus.errors import Reason
from gpu_devbox.gpus.nvml import Device
from gpu_devbox.gpus.reading import compile_projection

NO_MIG: dict[str, Any] = {"capable": False, "enabled": False, "pending": None, "instances": []}


#: What a GPU document holds of the slow groups before they were first read.
_NO_SLOW_VALUES = {group: fields.null_groups()[group] for group in fields.SLOW_GROUPS}


def sampled_gpu(
    device: Device,
    values: dict[str, Any],
    cached: Mapping[str, Any],
    mig_uuids: frozenset[str] | None,
) -> dict[str, Any]:
    """The document of a GPU read this tick (``cached``: its last costly fields)."""
    gpu = device.static_dict()
    gpu.update(values)
    for group in fields.SLOW_GROUPS:
        value = cached.get(group)
        gpu[group] = value if value is not None else _NO_SLOW_VALUES[group].copy()
    gpu["processes"] = cached.get("processes")
    gpu["mig"] = filter_mig(cached.get("mig"), mig_uuids)
    gpu["reason"] = None
    return gpu


def unreadable_gpu(device: Device, reason: Reason) -> dict[str, Any]:
    """The document of a GPU NVML cannot read: static facts, ``null`` values, the reason."""
    gpu = device.static_dict()
    groups = fields.null_groups()
    for group, known in device.known.items():
        groups[group].update(known)
    gpu.update(groups)
    gpu["processes"] = None
    gpu["mig"] = dict(NO_MIG)
    gpu["reason"] = reason.as_dict()
    return gpu


#: The part of one GPU's sample kept in the history: the time series the panel charts
#: (``index``, ``uuid`` and the charted fields of the field table).
history_entry = compile_projection(fields.CHARTED)


def filter_mig(mig: Mapping[str, Any] | None, allowed: frozenset[str] | None) -> dict[str, Any]:
    """A GPU's MIG document with only the ``allowed`` instances (all when ``None``)."""
    if mig is None:
        return dict(NO_MIG)
    if allowed is None:
        return dict(mig)
    return {**mig, "instances": [i for i in mig["instances"] if i["uuid"] in allowed]}
