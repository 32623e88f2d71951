"""Which GPUs a request may benchmark: the sampler's view turned into worker targets.

The indices are the NVML indices gpu-devbox shows everywhere (``GET gpus``, the panel, ``gpu-devbox
metrics``); the worker is pointed at each GPU by UUID, so CUDA's own device order never matters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gpu_devbox.bench.run import DeviceTarget
from gpu_devbox.quote import brief

#: The most GPU indices one request may list (more GPUs than any one machine has).
MAX_DEVICES = 64


class DeviceError(ValueError):
    """The request names GPUs that cannot be benchmarked; the message says which and why."""


def parse_devices(raw: Any) -> list[int] | None:
    """Validate the ``devices`` field: ``None`` (omitted) or a list of distinct integers.

    Linear in the length of the list, which is checked first.

    Raises:
        DeviceError: not a list of at most :data:`MAX_DEVICES` distinct non-negative integers.
    """
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise DeviceError(f"devices must be a list of GPU indices, not {type(raw).__name__}")
    if len(raw) > MAX_DEVICES:
        raise DeviceError(f"devices lists {len(raw)} GPUs; at most {MAX_DEVICES} are allowed")
    seen: set[int] = set()
    for value in raw:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise DeviceError(f"devices must hold GPU indices (integers >= 0), not {brief(value)}")
        if value in seen:
            raise DeviceError(f"GPU {brief(value)} is listed twice in devices")
        seen.add(value)
    return list(raw)


def select_targets(
    gpus: Sequence[Mapping[str, Any]],
    requested: list[int] | None,
    *,
    simulated: bool = False,
    driver_version: str | None = None,
) -> tuple[DeviceTarget, ...]:
    """The targets for ``requested`` indices among the visible ``gpus`` (a sampler snapshot).

    Omitted devices mean the first visible GPU, or the CPU when there is none. An empty list
    means the CPU.

    Raises:
        DeviceError: an index is not visible, the GPUs are simulated, a GPU cannot be read (it
            was lost), or a MIG GPU shows no instance to run on.
    """
    by_index = {int(gpu["index"]): gpu for gpu in gpus}
    if requested is None:
        readable = [index for index, gpu in by_index.items() if not gpu.get("reason")]
        if simulated or not by_index:
            return ()
        requested = [min(readable or by_index)]
    for index in requested:
        if index not in by_index:
            visible = ", ".join(str(i) for i in sorted(by_index)) or "none"
            raise DeviceError(f"no visible GPU has index {brief(index)} (visible: {visible})")
    if requested and simulated:
        raise DeviceError(
            "the GPUs are simulated (the simulated backend is on), so only the CPU can be "
            "benchmarked: omit devices"
        )
    return tuple(_target(by_index[index], driver_version) for index in requested)


def _target(gpu: Mapping[str, Any], driver_version: str | None) -> DeviceTarget:
    index = int(gpu["index"])
    reason = gpu.get("reason")
    if reason:
        raise DeviceError(f"GPU {index} cannot be benchmarked: {reason['message']}")
    memory = gpu.get("memory") or {}
    mig = gpu.get("mig") or {}
    if mig.get("enabled"):
        instances = mig.get("instances") or []
        if not instances:
            raise DeviceError(
                f"GPU {index} is in MIG mode and none of its MIG instances is visible"
            )
        instance = instances[0]
        inst_memory = instance.get("memory") or {}
        total, used = inst_memory.get("total"), inst_memory.get("used")
        return DeviceTarget(
            index=index,
            uuid=str(instance["uuid"]),
            name=str(instance.get("name") or gpu.get("name") or ""),
            compute_capability=gpu.get("compute_capability"),
            memory_free=total - used if total is not None and used is not None else None,
            driver_version=driver_version,
        )
    return DeviceTarget(
        index=index,
        uuid=str(gpu["uuid"]),
        name=str(gpu.get("name") or ""),
        compute_capability=gpu.get("compute_capability"),
        memory_free=memory.get("free"),
        driver_version=driver_version,
    )
