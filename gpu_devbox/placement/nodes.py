"""What a Kubernetes node offers in GPUs, read from its labels and resources; what a pod holds.

NVIDIA's GPU Feature Discovery (GFD) labels each GPU node (``nvidia.com/gpu.product``,
``nvidia.com/cuda.driver-version.full``, ...) and the device plugin advertises extended
resources (``nvidia.com/gpu``, ``nvidia.com/gpu.shared``, ``nvidia.com/mig-1g.10gb``). Current
label names are read first and the deprecated ones (``nvidia.com/cuda.driver.major``...) are the
fallback, so nodes labelled by older GFD releases still work. Pure functions over the JSON the
API server sends; nothing here talks to Kubernetes.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping
from typing import Any

from gpu_devbox.quantity import QuantityError, parse_quantity

GPU = "nvidia.com/gpu"
GPU_SHARED = "nvidia.com/gpu.shared"
MIG_PREFIX = "nvidia.com/mig-"
NVIDIA_PREFIX = "nvidia.com/"
#: The taint GPU node pools carry (GKE adds it; self-managed clusters by hand).
GPU_TAINT = GPU

_MIG_SUFFIX = re.compile(r"-MIG-(\d+g\.\d+gb(?:\+me)?)$")
_SHARED_SUFFIX = "-SHARED"


def allocatable_amount(value: object) -> float | None:
    """An amount the API server reports (``"8"``, ``"15900m"``, ``"1056089420Ki"``).

    ``None`` when it is no Kubernetes quantity (:func:`gpu_devbox.quantity.parse_quantity`).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        return None
    return _amount(value)


# A cluster's pods and nodes repeat a few dozen amounts ("1", "8", "512Gi"): parsing each once
# (exact fractions are slow to build) makes the first list of 20,000 pods much cheaper.
@functools.lru_cache(maxsize=4096)
def _amount(text: str) -> float | None:
    try:
        return float(parse_quantity(text))
    except QuantityError:
        return None


def _count(value: object) -> int:
    amount = allocatable_amount(value)
    return int(amount) if amount is not None and amount > 0 else 0


@dataclasses.dataclass(frozen=True)
class Taint:
    """A node taint."""

    key: str
    value: str | None
    effect: str

    def __str__(self) -> str:
        value = f"={self.value}" if self.value else ""
        return f"{self.key}{value}:{self.effect}"


@dataclasses.dataclass(frozen=True)
class MigDevice:
    """MIG devices of one profile on a node with the ``mixed`` strategy (from GFD labels)."""

    count: int
    memory_mib: int | None


@dataclasses.dataclass(frozen=True)
class GPUInfo:
    """A node's GPUs as GFD describes them. Any field may be unknown (``None``)."""

    #: ``nvidia.com/gpu.product`` without the ``-MIG-<profile>``/``-SHARED`` suffixes.
    product: str | None = None
    family: str | None = None
    #: Memory per GPU in MiB (per MIG device under the ``single`` strategy).
    memory_mib: int | None = None
    count: int | None = None
    compute: tuple[int, int] | None = None
    driver: str | None = None
    #: Newest CUDA version the driver supports (``nvidia.com/cuda.runtime-version.full``).
    cuda: str | None = None
    #: ``none``, ``single`` or ``mixed``.
    mig_strategy: str = "none"
    #: Under the ``single`` strategy: the profile every GPU is split into (from the product).
    mig_single_profile: str | None = None
    mig_devices: Mapping[str, MigDevice] = dataclasses.field(default_factory=dict)
    #: ``none``, ``time-slicing`` or ``mps``.
    sharing: str = "none"
    replicas: int = 1

    @property
    def model(self) -> str:
        """The product name people recognise: ``NVIDIA-A100-SXM4-80GB`` -> ``A100-SXM4-80GB``."""
        if not self.product:
            return "unknown GPU"
        name = self.product
        for prefix in ("NVIDIA-", "Tesla-"):
            if name.startswith(prefix):
                name = name[len(prefix) :]
        return name


@dataclasses.dataclass(frozen=True)
class Node:
    """One node, reduced to what placement needs."""

    name: str
    ready: bool = True
    #: Cordoned (``spec.unschedulable``).
    cordoned: bool = False
    taints: tuple[Taint, ...] = ()
    #: Allocatable ``nvidia.com/*`` extended resources, as whole numbers.
    allocatable: Mapping[str, int] = dataclasses.field(default_factory=dict)
    cpu: float | None = None
    memory: int | None = None
    gpu: GPUInfo | None = None

    @property
    def schedulable(self) -> bool:
        """Ready and not cordoned."""
        return self.ready and not self.cordoned

    @functools.cached_property
    def shape(self) -> tuple[object, ...]:
        """Everything placement judges a node by except its name: nodes of one pool share it."""
        gpu = self.gpu
        gpu_key: tuple[object, ...] = ()
        if gpu is not None:
            gpu_key = (
                *(getattr(gpu, f.name) for f in dataclasses.fields(gpu) if f.name != "mig_devices"),
                tuple(sorted(gpu.mig_devices.items())),
            )
        return (
            self.ready,
            self.cordoned,
            self.taints,
            tuple(sorted(self.allocatable.items())),
            self.cpu,
            self.memory,
            gpu_key,
        )


#: Annotations KubeSpawner puts on a server's pod: the user's and the server's names, unescaped.
USER_ANNOTATION = "hub.jupyter.org/username"
SERVER_ANNOTATION = "hub.jupyter.org/servername"


@dataclasses.dataclass(frozen=True)
class PodUse:
    """The ``nvidia.com/*`` resources a pod holds (or will hold once scheduled)."""

    namespace: str
    name: str
    node: str | None
    resources: Mapping[str, int]
    #: The JupyterHub user whose server the pod is (KubeSpawner's annotation), if it is one.
    user: str | None = None
    #: The server's name (``""``: the user's default server).
    server: str = ""


def _label(labels: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = labels.get(name)
        if value not in (None, ""):
            return value
    return None


def _int_label(labels: Mapping[str, str], *names: str) -> int | None:
    value = _label(labels, *names)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _dotted(labels: Mapping[str, str], full: str, parts: tuple[str, ...]) -> str | None:
    """``full`` if present, else the ``parts`` joined by dots (all must exist)."""
    value = _label(labels, full)
    if value is not None:
        return value
    pieces = [labels.get(part) for part in parts]
    if all(pieces) and pieces:
        return ".".join(str(piece) for piece in pieces)
    return None


def driver_version(labels: Mapping[str, str]) -> str | None:
    """The driver version from current or deprecated GFD labels (``550.107.02``)."""
    current = _dotted(
        labels,
        "nvidia.com/cuda.driver-version.full",
        (
            "nvidia.com/cuda.driver-version.major",
            "nvidia.com/cuda.driver-version.minor",
            "nvidia.com/cuda.driver-version.revision",
        ),
    )
    return current or _dotted(
        labels,
        "",
        (
            "nvidia.com/cuda.driver.major",
            "nvidia.com/cuda.driver.minor",
            "nvidia.com/cuda.driver.rev",
        ),
    )


def cuda_version(labels: Mapping[str, str]) -> str | None:
    """The newest CUDA the driver supports, from current or deprecated labels (``12.5``)."""
    current = _dotted(
        labels,
        "nvidia.com/cuda.runtime-version.full",
        ("nvidia.com/cuda.runtime-version.major", "nvidia.com/cuda.runtime-version.minor"),
    )
    return current or _dotted(
        labels, "", ("nvidia.com/cuda.runtime.major", "nvidia.com/cuda.runtime.minor")
    )


def parse_gpu_info(labels: Mapping[str, str]) -> GPUInfo | None:
    """The GPUs GFD describes in a node's labels; ``None`` when it labelled no GPU."""
    raw_product = _label(labels, "nvidia.com/gpu.product")
    driver = driver_version(labels)
    if raw_product is None and driver is None and "nvidia.com/gpu.count" not in labels:
        return None
    product = raw_product
    single_profile = None
    if product:
        if product.endswith(_SHARED_SUFFIX):
            product = product[: -len(_SHARED_SUFFIX)]
        match = _MIG_SUFFIX.search(product)
        if match:
            single_profile = match.group(1)
            product = product[: match.start()]
    major = _int_label(labels, "nvidia.com/gpu.compute.major")
    minor = _int_label(labels, "nvidia.com/gpu.compute.minor")
    strategy = (_label(labels, "nvidia.com/mig.strategy") or "none").lower()
    if single_profile and strategy == "none":
        strategy = "single"
    devices: dict[str, MigDevice] = {}
    for key, value in labels.items():
        if key.startswith(MIG_PREFIX) and key.endswith(".count"):
            profile = key[len(MIG_PREFIX) : -len(".count")]
            try:
                count = int(value)
            except ValueError:
                continue
            devices[profile] = MigDevice(
                count=count, memory_mib=_int_label(labels, f"{MIG_PREFIX}{profile}.memory")
            )
    return GPUInfo(
        product=product,
        family=_label(labels, "nvidia.com/gpu.family"),
        memory_mib=_int_label(labels, "nvidia.com/gpu.memory"),
        count=_int_label(labels, "nvidia.com/gpu.count"),
        compute=(major, minor) if major is not None and minor is not None else None,
        driver=driver,
        cuda=cuda_version(labels),
        mig_strategy=strategy,
        mig_single_profile=single_profile if strategy == "single" else None,
        mig_devices=devices,
        sharing=(_label(labels, "nvidia.com/gpu.sharing-strategy") or "none").lower(),
        replicas=max(1, _int_label(labels, "nvidia.com/gpu.replicas") or 1),
    )


def parse_node(obj: Mapping[str, Any]) -> Node:
    """A node from the API server's JSON (``kubectl get node -o json``)."""
    metadata = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    labels = metadata.get("labels") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    taints = tuple(
        Taint(key=t.get("key", ""), value=t.get("value"), effect=t.get("effect", ""))
        for t in spec.get("taints") or []
    )
    allocatable = status.get("allocatable") or status.get("capacity") or {}
    resources = {
        key: _count(value)
        for key, value in allocatable.items()
        if key.startswith(NVIDIA_PREFIX) and _count(value) > 0
    }
    cpu = allocatable_amount(allocatable.get("cpu"))
    memory = allocatable_amount(allocatable.get("memory"))
    return Node(
        name=str(metadata.get("name", "")),
        ready=ready,
        cordoned=bool(spec.get("unschedulable")),
        taints=taints,
        allocatable=resources,
        cpu=cpu,
        memory=int(memory) if memory is not None else None,
        gpu=parse_gpu_info(labels),
    )


def pod_key(obj: Mapping[str, Any]) -> str:
    """``namespace/name`` of a pod object."""
    metadata = obj.get("metadata") or {}
    return f"{metadata.get('namespace', '')}/{metadata.get('name', '')}"


def parse_pod(obj: Mapping[str, Any]) -> PodUse | None:
    """The GPU resources a pod holds; ``None`` when it holds none or has finished.

    Like the scheduler, the pod's demand is the larger of its containers' sum and its largest
    init container; limits count (extended resources may not be overcommitted, so requests
    equal limits), requests are the fallback.
    """
    status = obj.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed"):
        return None
    spec = obj.get("spec") or {}
    total: dict[str, int] = {}
    for container in spec.get("containers") or []:
        for key, amount in _container_gpus(container).items():
            total[key] = total.get(key, 0) + amount
    for container in spec.get("initContainers") or []:
        for key, amount in _container_gpus(container).items():
            total[key] = max(total.get(key, 0), amount)
    if not total:
        return None
    metadata = obj.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    user = annotations.get(USER_ANNOTATION)
    return PodUse(
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        node=spec.get("nodeName") or None,
        resources=total,
        user=str(user) if user else None,
        server=str(annotations.get(SERVER_ANNOTATION) or ""),
    )


def _container_gpus(container: Mapping[str, Any]) -> dict[str, int]:
    resources = container.get("resources") or {}
    limits = resources.get("limits") or {}
    requests = resources.get("requests") or {}
    out: dict[str, int] = {}
    for key in {*limits, *requests}:
        if key.startswith(NVIDIA_PREFIX):
            amount = _count(limits.get(key, requests.get(key)))
            if amount:
                out[key] = amount
    return out
