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
from collections.abc import Sequence

from gpu_devbox.catalog import Catalog, Image, Profile, Toleration
from gpu_devbox.catalog.model import cuda_key
from gpu_devbox.placement.cluster import ClusterSnapshot, NodeState
from gpu_devbox.placement.eligibility import (
    GPU_TOLERATION,
    Stage,
    fits,
    image_runs,
    is_tolerated,
    matches_filter,
    node_resource,
)
from gpu_devbox.placement.model import ImageChoice, NodeChoice, Offer, Plan
from gpu_devbox.placement.nodes import GPU, Node
from gpu_devbox.placement.reasons import shortage, summarise, why_none

__all__ = ["compute_offers", "offer_for", "plan"]


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
    survey = _survey(cluster, profile, images, tolerated)
    chosen = survey.chosen
    image_choices = _image_choices(images, chosen, survey.explaining_nodes())
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
    reason = _why_unavailable(offer, cluster, survey, images)
    if reason is None:
        return dataclasses.replace(offer, available=True)
    return dataclasses.replace(offer, reason=reason)


@dataclasses.dataclass
class _Survey:
    """Every node judged for one profile: those that can take it, and how far the rest got."""

    #: The nodes that pass every check, with their free units.
    chosen: list[NodeChoice] = dataclasses.field(default_factory=list)
    #: One judgement per node shape (nodes of one pool share it), and a node of that shape.
    judged: dict[object, tuple[_Judgement, Node]] = dataclasses.field(default_factory=dict)
    #: The furthest stage a refused node reached, and the nodes stopped there with why.
    furthest: Stage = Stage.KIND
    blocked: list[tuple[NodeState, str]] = dataclasses.field(default_factory=list)

    def explaining_nodes(self) -> list[Node]:
        """One node per shape to say why an image runs nowhere with."""
        if self.chosen:
            wanted = Stage.OK
        elif self.furthest is Stage.IMAGES:
            wanted = Stage.IMAGES
        else:
            return []
        # image_runs reads only the node's driver, CUDA, compute capability and model: one
        # node per such combination gives every distinct reason, in the same order
        out: dict[object, Node] = {}
        for verdict, node in self.judged.values():
            if verdict.stage is wanted:
                info = node.gpu
                key = (info.driver, info.cuda, info.compute, info.product) if info else None
                out.setdefault(key, node)
        return list(out.values())


def _survey(
    cluster: ClusterSnapshot,
    profile: Profile,
    images: Sequence[Image],
    tolerated: Sequence[Toleration],
) -> _Survey:
    """Judge each node shape once, then count each eligible node's free units.

    A shape's judgement for this profile is kept in the snapshot's memo (shared by the
    snapshots of one store), so after the first offers only shapes never seen before are
    judged: in a cluster where every node differs, a pod event costs no judging at all.
    """
    survey = _Survey()
    judged = survey.judged
    memo = _memo_for(cluster, profile, images, tolerated)
    judgements = memo.judgements if memo is not None else None
    # a node whose state did not change since the last offers keeps its choice (its free
    # counts are the same): only the nodes a watch event touched are counted again
    last_choices = memo.choices if memo is not None else {}
    choices: dict[int, tuple[NodeState, NodeChoice]] = {}
    chosen, blocked = survey.chosen, survey.blocked
    for state in cluster.nodes:
        node = state.node
        shape = state.shape
        key = shape if shape >= 0 else node.shape
        found = judged.get(key)
        if found is None:
            verdict = judgements.get(shape) if judgements is not None and shape >= 0 else None
            if verdict is None:
                verdict = _judge(node, profile, images, tolerated)
                if judgements is not None and shape >= 0:
                    judgements[shape] = verdict
            found = judged[key] = (verdict, node)
        verdict = found[0]
        if verdict.stage is Stage.OK:
            kept = last_choices.get(id(state))
            if kept is None or kept[0] is not state:
                kept = (state, _node_choice(state, verdict))
            choices[id(state)] = kept
            chosen.append(kept[1])
        elif verdict.stage > survey.furthest:
            survey.furthest, blocked[:] = verdict.stage, [(state, verdict.detail)]
        elif verdict.stage == survey.furthest:
            blocked.append((state, verdict.detail))
    if memo is not None:
        memo.choices = choices
    return survey


@dataclasses.dataclass
class _Memo:
    """What one profile's offers keep between snapshots of one store."""

    #: The profile and images the entry is for: held, so that their ids stay theirs.
    profile: Profile
    images: tuple[Image, ...]
    #: Shape number -> the judgement of that shape for this profile.
    judgements: dict[int, _Judgement] = dataclasses.field(default_factory=dict)
    #: id(NodeState) -> (that state, its choice) from the last offers, for nodes that passed.
    choices: dict[int, tuple[NodeState, NodeChoice]] = dataclasses.field(default_factory=dict)


#: Profiles (with their images and tolerations) remembered per store before starting over.
_MEMO_PROFILES = 64


def _memo_for(
    cluster: ClusterSnapshot,
    profile: Profile,
    images: Sequence[Image],
    tolerated: Sequence[Toleration],
) -> _Memo | None:
    """What the snapshot's store remembers for this profile; ``None`` without a memo."""
    memo = cluster.memo
    if memo is None:
        return None
    key = (id(profile), *map(id, images), tuple(tolerated))
    entry = memo.get(key)
    # the entry holds the profile and images themselves, so their ids cannot be reused while
    # it exists; a reloaded catalog makes new objects and so new entries
    if entry is None:
        if len(memo) >= _MEMO_PROFILES:
            memo.clear()
        entry = memo[key] = _Memo(profile, tuple(images))
    found: _Memo = entry
    return found


def _node_choice(state: NodeState, verdict: _Judgement) -> NodeChoice:
    node, resource, info = state.node, verdict.resource, state.node.gpu
    total = node.allocatable.get(resource, 0) if resource else 0
    free = max(0, total - state.used.get(resource, 0)) if resource else 0
    return NodeChoice(
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


def _why_unavailable(
    offer: Offer, cluster: ClusterSnapshot, survey: _Survey, images: Sequence[Image]
) -> str | None:
    """Why the profile cannot start now; ``None`` when it can."""
    profile = offer.profile
    if not cluster.synced:
        return "The hub has not read the cluster's nodes yet; reload this page in a moment."
    if not survey.chosen:
        return why_none(profile, survey.furthest, survey.blocked, images)
    if profile.gpu.wants_gpu and offer.max_free < profile.gpu.count:
        return shortage(offer, profile.gpu.count)
    return None


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
    if gpu.wants_gpu and not matches_filter(node, profile):
        return _Judgement(Stage.FILTER)
    if not node.schedulable:
        return _Judgement(Stage.SCHEDULABLE, "not ready" if not node.ready else "cordoned")
    untolerated = [t for t in node.taints if not is_tolerated(t, tolerated)]
    if untolerated:
        return _Judgement(Stage.TAINTS, ", ".join(str(t) for t in untolerated))
    if not fits(node, profile):
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
        reason = summarise(reasons) if reasons else "no node can take this profile"
        out.append(ImageChoice(image, (), 0, 0, 0, reason))
    return tuple(out)


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
