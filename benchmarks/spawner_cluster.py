"""A large, realistic cluster for the spawner benchmarks: 1,000 nodes and 20,000 pods.

Nodes: CPU workers, A100s on an R550 driver, tainted H100s on R580, V100s on R535, MIG
``mixed`` A100s and MIG ``single`` H100s, time-sliced A10s, and a few cordoned nodes. Pods:
GPU jobs filling about 70 % of every GPU resource, the rest CPU-only pods, across 50
namespaces.

With ``distinct=True`` no two nodes look alike, as in a real cluster that grew over time: each
node's allocatable CPU and memory differ (the kubelet reserves differ node by node), GPU nodes
run different patch releases of their driver branch, and every node carries labels of its own
(zone, instance id). Placement can then no longer judge one node per pool.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import k8s_objects as k

GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


#: Released patch versions per driver branch (NVIDIA's datacenter driver archive).
_PATCHES = {
    "550": ("550.54.14", "550.54.15", "550.90.07", "550.90.12", "550.127.05", "550.144.03"),
    "580": ("580.65.06", "580.82.07", "580.95.05", "580.105.08"),
    "535": ("535.104.05", "535.129.03", "535.161.08", "535.183.01", "535.216.01"),
}


def _make_distinct(obj: dict[str, Any], i: int, rng: random.Random) -> None:
    """Give one node what makes real nodes differ: reserves, driver patch, own labels."""
    status = obj["status"]
    for part in ("allocatable", "capacity"):
        status[part]["cpu"] = f"{63000 + i}m"
        status[part]["memory"] = f"{536870912 - 1024 * i}Ki"
    labels = obj["metadata"]["labels"]
    labels["topology.kubernetes.io/zone"] = f"zone-{rng.randrange(3)}"
    labels["node.kubernetes.io/instance-id"] = f"i-{rng.getrandbits(48):012x}"
    full = labels.get("nvidia.com/cuda.driver-version.full")
    if full and full.split(".")[0] in _PATCHES:
        driver = rng.choice(_PATCHES[full.split(".")[0]])
        _, minor, rev = driver.split(".")
        labels["nvidia.com/cuda.driver-version.full"] = driver
        labels["nvidia.com/cuda.driver-version.minor"] = labels["nvidia.com/cuda.driver.minor"] = (
            minor
        )
        labels["nvidia.com/cuda.driver-version.revision"] = labels["nvidia.com/cuda.driver.rev"] = (
            rev
        )


def build(
    nodes: int = 1000, pods: int = 20000, seed: int = 7, *, distinct: bool = False
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(node objects, pod objects) in the shapes the API server returns."""
    rng = random.Random(seed)
    shape_rng = random.Random(seed + 1)
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
            if distinct:
                _make_distinct(obj, len(node_objects), shape_rng)
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
