"""Why a profile cannot start, and what to try instead, in sentences users read."""

from __future__ import annotations

from collections.abc import Sequence

from gpu_devbox.catalog import GPUKind, Image, Profile
from gpu_devbox.catalog.units import format_size
from gpu_devbox.placement.cluster import NodeState
from gpu_devbox.placement.eligibility import Stage
from gpu_devbox.placement.model import Offer, join_models, unit_of


def summarise(reasons: Sequence[str], limit: int = 2) -> str:
    unique = list(dict.fromkeys(reasons))
    text = "; ".join(unique[:limit])
    if len(unique) > limit:
        text += f"; and {len(unique) - limit} more"
    return text


def filter_text(profile: Profile) -> str:
    gpu = profile.gpu
    parts = []
    if gpu.models:
        parts.append("model " + " or ".join(gpu.models))
    if gpu.families:
        parts.append("family " + " or ".join(gpu.families))
    if gpu.min_memory is not None:
        parts.append(f"at least {format_size(gpu.min_memory)} of memory")
    return ", ".join(parts)


def why_none(
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
        return f"No node has a {unit_of(profile)} with {filter_text(profile)}."
    if furthest is Stage.SCHEDULABLE:
        if count == 1:
            return f"The only {matching}node is cordoned or not ready."
        return f"All {count} {matching}nodes are cordoned or not ready."
    if furthest is Stage.TAINTS:
        taints = summarise([why for _, why in blocked])
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
    return f"No {matching}node can run its images ({names}): {summarise([w for _, w in blocked])}."


def shortage(offer: Offer, count: int, *, image: str | None = None) -> str:
    """Why ``count`` units are not free: ``No A100-SXM4-80GB GPU is free (0 of 8)``."""
    if image is not None:
        choice = offer.image(image)
        free, total, max_free = choice.free, choice.total, choice.max_free
        models = tuple(sorted({c.model for c in offer.nodes if c.model and c.name in choice.nodes}))
    else:
        free, total, max_free = offer.free, offer.total, offer.max_free
        models = offer.models
    model = join_models(models)
    unit = unit_of(offer.profile)
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
