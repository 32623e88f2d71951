"""Placement: ``(catalog, cluster) -> offers``. Pure: no I/O, no clock, no Kubernetes client.

For each profile an :class:`Offer` says how many GPUs (or MIG slices, or GPU shares) are free
out of how many, which nodes could take the server, and per node the newest of the profile's
images its driver runs, natively or by minor-version compatibility
(:func:`gpu_devbox.cuda.compat.driver_runs_cuda`), and whose compiled architectures cover the
node's GPU. A profile nothing can serve is still offered, as unavailable with the reason.
:func:`plan` turns a user's choice into the pod's placement.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from gpu_devbox.catalog import Catalog, GPUKind, Image, Profile, Toleration, matches_model
from gpu_devbox.catalog.model import cuda_key
from gpu_devbox.catalog.units import format_size
from gpu_devbox.cuda.compat import Mechanism, driver_runs_cuda
from gpu_devbox_spawner.cluster import ClusterSnapshot, NodeState
from gpu_devbox_spawner.nodes import GPU, GPU_SHARED, GPU_TAINT, MIG_PREFIX, Node, Taint

#: Every GPU pod tolerates the de-facto GPU taint, whatever its value or effect.
GPU_TOLERATION = Toleration(key=GPU_TAINT, operator="Exists")
_BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")


class Stage(enum.IntEnum):
    """How far a node got through a profile's checks (the reason text follows the furthest)."""

    KIND = 0  # offers this kind of GPU at all
    FILTER = 1  # model, family, memory
    SCHEDULABLE = 2  # ready, not cordoned
    TAINTS = 3  # taints tolerated
    SIZE = 4  # CPU and memory fit
    IMAGES = 5  # the driver runs one of the images
    OK = 6


class NodeChoice(NamedTuple):
    """A node that could take a profile's server (a tuple: made for every node, it is cheap)."""

    name: str
    model: str | None
    #: The resource the pod requests on this node (``None`` for CPU profiles).
    resource: str | None
    free: int
    total: int
    driver: str | None
    cuda: str | None
    #: Names of the profile's images this node runs, newest CUDA first (GPU profiles).
    images: tuple[str, ...]
    #: How the driver runs each of them (``native``, ``minor_version``; ``cpu`` without CUDA).
    mechanisms: tuple[str, ...]

    @property
    def best_image(self) -> str:
        """The newest image this node runs."""
        return self.images[0]


@dataclasses.dataclass(frozen=True)
class ImageChoice:
    """One of a profile's images, and where it could run right now."""

    image: Image
    nodes: tuple[str, ...]
    free: int
    total: int
    #: The most units free on one node that runs it.
    max_free: int
    #: Why it runs on no node (``None`` when it runs somewhere).
    reason: str | None = None

    @property
    def runs(self) -> bool:
        """Whether some eligible node runs it."""
        return bool(self.nodes)


@dataclasses.dataclass(frozen=True)
class Offer:
    """What the cluster can give one profile right now."""

    profile: Profile
    available: bool
    #: Why it is unavailable (``None`` when available).
    reason: str | None
    free: int
    total: int
    #: The most units free on a single eligible node.
    max_free: int
    #: Distinct GPU models of the eligible nodes (GPU profiles).
    models: tuple[str, ...]
    nodes: tuple[NodeChoice, ...]
    images: tuple[ImageChoice, ...]
    #: The image preselected for this profile.
    default_image: str

    @property
    def slug(self) -> str:
        """The profile's slug."""
        return self.profile.slug

    @property
    def kind(self) -> GPUKind:
        """What the profile asks for."""
        return self.profile.gpu.kind

    @property
    def max_count(self) -> int:
        """The most whole GPUs a user may pick now (the profile's count when none are free)."""
        gpu = self.profile.gpu
        return max(gpu.count, min(gpu.max_count, self.max_free))

    def image(self, name: str) -> ImageChoice:
        """The choice for one of the profile's images (KeyError if not one of them)."""
        for choice in self.images:
            if choice.image.name == name:
                return choice
        raise KeyError(name)

    @property
    def model_text(self) -> str:
        """``A100-SXM4-80GB``, ``A100-SXM4-80GB or H100-80GB-HBM3``, or ``matching``."""
        return _join_models(self.models)

    @property
    def unit(self) -> str:
        """What is counted: ``GPU``, ``MIG 1g.10gb slice``, ``shared GPU``."""
        return _unit(self.profile)


@dataclasses.dataclass(frozen=True)
class Plan:
    """Where a chosen profile, image and count may go."""

    offer: Offer
    image: Image
    count: int
    resource: str | None
    #: Nodes the pod may be scheduled on (its required node affinity).
    nodes: tuple[str, ...]
    #: The most units free now on one of those nodes.
    max_free: int

    @property
    def fits_now(self) -> bool:
        """Whether a node has room for it right now."""
        if self.resource is None:
            return bool(self.nodes)
        return bool(self.nodes) and self.max_free >= self.count


# ----------------------------------------------------------------------------------------------
# offers
# ----------------------------------------------------------------------------------------------
def compute_offers(
    catalog: Catalog, cluster: ClusterSnapshot, *, tolerations: Sequence[Toleration] = ()
) -> tuple[Offer, ...]:
    """An offer for every profile of the catalog, in catalog order."""
    return tuple(
        offer_for(catalog, profile, cluster, tolerations=tolerations)
        for profile in catalog.profiles
    )


def offer_for(
    catalog: Catalog,
    profile: Profile,
    cluster: ClusterSnapshot,
    *,
    tolerations: Sequence[Toleration] = (),
) -> Offer:
    """What the cluster can give one profile right now."""
    images = catalog.profile_images(profile)
    tolerated = (*tolerations, *profile.tolerations)
    if profile.gpu.wants_gpu:
        tolerated = (GPU_TOLERATION, *tolerated)
    furthest = Stage.KIND
    blocked: list[tuple[NodeState, str]] = []  # nodes stopped at the furthest stage, and why
    chosen: list[NodeChoice] = []
    # nodes of one pool share a shape: judge each shape once, then count each node's GPUs
    judged: dict[object, tuple[_Judgement, Node]] = {}
    for state in cluster.nodes:
        node = state.node
        key = state.shape if state.shape >= 0 else node.shape
        found = judged.get(key)
        if found is None:
            found = judged[key] = (_judge(node, profile, images, tolerated), node)
        verdict = found[0]
        if verdict.stage is Stage.OK:
            resource = verdict.resource
            info = node.gpu
            if resource:
                total = node.allocatable.get(resource, 0)
                free = max(0, total - state.used.get(resource, 0))
            else:
                total = free = 0
            chosen.append(
                NodeChoice(
                    node.name,
                    verdict.model,
                    resource,
                    free,
                    total,
                    info.driver if info else None,
                    info.cuda if info else None,
                    verdict.images,
                    verdict.mechanisms,
                )
            )
        elif verdict.stage > furthest:
            furthest, blocked = verdict.stage, [(state, verdict.detail)]
        elif verdict.stage == furthest:
            blocked.append((state, verdict.detail))

    # one node per shape is enough to say why an image runs nowhere
    if chosen:
        candidates = [node for verdict, node in judged.values() if verdict.stage is Stage.OK]
    elif furthest is Stage.IMAGES:
        candidates = [node for verdict, node in judged.values() if verdict.stage is Stage.IMAGES]
    else:
        candidates = []
    image_choices = _image_choices(images, chosen, candidates)
    offer = Offer(
        profile=profile,
        available=False,
        reason=None,
        free=sum(c.free for c in chosen),
        total=sum(c.total for c in chosen),
        max_free=max((c.free for c in chosen), default=0),
        models=tuple(sorted({c.model for c in chosen if c.model})) if profile.gpu.wants_gpu else (),
        nodes=tuple(chosen),
        images=image_choices,
        default_image=_default_image(profile, image_choices),
    )
    if not cluster.synced:
        reason = "The hub has not read the cluster's nodes yet; reload this page in a moment."
    elif not chosen:
        reason = _why_none(profile, furthest, blocked, images)
    elif profile.gpu.wants_gpu and offer.max_free < profile.gpu.count:
        reason = shortage(offer, profile.gpu.count)
    else:
        return dataclasses.replace(offer, available=True)
    return dataclasses.replace(offer, reason=reason)


@dataclasses.dataclass(frozen=True)
class _Judgement:
    """What a node's shape means for a profile (the same for every node of a pool)."""

    stage: Stage
    detail: str = ""
    resource: str | None = None
    model: str | None = None
    images: tuple[str, ...] = ()
    mechanisms: tuple[str, ...] = ()


def _judge(
    node: Node, profile: Profile, images: Sequence[Image], tolerated: Sequence[Toleration]
) -> _Judgement:
    """How far a node gets through a profile's checks; free GPUs aside."""
    gpu = profile.gpu
    resource = node_resource(node, profile) if gpu.wants_gpu else None
    if gpu.wants_gpu and resource is None:
        return _Judgement(Stage.KIND)
    if gpu.wants_gpu and not _matches_filter(node, profile):
        return _Judgement(Stage.FILTER)
    if not node.schedulable:
        return _Judgement(Stage.SCHEDULABLE, "not ready" if not node.ready else "cordoned")
    untolerated = [t for t in node.taints if not _tolerated(t, tolerated)]
    if untolerated:
        return _Judgement(Stage.TAINTS, ", ".join(str(t) for t in untolerated))
    if not _fits(node, profile):
        return _Judgement(Stage.SIZE)
    runnable: list[tuple[Image, str]] = []
    refusals: list[str] = []
    for image in images:
        mechanism, why = image_runs(image, node) if gpu.wants_gpu else ("cpu", "")
        if mechanism:
            runnable.append((image, mechanism))
        else:
            refusals.append(why)
    if not runnable:
        return _Judgement(Stage.IMAGES, "; ".join(dict.fromkeys(refusals)))
    if gpu.wants_gpu:  # newest CUDA first; a CPU profile keeps the catalog's order
        runnable.sort(key=lambda pair: cuda_key(pair[0].required_cuda or "0"), reverse=True)
    info = node.gpu
    return _Judgement(
        Stage.OK,
        resource=resource,
        model=info.model if info and info.product else None,
        images=tuple(image.name for image, _ in runnable),
        mechanisms=tuple(mechanism for _, mechanism in runnable),
    )


def node_resource(node: Node, profile: Profile) -> str | None:
    """The extended resource a GPU profile would request on this node, if it offers one."""
    gpu = profile.gpu
    info = node.gpu
    alloc = node.allocatable
    shares_gpu = info is not None and info.replicas > 1 and GPU_SHARED not in alloc
    if gpu.kind is GPUKind.WHOLE:
        whole = GPU in alloc and not shares_gpu and not (info and info.mig_single_profile)
        return GPU if whole else None
    if gpu.kind is GPUKind.MIG:
        if f"{MIG_PREFIX}{gpu.mig}" in alloc:
            return f"{MIG_PREFIX}{gpu.mig}"
        if info and info.mig_single_profile == gpu.mig and GPU in alloc:
            return GPU
        return None
    if gpu.kind is GPUKind.SHARED:
        if GPU_SHARED in alloc:
            return GPU_SHARED
        return GPU if shares_gpu and GPU in alloc else None
    return None


def _unit_memory_mib(node: Node, profile: Profile) -> int | None:
    info = node.gpu
    if info is None:
        return None
    if profile.gpu.kind is GPUKind.MIG and info.mig_strategy != "single":
        device = info.mig_devices.get(profile.gpu.mig or "")
        if device and device.memory_mib:
            return device.memory_mib
        digits = (profile.gpu.mig or "").split(".")[-1].removesuffix("gb").split("+")[0]
        return int(digits) * 1024 if digits.isdigit() else None
    return info.memory_mib


def _matches_filter(node: Node, profile: Profile) -> bool:
    gpu = profile.gpu
    info = node.gpu
    if gpu.models and not (info and info.product and matches_model(info.product, gpu.models)):
        return False
    if gpu.families and not (info and info.family and info.family.lower() in gpu.families):
        return False
    if gpu.min_memory is not None:
        memory = _unit_memory_mib(node, profile)
        if memory is None or memory * 1024**2 < gpu.min_memory:
            return False
    return True


def _tolerated(taint: Taint, tolerations: Iterable[Toleration]) -> bool:
    if taint.effect not in _BLOCKING_EFFECTS:
        return True
    return any(t.tolerates(taint.key, taint.value, taint.effect) for t in tolerations)


def _fits(node: Node, profile: Profile) -> bool:
    cpu = profile.cpu.guarantee
    memory = profile.memory.guarantee
    if cpu is not None and node.cpu is not None and cpu > node.cpu:
        return False
    return not (memory is not None and node.memory is not None and memory > node.memory)


@functools.lru_cache(maxsize=4096)
def _verdict(driver: str, cuda: str, driver_cuda: str | None) -> tuple[Mechanism, bool, str]:
    verdict = driver_runs_cuda(driver, cuda, driver_cuda=driver_cuda)
    return verdict.mechanism, verdict.ptx_jit, verdict.detail


def image_runs(image: Image, node: Node) -> tuple[str, str]:
    """(mechanism, "") when the node's driver and GPU run the image, else ("", why not)."""
    required = image.required_cuda
    if required is None:
        return "no-cuda", ""
    info = node.gpu
    if info is None or not info.driver:
        return "", "the driver version is not labelled (is GPU Feature Discovery running?)"
    mechanism, ptx_jit, detail = _verdict(info.driver, required, info.cuda)
    if mechanism not in (Mechanism.NATIVE, Mechanism.MINOR_VERSION, Mechanism.FORWARD_COMPAT):
        if mechanism is Mechanism.UNKNOWN:
            return "", f"driver {info.driver} with CUDA {required}: {detail}"
        most = f" (it runs CUDA {info.cuda} at most)" if info.cuda else ""
        return "", f"driver {info.driver}{most} is too old for CUDA {required}"
    if not image.runs_on(info.compute, ptx_jit=ptx_jit):
        assert info.compute is not None
        major, minor = info.compute
        how = "" if ptx_jit else " (and its PTX cannot be JIT-compiled by this driver)"
        return "", (
            f"{image.label} has no code for compute capability {major}.{minor} ({info.model}){how}"
        )
    return mechanism.value, ""


def _image_choices(
    images: Sequence[Image], chosen: Sequence[NodeChoice], candidates: Sequence[Node]
) -> tuple[ImageChoice, ...]:
    """Where each image runs; ``candidates`` are the nodes to explain a refusal with."""
    names: dict[str, list[str]] = {image.name: [] for image in images}
    free = dict.fromkeys(names, 0)
    total = dict.fromkeys(names, 0)
    most = dict.fromkeys(names, 0)
    for choice in chosen:
        for name in choice.images:
            names[name].append(choice.name)
            free[name] += choice.free
            total[name] += choice.total
            if choice.free > most[name]:
                most[name] = choice.free
    out = []
    for image in images:
        name = image.name
        if names[name]:
            out.append(ImageChoice(image, tuple(names[name]), free[name], total[name], most[name]))
            continue
        reasons = [why for node in candidates for why in [image_runs(image, node)[1]] if why]
        reason = _summarise(reasons) if reasons else "no node can take this profile"
        out.append(ImageChoice(image, (), 0, 0, 0, reason))
    return tuple(out)


def _summarise(reasons: Sequence[str], limit: int = 2) -> str:
    unique = list(dict.fromkeys(reasons))
    text = "; ".join(unique[:limit])
    if len(unique) > limit:
        text += f"; and {len(unique) - limit} more"
    return text


def _default_image(profile: Profile, choices: Sequence[ImageChoice]) -> str:
    """The profile's default if it runs on a node with room; else the newest that does."""
    need = max(1, profile.gpu.count)
    by_name = {c.image.name: c for c in choices}
    preferred = by_name[profile.default_image]
    if preferred.runs and (not profile.gpu.wants_gpu or preferred.max_free >= need):
        return preferred.image.name
    ranked = sorted(choices, key=lambda c: cuda_key(c.image.required_cuda or "0"), reverse=True)
    for choice in ranked:
        if choice.runs and (not profile.gpu.wants_gpu or choice.max_free >= need):
            return choice.image.name
    for choice in ranked:
        if choice.runs:
            return choice.image.name
    return profile.default_image


# ----------------------------------------------------------------------------------------------
# reasons
# ----------------------------------------------------------------------------------------------
def _join_models(models: Sequence[str]) -> str:
    if not models:
        return "matching"
    if len(models) > 3:
        return f"{', '.join(models[:3])} or {len(models) - 3} other"
    return " or ".join(models)


def _unit(profile: Profile) -> str:
    gpu = profile.gpu
    if gpu.kind is GPUKind.MIG:
        return f"MIG {gpu.mig} slice"
    if gpu.kind is GPUKind.SHARED:
        return "shared GPU"
    return "GPU"


def _filter_text(profile: Profile) -> str:
    gpu = profile.gpu
    parts = []
    if gpu.models:
        parts.append("model " + " or ".join(gpu.models))
    if gpu.families:
        parts.append("family " + " or ".join(gpu.families))
    if gpu.min_memory is not None:
        parts.append(f"at least {format_size(gpu.min_memory)} of memory")
    return ", ".join(parts)


def _why_none(
    profile: Profile,
    furthest: Stage,
    blocked: Sequence[tuple[NodeState, str]],
    images: Sequence[Image],
) -> str:
    gpu = profile.gpu
    count = len(blocked)
    matching = "matching " if gpu.wants_gpu else ""
    if furthest is Stage.KIND:
        if not gpu.wants_gpu:
            return "The cluster has no nodes."
        if gpu.kind is GPUKind.MIG:
            return f"No node offers MIG {gpu.mig} slices (nvidia.com/mig-{gpu.mig})."
        if gpu.kind is GPUKind.SHARED:
            return "No node offers shared GPUs (time-slicing or MPS)."
        return "No node offers whole GPUs (nvidia.com/gpu)."
    if furthest is Stage.FILTER:
        return f"No node has a {_unit(profile)} with {_filter_text(profile)}."
    if furthest is Stage.SCHEDULABLE:
        if count == 1:
            return f"The only {matching}node is cordoned or not ready."
        return f"All {count} {matching}nodes are cordoned or not ready."
    if furthest is Stage.TAINTS:
        taints = _summarise([why for _, why in blocked])
        who = f"The only {matching}node has" if count == 1 else f"All {count} {matching}nodes have"
        return f"{who} taints this profile does not tolerate: {taints}."
    if furthest is Stage.SIZE:
        wants = []
        if profile.cpu.guarantee is not None:
            wants.append(f"{profile.cpu.guarantee:g} CPUs")
        if profile.memory.guarantee is not None:
            wants.append(f"{format_size(int(profile.memory.guarantee))} of memory")
        return f"No {matching}node is big enough for {' and '.join(wants)}."
    names = ", ".join(image.label for image in images)
    return f"No {matching}node can run its images ({names}): {_summarise([w for _, w in blocked])}."


def shortage(offer: Offer, count: int, *, image: str | None = None) -> str:
    """Why ``count`` units are not free: ``No A100-SXM4-80GB GPU is free (0 of 8)``."""
    if image is not None:
        choice = offer.image(image)
        free, total, max_free = choice.free, choice.total, choice.max_free
        models = tuple(sorted({c.model for c in offer.nodes if c.model and c.name in choice.nodes}))
    else:
        free, total, max_free = offer.free, offer.total, offer.max_free
        models = offer.models
    model = _join_models(models)
    unit = _unit(offer.profile)
    if free == 0:
        return f"No {model} {unit} is free (0 of {total})"
    return (
        f"No node has {count} free {model} {unit}s ({free} of {total} free, "
        f"at most {max_free} on one node)"
    )


def alternatives(offers: Sequence[Offer], exclude: str, limit: int = 2) -> str:
    """``try 'One GPU' (3 free) or 'CPU only'``, from the profiles available now."""
    picks = [o for o in offers if o.available and o.slug != exclude][:limit]
    if not picks:
        return "try again later"
    parts = []
    for offer in picks:
        name = f"'{offer.profile.display_name}'"
        if offer.profile.gpu.wants_gpu:
            name += f" ({offer.free} free)"
        parts.append(name)
    return "try " + " or ".join(parts)


# ----------------------------------------------------------------------------------------------
# a user's choice -> where the pod may go
# ----------------------------------------------------------------------------------------------
def plan(offer: Offer, image: str, count: int) -> Plan:
    """Where a server of this profile, image and GPU count may be scheduled.

    The nodes all run the image and offer the same resource (a pod requests one resource
    name, so MIG ``single`` and ``mixed`` nodes, or renamed and unrenamed shared GPUs, are not
    mixed); among the resources, the one with the most room wins.
    """
    choice = offer.image(image)
    nodes = [c for c in offer.nodes if image in c.images]
    if not offer.profile.gpu.wants_gpu:
        return Plan(offer, choice.image, 0, None, tuple(c.name for c in nodes), 0)
    groups: dict[str, list[NodeChoice]] = {}
    for c in nodes:
        if c.resource and c.total >= count:
            groups.setdefault(c.resource, []).append(c)
    if not groups:
        return Plan(offer, choice.image, count, None, (), 0)
    resource, members = max(
        groups.items(),
        key=lambda item: (
            max(c.free for c in item[1]) >= count,
            sum(c.free for c in item[1]),
            item[0] == GPU,
        ),
    )
    return Plan(
        offer=offer,
        image=choice.image,
        count=count,
        resource=resource,
        nodes=tuple(c.name for c in members),
        max_free=max(c.free for c in members),
    )
