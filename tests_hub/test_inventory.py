"""The inventory against the fake API: paged lists, watches, renewals, 410 and failures."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from gpu_devbox.catalog import load_catalog
from gpu_devbox_spawner.inventory import POD_FIELD_SELECTOR, Inventory
from tests import k8s_objects as k
from tests_hub.fake_api import FakeKube

#: The hub tests' catalog (not the shipped one).
CATALOG = load_catalog(Path(__file__).with_name("catalog.yaml"))

pytestmark = pytest.mark.asyncio


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for ``check()`` to hold."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def free(inventory: Inventory, node: str, resource: str = "nvidia.com/gpu") -> int:
    states = {s.node.name: s for s in inventory.snapshot().nodes}
    return states[node].free(resource)


async def make(kube: FakeKube, tmp_path: Path, watch_timeout: int = 30) -> Inventory:
    config = kube.write_kubeconfig(str(tmp_path / "kubeconfig"))
    inventory = await Inventory.from_kubeconfig(config, watch_timeout=watch_timeout)
    assert await inventory.wait_synced(10)
    return inventory


async def test_lists_in_pages_across_namespaces(kube: FakeKube, tmp_path: Path) -> None:
    kube.add("nodes", [k.gpu_node("a100-1", k.A100), k.gpu_node("h100-1", k.H100), k.node("cpu")])
    pods = [k.pod(f"cpu-{i}", "cpu", {"cpu": "1"}, namespace=f"ns{i % 7}") for i in range(1100)]
    pods += k.gpu_pods("a100-1", 5)
    pods.append(k.pod("other", "h100-1", {"nvidia.com/gpu": 3}, namespace="batch"))
    pods.append(k.pod("finished", "h100-1", {"nvidia.com/gpu": 5}, phase="Succeeded"))
    kube.add("pods", pods)
    inventory = await make(kube, tmp_path)
    try:
        assert (free(inventory, "a100-1"), free(inventory, "h100-1")) == (3, 5)
        assert inventory.calls["list pods"] == 3  # 1,106 pods in pages of 500
        assert inventory.calls["list nodes"] == 1
        # finished pods are left out on the server side
        pod_lists = [q for m, p, q in kube.requests if p == "/api/v1/pods" and "watch" not in q]
        assert all("fieldSelector=status.phase" in q for q in pod_lists)
        assert POD_FIELD_SELECTOR.startswith("status.phase!=")
    finally:
        await inventory.close()


async def test_watches_follow_pods_and_nodes(kube: FakeKube, tmp_path: Path) -> None:
    kube.add("nodes", [k.gpu_node("a100-1", k.A100)])
    inventory = await make(kube, tmp_path)
    try:
        kube.add("pods", [k.pod("train", "a100-1", {"nvidia.com/gpu": 6}, namespace="batch")])
        await until(lambda: free(inventory, "a100-1") == 2)
        # the pod finishes: it leaves the field-selected watch, and its GPUs are free again
        done = k.pod("train", "a100-1", {"nvidia.com/gpu": 6}, namespace="batch", phase="Succeeded")
        kube.add("pods", [done])
        await until(lambda: free(inventory, "a100-1") == 8)
        cordoned = k.gpu_node("a100-1", k.A100, cordoned=True)
        kube.add("nodes", [cordoned])
        await until(lambda: not inventory.snapshot().nodes[0].node.schedulable)
        kube.call(kube.remove, "nodes", "", "a100-1")
        await until(lambda: inventory.snapshot().nodes == ())
        assert inventory.calls["list pods"] == 1  # no relisting
    finally:
        await inventory.close()


async def test_watches_are_renewed_when_the_server_ends_them(
    kube: FakeKube, tmp_path: Path
) -> None:
    kube.add("nodes", [k.gpu_node("a100-1", k.A100)])
    inventory = await make(kube, tmp_path, watch_timeout=1)
    try:
        await until(lambda: inventory.calls["watch pods"] >= 3, timeout=8)
        kube.add("pods", k.gpu_pods("a100-1", 2))
        await until(lambda: free(inventory, "a100-1") == 6)
        assert inventory.calls["list pods"] == 1
        watch_queries = [q for m, p, q in kube.requests if p == "/api/v1/pods" and "watch=" in q]
        assert all("timeoutSeconds=1" in q and "resourceVersion=" in q for q in watch_queries)
    finally:
        await inventory.close()


async def test_an_expired_version_relists(kube: FakeKube, tmp_path: Path) -> None:
    kube.add("nodes", [k.gpu_node("a100-1", k.A100)])
    inventory = await make(kube, tmp_path, watch_timeout=1)
    try:
        kube.call(setattr, kube, "expired_below", 10**9)  # every watch's version is now too old
        await until(lambda: inventory.calls["list pods"] >= 2, timeout=8)
        kube.call(setattr, kube, "expired_below", 0)
        kube.add("pods", k.gpu_pods("a100-1", 1))
        await until(lambda: free(inventory, "a100-1") == 7)
    finally:
        await inventory.close()


async def test_failures_are_retried_with_a_warning(
    kube: FakeKube, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kube.add("nodes", [k.gpu_node("a100-1", k.A100)])
    kube.call(kube.fail_next.update, {"/api/v1/nodes": 2})
    caplog.set_level(logging.WARNING, logger="gpu_devbox_spawner")
    inventory = await make(kube, tmp_path)
    try:
        assert free(inventory, "a100-1") == 8
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("reading nodes failed" in w and "500" in w for w in warnings), warnings
    finally:
        await inventory.close()


async def test_offers_make_no_api_call_and_are_computed_once_per_change(
    kube: FakeKube, tmp_path: Path
) -> None:
    kube.add("nodes", [k.gpu_node(f"a100-{i}", k.A100) for i in range(20)])
    inventory = await make(kube, tmp_path)
    try:
        before = kube.count()
        offers = inventory.offers(CATALOG)
        assert {o.slug: o.free for o in offers}["gpu"] == 160
        for _ in range(50):  # the forms of a quiet cluster
            assert inventory.offers(CATALOG) is offers
        await asyncio.sleep(0.2)
        after = [(m, p, q) for m, p, q in kube.requests[before:] if "watch=" not in q]
        assert after == []
        kube.add("pods", k.gpu_pods("a100-3", 2))  # the cluster changes: offers follow
        await until(lambda: {o.slug: o.free for o in inventory.offers(CATALOG)}["gpu"] == 158)
    finally:
        await inventory.close()
