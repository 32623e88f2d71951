"""The per-GPU documents the sampler publishes: a sample, a GPU that cannot be read, history.

Every GPU document has the same shape (the ``Gpu`` schema of the OpenAPI document), whether its
values were read or not: a GPU that NVML cannot read right now keeps its static facts, has
``null`` for every measured value and says why in ``reason``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gpu_devbox.gpus.errors import Reason
from gpu_devbox.gpus.nvml import Device

NO_MIG: dict[str, Any] = {"capable": False, "enabled": False, "pending": None, "instances": []}


def sampled_gpu(
    device: Device,
    values: dict[str, Any],
    cached: Mapping[str, Any],
    mig_uuids: frozenset[str] | None,
) -> dict[str, Any]:
    """The document of a GPU read this tick (``cached``: its last costly fields)."""
    gpu = device.static_dict()
    gpu.update(values)
    gpu["energy"] = cached.get("energy", {"total": None})
    gpu["ecc"] = cached.get("ecc", {"uncorrected_volatile": None})
    gpu["processes"] = cached.get("processes")
    gpu["mig"] = filter_mig(cached.get("mig"), mig_uuids)
    gpu["reason"] = None
    return gpu


def unreadable_gpu(device: Device, reason: Reason) -> dict[str, Any]:
    """The document of a GPU NVML cannot read: static facts, ``null`` values, the reason."""
    gpu = device.static_dict()
    gpu.update(
        {
            "utilization": {"gpu": None, "memory": None},
            "memory": {"total": device.memory_total, "used": None, "reserved": None, "free": None},
            "temperature": {"gpu": None},
            "power": {"usage": None, "limit": device.power_limit},
            "clocks": {
                "sm": None,
                "memory": None,
                "sm_max": device.max_clocks["sm"],
                "memory_max": device.max_clocks["memory"],
            },
            "pcie": {"tx": None, "rx": None},
            "energy": {"total": None},
            "ecc": {"uncorrected_volatile": None},
            "processes": None,
            "mig": dict(NO_MIG),
            "reason": reason.as_dict(),
        }
    )
    return gpu


def history_entry(gpu: dict[str, Any]) -> dict[str, Any]:
    """The part of one GPU's sample kept in the history: the time series the panel charts."""
    util, memory, clocks, pcie = gpu["utilization"], gpu["memory"], gpu["clocks"], gpu["pcie"]
    return {
        "index": gpu["index"],
        "uuid": gpu["uuid"],
        "utilization": {"gpu": util["gpu"], "memory": util["memory"]},
        "memory": {"used": memory["used"], "reserved": memory["reserved"]},
        "temperature": {"gpu": gpu["temperature"]["gpu"]},
        "power": {"usage": gpu["power"]["usage"]},
        "clocks": {"sm": clocks["sm"], "memory": clocks["memory"]},
        "pcie": {"tx": pcie["tx"], "rx": pcie["rx"]},
    }


def filter_mig(mig: Mapping[str, Any] | None, allowed: frozenset[str] | None) -> dict[str, Any]:
    """A GPU's MIG document with only the ``allowed`` instances (all when ``None``)."""
    if mig is None:
        return dict(NO_MIG)
    if allowed is None:
        return dict(mig)
    return {**mig, "instances": [i for i in mig["instances"] if i["uuid"] in allowed]}
