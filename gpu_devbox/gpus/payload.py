"""The per-GPU documents the sampler publishes: a sample, a GPU that cannot be read, history.

Every GPU document has the same shape (the ``Gpu`` schema of the OpenAPI document), whether its
values were read or not: a GPU that NVML cannot read right now keeps its static facts, has
``null`` for every measured value and says why in ``reason``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gpu_devbox.gpus import fields
from gpu_devbox.gpus.errors import Reason
from gpu_devbox.gpus.nvml import Device
from gpu_devbox.gpus.reading import HISTORY_IDENTITY

NO_MIG: dict[str, Any] = {"capable": False, "enabled": False, "pending": None, "instances": []}


#: What a GPU document holds of the slow groups before they were first read.
_NO_SLOW_VALUES = {group: fields.null_groups()[group] for group in fields.SLOW_GROUPS}


def sampled_tail(cached: Mapping[str, Any], mig_uuids: frozenset[str] | None) -> dict[str, Any]:
    """What follows the per-tick groups in a readable GPU's document: the slow groups, the
    processes and MIG from the last costly reading (``cached``), and no reason.

    The sampler makes it when the costly fields are read and merges the same one into every
    document until the next reading: it is never changed once made.
    """
    tail: dict[str, Any] = {}
    for group in fields.SLOW_GROUPS:
        value = cached.get(group)
        tail[group] = value if value is not None else _NO_SLOW_VALUES[group].copy()
    tail["processes"] = cached.get("processes")
    tail["mig"] = filter_mig(cached.get("mig"), mig_uuids)
    tail["reason"] = None
    return tail


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


def history_entry(gpu: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a GPU document the history keeps: ``index``, ``uuid`` and the charted
    fields of the field table (the time series the panel charts).

    The per-tick reader makes the entry of every GPU it reads together with its document
    (:func:`gpu_devbox.gpus.reading.source`); this makes it for any other document, such as
    that of a GPU that cannot be read.
    """
    entry = {key: gpu[key] for key in HISTORY_IDENTITY}
    for group, keys in fields.CHARTED:
        values = gpu[group]
        entry[group] = {key: values[key] for key in keys}
    return entry


def filter_mig(mig: Mapping[str, Any] | None, allowed: frozenset[str] | None) -> dict[str, Any]:
    """A GPU's MIG document with only the ``allowed`` instances (all when ``None``)."""
    if mig is None:
        return dict(NO_MIG)
    if allowed is None:
        return dict(mig)
    return {**mig, "instances": [i for i in mig["instances"] if i["uuid"] in allowed]}


# ---------------------------------------------------------------------------------------------
# the JSON Schemas of the documents (the ``Gpu`` and ``HistoryGpu`` schemas of openapi.json)
# ---------------------------------------------------------------------------------------------
def _nullable(kind: str, description: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": [kind, "null"]}
    if description:
        schema["description"] = description
    return schema


def _object(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
        **extra,
    }


def field_schema(field: fields.GpuField) -> dict[str, Any]:
    """The JSON Schema of one measured value: its type (or ``null``), meaning and unit."""
    return _nullable(field.type, f"{field.description} Unit: {field.unit}.")


def _groups_schema(keep: Callable[[fields.GpuField], bool]) -> dict[str, Any]:
    groups: dict[str, dict[str, Any]] = {}
    for field in fields.FIELDS:
        if keep(field):
            groups.setdefault(field.group, {})[field.key] = field_schema(field)
    return {group: _object(properties) for group, properties in groups.items()}


_IDENTITY: dict[str, Any] = {
    "index": {
        "type": "integer",
        "minimum": 0,
        "description": "NVML index (as nvidia-smi shows it).",
    },
    "uuid": {"type": "string"},
    "name": {"type": "string"},
    "serial": _nullable("string"),
    "pci_bus_id": _nullable("string"),
    "compute_capability": {**_nullable("string"), "pattern": r"^[0-9]+\.[0-9]+$"},
    "minor_number": {
        "type": ["integer", "null"],
        "minimum": 0,
        "description": "The minor number of the GPU's device file, `/dev/nvidia<minor>` "
        "(`nvmlDeviceGetMinorNumber`): how processes of this server are matched to the GPU "
        "inside a container. `null` when NVML does not report it.",
    },
}

_MIG_SCHEMA = _object(
    {
        "capable": {"type": "boolean"},
        "enabled": {"type": "boolean"},
        "pending": _nullable("boolean"),
        "instances": {"type": "array", "items": {"$ref": "#/components/schemas/MigInstance"}},
    }
)

_PROCESSES_SCHEMA: dict[str, Any] = {
    "type": ["array", "null"],
    "description": "Compute processes; PIDs are the host's inside containers. `null` when NVML "
    "does not list them (no permission).",
    "items": {
        "title": "GpuProcess",
        **_object(
            {
                "pid": {
                    "type": "integer",
                    "description": "The PID NVML reports: the host's, inside a container with "
                    "its own PID namespace.",
                },
                "used_memory": _nullable("integer", "GPU memory the process uses. Unit: bytes."),
                "gpu_instance_id": _nullable(
                    "integer", "The MIG GPU instance the process runs on; `null` without MIG."
                ),
                "sm_utilization": _nullable(
                    "integer",
                    "Mean share of time the process ran kernels on the SMs since the previous "
                    "slow reading (`nvmlDeviceGetProcessUtilization`; 0 for a process that did "
                    "not); `null` where NVML cannot report it (MIG, older GPUs). Unit: %.",
                ),
                "local_pid": _nullable(
                    "integer",
                    "The process's PID in this server's PID namespace; `null` when it is not "
                    "one of this server's processes, or when which one cannot be told apart "
                    "(see docs/metrics.md, Who uses the GPU).",
                ),
                "owner": {
                    "oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/ProcessOwner"}],
                    "description": "Whose process this is: a kernel (its child processes "
                    "included), a terminal (anything started from it), another process of this "
                    "server's container, or `other` (not this server's: counted, not named). "
                    "`null` when it cannot be told for certain (several candidates; "
                    "`GET kernels` names them) or attribution is not running.",
                },
            }
        ),
    },
}

_REASON_SCHEMA: dict[str, Any] = {
    "oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/GpuReason"}],
    "description": "`null` while the GPU answers; otherwise why it cannot be read (e.g. "
    "`gpu_lost`).",
}


def schemas() -> dict[str, dict[str, Any]]:
    """The ``Gpu`` and ``HistoryGpu`` schemas of the OpenAPI document, from the field table."""
    gpu = _object(
        {
            **_IDENTITY,
            **_groups_schema(lambda field: True),
            "mig": _MIG_SCHEMA,
            "processes": _PROCESSES_SCHEMA,
            "reason": _REASON_SCHEMA,
        },
        description="One GPU. A GPU that NVML cannot read right now (lost, or failing) keeps "
        "its static facts, has `null` for every measured value and says why in `reason`; the "
        "other GPUs are not affected.",
    )
    history = _object(
        {
            "index": {"type": "integer"},
            "uuid": {"type": "string"},
            **_groups_schema(lambda field: field.charted),
        },
        description="One GPU in a history sample: only the fields the panel charts.",
    )
    return {"Gpu": gpu, "HistoryGpu": history}
