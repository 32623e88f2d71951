"""The field table, compiled into the functions the sampler runs on every tick.

The sampler reads every GPU every ``c.GPUDevbox.interval`` seconds, so the code between NVML and
the GPU document is its hot path. Walking the table row by row on each tick would cost several
microseconds per GPU more than code written out by hand; instead, the table is turned into such
code once, when the module is imported or NVML is opened, the way :mod:`dataclasses` writes
``__init__`` from a class's fields. For today's table, the fast reader is::

    def read_fast(device):
        handle = device.handle
        try:
            a0 = f0(handle)  # nvmlDeviceGetUtilizationRates
        except error as exc:
            a0 = tolerated(exc)
        a1 = ask1(device)  # nvmlDeviceGetMemoryInfo (v2, then v1)
        ...
        known = device.known
        return {
            **device.identity,
            "utilization": {
                "gpu": None if a0 is None else int(a0.gpu),
                "memory": None if a0 is None else int(a0.memory),
            },
            ...
            "power": {
                "usage": None if a3 is None else a3 / 1000.0,
                "limit": known["power"]["limit"],
            },
            ...
        }

:func:`source` shows the code generated for a table. Nothing here calls NVML or imports
``pynvml``: the adapter passes in the functions to call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping
from typing import Any

from gpu_devbox.gpus import fields

Groups = dict[str, dict[str, Any]]


#: A way to get a call's answer from a device (``None``: no answer).
Ask = Callable[[Any], Any]


@dataclasses.dataclass(frozen=True)
class Call:
    """Call ``function(handle, *args)`` in place; an NVML error goes through the adapter's
    rules. When it gives no answer, ``fallback`` (the call's other entry points) is asked."""

    function: Callable[..., Any]
    args: tuple[int, ...] = ()
    fallback: Ask | None = None


def calls(cadence: fields.Cadence) -> list[fields.Nvml]:
    """The distinct NVML calls that answer the fields of ``cadence``, in table order."""
    seen: dict[fields.Nvml, None] = {}
    for field in fields.FIELDS:
        if field.cadence is cadence:
            seen.setdefault(call_of(field), None)
    return list(seen)


def call_of(field: fields.GpuField) -> fields.Nvml:
    """The call that answers ``field`` (fields that differ only by member share one)."""
    return dataclasses.replace(field.nvml, member=None)


def groups_of(cadence: fields.Cadence) -> list[tuple[str, list[fields.GpuField]]]:
    """The groups a reading of ``cadence`` returns, each with its fields in document order.

    A group holds the fields of one cadence; a per-tick group also shows its static fields
    (the power limit beside the power draw), from what the device kept at open.
    """
    out: dict[str, list[fields.GpuField]] = {}
    for field in fields.FIELDS:
        if field.cadence is cadence:
            out.setdefault(field.group, [])
    for field in fields.FIELDS:
        if field.group in out and (
            field.cadence is cadence or field.cadence is fields.Cadence.STATIC
        ):
            out[field.group].append(field)
    return list(out.items())


def _value(field: fields.GpuField, cadence: fields.Cadence, answer: str) -> str:
    """The expression of one field's payload value."""
    if field.cadence is not cadence:  # a static field shown in a per-tick group
        return f"known[{field.group!r}][{field.key!r}]"
    nvml = field.nvml
    raw = f"{answer}.{nvml.member}" if nvml.member else answer
    if nvml.reader is not None:  # a dedicated reader answers in payload units already
        return f"None if {answer} is None else {raw}"
    if nvml.per == 1:
        return f"None if {answer} is None else int({raw})"
    return f"None if {answer} is None else {raw} / {float(nvml.per)!r}"


def source(cadence: fields.Cadence, sources: Mapping[fields.Nvml, Call | Ask]) -> str:
    """The Python source of the reader of ``cadence`` (``sources``: see :func:`compile_reader`)."""
    names = {call: f"a{i}" for i, call in enumerate(calls(cadence))}
    lines = ["def read(device):", "    handle = device.handle"]
    for i, (call, answer) in enumerate(names.items()):
        comment = f"  # {call.call}"
        how = sources[call]
        if isinstance(how, Call):
            arguments = "".join(f", {int(arg)!r}" for arg in how.args)
            lines += [
                "    try:",
                f"        {answer} = f{i}(handle{arguments}){comment}",
                "    except error as exc:",
                f"        {answer} = tolerated(exc)",
            ]
            if how.fallback is not None:
                lines += [f"    if {answer} is None:", f"        {answer} = ask{i}(device)"]
        else:
            lines.append(f"    {answer} = ask{i}(device){comment}")
    lines += ["    known = device.known", "    return {"]
    if cadence is fields.Cadence.FAST:
        # The per-tick reading starts the GPU document: the static facts, then the groups
        # (the sampler adds the rest to the same dict).
        lines.append("        **device.identity,")
    for group, group_fields in groups_of(cadence):
        lines.append(f"        {group!r}: {{")
        for field in group_fields:
            answer = names.get(call_of(field), "None")
            lines.append(f"            {field.key!r}: {_value(field, cadence, answer)},")
        lines.append("        },")
    lines.append("    }")
    return "\n".join(lines) + "\n"


def compile_reader(
    cadence: fields.Cadence,
    sources: Mapping[fields.Nvml, Call | Ask],
    *,
    error: type[BaseException],
    tolerated: Callable[[BaseException], None],
) -> Callable[[Any], Groups]:
    """The function that reads the fields of ``cadence`` of one device into their groups.

    The per-tick reader puts the device's static facts (``device.identity``) first: what it
    returns is the start of the GPU document, made in one dict.

    Args:
        cadence: which fields to read.
        sources: how to get each call's answer (see :func:`calls`).
        error: the binding's error class (``pynvml.NVMLError``).
        tolerated: maps an NVML error of an in-place call to ``None`` (the field is unavailable)
            or raises (NVML, or this GPU, is unusable).
    """
    namespace: dict[str, Any] = {"error": error, "tolerated": tolerated}
    for i, call in enumerate(calls(cadence)):
        how = sources[call]
        if isinstance(how, Call):
            namespace[f"f{i}"] = how.function
            namespace[f"ask{i}"] = how.fallback
        else:
            namespace[f"ask{i}"] = how
    code = source(cadence, sources)
    exec(compile(code, f"<gpu-devbox {cadence.value} reader>", "exec"), namespace)  # noqa: S102 - code generated from the field table above, never from input
    reader: Callable[[Any], Groups] = namespace["read"]
    return reader


def compile_projection(
    groups: tuple[tuple[str, tuple[str, ...]], ...], whole: Collection[str] = ()
) -> Callable[[Any], Any]:
    """A function keeping ``index``, ``uuid`` and the given groups and keys of a GPU document.

    The history keeps, on every tick, the charted fields of every GPU: this is that copy. The
    groups named in ``whole`` hold exactly the given keys in the document, in that order: the
    copy shares them with the document instead of building them again (neither is changed
    after it is made; both are serialised at once).
    """
    lines = ["def project(gpu):"]
    lines += [f"    g{i} = gpu[{group!r}]" for i, (group, _) in enumerate(groups)]
    lines += ["    return {", "        'index': gpu['index'],", "        'uuid': gpu['uuid'],"]
    for i, (group, keys) in enumerate(groups):
        if group in whole:
            lines.append(f"        {group!r}: g{i},")
            continue
        values = ", ".join(f"{key!r}: g{i}[{key!r}]" for key in keys)
        lines.append(f"        {group!r}: {{{values}}},")
    lines.append("    }")
    namespace: dict[str, Any] = {}
    exec(compile("\n".join(lines) + "\n", "<gpu-devbox history entry>", "exec"), namespace)  # noqa: S102 - generated from the field table
    project: Callable[[Any], Any] = namespace["project"]
    return project
