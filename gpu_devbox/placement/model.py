"""What placement hands out: offers per profile, the nodes and images behind them, plans.

Plain frozen values, shared by :mod:`~gpu_devbox.placement.offers` (which makes them),
:mod:`~gpu_devbox.placement.reasons` (which explains them) and the spawner (which shows them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

from gpu_devbox.catalog import GPUKind, Image, Profile


def join_models(models: Sequence[str]) -> str:
    if not models:
        return "matching"
    if len(models) > 3:
        return f"{', '.join(models[:3])} or {len(models) - 3} other"
    return " or ".join(models)


def unit_of(profile: Profile) -> str:
    gpu = profile.gpu
    if gpu.kind is GPUKind.MIG:
        return f"MIG {gpu.mig} slice"
    if gpu.kind is GPUKind.SHARED:
        return "shared GPU"
    return "GPU"


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
        return join_models(self.models)

    @property
    def unit(self) -> str:
        """What is counted: ``GPU``, ``MIG 1g.10gb slice``, ``shared GPU``."""
        return unit_of(self.profile)


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
