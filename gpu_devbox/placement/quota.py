"""GPU quotas: what a user's servers hold now, and whether one more start stays within the limit.

Pure functions over the cluster snapshot the inventory's watches keep (no API call): each of a
user's server pods (KubeSpawner annotates them with the user's and the server's names) holds
some ``nvidia.com/*`` units, and each unit is of one kind, counted in its own unit: a whole
GPU, a MIG slice, or a share of a time-sliced or MPS GPU. A MIG slice never counts as a
fraction of a whole GPU, nor a share as a whole one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from gpu_devbox.catalog import GPUKind, GPUQuota
from gpu_devbox.placement.cluster import ClusterSnapshot
from gpu_devbox.placement.nodes import GPU, GPU_SHARED, MIG_PREFIX, Node

__all__ = ["Holding", "QuotaCheck", "check", "holdings", "unit_kind", "unit_name"]


@dataclasses.dataclass(frozen=True)
class Holding:
    """What one of the user's servers holds of one kind of GPU."""

    #: The server's name (``""``: the user's default server).
    server: str
    kind: GPUKind
    amount: int

    @property
    def server_text(self) -> str:
        """``'train'`` or ``your default server``."""
        return f"'{self.server}'" if self.server else "your default server"


def unit_kind(resource: str, node: Node | None) -> GPUKind:
    """The kind of GPU one unit of ``resource`` is, on ``node`` (``None``: not bound yet).

    ``nvidia.com/gpu`` is a whole GPU, except on a node whose GPUs are split into MIG devices
    (the ``single`` strategy) or shared through replicas without being renamed.
    """
    if resource.startswith(MIG_PREFIX):
        return GPUKind.MIG
    if resource == GPU_SHARED:
        return GPUKind.SHARED
    if resource == GPU and node is not None and node.gpu is not None:
        if node.gpu.mig_single_profile:
            return GPUKind.MIG
        if node.gpu.replicas > 1:
            return GPUKind.SHARED
    return GPUKind.WHOLE


def unit_name(kind: GPUKind, amount: int) -> str:
    """``GPU``/``GPUs``, ``MIG slice(s)``, ``shared GPU(s)``."""
    noun = {GPUKind.MIG: "MIG slice", GPUKind.SHARED: "shared GPU"}.get(kind, "GPU")
    return noun + ("s" if amount != 1 else "")


def holdings(
    snapshot: ClusterSnapshot,
    user: str,
    *,
    namespaces: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
) -> tuple[Holding, ...]:
    """What each of ``user``'s servers holds now, per kind (servers sorted by name).

    ``namespaces``: only pods there (the hub's); ``None``: every namespace. ``exclude``: names
    of pods not to count (the pod of the server being started, which replaces it).
    """
    allowed = None if namespaces is None else set(namespaces)
    skipped = set(exclude)
    amounts: dict[tuple[str, GPUKind], int] = {}
    for pod in snapshot.held_by(user):
        if (allowed is not None and pod.namespace not in allowed) or pod.name in skipped:
            continue
        state = snapshot.node(pod.node)
        for resource, amount in pod.resources.items():
            kind = unit_kind(resource, state.node if state else None)
            key = (pod.server, kind)
            amounts[key] = amounts.get(key, 0) + amount
    return tuple(
        Holding(server, kind, amount)
        for (server, kind), amount in sorted(
            amounts.items(), key=lambda i: (i[0][0], i[0][1].value)
        )
    )


@dataclasses.dataclass(frozen=True)
class QuotaCheck:
    """One kind of GPU against a user's limit."""

    kind: GPUKind
    #: The limit (``None``: no limit for this kind).
    limit: int | None
    #: How many the user's servers hold now.
    held: int
    #: Which servers hold them.
    holders: tuple[Holding, ...]

    @property
    def left(self) -> int | None:
        """How many more the user may start (``None``: no limit)."""
        return None if self.limit is None else max(0, self.limit - self.held)

    def allows(self, count: int) -> bool:
        """Whether a server with ``count`` more units stays within the limit."""
        return self.limit is None or self.held + count <= self.limit

    @property
    def summary(self) -> str:
        """``You hold 2 of your 2 GPUs``; empty without a limit."""
        if self.limit is None:
            return ""
        return f"You hold {self.held} of your {self.limit} {unit_name(self.kind, self.limit)}"

    def servers_text(self) -> str:
        """``'train' holds 2 and your default server holds 1``."""
        parts = [f"{h.server_text} holds {h.amount}" for h in self.holders]
        if len(parts) == 1:
            return parts[0]
        return ", ".join(parts[:-1]) + f" and {parts[-1]}"

    def refusal(self, count: int, what: str) -> str:
        """Why starting ``what`` with ``count`` more units is over the limit."""
        assert self.limit is not None
        unit = unit_name(self.kind, count)
        text = f"{what} needs {count} {unit}, but {self.summary[0].lower()}{self.summary[1:]}"
        if self.holders:
            text += f" ({self.servers_text()}); stop one of those servers first"
        elif self.limit < count:
            text += "; ask your hub's admin for a larger limit"
        return text


def check(quota: GPUQuota | None, held: Sequence[Holding], kind: GPUKind) -> QuotaCheck:
    """One kind of GPU held against ``quota`` (a CPU profile: never limited)."""
    limit = None if quota is None else quota.limit(kind)
    mine = tuple(h for h in held if h.kind is kind)
    return QuotaCheck(kind, limit, sum(h.amount for h in mine), mine)
