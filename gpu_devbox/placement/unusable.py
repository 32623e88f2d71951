"""GPU nodes no image of the catalog can use: worth an admin's attention, not a user's.

A node whose driver runs none of the catalog's CUDA images (an R470 node next to CUDA 12
images, say) appears in no offer, so nothing would mention it. This finds such nodes and says
why, for ``gpu-devbox profiles`` and the hub's log.
"""

from __future__ import annotations

import dataclasses

from gpu_devbox.catalog import Catalog
from gpu_devbox.placement.cluster import ClusterSnapshot
from gpu_devbox.placement.eligibility import image_runs
from gpu_devbox.placement.nodes import NVIDIA_PREFIX
from gpu_devbox.placement.reasons import summarise

__all__ = ["UnusableNode", "unusable_nodes"]


@dataclasses.dataclass(frozen=True)
class UnusableNode:
    """A GPU node on which no GPU profile's image runs."""

    name: str
    model: str
    driver: str | None
    cuda: str | None
    #: Why not (the distinct refusals, summed up).
    reason: str

    def __str__(self) -> str:
        where = ", ".join(
            p
            for p in (
                self.model,
                f"driver {self.driver}" if self.driver else "",
                self.cuda and f"CUDA {self.cuda}",
            )
            if p
        )
        return f"{self.name} ({where}): {self.reason}"


def unusable_nodes(catalog: Catalog, snapshot: ClusterSnapshot) -> tuple[UnusableNode, ...]:
    """The GPU nodes (with ``nvidia.com/*`` resources) that run none of the images the
    catalog's GPU profiles offer; judged once per node shape."""
    images = {
        name: catalog.image(name)
        for profile in catalog.profiles
        if profile.gpu.wants_gpu
        for name in profile.images
    }
    cuda_images = [image for image in images.values() if image.required_cuda is not None]
    if not cuda_images:
        return ()
    verdicts: dict[int, str | None] = {}
    out = []
    for state in snapshot.nodes:
        node = state.node
        if node.gpu is None or not any(r.startswith(NVIDIA_PREFIX) for r in node.allocatable):
            continue
        key = state.shape if state.shape >= 0 else hash(node.shape)
        if key not in verdicts:
            refusals: list[str] = []
            for image in cuda_images:
                mechanism, why = image_runs(image, node)
                if mechanism:
                    refusals = []
                    break
                refusals.append(why)
            verdicts[key] = summarise(refusals) if refusals else None
        reason = verdicts[key]
        if reason is not None:
            info = node.gpu
            out.append(UnusableNode(node.name, info.model, info.driver, info.cuda, reason))
    return tuple(out)
