"""GPU quotas counted from the cluster snapshot, and GPU nodes no image can use (pure)."""

from __future__ import annotations

import pytest

from gpu_devbox.catalog import GPUKind, GPUQuota, parse_catalog_text
from gpu_devbox.placement import ClusterState
from gpu_devbox.placement.quota import Holding, check, holdings
from gpu_devbox.placement.unusable import unusable_nodes
from tests import k8s_objects as k

NODES = [
    k.gpu_node("a100-1", k.A100),
    k.mig_mixed_node("h100-mig", k.H100, {"1g.10gb": (7, 9856)}),
    k.mig_single_node("a100-single", k.A100, "1g.10gb", 7, memory_mib=9856),
    k.shared_node("t4-shared", k.T4, gpus=1, replicas=4, renamed=False),
    k.shared_node("t4-renamed", k.T4, gpus=1, replicas=4),
    k.node("cpu-1"),
]


def snapshot(*pods: dict) -> object:
    return ClusterState.from_objects(NODES, list(pods)).snapshot()


def test_each_kind_is_counted_in_its_own_unit_per_server() -> None:
    snap = snapshot(
        k.server_pod("ann", "a100-1", {"nvidia.com/gpu": 2}),
        k.server_pod("ann", "a100-1", {"nvidia.com/gpu": 1}, server="train"),
        k.server_pod("ann", "h100-mig", {"nvidia.com/mig-1g.10gb": 1}, server="small"),
        # nvidia.com/gpu on a MIG single node is a slice, on an unrenamed shared node a share
        k.server_pod("ann", "a100-single", {"nvidia.com/gpu": 1}, server="single"),
        k.server_pod("ann", "t4-shared", {"nvidia.com/gpu": 1}, server="share"),
        k.server_pod("ann", "t4-renamed", {"nvidia.com/gpu.shared": 1}, server="share2"),
        # not scheduled yet: it holds its GPUs all the same
        k.server_pod("ann", None, {"nvidia.com/gpu": 4}, server="waiting", phase="Pending"),
        # someone else's, and a job that is no server
        k.server_pod("bob", "a100-1", {"nvidia.com/gpu": 1}),
        k.pod("batch", "a100-1", {"nvidia.com/gpu": 1}),
    )
    held = holdings(snap, "ann")
    assert held == (
        Holding("", GPUKind.WHOLE, 2),
        Holding("share", GPUKind.SHARED, 1),
        Holding("share2", GPUKind.SHARED, 1),
        Holding("single", GPUKind.MIG, 1),
        Holding("small", GPUKind.MIG, 1),
        Holding("train", GPUKind.WHOLE, 1),
        Holding("waiting", GPUKind.WHOLE, 4),
    )
    whole = check(GPUQuota(whole=8, mig=2, shared=2), held, GPUKind.WHOLE)
    assert (whole.held, whole.limit, whole.left) == (7, 8, 1)
    assert whole.allows(1)
    assert not whole.allows(2)
    mig = check(GPUQuota(whole=8, mig=2, shared=2), held, GPUKind.MIG)
    assert (mig.held, mig.left, mig.summary) == (2, 0, "You hold 2 of your 2 MIG slices")
    assert mig.refusal(1, "'Small slice'") == (
        "'Small slice' needs 1 MIG slice, but you hold 2 of your 2 MIG slices ('single' holds 1 "
        "and 'small' holds 1); stop one of those servers first"
    )
    assert check(None, held, GPUKind.WHOLE).allows(100)
    assert check(GPUQuota(whole=1), held, GPUKind.SHARED).allows(100)  # shared: no limit


def test_only_the_hubs_namespace_counts_and_the_replaced_pod_does_not() -> None:
    snap = snapshot(
        k.server_pod("ann", "a100-1", {"nvidia.com/gpu": 2}),
        k.server_pod("ann", "a100-1", {"nvidia.com/gpu": 1}, namespace="other-hub"),
    )
    assert holdings(snap, "ann", namespaces=["jh"]) == (Holding("", GPUKind.WHOLE, 2),)
    assert holdings(snap, "ann", namespaces=["jh"], exclude=["jupyter-ann"]) == ()
    quota = check(GPUQuota(whole=2), holdings(snap, "ann", namespaces=["jh"]), GPUKind.WHOLE)
    assert quota.summary == "You hold 2 of your 2 GPUs"
    assert quota.refusal(1, "'One GPU'") == (
        "'One GPU' needs 1 GPU, but you hold 2 of your 2 GPUs (your default server holds 2); "
        "stop one of those servers first"
    )
    assert check(GPUQuota(whole=1), (), GPUKind.WHOLE).refusal(2, "'Two GPUs'") == (
        "'Two GPUs' needs 2 GPUs, but you hold 0 of your 1 GPU; ask your hub's admin for a "
        "larger limit"
    )


def test_a_pod_that_goes_away_frees_its_user_and_the_snapshot_before_keeps_it() -> None:
    state = ClusterState.from_objects(NODES, [])
    pod = k.server_pod("ann", "a100-1", {"nvidia.com/gpu": 2})
    state.upsert_pod(pod)
    before = state.snapshot()
    state.remove_pod(pod)
    assert holdings(before, "ann") == (Holding("", GPUKind.WHOLE, 2),)
    assert holdings(state.snapshot(), "ann") == ()
    state.upsert_pod(pod)
    state.replace_pods([])
    assert state.snapshot().servers == {}


CATALOG = """
version: 1
max_gpus: 2
groups:
  research: {max_gpus: {whole: 8}}
  interns: {max_gpus: 1}
  docs: {}
images:
  - {name: c12, reference: r/c12, cuda: "12.4"}
  - {name: c13, reference: r/c13, cuda: "13.0"}
profiles:
  - {slug: g, display_name: G, gpu: {count: 1}, images: [c13, c12]}
"""


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        ([], GPUQuota(2, 2, 2)),
        (["docs"], GPUQuota(2, 2, 2)),  # a group without max_gpus changes nothing
        (["interns"], GPUQuota(1, 1, 1)),  # a group's limit replaces the default, even lower
        (["interns", "research"], GPUQuota(8, None, None)),  # the most generous per kind
    ],
)
def test_a_users_limit_comes_from_their_groups(groups: list[str], expected: GPUQuota) -> None:
    assert parse_catalog_text(CATALOG).quota_for(groups) == expected


def test_gpu_nodes_no_image_can_use_are_named_with_why() -> None:
    catalog = parse_catalog_text(CATALOG)
    nodes = [
        k.gpu_node("r470-1", k.V100, driver="470.82.01", cuda="11.4"),
        k.gpu_node("r470-2", k.V100, driver="470.82.01", cuda="11.4"),
        k.gpu_node("a100-1", k.A100, driver="550.54.15", cuda="12.4"),
        k.node("cpu-1"),
    ]
    found = unusable_nodes(catalog, ClusterState.from_objects(nodes, []).snapshot())
    assert [n.name for n in found] == ["r470-1", "r470-2"]
    assert str(found[0]) == (
        "r470-1 (V100-SXM2-32GB, driver 470.82.01, CUDA 11.4): driver 470.82.01 (it runs CUDA "
        "11.4 at most) is too old for CUDA 13.0; driver 470.82.01 (it runs CUDA 11.4 at most) "
        "is too old for CUDA 12.4"
    )
