"""Placement remembers what it judged of each node shape: the offers must not change by it.

A store's snapshots share a memo (shape number -> judgement per profile), so after the first
offers only shapes never seen are judged. These tests drive random clusters through random
watch events and compare, after every event, the offers computed with the memo against offers
judged afresh from the same nodes (a snapshot without a memo or shape numbers, every node
judged by its full shape).
"""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import pytest

from gpu_devbox.catalog import Toleration, default_catalog, load_catalog
from gpu_devbox.placement import ClusterSnapshot, ClusterState, compute_offers
from gpu_devbox.placement.cluster import NodeState
from tests import k8s_objects as k

CATALOGS = [
    default_catalog(),
    load_catalog(Path(__file__).parent / "fixtures" / "placement-catalog.yaml"),
]
DRIVERS = [
    ("535.104.05", "12.2"),
    ("535.183.01", "12.2"),
    ("550.54.15", "12.4"),
    ("550.127.05", "12.4"),
    ("570.86.15", "12.8"),
    ("580.65.06", "13.0"),
    ("580.95.05", "13.0"),
    ("470.256.02", "11.4"),
]
MODELS = [k.V100, k.T4, k.A10, k.A100, k.A100_40, k.H100]
TAINTS = [
    {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"},
    {"key": "dedicated", "value": "ml-team", "effect": "NoSchedule"},
    {"key": "spot", "value": "true", "effect": "PreferNoSchedule"},
]


def random_node(rng: random.Random, name: str) -> dict[str, Any]:
    driver, cuda = rng.choice(DRIVERS)
    model = rng.choice(MODELS)
    kind = rng.randrange(6)
    if kind == 0:
        obj = k.node(name)
    elif kind == 1:
        obj = k.mig_mixed_node(name, k.A100, {"1g.10gb": (rng.randrange(1, 57), 9728)})
    elif kind == 2:
        obj = k.mig_single_node(name, k.H100, "1g.10gb", rng.randrange(1, 57), memory_mib=9984)
    elif kind == 3:
        obj = k.shared_node(name, k.A10, gpus=rng.randrange(1, 5), replicas=rng.randrange(1, 5))
    else:
        obj = k.gpu_node(
            name,
            model,
            gpus=rng.choice((1, 2, 4, 8)),
            driver=driver,
            cuda=cuda,
            taints=rng.sample(TAINTS, rng.randrange(3)),
            cordoned=rng.random() < 0.1,
            ready=rng.random() > 0.1,
        )
    allocatable = obj["status"]["allocatable"]
    allocatable["cpu"] = rng.choice(("2", "8", f"{rng.randrange(1000, 64000)}m"))
    allocatable["memory"] = rng.choice(("4Gi", "64Gi", f"{rng.randrange(1, 600)}Gi"))
    return obj


def random_pod(rng: random.Random, nodes: list[str], i: int) -> dict[str, Any]:
    resource = rng.choice(
        ("nvidia.com/gpu", "nvidia.com/mig-1g.10gb", "nvidia.com/gpu.shared", "cpu")
    )
    amount: Any = "1" if resource == "cpu" else rng.randrange(1, 4)
    node = rng.choice(nodes) if nodes and rng.random() < 0.9 else None
    return k.pod(f"p{i}", node, {resource: amount}, namespace=f"ns{rng.randrange(3)}")


def afresh(snapshot: ClusterSnapshot) -> ClusterSnapshot:
    """The same cluster without the memo and shape numbers: every node judged anew."""
    return ClusterSnapshot(
        nodes=tuple(NodeState(s.node, s.used) for s in snapshot.nodes),
        synced=snapshot.synced,
        pods=snapshot.pods,
        pending=snapshot.pending,
        taken_at=snapshot.taken_at,
    )


def check(state: ClusterState, tolerations: tuple[Toleration, ...] = ()) -> None:
    snapshot = state.snapshot()
    assert snapshot.memo is not None
    for catalog in CATALOGS:
        fast = compute_offers(catalog, snapshot, tolerations=tolerations)
        plain = compute_offers(catalog, afresh(snapshot), tolerations=tolerations)
        assert fast == plain


@pytest.mark.parametrize("seed", range(12))
def test_offers_with_the_memo_equal_offers_judged_afresh(seed: int) -> None:
    rng = random.Random(seed)
    names = [f"n{i}" for i in range(rng.randrange(5, 40))]
    nodes = {name: random_node(rng, name) for name in names}
    pods = [random_pod(rng, names, i) for i in range(rng.randrange(0, 120))]
    state = ClusterState.from_objects(nodes.values(), pods)
    extra = (Toleration(key="dedicated", operator="Equal", value="ml-team", effect="NoSchedule"),)
    check(state)
    check(state, extra)
    for step in range(60):
        event = rng.randrange(6)
        if event == 0 and pods:  # a pod bound, moved or finished
            pod = copy.deepcopy(rng.choice(pods))
            pod["spec"]["nodeName"] = rng.choice([*names, None])
            if rng.random() < 0.2:
                pod["status"]["phase"] = "Succeeded"
            state.upsert_pod(pod)
        elif event == 1 and pods:
            state.remove_pod(pods.pop(rng.randrange(len(pods))))
        elif event == 2:  # a node relabelled: new driver, new allocatable, new taints
            name = rng.choice(names)
            nodes[name] = random_node(rng, name)
            state.upsert_node(nodes[name])
        elif event == 3:  # a node added or deleted
            if rng.random() < 0.5 and len(names) > 1:
                name = names.pop(rng.randrange(len(names)))
                state.remove_node(nodes.pop(name))
            else:
                name = f"new{step}"
                names.append(name)
                nodes[name] = random_node(rng, name)
                state.upsert_node(nodes[name])
        elif event == 4:  # a full relist: other nodes may now bear shape numbers seen before
            names = [f"r{step}-{i}" for i in range(rng.randrange(1, 30))]
            nodes = {name: random_node(rng, name) for name in names}
            state.replace_nodes(nodes.values())
        else:
            pod = random_pod(rng, names, 1000 + step)
            pods.append(pod)
            state.upsert_pod(pod)
        check(state, extra if step % 2 else ())


def test_a_shape_is_judged_once_per_profile_across_snapshots(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gpu_devbox.placement import offers

    calls: list[str] = []
    judge = offers._judge

    def counting(node: Any, *args: Any) -> Any:
        calls.append(node.name)
        return judge(node, *args)

    monkeypatch.setattr(offers, "_judge", counting)
    catalog = CATALOGS[0]
    nodes = [
        k.gpu_node(f"a100-{i}", k.A100, driver=f"550.{54 + i}.15", cuda="12.4") for i in range(20)
    ]
    state = ClusterState.from_objects(nodes, [])
    compute_offers(catalog, state.snapshot())
    assert len(calls) == 20 * len(catalog.profiles)  # every node differs: each judged once
    calls.clear()
    state.upsert_pod(k.pod("job", "a100-3", {"nvidia.com/gpu": 2}))
    offers_now = compute_offers(catalog, state.snapshot())
    assert calls == []  # a pod event changes free counts, not what a shape means
    gpu1 = next(o for o in offers_now if o.profile.gpu.wants_gpu and o.profile.gpu.count == 1)
    assert {c.name: c.free for c in gpu1.nodes}["a100-3"] == 6
    state.upsert_node(k.gpu_node("a100-3", k.A100, driver="580.65.06", cuda="13.0"))
    compute_offers(catalog, state.snapshot())
    assert calls == ["a100-3"] * len(catalog.profiles)  # only the relabelled node
