"""Who owns each GPU process: pure decisions from NVML's process lists and this server's processes.

Two ways to know, chosen by whose PIDs NVML reports (:attr:`ProcessTable.shared_namespace`):

**By PID** (``"pids"``: a workstation, a VM, ``hostPID``). NVML's PIDs are this server's: each
process is looked up in the table and its owner found by walking up its parents to a kernel's or
a terminal's root process. Exact.

**By device files** (``"device_files"``: a container with its own PID namespace, where NVML
reports host PIDs that this server cannot see). What this server can see is which of its
processes hold ``/dev/nvidia<minor>`` open, and NVML gives each GPU's minor number. A GPU
process that runs on GPUs *G* can only be one of the local processes holding the device files of
every GPU in *G*. Each local process is at most one GPU process. On an *exclusive* GPU (the
Kubernetes default: the device plugin gives a GPU to one pod) every GPU process is one of this
container's; on a shared one (time-slicing, or ``exclusive=False``) any may be another
container's. A process's owner is *exact* when every assignment of GPU processes to local
processes that obeys these rules gives it the same owner: a kernel whose DataLoader workers
inherited its device files is still exactly that kernel's, though which of its processes it is
(``local_pid``) is not known. Otherwise the owner is left unknown and its candidates are named;
nothing is guessed.

A GPU is *found shared* whatever the setting when it runs more processes than this container
has holders of its device file, or a process none of them could be. On a MIG GPU, processes of
the GPU instances this server cannot see are other containers' (exactly).

CUDA opens the device files of every GPU it can see, so holding a device file says "can use",
not "uses": counting (a GPU with one process and one holder) is what turns it into "uses".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from gpu_devbox.attribution.model import (
    OTHER,
    OwnerKey,
    ProcessTable,
    Workspace,
)
from gpu_devbox.attribution.procfs import MAX_DEPTH

#: Above this many GPU processes (in a container), the assignments are not enumerated: every
#: process whose owner is not obvious is left unknown.
MAX_MATCHED = 512


@dataclasses.dataclass(frozen=True)
class GpuEntry:
    """One compute process as NVML lists it on one GPU."""

    pid: int
    used_memory: int | None = None
    gpu_instance_id: int | None = None
    sm_utilization: int | None = None


@dataclasses.dataclass(frozen=True)
class GpuView:
    """What attribution needs of one GPU."""

    index: int
    #: ``/dev/nvidia<minor>``; ``None`` when NVML did not say (its processes stay unknown).
    minor: int | None
    entries: tuple[GpuEntry, ...] = ()
    #: The GPU instance ids of the MIG instances this server sees; ``None`` without MIG.
    mig_instances: frozenset[int] | None = None
    uuid: str = ""


@dataclasses.dataclass(frozen=True)
class Decision:
    """The owner of one GPU process (``None``: not known for certain)."""

    owner: OwnerKey | None
    #: Its PID in this server's namespace, when known.
    local_pid: int | None
    #: When the owner is not known: who it may be (:data:`OTHER` included); empty when nothing
    #: can be said (the GPU's minor number is unknown).
    candidates: tuple[OwnerKey, ...] = ()


@dataclasses.dataclass(frozen=True)
class Attribution:
    """The owners of every GPU process of one sample."""

    #: ``"pids"`` or ``"device_files"`` (see the module's documentation).
    method: str
    #: By (GPU index, NVML's PID).
    decisions: Mapping[tuple[int, int], Decision]
    #: GPUs whose processes may be other containers' (set so, or found so).
    shared_gpus: frozenset[int] = frozenset()

    def decision(self, gpu: int, pid: int) -> Decision:
        """The decision about ``pid`` on ``gpu`` (unknown when it was not decided)."""
        return self.decisions.get((gpu, pid), Decision(None, None))


def owner_of(
    pid: int,
    table: ProcessTable,
    workspace: Workspace,
    roots: Mapping[int, OwnerKey] | None = None,
) -> OwnerKey:
    """The owner of the local process ``pid``.

    A kernel's or terminal's root process or any of its descendants belongs to it. Any other
    process of this server's tree or container is a ``process`` owner, named by the oldest
    ancestor running the same command line (so a program's forked workers are one owner). Where
    this ``/proc`` shows the whole machine (NVML's PIDs are ours), a process outside the
    server's tree of another user is ``other``: not named.
    """
    roots = workspace.roots if roots is None else roots
    process = table.get(pid)
    if process is None:
        return OTHER
    chain = []
    in_server_tree = False
    current = pid
    for _ in range(MAX_DEPTH):
        owner = roots.get(current)
        if owner is not None:
            return owner
        if current == workspace.server_pid:
            in_server_tree = True
            break
        step = table.get(current)
        if step is None or current <= 1:
            break
        chain.append(step)
        current = step.ppid
    if table.shared_namespace and not in_server_tree and process.uid != table.self_uid:
        return OTHER
    root = process
    for ancestor in chain[1:]:
        if not root.cmdline or ancestor.cmdline != root.cmdline:
            break
        root = ancestor
    return OwnerKey("process", root.pid)


def attribute(
    views: Iterable[GpuView],
    table: ProcessTable,
    workspace: Workspace,
    *,
    exclusive: bool = True,
) -> Attribution:
    """Decide the owner of every GPU process of ``views``.

    Args:
        views: the GPUs and their compute processes.
        table: this server's processes (with their device files, in a container).
        workspace: this server's kernels and terminals.
        exclusive: whether this server's GPUs run only this container's processes (matters
            only when NVML's PIDs are not ours).
    """
    views = tuple(views)
    if table.shared_namespace:
        return _by_pid(views, table, workspace)
    return _by_device_files(views, table, workspace, exclusive=exclusive)


def _by_pid(views: tuple[GpuView, ...], table: ProcessTable, workspace: Workspace) -> Attribution:
    roots = workspace.roots
    decisions = {}
    for view in views:
        for entry in view.entries:
            if table.get(entry.pid) is None:
                # gone meanwhile, or hidden from this user (hidepid): not this server's
                decisions[view.index, entry.pid] = Decision(OTHER, None)
            else:
                owner = owner_of(entry.pid, table, workspace, roots)
                decisions[view.index, entry.pid] = Decision(owner, entry.pid)
    return Attribution("pids", decisions)


def _by_device_files(
    views: tuple[GpuView, ...], table: ProcessTable, workspace: Workspace, *, exclusive: bool
) -> Attribution:
    minor_gpu = {v.minor: v.index for v in views if v.minor is not None}
    readable = {v.index for v in views if v.minor is not None}
    decisions: dict[tuple[int, int], Decision] = {}

    # this container's processes that hold device files of these GPUs (not the server itself:
    # it holds them for NVML, and never runs CUDA)
    holders: dict[int, frozenset[int]] = {}
    for process in table.processes.values():
        if process.devices and process.pid != table.self_pid:
            gpus = frozenset(minor_gpu[m] for m in process.devices if m in minor_gpu)
            if gpus:
                holders[process.pid] = gpus

    # the GPU processes, by NVML's PID, with the GPUs each runs on
    gpus_of: dict[int, set[int]] = {}
    for view in views:
        for entry in view.entries:
            if view.minor is None:
                decisions[view.index, entry.pid] = Decision(None, None)
            elif (
                view.mig_instances is not None
                and entry.gpu_instance_id is not None
                and entry.gpu_instance_id not in view.mig_instances
            ):
                # a MIG instance this server cannot see: another container's
                decisions[view.index, entry.pid] = Decision(OTHER, None)
            else:
                gpus_of.setdefault(entry.pid, set()).add(view.index)
    edges = {
        pid: sorted(local for local, held in holders.items() if gpus <= held)
        for pid, gpus in gpus_of.items()
    }

    shared = set(readable) if not exclusive or len(gpus_of) > MAX_MATCHED else set()
    for gpu in readable - shared:
        running = [pid for pid, gpus in gpus_of.items() if gpu in gpus]
        holding = sum(1 for held in holders.values() if gpu in held)
        if len(running) > holding or any(not edges[pid] for pid in running):
            shared.add(gpu)
    while True:
        must = {pid for pid, gpus in gpus_of.items() if gpus - shared}
        matching, stuck = _saturate(must, edges)
        if not stuck:
            break
        # These processes are more than the local processes they could be (Hall's condition
        # fails): some of them are other containers', on GPUs that cannot be told. All their
        # GPUs are shared after all.
        for pid in stuck:
            shared |= gpus_of[pid]

    inverse = {local: pid for pid, local in matching.items()}
    roots = workspace.roots
    owners = {local: owner_of(local, table, workspace, roots) for local in holders}
    decided: dict[int, Decision] = {}
    for pid in gpus_of:
        feasible = [
            local for local in edges[pid] if _feasible(pid, local, matching, inverse, must, edges)
        ]
        possible = {owners[local] for local in feasible}
        if pid not in must:
            possible.add(OTHER)
        if len(possible) == 1:
            [owner] = possible
            local_pid = feasible[0] if len(feasible) == 1 and pid in must else None
            decided[pid] = Decision(owner, local_pid)
        else:
            decided[pid] = Decision(None, None, tuple(sorted(possible)))
    for view in views:
        for entry in view.entries:
            if (view.index, entry.pid) not in decisions:
                decisions[view.index, entry.pid] = decided[entry.pid]
    return Attribution("device_files", decisions, frozenset(shared))


def _saturate(must: set[int], edges: Mapping[int, list[int]]) -> tuple[dict[int, int], set[int]]:
    """A matching of every process in ``must`` to a distinct local process (Kuhn's algorithm):
    ``(matching, set())``; or, when there is none, ``({}, stuck)``: processes that together
    have fewer candidates than they are."""
    holder: dict[int, int] = {}  # local -> GPU process

    def augment(pid: int, seen: set[int]) -> bool:
        for local in edges[pid]:
            if local in seen:
                continue
            seen.add(local)
            if local not in holder or augment(holder[local], seen):
                holder[local] = pid
                return True
        return False

    for pid in sorted(must):
        seen: set[int] = set()
        if not augment(pid, seen):
            # the processes the search went through compete for the locals it saw
            return {}, {pid} | {holder[local] for local in seen if local in holder}
    return {pid: local for local, pid in holder.items()}, set()


def _feasible(
    pid: int,
    local: int,
    matching: Mapping[int, int],
    inverse: Mapping[int, int],
    must: set[int],
    edges: Mapping[int, list[int]],
) -> bool:
    """Whether some valid assignment gives GPU process ``pid`` the local process ``local``.

    From the valid ``matching``: ``pid`` takes ``local``; whoever held ``local`` must find
    another along an alternating path (to a free local process, or the one ``pid`` leaves).
    """
    if matching.get(pid) == local:
        return True
    holder = inverse.get(local)
    if holder is None or holder not in must:
        return True
    seen = {holder, pid}
    stack = [holder]
    while stack:
        current = stack.pop()
        for other in edges[current]:
            if other == local:
                continue
            next_holder = inverse.get(other)
            if next_holder is None or next_holder == pid or next_holder not in must:
                return True
            if next_holder not in seen:
                seen.add(next_holder)
                stack.append(next_holder)
    return False
