"""Reading nodes and pods: GFD labels (current and deprecated), resources, and the cluster store."""

from __future__ import annotations

import pytest

from gpu_devbox.placement.cluster import ClusterState
from gpu_devbox.placement.nodes import allocatable_amount, parse_node, parse_pod
from tests import k8s_objects as k


def test_a_gfd_labelled_node() -> None:
    node = parse_node(k.gpu_node("a100-1", k.A100, gpus=8, driver="550.54.15", cuda="12.4"))
    assert node.name == "a100-1"
    assert node.schedulable
    assert node.allocatable == {"nvidia.com/gpu": 8}
    assert node.cpu == 64.0
    assert node.memory == 512 * 1024**3
    gpu = node.gpu
    assert gpu is not None
    assert (gpu.product, gpu.model, gpu.family) == (
        "NVIDIA-A100-SXM4-80GB",
        "A100-SXM4-80GB",
        "ampere",
    )
    assert (gpu.memory_mib, gpu.count, gpu.compute) == (81920, 8, (8, 0))
    assert (gpu.driver, gpu.cuda) == ("550.54.15", "12.4")
    assert (gpu.mig_strategy, gpu.sharing, gpu.replicas) == ("none", "none", 1)


def test_deprecated_labels_are_the_fallback() -> None:
    obj = k.gpu_node("old", k.V100, driver="535.183.01", cuda="12.2", old_labels=True)
    assert "nvidia.com/cuda.driver-version.full" not in obj["metadata"]["labels"]
    gpu = parse_node(obj).gpu
    assert gpu is not None
    assert (gpu.driver, gpu.cuda, gpu.model) == ("535.183.01", "12.2", "V100-SXM2-32GB")


def test_current_labels_win_over_deprecated_ones() -> None:
    obj = k.gpu_node("n", k.H100, driver="580.65.06", cuda="13.0")
    obj["metadata"]["labels"]["nvidia.com/cuda.driver.major"] = "470"
    gpu = parse_node(obj).gpu
    assert gpu is not None
    assert gpu.driver == "580.65.06"


def test_mig_and_sharing_strategies() -> None:
    mixed = parse_node(k.mig_mixed_node("m", k.A100, {"1g.10gb": (7, 9728), "3g.40gb": (2, 40192)}))
    assert mixed.gpu is not None
    assert mixed.gpu.mig_strategy == "mixed"
    assert mixed.gpu.mig_devices["3g.40gb"].count == 2
    assert mixed.allocatable == {"nvidia.com/mig-1g.10gb": 7, "nvidia.com/mig-3g.40gb": 2}
    single = parse_node(k.mig_single_node("s", k.H100, "1g.10gb", 56, memory_mib=9984))
    assert single.gpu is not None
    assert (single.gpu.mig_strategy, single.gpu.mig_single_profile) == ("single", "1g.10gb")
    assert single.gpu.product == "NVIDIA-H100-80GB-HBM3"
    shared = parse_node(k.shared_node("t", k.T4, gpus=2, replicas=4, renamed=False))
    assert shared.gpu is not None
    assert (shared.gpu.product, shared.gpu.sharing, shared.gpu.replicas) == (
        "Tesla-T4",
        "time-slicing",
        4,
    )
    assert shared.allocatable == {"nvidia.com/gpu": 8}


def test_taints_cordon_and_readiness() -> None:
    taint = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
    node = parse_node(k.gpu_node("n", k.A10, taints=[taint], cordoned=True))
    assert not node.schedulable
    assert str(node.taints[0]) == "nvidia.com/gpu=present:NoSchedule"
    assert not parse_node(k.gpu_node("n", k.A10, ready=False)).schedulable
    cpu = parse_node(k.node("cpu-1"))
    assert cpu.gpu is None
    assert cpu.allocatable == {}


def test_pods_hold_limits_and_the_larger_of_init_and_main() -> None:
    use = parse_pod(k.pod("p", "n", {"nvidia.com/gpu": 2}, init_resources={"nvidia.com/gpu": 3}))
    assert use is not None
    assert (use.node, dict(use.resources)) == ("n", {"nvidia.com/gpu": 3})
    assert parse_pod(k.pod("p", "n", {"cpu": "1"})) is None
    assert parse_pod(k.pod("p", "n", {"nvidia.com/gpu": 1}, phase="Succeeded")) is None
    pending = parse_pod(k.pod("p", None, {"nvidia.com/mig-1g.10gb": 1}, phase="Pending"))
    assert pending is not None
    assert pending.node is None


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("8", 8.0),
        ("15900m", 15.9),
        ("1056089420Ki", 1056089420 * 1024.0),
        ("1e3", 1000.0),
        ("1k", 1000.0),
        ("2Gi", 2.0 * 2**30),
        (4, 4.0),
        ("40GiB", None),  # not a Kubernetes quantity: unknown, not a guess
        ("1K", None),
        (True, None),
        (None, None),
    ],
)
def test_allocatable_amounts_follow_the_kubernetes_grammar(
    raw: object, value: float | None
) -> None:
    assert allocatable_amount(raw) == value


def test_a_node_reads_its_allocatable_cpu_and_memory() -> None:
    node = parse_node(k.node("cpu", cpu="15900m", memory="1056089420Ki"))
    assert node.cpu == 15.9
    assert node.memory == 1056089420 * 1024


def test_the_cluster_store_follows_events() -> None:
    state = ClusterState()
    assert not state.snapshot().synced
    state.replace_nodes([k.gpu_node("a", k.A100, gpus=8), k.node("cpu")])
    state.replace_pods(k.gpu_pods("a", 3))
    snap = state.snapshot()
    assert snap.synced
    assert state.snapshot() is snap  # cached until something changes
    first = snap
    by_name = {s.node.name: s for s in snap.nodes}
    assert by_name["a"].free("nvidia.com/gpu") == 5
    # a pod is scheduled, another finishes, one is deleted
    new = k.pod("new", None, {"nvidia.com/gpu": 2}, phase="Pending")
    state.upsert_pod(new)
    assert state.snapshot().pending == 1
    new["spec"]["nodeName"] = "a"
    state.upsert_pod(new)
    done = k.gpu_pods("a", 3)[0]
    done["status"]["phase"] = "Succeeded"
    state.upsert_pod(done)
    state.remove_pod(k.gpu_pods("a", 3)[1])
    snap = state.snapshot()
    assert snap is not first
    assert {s.node.name: s.free("nvidia.com/gpu") for s in snap.nodes}["a"] == 8 - 1 - 2
    assert snap.pods == 2
    state.remove_node({"metadata": {"name": "cpu"}})
    assert [s.node.name for s in state.snapshot().nodes] == ["a"]
