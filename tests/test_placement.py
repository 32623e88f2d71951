"""Placement over realistic clusters: one row per cluster shape and what each profile gets."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from gpu_devbox.catalog import Catalog, Toleration, load_catalog, parse_catalog
from gpu_devbox.placement import (
    ClusterSnapshot,
    ClusterState,
    alternatives,
    compute_offers,
    plan,
    shortage,
)
from tests import k8s_objects as k

CATALOG = load_catalog(Path(__file__).parent / "fixtures" / "placement-catalog.yaml")
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
DEDICATED = {"key": "dedicated", "value": "ml-team", "effect": "NoSchedule"}


def snapshot(
    nodes: Sequence[dict[str, Any]], pods: Sequence[dict[str, Any]] = ()
) -> ClusterSnapshot:
    return ClusterState.from_objects(nodes, pods).snapshot()


def full(node_name: str, count: int = 8) -> list[dict[str, Any]]:
    return k.gpu_pods(node_name, count)


# A cluster that grew over the years: V100s on an R535 driver, A100s on R550, H100s on R580.
MIXED_NODES = [
    k.gpu_node("v100-1", k.V100, driver="535.183.01", cuda="12.2"),
    k.gpu_node("a100-1", k.A100, driver="550.54.15", cuda="12.4"),
    k.gpu_node("a100-2", k.A100, driver="550.54.15", cuda="12.4"),
    k.gpu_node("h100-1", k.H100, driver="580.65.06", cuda="13.0"),
    k.node("cpu-1"),
    k.node("cpu-2"),
]
MIXED_PODS = [*full("a100-1"), *k.gpu_pods("a100-2", 3), *full("h100-1")]


@dataclasses.dataclass(frozen=True)
class Row:
    id: str
    nodes: Sequence[dict[str, Any]]
    pods: Sequence[dict[str, Any]]
    profile: str
    available: bool
    free: int = 0
    total: int = 0
    #: words the reason (or, when available, nothing) contains
    reason: str | None = None
    #: node -> the newest image it runs
    best: Mapping[str, str] = dataclasses.field(default_factory=dict)
    default_image: str | None = None
    resource: str | None = None
    max_count: int | None = None


ROWS = [
    Row(
        "mixed-drivers-one-gpu",
        MIXED_NODES,
        MIXED_PODS,
        "gpu-1",
        available=True,
        free=8 + 0 + 5 + 0,
        total=32,
        # R535/R550 run the CUDA 12.6 images only by minor-version compatibility; the V100 has
        # no code in the CUDA 13 images; the H100's R580 runs CUDA 13 natively.
        best={
            "v100-1": "cuda12-pytorch",
            "a100-1": "cuda12-pytorch",
            "a100-2": "cuda12-pytorch",
            "h100-1": "cuda13-pytorch",
        },
        # the profile's default (CUDA 13) only runs on the full H100 node
        default_image="cuda12-pytorch",
    ),
    Row(
        "mixed-drivers-multi-gpu",
        MIXED_NODES,
        MIXED_PODS,
        "gpu-multi",
        available=True,
        free=13,
        total=32,
        max_count=8,
        default_image="cuda12-pytorch",
    ),
    Row(
        "mixed-drivers-cpu",
        MIXED_NODES,
        MIXED_PODS,
        "cpu",
        available=True,
        default_image="cpu",
        best={"cpu-1": "cpu", "h100-1": "cpu"},
    ),
    Row(
        "no-mig-anywhere",
        MIXED_NODES,
        MIXED_PODS,
        "mig-small",
        available=False,
        reason="No node offers MIG 1g.10gb slices (nvidia.com/mig-1g.10gb).",
    ),
    Row(
        "no-sharing-anywhere",
        MIXED_NODES,
        MIXED_PODS,
        "shared-gpu",
        available=False,
        reason="No node offers shared GPUs (time-slicing or MPS).",
    ),
    Row(
        "all-full",
        [k.gpu_node("a100-1", k.A100), k.gpu_node("h100-1", k.H100)],
        [*full("a100-1"), *full("h100-1")],
        "gpu-1",
        available=False,
        free=0,
        total=16,
        reason="No A100-SXM4-80GB or H100-80GB-HBM3 GPU is free (0 of 16)",
    ),
    Row(
        "one-free-per-node-is-not-two",
        [k.gpu_node("a100-1", k.A100), k.gpu_node("a100-2", k.A100)],
        [*full("a100-1", 7), *full("a100-2", 7)],
        "gpu-multi",
        available=False,
        free=2,
        total=16,
        reason="No node has 2 free A100-SXM4-80GB GPUs (2 of 16 free, at most 1 on one node)",
    ),
    Row(
        "mig-mixed",
        [k.mig_mixed_node("mig-1", k.A100, {"1g.10gb": (7, 9728), "3g.40gb": (2, 40192)})],
        k.gpu_pods("mig-1", 2, resource="nvidia.com/mig-1g.10gb"),
        "mig-small",
        available=True,
        free=5,
        total=7,
        resource="nvidia.com/mig-1g.10gb",
        best={"mig-1": "cuda13-pytorch"},
    ),
    Row(
        "mig-single-is-not-whole-gpus",
        [k.mig_single_node("mig-s", k.H100, "1g.10gb", 56, memory_mib=9984)],
        [],
        "gpu-1",
        available=False,
        reason="No node offers whole GPUs (nvidia.com/gpu).",
    ),
    Row(
        "mig-single",
        [k.mig_single_node("mig-s", k.H100, "1g.10gb", 56, memory_mib=9984)],
        k.gpu_pods("mig-s", 6),
        "mig-small",
        available=True,
        free=50,
        total=56,
        resource="nvidia.com/gpu",
    ),
    Row(
        "time-slicing-renamed",
        [k.shared_node("a10-1", k.A10, gpus=4, replicas=4)],
        k.gpu_pods("a10-1", 15, resource="nvidia.com/gpu.shared"),
        "shared-gpu",
        available=True,
        free=1,
        total=16,
        resource="nvidia.com/gpu.shared",
    ),
    Row(
        "time-slicing-not-renamed-is-shared",
        [k.shared_node("t4-1", k.T4, gpus=2, replicas=4, renamed=False)],
        [],
        "shared-gpu",
        available=True,
        free=8,
        total=8,
        resource="nvidia.com/gpu",
        best={"t4-1": "cuda13-pytorch"},
    ),
    Row(
        "time-slicing-not-renamed-is-not-whole",
        [k.shared_node("t4-1", k.T4, gpus=2, replicas=4, renamed=False)],
        [],
        "gpu-1",
        available=False,
        reason="No node offers whole GPUs",
    ),
    Row(
        "gpu-taint-is-tolerated",
        [k.gpu_node("h100-1", k.H100, taints=[GPU_TAINT])],
        [],
        "gpu-1",
        available=True,
        free=8,
        total=8,
    ),
    Row(
        "gpu-taint-keeps-cpu-pods-off",
        [k.gpu_node("h100-1", k.H100, taints=[GPU_TAINT])],
        [],
        "cpu",
        available=False,
        reason="The only node has taints this profile does not tolerate: "
        "nvidia.com/gpu=present:NoSchedule.",
    ),
    Row(
        "other-taints-are-not-tolerated",
        [k.gpu_node("h100-1", k.H100, taints=[GPU_TAINT, DEDICATED])],
        [],
        "gpu-1",
        available=False,
        reason="has taints this profile does not tolerate: dedicated=ml-team:NoSchedule",
    ),
    Row(
        "cordoned-and-not-ready",
        [k.gpu_node("a", k.A100, cordoned=True), k.gpu_node("b", k.H100, ready=False)],
        [],
        "gpu-1",
        available=False,
        reason="All 2 matching nodes are cordoned or not ready.",
    ),
    Row(
        "cordoned-node-does-not-count",
        [k.gpu_node("a", k.A100, cordoned=True), k.gpu_node("b", k.H100)],
        [],
        "gpu-1",
        available=True,
        free=8,
        total=8,
    ),
    Row(
        "driver-too-old-for-every-image",
        [k.gpu_node("v100-old", k.V100, driver="470.82.01", cuda="11.4")],
        [],
        "gpu-1",
        available=False,
        reason="driver 470.82.01 (it runs CUDA 11.4 at most) is too old for CUDA 13.0",
    ),
    Row(
        "volta-on-r580-gets-the-cuda-12-image",
        [k.gpu_node("v100-new", k.V100, driver="580.65.06", cuda="13.0")],
        [],
        "gpu-1",
        available=True,
        free=8,
        total=8,
        best={"v100-new": "cuda12-pytorch"},
        default_image="cuda12-pytorch",
    ),
    Row(
        "memory-filter",
        [k.gpu_node("t4", k.T4), k.gpu_node("a10", k.A10)],
        [],
        "gpu-multi",
        available=False,
        reason="No node has a GPU with at least 32Gi of memory.",
    ),
    Row(
        "old-gfd-labels",
        [k.gpu_node("a100-old", k.A100, driver="550.54.15", cuda="12.4", old_labels=True)],
        [],
        "gpu-1",
        available=True,
        free=8,
        total=8,
        best={"a100-old": "cuda12-pytorch"},
    ),
    Row(
        "pods-of-other-namespaces-and-pending-pods",
        [k.gpu_node("h100-1", k.H100)],
        [
            k.pod("train", "h100-1", {"nvidia.com/gpu": 4}, namespace="batch"),
            k.pod("queued", None, {"nvidia.com/gpu": 4}, phase="Pending"),
            k.pod("done", "h100-1", {"nvidia.com/gpu": 4}, phase="Succeeded"),
        ],
        "gpu-1",
        available=True,
        free=4,
        total=8,
    ),
    Row(
        "empty-cluster-cpu",
        [],
        [],
        "cpu",
        available=False,
        reason="The cluster has no nodes.",
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_offers(row: Row) -> None:
    offers = {o.slug: o for o in compute_offers(CATALOG, snapshot(row.nodes, row.pods))}
    offer = offers[row.profile]
    assert offer.available is row.available, offer.reason
    if row.available:
        assert offer.reason is None
    else:
        assert row.reason is not None
        assert offer.reason is not None
        assert row.reason in offer.reason
    if offer.profile.gpu.wants_gpu and (row.free or row.total):
        assert (offer.free, offer.total) == (row.free, row.total)
    best = {c.name: c.best_image for c in offer.nodes}
    for node_name, image in row.best.items():
        assert best[node_name] == image, node_name
    if row.default_image:
        assert offer.default_image == row.default_image
    if row.resource:
        assert {c.resource for c in offer.nodes} == {row.resource}
    if row.max_count is not None:
        assert offer.max_count == row.max_count


def test_every_profile_is_offered_even_when_nothing_can_serve_it() -> None:
    offers = compute_offers(CATALOG, snapshot([]))
    assert [o.slug for o in offers] == [p.slug for p in CATALOG.profiles]
    assert not any(o.available for o in offers)
    assert all(o.reason for o in offers)


def test_an_unsynced_inventory_says_so() -> None:
    offers = compute_offers(CATALOG, ClusterState().snapshot())
    assert all(o.reason and "has not read the cluster" in o.reason for o in offers)


def test_per_image_offers_explain_images_that_run_nowhere() -> None:
    offers = {o.slug: o for o in compute_offers(CATALOG, snapshot(MIXED_NODES, MIXED_PODS))}
    gpu1 = offers["gpu-1"]
    cu13 = gpu1.image("cuda13-pytorch")
    assert cu13.nodes == ("h100-1",)
    assert (cu13.free, cu13.total, cu13.max_free) == (0, 8, 0)
    cu12 = gpu1.image("cuda12-pytorch")
    assert set(cu12.nodes) == {"v100-1", "a100-1", "a100-2", "h100-1"}  # R580 runs 12.6 too
    assert cu12.max_free == 8
    only_a100 = compute_offers(
        CATALOG, snapshot([k.gpu_node("a", k.A100, driver="550.54.15", cuda="12.4")])
    )
    cu13 = {o.slug: o for o in only_a100}["gpu-1"].image("cuda13-base")
    assert not cu13.runs
    assert cu13.reason == "driver 550.54.15 (it runs CUDA 12.4 at most) is too old for CUDA 13.0"
    # the mechanisms say how each image runs on each node
    a100 = next(c for c in gpu1.nodes if c.name == "a100-2")
    assert dict(zip(a100.images, a100.mechanisms, strict=True)) == {
        "cuda12-pytorch": "minor_version",
        "cuda12-base": "minor_version",
    }


PTX_ONLY = parse_catalog(
    {
        "images": [
            {
                "name": "ptx",
                "reference": "x/ptx:1",
                "cuda": "12.6",
                "architectures": ["compute_80"],
            },
            {"name": "sass", "reference": "x/sass:1", "cuda": "12.6", "architectures": ["sm_80"]},
        ],
        "profiles": [
            {"slug": "g", "display_name": "G", "gpu": {"count": 1}, "images": ["ptx", "sass"]}
        ],
    }
)


def test_minor_version_compatibility_needs_sass_for_the_gpu() -> None:
    # R550 runs CUDA 12.6 only by minor-version compatibility: no JIT of 12.6's PTX
    old = compute_offers(
        PTX_ONLY, snapshot([k.gpu_node("a", k.A100, driver="550.54.15", cuda="12.4")])
    )[0]
    assert old.image("sass").runs
    assert not old.image("ptx").runs
    assert "cannot be JIT-compiled" in (old.image("ptx").reason or "")
    # R580 runs it natively, so the PTX is JIT-compiled for the H100
    new = compute_offers(PTX_ONLY, snapshot([k.gpu_node("h", k.H100)]))[0]
    assert new.image("ptx").runs
    assert not new.image("sass").runs  # sm_80 SASS does not run on 9.0


def test_profile_tolerations_and_configured_ones() -> None:
    nodes = [k.gpu_node("h100-1", k.H100, taints=[GPU_TAINT, DEDICATED])]
    custom: Catalog = parse_catalog(
        {
            "images": [{"name": "i", "reference": "x/i:1", "cuda": "12.6"}],
            "profiles": [
                {
                    "slug": "team",
                    "display_name": "Team",
                    "gpu": {"count": 1},
                    "images": ["i"],
                    "tolerations": [
                        {"key": "dedicated", "value": "ml-team", "effect": "NoSchedule"}
                    ],
                }
            ],
        }
    )
    assert compute_offers(custom, snapshot(nodes))[0].available
    by_config = {
        o.slug: o
        for o in compute_offers(CATALOG, snapshot(nodes), tolerations=[Toleration("dedicated")])
    }
    assert by_config["gpu-1"].available


def test_plan_groups_nodes_by_the_resource_they_offer() -> None:
    nodes = [
        k.mig_mixed_node("mixed-1", k.A100, {"1g.10gb": (7, 9728)}),
        k.mig_single_node("single-1", k.H100, "1g.10gb", 56, memory_mib=9984),
    ]
    pods = k.gpu_pods("mixed-1", 7, resource="nvidia.com/mig-1g.10gb")
    offer = {o.slug: o for o in compute_offers(CATALOG, snapshot(nodes, pods))}["mig-small"]
    chosen = plan(offer, "cuda13-pytorch", 1)
    # the mixed node is full: the pod goes to the single-strategy node, asking for nvidia.com/gpu
    assert (chosen.resource, chosen.nodes, chosen.max_free) == ("nvidia.com/gpu", ("single-1",), 56)
    assert chosen.fits_now


def test_plan_for_whole_gpus_keeps_nodes_that_could_ever_fit() -> None:
    nodes = [k.gpu_node("small", k.A100, gpus=2), k.gpu_node("big", k.A100, gpus=8)]
    pods = full("big", 7)
    offer = {o.slug: o for o in compute_offers(CATALOG, snapshot(nodes, pods))}["gpu-multi"]
    chosen = plan(offer, "cuda13-pytorch", 4)
    assert chosen.nodes == ("big",)  # a 2-GPU node can never take 4
    assert not chosen.fits_now
    assert (
        shortage(offer, 4)
        == "No node has 4 free A100-SXM4-80GB GPUs (3 of 10 free, at most 2 on one node)"
    )
    assert plan(offer, "cuda13-pytorch", 2).fits_now


def test_alternatives_name_available_profiles() -> None:
    offers = compute_offers(CATALOG, snapshot(MIXED_NODES, MIXED_PODS))
    assert alternatives(offers, exclude="gpu-multi") == "try 'CPU only' or 'One GPU' (13 free)"
    assert alternatives(compute_offers(CATALOG, snapshot([])), exclude="cpu") == "try again later"
