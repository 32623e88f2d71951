"""The cluster as placement sees it: nodes and the GPUs pods hold on them.

:class:`ClusterState` is the mutable store the inventory's watches feed, one event at a time;
:meth:`ClusterState.snapshot` hands placement an immutable :class:`ClusterSnapshot`, rebuilt
only after something changed. The CLI builds the same state from ``kubectl get -o json``
output, so an admin's dry run sees exactly what the spawner sees.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from gpu_devbox.placement.nodes import Node, PodUse, parse_node, parse_pod, pod_key

#: Placement's judgements of node shapes, kept between the snapshots of one ClusterState.
Memo = dict[Any, Any]


@dataclasses.dataclass(frozen=True)
class NodeState:
    """A node and the ``nvidia.com/*`` resources pods hold on it."""

    node: Node
    used: Mapping[str, int]
    #: Equal for nodes placement judges alike (same labels, resources, taints); see Node.shape.
    shape: int = -1

    def free(self, resource: str) -> int:
        """Allocatable minus held (never below zero)."""
        return max(0, self.node.allocatable.get(resource, 0) - self.used.get(resource, 0))


@dataclasses.dataclass(frozen=True)
class ClusterSnapshot:
    """The cluster at one moment. ``synced`` is false until the first full list arrived."""

    nodes: tuple[NodeState, ...]
    synced: bool = True
    pods: int = 0
    #: Pods that hold GPUs but are not bound to a node yet (waiting for the scheduler).
    pending: int = 0
    taken_at: float = 0.0
    #: Shared by the snapshots of one :class:`ClusterState` (whose shape numbers it is keyed
    #: by): placement stores there what it judged of each node shape, so a shape is judged once
    #: per profile, not once per form. ``None``: judge afresh every time.
    memo: Memo | None = dataclasses.field(default=None, compare=False, repr=False)
    #: Per JupyterHub user, the GPU-holding pods of their servers.
    servers: Mapping[str, tuple[PodUse, ...]] = dataclasses.field(default_factory=dict)

    def held_by(self, user: str) -> tuple[PodUse, ...]:
        """The GPU-holding server pods of one JupyterHub user (bound or pending)."""
        return self.servers.get(user, ())

    def node(self, name: str | None) -> NodeState | None:
        """A node by name (``None`` when it is not in the snapshot)."""
        if name is None:
            return None
        return next((state for state in self.nodes if state.node.name == name), None)


class ClusterState:
    """Nodes and GPU-holding pods, updated from list and watch events.

    Not thread-safe: the inventory updates it from one event loop.
    """

    def __init__(self) -> None:
        self._nodes: dict[str, Node] = {}
        #: node shape -> a small number, so that placement judges each pool's shape once
        self._shapes: dict[tuple[object, ...], int] = {}
        self._memo: Memo = {}
        self._pods: dict[str, PodUse] = {}
        self._used: dict[str, Counter[str]] = {}
        self._pending = 0
        #: per user, their servers' GPU-holding pods; the users changed since the last snapshot
        self._by_user: dict[str, dict[str, PodUse]] = {}
        self._user_pods: dict[str, tuple[PodUse, ...]] = {}
        self._users_changed: set[str] = set()
        #: per node, its state as last handed out; dropped when the node or its pods change
        self._states: dict[str, NodeState] = {}
        self._order: list[str] | None = None
        self._version = 0
        self._snapshot: ClusterSnapshot | None = None
        self.nodes_synced = False
        self.pods_synced = False

    # -- building from kubectl output ---------------------------------------------------------

    @classmethod
    def from_objects(
        cls, nodes: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]]
    ) -> ClusterState:
        """A synced state from node and pod objects (``items`` of a ``List``)."""
        state = cls()
        state.replace_nodes(nodes)
        state.replace_pods(pods)
        return state

    # -- nodes --------------------------------------------------------------------------------

    def replace_nodes(self, objects: Iterable[Mapping[str, Any]]) -> None:
        """Replace every node (after a full list)."""
        self._nodes = {}
        for obj in objects:
            node = parse_node(obj)
            self._nodes[node.name] = node
        self._states = {}
        # a new list starts over the shape numbers (and what was judged by them), so shapes of
        # nodes long gone do not pile up
        self._shapes = {}
        self._memo = {}
        self._order = None
        self.nodes_synced = True
        self._changed()

    def upsert_node(self, obj: Mapping[str, Any]) -> None:
        """A node was added or modified."""
        node = parse_node(obj)
        if node.name not in self._nodes:
            self._order = None
        self._nodes[node.name] = node
        self._states.pop(node.name, None)
        self._changed()

    def remove_node(self, obj: Mapping[str, Any]) -> None:
        """A node was deleted."""
        name = (obj.get("metadata") or {}).get("name", "")
        if self._nodes.pop(name, None) is not None:
            self._states.pop(name, None)
            self._order = None
            self._changed()

    # -- pods ---------------------------------------------------------------------------------

    def replace_pods(self, objects: Iterable[Mapping[str, Any]]) -> None:
        """Replace every pod (after a full list)."""
        self._pods = {}
        self._used = {}
        self._pending = 0
        self._states = {}
        self._users_changed.update(self._by_user)
        self._by_user = {}
        for obj in objects:
            use = parse_pod(obj)
            if use is not None:
                self._add(pod_key(obj), use)
        self.pods_synced = True
        self._changed()

    def upsert_pod(self, obj: Mapping[str, Any]) -> None:
        """A pod was added or modified (bound to a node, finished...)."""
        key = pod_key(obj)
        use = parse_pod(obj)
        old = self._pods.get(key)
        if old == use:
            return
        if old is not None:
            self._remove(key, old)
        if use is not None:
            self._add(key, use)
        self._changed()

    def remove_pod(self, obj: Mapping[str, Any]) -> None:
        """A pod was deleted."""
        key = pod_key(obj)
        old = self._pods.get(key)
        if old is not None:
            self._remove(key, old)
            self._changed()

    def _add(self, key: str, use: PodUse) -> None:
        self._pods[key] = use
        if use.user is not None:
            self._by_user.setdefault(use.user, {})[key] = use
            self._users_changed.add(use.user)
        if use.node:
            self._used.setdefault(use.node, Counter()).update(use.resources)
            self._states.pop(use.node, None)
        else:
            self._pending += 1

    def _remove(self, key: str, use: PodUse) -> None:
        del self._pods[key]
        if use.user is not None:
            held = self._by_user.get(use.user, {})
            held.pop(key, None)
            if not held:
                self._by_user.pop(use.user, None)
            self._users_changed.add(use.user)
        if not use.node:
            self._pending -= 1
        elif use.node in self._used:
            self._states.pop(use.node, None)
            counter = self._used[use.node]
            counter.subtract(use.resources)
            for resource in [r for r, n in counter.items() if n <= 0]:
                del counter[resource]
            if not counter:
                del self._used[use.node]

    # -- reading ------------------------------------------------------------------------------

    def _changed(self) -> None:
        self._version += 1
        self._snapshot = None

    @property
    def version(self) -> int:
        """Increases with every change."""
        return self._version

    @property
    def synced(self) -> bool:
        """Both nodes and pods have been listed at least once."""
        return self.nodes_synced and self.pods_synced

    def snapshot(self) -> ClusterSnapshot:
        """The current state, immutable; cached until the next change."""
        if self._snapshot is None:
            if self._order is None:
                self._order = sorted(self._nodes)
            states = self._states
            nodes = []
            for name in self._order:
                state = states.get(name)
                if state is None:
                    node = self._nodes[name]
                    used = self._used.get(name)
                    state = states[name] = NodeState(
                        node,
                        dict(used) if used else {},
                        self._shapes.setdefault(node.shape, len(self._shapes)),
                    )
                nodes.append(state)
            for user in self._users_changed:
                held = self._by_user.get(user)
                if held:
                    self._user_pods[user] = tuple(held.values())
                else:
                    self._user_pods.pop(user, None)
            self._users_changed.clear()
            self._snapshot = ClusterSnapshot(
                nodes=tuple(nodes),
                synced=self.synced,
                pods=len(self._pods),
                pending=self._pending,
                taken_at=time.time(),
                memo=self._memo,
                servers=dict(self._user_pods),
            )
        return self._snapshot
