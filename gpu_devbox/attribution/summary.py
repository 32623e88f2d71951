"""Per kernel, terminal and process: the GPU memory it holds, from one sample's attribution.

The ``GET kernels`` document. Memory is exact where the attribution is; where several owners
may hold a GPU's processes and the memory cannot be split honestly, each of them says with whom
it shares it and how much they hold together (``shared_with``, ``shared_memory``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from gpu_devbox.attribution.attribute import Attribution, GpuEntry, GpuView
from gpu_devbox.attribution.model import OTHER, OwnerKey, ProcessTable, Workspace, render_owner


def _total(values: Iterable[int | None]) -> int | None:
    total = 0
    for value in values:
        if value is None:
            return None
        total += value
    return total


class _Clusters:
    """Union-find over owners: the owners that share uncertain processes of one GPU."""

    def __init__(self) -> None:
        self._parent: dict[OwnerKey, OwnerKey] = {}

    def find(self, key: OwnerKey) -> OwnerKey:
        parent = self._parent.setdefault(key, key)
        if parent != key:
            parent = self._parent[key] = self.find(parent)
        return parent

    def join(self, keys: tuple[OwnerKey, ...]) -> None:
        first = self.find(keys[0])
        for key in keys[1:]:
            self._parent[self.find(key)] = first

    def members(self, key: OwnerKey) -> list[OwnerKey]:
        root = self.find(key)
        return sorted(k for k in self._parent if self.find(k) == root)

    def __contains__(self, key: OwnerKey) -> bool:
        return key in self._parent


def _process(entry: GpuEntry, local_pid: int | None, certain: bool) -> dict[str, Any]:
    return {
        "pid": entry.pid,
        "local_pid": local_pid,
        "used_memory": entry.used_memory,
        "sm_utilization": entry.sm_utilization,
        "certain": certain,
    }


def gpu_usage(
    views: Iterable[GpuView],
    attribution: Attribution,
    workspace: Workspace,
    table: ProcessTable | None,
) -> tuple[dict[OwnerKey, list[dict[str, Any]]], list[dict[str, Any]]]:
    """Each owner's use of each GPU, and each GPU's totals.

    Returns:
        ``(usage, gpus)``: ``usage[owner]`` lists the GPUs the owner holds (or may hold)
        memory on; ``gpus`` says per GPU how many processes are others' or uncertain.
    """
    usage: dict[OwnerKey, list[dict[str, Any]]] = {}
    totals = []
    for view in views:
        exact: dict[OwnerKey, list[tuple[GpuEntry, int | None]]] = {}
        uncertain: list[tuple[GpuEntry, tuple[OwnerKey, ...]]] = []
        clusters = _Clusters()
        unknown = 0
        for entry in view.entries:
            decision = attribution.decision(view.index, entry.pid)
            if decision.owner is not None:
                exact.setdefault(decision.owner, []).append((entry, decision.local_pid))
            elif decision.candidates:
                uncertain.append((entry, decision.candidates))
                clusters.join(decision.candidates)
            else:
                unknown += 1
        others = exact.pop(OTHER, [])
        totals.append(
            {
                "index": view.index,
                "uuid": view.uuid,
                "processes": len(view.entries),
                "others": len(others),
                "others_memory": _total(e.used_memory for e, _ in others),
                "uncertain": len(uncertain) + unknown,
            }
        )
        owners = set(exact) | {k for _, keys in uncertain for k in keys if k != OTHER}
        for owner in sorted(owners):
            mine = [_process(entry, pid, True) for entry, pid in exact.get(owner, [])]
            maybe = [(entry, keys) for entry, keys in uncertain if owner in keys]
            mine += [_process(entry, None, False) for entry, _ in maybe]
            document: dict[str, Any] = {"index": view.index, "uuid": view.uuid}
            if owner in clusters:
                members = clusters.members(owner)
                together = [e for key in members for e, _ in exact.get(key, [])]
                together += [e for e, keys in uncertain if set(keys) & set(members)]
                document.update(
                    memory=None,
                    shared_with=[
                        render_owner(key, workspace, table) for key in members if key != owner
                    ],
                    shared_memory=_total(e.used_memory for e in together),
                )
            else:
                document.update(
                    memory=_total(p["used_memory"] for p in mine),
                    shared_with=[],
                    shared_memory=None,
                )
            document["processes"] = mine
            usage.setdefault(owner, []).append(document)
    return usage, totals


def kernels_document(
    *,
    timestamp: float,
    views: Iterable[GpuView],
    attribution: Attribution | None,
    workspace: Workspace,
    table: ProcessTable | None,
    since: Mapping[OwnerKey, float],
    exclusive: bool,
) -> dict[str, Any]:
    """The ``GET kernels`` document: every kernel and terminal, with the GPUs each uses."""
    views = tuple(views)
    if attribution is not None:
        usage, gpus = gpu_usage(views, attribution, workspace, table)
    else:
        usage, gpus = (
            {},
            [
                {
                    "index": v.index,
                    "uuid": v.uuid,
                    "processes": 0,
                    "others": 0,
                    "others_memory": 0,
                    "uncertain": 0,
                }
                for v in views
            ],
        )
    kernels = []
    for kernel in workspace.kernels:
        key = OwnerKey("kernel", kernel.id)
        kernels.append(
            {
                "id": kernel.id,
                "name": kernel.name,
                "path": kernel.path,
                "execution_state": kernel.execution_state,
                "last_activity": kernel.last_activity,
                "connections": kernel.connections,
                "pid": kernel.pid,
                "gpu_since": since.get(key),
                "gpus": usage.get(key, []),
            }
        )
    terminals = []
    for terminal in workspace.terminals:
        key = OwnerKey("terminal", terminal.name)
        terminals.append(
            {
                "name": terminal.name,
                "pid": terminal.pid,
                "last_activity": terminal.last_activity,
                "gpu_since": since.get(key),
                "gpus": usage.get(key, []),
            }
        )
    processes = [
        {
            "pid": int(key.ident),
            "cmdline": render_owner(key, workspace, table)["cmdline"],
            "gpu_since": since.get(key),
            "gpus": documents,
        }
        for key, documents in sorted(usage.items())
        if key.kind == "process"
    ]
    return {
        "timestamp": timestamp,
        "attribution": {
            "method": attribution.method if attribution is not None else None,
            "exclusive_gpus": exclusive,
            "shared_gpus": sorted(attribution.shared_gpus) if attribution is not None else [],
        },
        "kernels": kernels,
        "terminals": terminals,
        "processes": processes,
        "gpus": gpus,
    }
