"""The field table, compiled into the functions the sampler runs on every tick.

The sampler reads every GPU every ``c.GPUDevbox.interval`` seconds, so the code between NVML and
the GPU document is its hot path. Walking the table row by row on each tick would cost several
microseconds per GPU more than code written out by hand; instead, the table is turned into such
code once, when the module is imported or NVML is opened, the way :mod:`dataclasses` writes
``__init__`` from a class's fields. For today's table, the per-tick reader is::

    def read(device, template):
        handle = device.handle
        try:
            a0 = f0(handle)  # nvmlDeviceGetUtilizationRates
        except error as exc:
            a0 = tolerated(exc)
        a1 = ask1(device)  # nvmlDeviceGetMemoryInfo (v2, then v1)
        ...
        known = device.known
        identity = device.identity
        v0 = None if a0 is None else a0.gpu
        ...
        g0 = {'gpu': v0, 'memory': v1}
        ...
        document = identity.copy()
        document['utilization'] = g0
        document['memory'] = {'total': v2, 'used': v3, 'reserved': v4, 'free': v5}
        ...
        document['power'] = {'usage': v7, 'limit': known['power']['limit']}
        ...
        identity = device.identity
        entry = {
            'index': identity['index'],
            'uuid': identity['uuid'],
            'utilization': g0,
            'memory': {'used': v3, 'reserved': v4},
            ...
        }
        return document, entry

It makes the GPU document and the GPU's history entry (the charted fields) from the same
values, in one go. The document is a copy of a :func:`template` (the static facts, the per-tick
groups, then what the sampler keeps between costly readings) with this tick's groups set: a
dict copied whole is made in one step, where one built key by key grows several times. A
dedicated reader of the adapter may be written in place too (:class:`Inline`: the memory
information and the PCIe rates).

:func:`source` shows the code generated for a table. Nothing here calls NVML or imports
``pynvml``: the adapter passes in the functions to call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
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


@dataclasses.dataclass(frozen=True)
class Inline:
    """Statements that answer a call in place, written by the adapter (a dedicated reader on
    the hot path: a call of its own costs a tick more than the statements).

    ``{a}`` in ``lines`` stands for the answer's name: the statements set ``{a}_<member>`` for
    each member the call's fields read, from ``handle`` and ``device`` and the names of
    ``namespace`` (and ``error`` and ``tolerated``, as for :class:`Call`).
    """

    lines: tuple[str, ...]
    namespace: Mapping[str, Any] = dataclasses.field(default_factory=dict)


#: How a reader gets one call's answer.
Source = Call | Inline | Ask


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


def _value(field: fields.GpuField, answer: str, how: Source) -> str:
    """The expression of the payload value of ``field`` (read this tick), answered by ``answer``."""
    nvml = field.nvml
    if isinstance(how, Inline):
        return f"{answer}_{nvml.member}"
    if not nvml.member and (nvml.reader is not None or nvml.per == 1):
        return answer
    raw = f"{answer}.{nvml.member}" if nvml.member else answer
    if nvml.reader is not None or nvml.per == 1:
        # A dedicated reader answers in payload units already; the binding's integers are
        # Python integers (ctypes converts them) and pass on as they are.
        return f"None if {answer} is None else {raw}"
    return f"None if {answer} is None else {raw} / {float(nvml.per)!r}"


def _known(field: fields.GpuField) -> str:
    """The expression of a static field shown in a per-tick group: what the device kept."""
    return f"known[{field.group!r}][{field.key!r}]"


def _calls_source(cadence: fields.Cadence, sources: Mapping[fields.Nvml, Source]) -> list[str]:
    """The statements that get each call's answer, ``a<i>`` for the ``i``-th call."""
    lines = []
    for i, call in enumerate(calls(cadence)):
        answer = f"a{i}"
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
        elif isinstance(how, Inline):
            lines.append(f"    {comment.strip()}")
            lines += [f"    {line.replace('{a}', answer)}" for line in how.lines]
        else:
            lines.append(f"    {answer} = ask{i}(device){comment}")
    return lines


def source(cadence: fields.Cadence, sources: Mapping[fields.Nvml, Source]) -> str:
    """The Python source of the reader of ``cadence`` (``sources``: see :func:`compile_reader`).

    The per-tick reader (:attr:`~gpu_devbox.gpus.fields.Cadence.FAST`) takes the document's
    :func:`template` and returns the document and its history entry; the others return their
    groups.
    """
    answers = {call: f"a{i}" for i, call in enumerate(calls(cadence))}
    tick = cadence is fields.Cadence.FAST
    signature = "def read(device, template):" if tick else "def read(device):"
    lines = [signature, "    handle = device.handle"]
    lines += _calls_source(cadence, sources)
    lines.append("    known = device.known")
    # Each value read this tick, in a local: the document and the history entry share it.
    values: dict[tuple[str, str], str] = {}
    for field in fields.FIELDS:
        if field.cadence is cadence:
            call = call_of(field)
            name = values[field.group, field.key] = f"v{len(values)}"
            lines.append(f"    {name} = {_value(field, answers[call], sources[call])}")

    def group_source(group: str, group_fields: list[fields.GpuField]) -> str:
        items = (f"{f.key!r}: {values.get((group, f.key)) or _known(f)}" for f in group_fields)
        return "{" + ", ".join(items) + "}"

    groups = groups_of(cadence)
    if not tick:
        lines.append("    return {")
        lines += [f"        {group!r}: {group_source(group, fs)}," for group, fs in groups]
        lines += ["    }"]
        return "\n".join(lines) + "\n"
    charted = dict(fields.CHARTED)
    late = {group for group, keys in charted.items() if any((group, k) not in values for k in keys)}
    if late:
        raise ValueError(f"charted fields must be read on every tick: {sorted(late)}")
    # The groups the history entry keeps whole are made once, for both.
    shared: dict[str, str] = {}
    for group, group_fields in groups:
        if charted.get(group) == tuple(f.key for f in group_fields):
            shared[group] = f"g{len(shared)}"
            lines.append(f"    {shared[group]} = {group_source(group, group_fields)}")
    lines.append("    document = template.copy()")
    for group, group_fields in groups:
        made = shared.get(group) or group_source(group, group_fields)
        lines.append(f"    document[{group!r}] = {made}")
    lines += ["    identity = device.identity", "    entry = {"]
    lines += [f"        {key!r}: identity[{key!r}]," for key in HISTORY_IDENTITY]
    for group, keys in fields.CHARTED:
        kept = (
            shared.get(group)
            or "{" + ", ".join(f"{key!r}: {values[group, key]}" for key in keys) + "}"
        )
        lines.append(f"        {group!r}: {kept},")
    lines += ["    }", "    return document, entry"]
    return "\n".join(lines) + "\n"


#: The identity a history entry keeps of its GPU, before the charted groups.
HISTORY_IDENTITY = ("index", "uuid")


#: The per-tick reader: a device and its document's template in, its document and history
#: entry out.
TickReader = Callable[[Any, dict[str, Any]], tuple[dict[str, Any], dict[str, Any]]]


def template(identity: Mapping[str, Any], tail: Mapping[str, Any]) -> dict[str, Any]:
    """What the per-tick reader copies to start a GPU document: the static facts
    (``identity``), the per-tick groups (``None`` until read), then ``tail`` (what follows them:
    the slow groups, processes, MIG and reason, as the sampler keeps them)."""
    document = dict(identity)
    for group, _ in groups_of(fields.Cadence.FAST):
        document[group] = None
    document.update(tail)
    return document


def compile_reader(
    cadence: fields.Cadence,
    sources: Mapping[fields.Nvml, Source],
    *,
    error: type[BaseException],
    tolerated: Callable[[BaseException], None],
) -> Callable[[Any], Groups]:
    """The function that reads the fields of ``cadence`` (static or slow) of one device into
    their groups.

    Args:
        cadence: which fields to read.
        sources: how to get each call's answer (see :func:`calls`).
        error: the binding's error class (``pynvml.NVMLError``).
        tolerated: maps an NVML error of an in-place call to ``None`` (the field is unavailable)
            or raises (NVML, or this GPU, is unusable).
    """
    if cadence is fields.Cadence.FAST:
        raise ValueError("the per-tick reader is compile_tick_reader()'s")
    reader: Callable[[Any], Groups] = _compile(cadence, sources, error, tolerated)
    return reader


def compile_tick_reader(
    sources: Mapping[fields.Nvml, Source],
    *,
    error: type[BaseException],
    tolerated: Callable[[BaseException], None],
) -> TickReader:
    """The function that reads one device's per-tick fields: ``read(device, template)``
    returns the GPU document (a copy of ``template``, see :func:`template`, with this tick's
    groups) and its history entry.

    Arguments as for :func:`compile_reader`.
    """
    reader: TickReader = _compile(fields.Cadence.FAST, sources, error, tolerated)
    return reader


def _compile(
    cadence: fields.Cadence,
    sources: Mapping[fields.Nvml, Source],
    error: type[BaseException],
    tolerated: Callable[[BaseException], None],
) -> Any:
    namespace: dict[str, Any] = {"error": error, "tolerated": tolerated}
    for i, call in enumerate(calls(cadence)):
        how = sources[call]
        if isinstance(how, Call):
            namespace[f"f{i}"] = how.function
            namespace[f"ask{i}"] = how.fallback
        elif isinstance(how, Inline):
            namespace.update(how.namespace)
        else:
            namespace[f"ask{i}"] = how
    code = source(cadence, sources)
    exec(compile(code, f"<gpu-devbox {cadence.value} reader>", "exec"), namespace)  # noqa: S102 - code generated from the field table above, never from input
    return namespace["read"]
