"""Placement: which catalog profiles a Kubernetes cluster can serve now, and on which nodes.

Pure deciders, ``(catalog, cluster) -> offers``: they read the JSON of nodes and pods
(:mod:`~gpu_devbox.placement.nodes`), keep the cluster as placement sees it
(:mod:`~gpu_devbox.placement.cluster`), judge each node for a profile
(:mod:`~gpu_devbox.placement.eligibility`), make the offers and plans
(:mod:`~gpu_devbox.placement.offers`, values of :mod:`~gpu_devbox.placement.model`) and say
why not (:mod:`~gpu_devbox.placement.reasons`).
Nothing here talks to Kubernetes or imports JupyterHub: the spawner (``gpu_devbox_spawner``)
and ``gpu-devbox profiles`` feed them the cluster they read.
"""

from gpu_devbox.placement.cluster import ClusterSnapshot, ClusterState, NodeState
from gpu_devbox.placement.eligibility import GPU_TOLERATION
from gpu_devbox.placement.model import ImageChoice, NodeChoice, Offer, Plan
from gpu_devbox.placement.nodes import NVIDIA_PREFIX, Node, parse_node, parse_pod
from gpu_devbox.placement.offers import compute_offers, offer_for, plan
from gpu_devbox.placement.reasons import alternatives, shortage

__all__ = [
    "GPU_TOLERATION",
    "NVIDIA_PREFIX",
    "ClusterSnapshot",
    "ClusterState",
    "ImageChoice",
    "Node",
    "NodeChoice",
    "NodeState",
    "Offer",
    "Plan",
    "alternatives",
    "compute_offers",
    "offer_for",
    "parse_node",
    "parse_pod",
    "plan",
    "shortage",
]
