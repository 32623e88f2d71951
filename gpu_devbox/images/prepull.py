"""Pre-pulling the catalog's images: Z2JH values and a DaemonSet per CUDA image.

A CUDA notebook image is 10-15 GB: pulled at a user's first start it makes them wait minutes,
and pulled onto a node whose driver cannot run it, it only fills the disk. So:

* images without CUDA go to Zero to JupyterHub's own pre-puller (``prePuller.extraImages``),
  which pulls onto every user node;
* each CUDA image gets a DaemonSet whose node affinity admits exactly the nodes whose driver
  runs it, by the placement's rule (:func:`gpu_devbox.cuda.compat.driver_runs_cuda`, the same
  verdict the spawner reaches per node): a driver at or above the lowest version that runs the
  image natively or through minor-version compatibility, written on GPU Feature Discovery's
  driver labels (current and deprecated names). Its init container pulls the image and exits;
  a pause container keeps the pod, and so the image, on the node.

Whether the GPU's architecture suits the image is still the spawner's check at start: the
driver decides what can ever run on a node, and that is what pulling must respect.
"""

from __future__ import annotations

import re
from typing import Any

from gpu_devbox.catalog import Catalog, Image
from gpu_devbox.catalog.model import split_reference
from gpu_devbox.cuda import tables
from gpu_devbox.cuda.compat import min_driver_for_cuda, mvc_floor
from gpu_devbox.cuda.versions import Version, minor_of, parse_cuda, parse_driver
from gpu_devbox.placement.eligibility import GPU_TOLERATION

__all__ = [
    "DRIVER_LABELS",
    "PAUSE_IMAGE",
    "PrepullError",
    "daemonset",
    "daemonsets",
    "driver_affinity",
    "driver_floor",
    "z2jh_values",
]

#: The container that keeps each pre-pull pod alive (and so its image on the node).
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
#: GPU Feature Discovery's driver labels: (major, minor, revision), current names first.
DRIVER_LABELS = (
    (
        "nvidia.com/cuda.driver-version.major",
        "nvidia.com/cuda.driver-version.minor",
        "nvidia.com/cuda.driver-version.revision",
    ),
    ("nvidia.com/cuda.driver.major", "nvidia.com/cuda.driver.minor", "nvidia.com/cuda.driver.rev"),
)
LABEL = "app.kubernetes.io/name"
COMPONENT = "gpu-devbox-prepull"
_NOT_DNS = re.compile(r"[^a-z0-9-]+")


class PrepullError(ValueError):
    """The catalog has an image that cannot be pre-pulled as asked (the message names it)."""


def driver_floor(image: Image) -> Version | None:
    """The lowest driver that runs the image (``None``: a CPU image, runs anywhere).

    Every newer driver runs it too: natively from the toolkit's minimum driver, or from the
    first release of a branch whose newest CUDA covers it, and through minor-version
    compatibility from its major line's floor; whichever is lowest.

    Raises:
        PrepullError: the driver tables know no minimum for the image's CUDA version.
    """
    cuda = image.required_cuda
    if cuda is None:
        return None
    floors = [
        version
        for version in (parse_driver(min_driver_for_cuda(cuda)), parse_driver(mvc_floor(cuda)))
        if version is not None
    ]
    wanted = parse_cuda(cuda)
    for row in tables.load("driver_branches").rows:
        covers = parse_cuda(str(row.get("max_cuda") or ""))
        if wanted is not None and covers is not None and minor_of(covers) >= minor_of(wanted):
            floors.append((int(row["branch"]), 0, 0))
    if not floors:
        raise PrepullError(
            f"image {image.name!r}: no known driver runs CUDA {cuda} (update gpu-devbox's "
            "driver tables), so no node can be chosen to pull it onto"
        )
    floor = min(floors)
    return (*floor, 0, 0)[:3]


def driver_affinity(floor: Version) -> list[dict[str, Any]]:
    """``nodeSelectorTerms`` (any one matches) admitting the nodes with a driver >= ``floor``.

    Labels are whole numbers, so a version compares as three terms per naming scheme: a newer
    branch, the same branch with a newer minor, the same minor with a revision at least the
    floor's.
    """
    major, minor, revision = (*floor, 0, 0)[:3]
    terms: list[dict[str, Any]] = []
    for major_label, minor_label, revision_label in DRIVER_LABELS:
        same_major = {"key": major_label, "operator": "In", "values": [str(major)]}
        terms.extend(
            [
                {
                    "matchExpressions": [
                        {"key": major_label, "operator": "Gt", "values": [str(major)]}
                    ]
                },
                {
                    "matchExpressions": [
                        same_major,
                        {"key": minor_label, "operator": "Gt", "values": [str(minor)]},
                    ]
                },
                {
                    "matchExpressions": [
                        same_major,
                        # the label carries the number as the driver writes it (04), Gt reads
                        # it as a number
                        {"key": minor_label, "operator": "In", "values": _spellings(minor)},
                        {"key": revision_label, "operator": "Gt", "values": [str(revision - 1)]},
                    ]
                },
            ]
        )
    return terms


def _driver_text(version: Version) -> str:
    """``(580, 65, 6)`` -> ``580.65.06``, as NVIDIA writes it."""
    major, minor, revision = (*version, 0, 0)[:3]
    return f"{major}.{minor:02d}.{revision:02d}"


def _spellings(number: int) -> list[str]:
    """How a driver's minor may be written in a label: ``54``; ``4`` or ``04``."""
    return [str(number)] if number >= 10 else [str(number), f"{number:02d}"]


def _name(image: Image) -> str:
    slug = _NOT_DNS.sub("-", image.name.lower()).strip("-")
    return f"{COMPONENT}-{slug}"[:63].rstrip("-")


def _tolerations(catalog: Catalog, image: Image) -> list[dict[str, str]]:
    """The GPU taint's toleration, and those of every profile offering the image."""
    out = [GPU_TOLERATION.to_k8s()]
    for profile in catalog.profiles:
        if image.name not in profile.images:
            continue
        for toleration in profile.tolerations:
            item = toleration.to_k8s()
            if item not in out:
                out.append(item)
    return out


def daemonset(
    catalog: Catalog,
    image: Image,
    *,
    namespace: str | None = None,
    pause_image: str = PAUSE_IMAGE,
) -> dict[str, Any]:
    """The DaemonSet that pulls one CUDA image onto every node whose driver runs it.

    Raises:
        PrepullError: ``image`` has no CUDA (Z2JH's pre-puller takes those) or no known driver
            runs it.
    """
    floor = driver_floor(image)
    if floor is None:
        raise PrepullError(f"image {image.name!r} has no CUDA: Z2JH's prePuller pulls it")
    name = _name(image)
    labels = {LABEL: COMPONENT, "gpu-devbox.io/image": name.removeprefix(f"{COMPONENT}-")}
    metadata: dict[str, Any] = {
        "name": name,
        "labels": labels,
        "annotations": {
            "gpu-devbox.io/reference": image.reference,
            "gpu-devbox.io/min-driver": _driver_text(floor),
        },
    }
    if namespace:
        metadata["namespace"] = namespace
    resources = {
        "requests": {"cpu": "0", "memory": "0"},
        "limits": {"cpu": "100m", "memory": "64Mi"},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": metadata,
        "spec": {
            "selector": {"matchLabels": labels},
            "updateStrategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": "100%"},
            },
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "affinity": {
                        "nodeAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution": {
                                "nodeSelectorTerms": driver_affinity(floor)
                            }
                        }
                    },
                    "tolerations": _tolerations(catalog, image),
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 0,
                    "initContainers": [
                        {
                            "name": "pull",
                            "image": image.reference,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["/bin/sh", "-c", f"echo pulled {image.reference}"],
                            "resources": resources,
                        }
                    ],
                    "containers": [
                        {
                            "name": "pause",
                            "image": pause_image,
                            "resources": resources,
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "runAsNonRoot": True,
                                "runAsUser": 65534,
                            },
                        }
                    ],
                },
            },
        },
    }


def cuda_images(catalog: Catalog) -> tuple[Image, ...]:
    """The images some profile offers, in catalog order, that need a CUDA driver."""
    offered = {name for profile in catalog.profiles for name in profile.images}
    return tuple(i for i in catalog.images if i.name in offered and i.required_cuda is not None)


def daemonsets(
    catalog: Catalog, *, namespace: str | None = None, pause_image: str = PAUSE_IMAGE
) -> list[dict[str, Any]]:
    """A DaemonSet per CUDA image some profile offers."""
    return [
        daemonset(catalog, image, namespace=namespace, pause_image=pause_image)
        for image in cuda_images(catalog)
    ]


def z2jh_values(catalog: Catalog) -> dict[str, Any]:
    """Zero to JupyterHub values pre-pulling the images without CUDA on every user node.

    ``prePuller.extraImages`` maps a name to ``{name: repository, tag: tag}``; a reference
    pinned by digest keeps it in the tag (``tag@sha256:...``), which the chart joins back.

    Raises:
        PrepullError: an image pinned by digest alone (the chart needs a tag).
    """
    offered = {name for profile in catalog.profiles for name in profile.images}
    extra: dict[str, dict[str, str]] = {}
    for image in catalog.images:
        if image.name not in offered or image.required_cuda is not None:
            continue
        repository, tag, digest = split_reference(image.reference)
        if digest and not tag:
            raise PrepullError(
                f"image {image.name!r}: {image.reference} has a digest but no tag, and Z2JH's "
                "prePuller.extraImages needs a tag; write it as repository:tag@digest"
            )
        if digest:
            tag = f"{tag}@{digest}"
        extra[_NOT_DNS.sub("-", f"gpu-devbox-{image.name}".lower())] = {
            "name": repository,
            "tag": tag or "latest",
        }
    return {"prePuller": {"extraImages": extra}}
