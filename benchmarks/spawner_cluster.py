"""A large, realistic cluster for the spawner benchmarks: 1,000 nodes and 20,000 pods.

Nodes: CPU workers, A100s on an R550 driver, tainted H100s on R580, V100s on R535, MIG
``mixed`` A100s and MIG ``single`` H100s, time-sliced A10s, and a few cordoned nodes. Pods:
GPU jobs filling about 70 % of every GPU resource, the rest CPU-only pods, across 50
namespaces.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import k8s_objects as k

GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


def build(
    nodes: int = 1000, pods: int = 20000, seed: int = 7
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(node objects, pod objects) in the shapes the API server returns."""
    rng = random.Random(seed)
    mix = [
        (0.40, lambda i: k.node(f"cpu-{i}"), None),
        (
            0.20,
            lambda i: k.gpu_node(f"a100-{i}", k.A100, driver="550.54.15", cuda="12.4"),
            "nvidia.com/gpu",
        ),
        (0.15, lambda i: k.gpu_node(f"h100-{i}", k.H100, taints=[GPU_TAINT]), "nvidia.com/gpu"),
        (
            0.10,
            lambda i: k.gpu_node(f"v100-{i}", k.V100, driver="535.183.01", cuda="12.2"),
            "nvidia.com/gpu",
        ),
        (
            0.05,
            lambda i: k.mig_mixed_node(f"mig-{i}", k.A100, {"1g.10gb": (56, 9728)}),
            "nvidia.com/mig-1g.10gb",
        ),
        (
            0.05,
            lambda i: k.mig_single_node(f"migs-{i}", k.H100, "1g.10gb", 56, memory_mib=9984),
            "nvidia.com/gpu",
        ),
        (
            0.04,
            lambda i: k.shared_node(f"a10-{i}", k.A10, gpus=4, replicas=4),
            "nvidia.com/gpu.shared",
        ),
        (0.01, lambda i: k.gpu_node(f"old-{i}", k.A100, cordoned=True), "nvidia.com/gpu"),
    ]
    node_objects: list[dict[str, Any]] = []
    capacity: list[tuple[str, str, int]] = []
    for share, make, resource in mix:
        for _ in range(round(nodes * share)):
            obj = make(len(node_objects))
            node_objects.append(obj)
            if resource:
                units = int(obj["status"]["allocatable"][resource])
                capacity.append((obj["metadata"]["name"], resource, units))
    pod_objects: list[dict[str, Any]] = []
    for name, resource, units in capacity:
        for j in range(int(units * 0.7)):
            if len(pod_objects) >= pods:
                break
            pod_objects.append(
                k.pod(f"job-{name}-{j}", name, {resource: 1}, namespace=f"team-{rng.randrange(50)}")
            )
    cpu_nodes = [
        n["metadata"]["name"] for n in node_objects if n["metadata"]["name"].startswith("cpu-")
    ]
    while len(pod_objects) < pods:
        i = len(pod_objects)
        pod_objects.append(
            k.pod(
                f"web-{i}",
                rng.choice(cpu_nodes),
                {"cpu": "1"},
                namespace=f"team-{rng.randrange(50)}",
            )
        )
    return node_objects[:nodes], pod_objects
