"""Node and pod objects as a real API server returns them, for the clusters tests build.

GPU nodes carry the labels NVIDIA's GPU Feature Discovery writes (current names, or only the
deprecated ones with ``old_labels=True``) and the extended resources the device plugin
advertises for each MIG and sharing strategy.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

_uid = itertools.count(1)

GIB = 1024**3


def node(
    name: str,
    *,
    labels: Mapping[str, str] | None = None,
    allocatable: Mapping[str, str] | None = None,
    taints: Sequence[Mapping[str, str]] = (),
    cordoned: bool = False,
    ready: bool = True,
    cpu: str = "64",
    memory: str = "512Gi",
) -> dict[str, Any]:
    """A node object (``kubectl get node -o json``)."""
    resources = {"cpu": cpu, "memory": memory, "pods": "110", **(allocatable or {})}
    spec: dict[str, Any] = {}
    if taints:
        spec["taints"] = [dict(t) for t in taints]
    if cordoned:
        spec["unschedulable"] = True
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "uid": f"node-uid-{next(_uid)}",
            "resourceVersion": "1",
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                **(labels or {}),
            },
        },
        "spec": spec,
        "status": {
            "capacity": dict(resources),
            "allocatable": dict(resources),
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def gfd_labels(
    *,
    product: str,
    family: str,
    memory_mib: int,
    count: int,
    compute: tuple[int, int],
    driver: str,
    cuda: str,
    old_labels: bool = False,
    mig_strategy: str = "none",
    sharing: str = "none",
    replicas: int = 1,
) -> dict[str, str]:
    """GPU Feature Discovery's labels for one node."""
    major, minor, rev = [*driver.split("."), "", ""][:3]
    cuda_major, cuda_minor = cuda.split(".")
    labels = {
        "nvidia.com/gpu.product": product,
        "nvidia.com/gpu.family": family,
        "nvidia.com/gpu.memory": str(memory_mib),
        "nvidia.com/gpu.count": str(count),
        "nvidia.com/gpu.compute.major": str(compute[0]),
        "nvidia.com/gpu.compute.minor": str(compute[1]),
        "nvidia.com/gpu.replicas": str(replicas),
        "nvidia.com/gpu.sharing-strategy": sharing,
        "nvidia.com/mig.strategy": mig_strategy,
        "nvidia.com/gfd.timestamp": "1724632719",
        # deprecated names, still written by current GFD
        "nvidia.com/cuda.driver.major": major,
        "nvidia.com/cuda.driver.minor": minor,
        "nvidia.com/cuda.driver.rev": rev,
        "nvidia.com/cuda.runtime.major": cuda_major,
        "nvidia.com/cuda.runtime.minor": cuda_minor,
    }
    if not old_labels:
        labels.update(
            {
                "nvidia.com/cuda.driver-version.major": major,
                "nvidia.com/cuda.driver-version.minor": minor,
                "nvidia.com/cuda.driver-version.revision": rev,
                "nvidia.com/cuda.driver-version.full": driver,
                "nvidia.com/cuda.runtime-version.major": cuda_major,
                "nvidia.com/cuda.runtime-version.minor": cuda_minor,
                "nvidia.com/cuda.runtime-version.full": cuda,
            }
        )
    return labels


# (product, family, memory MiB, compute capability)
V100 = ("Tesla-V100-SXM2-32GB", "volta", 32768, (7, 0))
T4 = ("Tesla-T4", "turing", 15360, (7, 5))
A10 = ("NVIDIA-A10", "ampere", 23028, (8, 6))
A100 = ("NVIDIA-A100-SXM4-80GB", "ampere", 81920, (8, 0))
A100_40 = ("NVIDIA-A100-SXM4-40GB", "ampere", 40960, (8, 0))
H100 = ("NVIDIA-H100-80GB-HBM3", "hopper", 81559, (9, 0))


def gpu_node(
    name: str,
    model: tuple[str, str, int, tuple[int, int]],
    *,
    gpus: int = 8,
    driver: str = "580.65.06",
    cuda: str = "13.0",
    old_labels: bool = False,
    taints: Sequence[Mapping[str, str]] = (),
    cordoned: bool = False,
    ready: bool = True,
) -> dict[str, Any]:
    """A node with whole GPUs (no MIG, no sharing)."""
    product, family, memory, compute = model
    labels = gfd_labels(
        product=product,
        family=family,
        memory_mib=memory,
        count=gpus,
        compute=compute,
        driver=driver,
        cuda=cuda,
        old_labels=old_labels,
    )
    return node(
        name,
        labels=labels,
        allocatable={"nvidia.com/gpu": str(gpus)},
        taints=taints,
        cordoned=cordoned,
        ready=ready,
    )


def mig_mixed_node(
    name: str,
    model: tuple[str, str, int, tuple[int, int]],
    slices: Mapping[str, tuple[int, int]],
    *,
    whole: int = 0,
    driver: str = "580.65.06",
    cuda: str = "13.0",
) -> dict[str, Any]:
    """A node with the ``mixed`` MIG strategy: ``slices`` maps profile -> (count, memory MiB)."""
    product, family, memory, compute = model
    labels = gfd_labels(
        product=product,
        family=family,
        memory_mib=memory,
        count=whole + 1,
        compute=compute,
        driver=driver,
        cuda=cuda,
        mig_strategy="mixed",
    )
    allocatable = {"nvidia.com/gpu": str(whole)} if whole else {}
    for profile, (count, mib) in slices.items():
        labels[f"nvidia.com/mig-{profile}.count"] = str(count)
        labels[f"nvidia.com/mig-{profile}.memory"] = str(mib)
        allocatable[f"nvidia.com/mig-{profile}"] = str(count)
    return node(name, labels=labels, allocatable=allocatable)


def mig_single_node(
    name: str,
    model: tuple[str, str, int, tuple[int, int]],
    profile: str,
    devices: int,
    *,
    memory_mib: int,
    driver: str = "580.65.06",
    cuda: str = "13.0",
) -> dict[str, Any]:
    """A node with the ``single`` MIG strategy: every GPU split into ``profile`` slices."""
    product, family, _, compute = model
    labels = gfd_labels(
        product=f"{product}-MIG-{profile}",
        family=family,
        memory_mib=memory_mib,
        count=devices,
        compute=compute,
        driver=driver,
        cuda=cuda,
        mig_strategy="single",
    )
    return node(name, labels=labels, allocatable={"nvidia.com/gpu": str(devices)})


def shared_node(
    name: str,
    model: tuple[str, str, int, tuple[int, int]],
    *,
    gpus: int,
    replicas: int,
    renamed: bool = True,
    driver: str = "580.65.06",
    cuda: str = "13.0",
) -> dict[str, Any]:
    """A time-slicing node; ``renamed`` advertises nvidia.com/gpu.shared, else nvidia.com/gpu."""
    product, family, memory, compute = model
    labels = gfd_labels(
        product=product if renamed else f"{product}-SHARED",
        family=family,
        memory_mib=memory,
        count=gpus,
        compute=compute,
        driver=driver,
        cuda=cuda,
        sharing="time-slicing",
        replicas=replicas,
    )
    resource = "nvidia.com/gpu.shared" if renamed else "nvidia.com/gpu"
    return node(name, labels=labels, allocatable={resource: str(gpus * replicas)})


def pod(
    name: str,
    node_name: str | None,
    resources: Mapping[str, int | str] | None = None,
    *,
    namespace: str = "research",
    phase: str = "Running",
    init_resources: Mapping[str, int | str] | None = None,
) -> dict[str, Any]:
    """A pod holding (limits) ``resources`` on ``node_name`` (``None``: not scheduled)."""
    limits = {k: str(v) for k, v in (resources or {}).items()}
    spec: dict[str, Any] = {
        "containers": [{"name": "main", "image": "busybox", "resources": {"limits": limits}}]
    }
    if init_resources:
        spec["initContainers"] = [
            {
                "name": "init",
                "image": "busybox",
                "resources": {"limits": {k: str(v) for k, v in init_resources.items()}},
            }
        ]
    if node_name:
        spec["nodeName"] = node_name
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"pod-uid-{next(_uid)}",
            "resourceVersion": "1",
        },
        "spec": spec,
        "status": {"phase": phase},
    }


def gpu_pods(
    node_name: str, count: int, *, resource: str = "nvidia.com/gpu", prefix: str = "job"
) -> list[dict[str, Any]]:
    """``count`` running pods holding one unit each of ``resource`` on a node."""
    return [pod(f"{prefix}-{node_name}-{i}", node_name, {resource: 1}) for i in range(count)]


def server_pod(
    user: str,
    node_name: str | None,
    resources: Mapping[str, int | str],
    *,
    server: str = "",
    namespace: str = "jh",
    phase: str = "Running",
) -> dict[str, Any]:
    """A JupyterHub server's pod as KubeSpawner makes it: annotated with the user and server."""
    name = f"jupyter-{user}" + (f"--{server}" if server else "")
    obj = pod(name, node_name, resources, namespace=namespace, phase=phase)
    annotations = {"hub.jupyter.org/username": user}
    if server:
        annotations["hub.jupyter.org/servername"] = server
    obj["metadata"]["annotations"] = annotations
    obj["metadata"]["labels"] = {"component": "singleuser-server"}
    return obj
