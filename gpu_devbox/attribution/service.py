"""The attributor: gives every GPU process of the sampler's snapshots its owner.

The sampler thread calls :meth:`Attributor.annotate` on every tick, so ``/proc`` is read off the
event loop; the server extension hands in its kernels and terminals (:meth:`set_workspace`) from
the loop, where its kernel manager lives. ``/proc`` is read again only when NVML's process lists
or the kernels' and terminals' root processes change, or every ``rescan`` seconds while GPU
processes run; a GPU without processes costs nothing.

Nothing here can break a sample: an error is logged once and the processes are published without
owners.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from gpu_devbox.attribution.attribute import Attribution, GpuEntry, GpuView, attribute
from gpu_devbox.attribution.model import (
    OTHER,
    OwnerKey,
    ProcessTable,
    Workspace,
    render_owner,
)
from gpu_devbox.attribution.procfs import ProcReader
from gpu_devbox.attribution.summary import kernels_document

log = logging.getLogger("gpu_devbox.attribution")

#: ``c.GPUDevbox.pid_namespace`` values.
NAMESPACES = ("auto", "shared", "separate")


@dataclasses.dataclass(frozen=True)
class State:
    """The attribution of the latest sample."""

    timestamp: float
    views: tuple[GpuView, ...] = ()
    attribution: Attribution | None = None
    table: ProcessTable | None = None
    #: When each owner was first seen holding GPU memory (Unix seconds), while it does.
    since: Mapping[OwnerKey, float] = dataclasses.field(default_factory=dict)


def view_of(gpu: Mapping[str, Any]) -> GpuView:
    """What attribution needs of one GPU document of a snapshot."""
    mig = gpu.get("mig") or {}
    instances = None
    if mig.get("enabled"):
        instances = frozenset(
            int(i["gpu_instance_id"])
            for i in mig.get("instances", [])
            if i.get("gpu_instance_id") is not None
        )
    return GpuView(
        index=int(gpu["index"]),
        minor=gpu.get("minor_number"),
        entries=tuple(
            GpuEntry(
                pid=int(p["pid"]),
                used_memory=p.get("used_memory"),
                gpu_instance_id=p.get("gpu_instance_id"),
                sm_utilization=p.get("sm_utilization"),
            )
            for p in gpu.get("processes") or []
        ),
        mig_instances=instances,
        uuid=str(gpu.get("uuid", "")),
    )


class Attributor:
    """Attributes the GPU processes of each sample to this server's kernels and terminals.

    Args:
        reader: where processes are read from (``/proc``).
        exclusive_gpus: whether this server's GPUs run only its container's processes
            (``c.GPUDevbox.exclusive_gpus``).
        namespace: whose PIDs NVML reports: ``"auto"`` (decided from ``/proc``), ``"shared"``
            (this server's) or ``"separate"`` (the host's).
        rescan: seconds after which ``/proc`` is read again while GPU processes run.
        clock: monotonic seconds; ``wall``: Unix seconds.
    """

    def __init__(
        self,
        reader: ProcReader | None = None,
        *,
        exclusive_gpus: bool = True,
        namespace: str = "auto",
        rescan: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        logger: logging.Logger | None = None,
    ) -> None:
        if namespace not in NAMESPACES:
            raise ValueError(f"namespace must be one of {', '.join(NAMESPACES)}, not {namespace!r}")
        self.reader = reader or ProcReader()
        self.exclusive_gpus = exclusive_gpus
        self.namespace = namespace
        self.rescan = rescan
        self.log = logger or log
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._workspace = Workspace(server_pid=os.getpid())
        self._shared: bool | None = None
        self._state = State(timestamp=wall())
        # what the last /proc reading was made for, and when
        self._inputs: tuple[Any, ...] | None = None
        self._scanned = -float("inf")
        # the owners rendered for the last snapshot: (attribution, workspace, lists by GPU)
        self._rendered: tuple[Any, Any, dict[int, tuple[Any, list[dict[str, Any]]]]] = (
            None,
            None,
            {},
        )
        self._failed = False

    # ------------------------------------------------------------------ inputs
    @property
    def workspace(self) -> Workspace:
        """The kernels and terminals last handed in."""
        return self._workspace

    def set_workspace(self, workspace: Workspace) -> None:
        """Hand in this server's kernels and terminals (from any thread; kept if unchanged)."""
        if workspace != self._workspace:
            self._workspace = workspace

    @property
    def shared_namespace(self) -> bool:
        """Whether NVML's PIDs are this server's (read from ``/proc`` once, unless set)."""
        if self._shared is None:
            if self.namespace == "auto":
                self._shared = self.reader.nvml_pids_are_ours()
            else:
                self._shared = self.namespace == "shared"
        return self._shared

    @property
    def method(self) -> str:
        """``"pids"`` or ``"device_files"``."""
        return "pids" if self.shared_namespace else "device_files"

    # ------------------------------------------------------------------ the sampler's hook
    def annotate(self, gpus: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], ...]:
        """``gpus`` with each process's ``local_pid`` and ``owner`` (sampler thread)."""
        try:
            return self._annotate(gpus)
        except Exception:
            if not self._failed:
                self._failed = True
                self.log.exception("gpu-devbox: process attribution failed; owners left out")
            return gpus

    def _annotate(self, gpus: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], ...]:
        views = tuple(view_of(gpu) for gpu in gpus)
        workspace = self._workspace
        now = self._wall()
        if not any(view.entries for view in views):
            self._state = State(timestamp=now, views=views)
            self._inputs = None
            return gpus
        inputs = (
            tuple((v.index, v.minor, v.mig_instances, v.entries) for v in views),
            tuple(sorted(workspace.roots.items())),
            workspace.server_pid,
        )
        state = self._state
        attribution, table = state.attribution, state.table
        if (
            inputs != self._inputs
            or attribution is None
            or self._clock() - self._scanned >= self.rescan
        ):
            table = self._read(views)
            attribution = attribute(views, table, workspace, exclusive=self.exclusive_gpus)
            self._inputs = inputs
            self._scanned = self._clock()
        self._state = State(
            timestamp=now,
            views=views,
            attribution=attribution,
            table=table,
            since=self._since(attribution, views, state.since, now),
        )
        return self._render(gpus, attribution, workspace, table)

    def _read(self, views: tuple[GpuView, ...]) -> ProcessTable:
        reader = self.reader
        if self.shared_namespace:
            processes = reader.lineage({e.pid for v in views for e in v.entries})
        else:
            holders = reader.device_holders()
            processes = reader.lineage(holders, devices=holders)
        return ProcessTable(
            processes=processes,
            shared_namespace=self.shared_namespace,
            self_pid=os.getpid(),
            self_uid=os.getuid(),
        )

    @staticmethod
    def _since(
        attribution: Attribution,
        views: tuple[GpuView, ...],
        before: Mapping[OwnerKey, float],
        now: float,
    ) -> dict[OwnerKey, float]:
        holding: set[OwnerKey] = set()
        for view in views:
            for entry in view.entries:
                decision = attribution.decision(view.index, entry.pid)
                if decision.owner is not None:
                    holding.add(decision.owner)
                holding.update(decision.candidates)
        holding.discard(OTHER)
        return {key: before.get(key, now) for key in holding}

    def _render(
        self,
        gpus: tuple[dict[str, Any], ...],
        attribution: Attribution,
        workspace: Workspace,
        table: ProcessTable | None,
    ) -> tuple[dict[str, Any], ...]:
        last_attribution, last_workspace, last_lists = self._rendered
        reuse = last_attribution is attribution and last_workspace is workspace
        lists: dict[int, tuple[Any, list[dict[str, Any]]]] = {}
        out = []
        for gpu in gpus:
            processes = gpu.get("processes")
            if not processes:
                out.append(gpu)
                continue
            index = int(gpu["index"])
            cached = last_lists.get(index)
            if reuse and cached is not None and cached[0] is processes:
                rendered = cached[1]
            else:
                owners: dict[OwnerKey, dict[str, Any]] = {}
                rendered = []
                for process in processes:
                    decision = attribution.decision(index, int(process["pid"]))
                    owner = None
                    if decision.owner is not None:
                        owner = owners.get(decision.owner)
                        if owner is None:
                            owner = owners[decision.owner] = render_owner(
                                decision.owner, workspace, table
                            )
                    rendered.append({**process, "local_pid": decision.local_pid, "owner": owner})
            lists[index] = (processes, rendered)
            out.append({**gpu, "processes": rendered})
        self._rendered = (attribution, workspace, lists)
        return tuple(out)

    # ------------------------------------------------------------------ readers
    def state(self) -> State:
        """The attribution of the latest sample (any thread)."""
        return self._state

    def kernels(self, workspace: Workspace | None = None) -> dict[str, Any]:
        """The ``GET kernels`` document, with ``workspace`` (default: the last handed in)."""
        state = self._state
        return kernels_document(
            timestamp=state.timestamp,
            views=state.views,
            attribution=state.attribution,
            workspace=workspace if workspace is not None else self._workspace,
            table=state.table,
            since=state.since,
            exclusive=self.exclusive_gpus,
        )
