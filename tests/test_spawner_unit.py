"""GPUDevboxSpawner without a cluster: options, pod settings, fail-fast and progress.

KubeSpawner is built with ``_mock=True`` and its config loading switched off; the inventory is
a stand-in holding a fixed cluster. The end-to-end tests (tests_hub/) run the real thing.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import time
import types
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from traitlets.config import Config

from gpu_devbox.catalog import default_catalog_text, load_catalog
from gpu_devbox.placement import ClusterSnapshot, ClusterState
from gpu_devbox_spawner import spawner as spawner_module
from gpu_devbox_spawner.spawner import GPUDevboxSpawner, UserFacingError
from tests import k8s_objects as k

pytestmark = pytest.mark.asyncio


class StandInInventory:
    """What the spawner needs of an inventory."""

    def __init__(self, snapshot: ClusterSnapshot) -> None:
        self._snapshot = snapshot

    async def wait_synced(self, timeout: float) -> bool:
        return True

    def snapshot(self) -> ClusterSnapshot:
        return self._snapshot


NODES = [
    k.gpu_node("a100-1", k.A100, driver="550.54.15", cuda="12.4"),
    k.gpu_node("h100-1", k.H100),
    k.node("cpu-1"),
]


def make_spawner(pods: list[dict[str, Any]] | None = None, **config: Any) -> GPUDevboxSpawner:
    cfg = Config()
    for key, value in config.items():
        cfg.GPUDevboxSpawner[key] = value
    spawner = GPUDevboxSpawner(_mock=True, config=cfg)
    pods = [*k.gpu_pods("h100-1", 8)] if pods is None else pods
    spawner._inventory = StandInInventory(ClusterState.from_objects(NODES, pods).snapshot())  # type: ignore[assignment]
    return spawner


@pytest.fixture(autouse=True)
def no_kube_config(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr("kubespawner.spawner.load_config", lambda **kwargs: None)
    spawner_module._CATALOGS.clear()
    yield
    spawner_module._CATALOGS.clear()


async def test_a_gpu_start_sets_every_pod_setting() -> None:
    spawner = make_spawner(
        extra_resource_limits={"nvidia.com/gpu": "0", "ephemeral-storage": "5Gi"}
    )
    await spawner.apply_catalog_options({"profile": "gpu-1"})
    assert spawner.image == "ghcr.io/gpu-devbox/pytorch-notebook:cuda-12.9"  # the H100 is full
    assert spawner.extra_resource_limits == {"ephemeral-storage": "5Gi", "nvidia.com/gpu": "1"}
    pod = await spawner.get_pod_manifest()
    limits = pod.spec.containers[0].resources.limits
    assert limits["nvidia.com/gpu"] == "1"
    assert "nvidia.com/gpu" not in (pod.spec.containers[0].resources.requests or {})
    term = pod.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
    assert term.node_selector_terms[0].match_fields[0]["values"] == ["a100-1", "h100-1"]
    assert pod.metadata.labels["gpu-devbox.io/profile"] == "gpu-1"
    # a CPU start on the same spawner keeps nothing of the GPU start
    spawner.clear_state()
    await spawner.apply_catalog_options({"profile": "cpu"})
    assert spawner.extra_resource_limits == {"ephemeral-storage": "5Gi"}
    assert spawner.environment["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert spawner.node_affinity_required == []
    pod = await spawner.get_pod_manifest()
    assert (
        pod.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution is None
    )


async def test_bad_options_are_a_400_and_a_full_profile_a_409() -> None:
    spawner = make_spawner()
    spawner._options_from_request = True
    with pytest.raises(UserFacingError) as caught:
        await spawner.apply_catalog_options({"profile": "gpu-1", "gpus": 3})
    assert caught.value.status_code == 400
    assert (
        caught.value.jupyterhub_message
        == "gpus: 3 GPUs is not allowed for profile 'gpu-1' (exactly 1)"
    )
    full = make_spawner(pods=[*k.gpu_pods("h100-1", 8), *k.gpu_pods("a100-1", 8)])
    with pytest.raises(UserFacingError) as caught:
        await full.apply_catalog_options({"profile": "gpu-1"})
    assert caught.value.status_code == 409
    assert caught.value.jupyterhub_message == (
        "No A100-SXM4-80GB or H100-80GB-HBM3 GPU is free (0 of 16); try 'CPU only'"
    )
    # an image only the full H100 runs: the same profile has room with another image
    with pytest.raises(UserFacingError) as caught:
        await make_spawner().apply_catalog_options({"profile": "gpu-1", "image": "cuda13-pytorch"})
    assert caught.value.jupyterhub_message == (
        "No H100-80GB-HBM3 GPU is free (0 of 8); try the image PyTorch (CUDA 12) (8 free) "
        "or the image CUDA 12.9 (8 free)"
    )
    with pytest.raises(UserFacingError) as caught:
        await full.apply_catalog_options({"profile": "mig-small"})
    assert caught.value.status_code == 409
    assert caught.value.jupyterhub_message.startswith(
        "'Small GPU slice' with PyTorch (CUDA 13.0) cannot start now: No node offers MIG 1g.10gb"
    )
    # with fail_fast off (a cluster autoscaler adds nodes) a full profile is left to Kubernetes
    patient = make_spawner(
        pods=[*k.gpu_pods("h100-1", 8), *k.gpu_pods("a100-1", 8)], fail_fast=False
    )
    await patient.apply_catalog_options({"profile": "gpu-1"})
    assert patient.extra_resource_limits == {"nvidia.com/gpu": "1"}


async def test_saved_options_that_vanished_fall_back_to_the_default() -> None:
    spawner = make_spawner()
    await spawner.apply_catalog_options({"profile": "old-a100"})  # no request gave them
    assert spawner._plan is not None
    assert spawner._plan.offer.slug == "cpu"
    events = [e async for e in _first(spawner.progress(), 2)]
    assert events[0]["message"].startswith("Your saved choice is no longer offered (profile: there")
    assert events[1]["message"] == "Starting 'CPU only' with Python (no CUDA)."


async def _first(events: AsyncIterator[dict[str, Any]], n: int) -> AsyncIterator[dict[str, Any]]:
    count = 0
    async for event in events:
        yield event
        count += 1
        if count == n:
            return


def handler(method: str, body: bytes = b"", query: dict[str, list[bytes]] | None = None) -> Any:
    request = types.SimpleNamespace(method=method, body=body, query_arguments=query or {})
    return types.SimpleNamespace(request=request)


@pytest.mark.parametrize(
    ("method", "body", "given"),
    [
        (
            "POST",
            json.dumps({"profile": "gpu-1"}).encode(),
            True,
        ),  # legacy: the body is the options
        ("POST", json.dumps({"user_options": {"profile": "x"}}).encode(), True),
        ("POST", json.dumps({"user_options": None}).encode(), False),
        ("POST", b"", False),  # no body: JupyterHub reuses the saved options
        ("GET", b"", False),
    ],
)
async def test_which_requests_carry_options(method: str, body: bytes, given: bool) -> None:
    spawner = make_spawner()
    spawner.handler = handler(method, body)
    assert spawner._request_carried_options() is given


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[]", "not a list"),
        (b'["gpu-1"]', "not a list"),
        (b'"gpu-1"', "not a string"),
        (b"null", "not null"),
        (b"0", "not a number"),
        (b"false", "not a boolean"),
        (b'{"user_options": "gpu-1"}', "user_options must be a JSON object or null, not a string"),
        (b'{"user_options": ["gpu-1"]}', "user_options must be a JSON object or null, not a list"),
    ],
)
async def test_a_body_that_is_not_an_object_is_a_400_not_the_default_profile(
    body: bytes, message: str
) -> None:
    spawner = make_spawner()
    spawner.handler = handler("POST", body)
    with pytest.raises(UserFacingError) as caught:
        await spawner.apply_catalog_options({} if body == b"null" else json.loads(body))
    assert caught.value.status_code == 400
    assert message in caught.value.jupyterhub_message
    if not body.startswith(b"{"):
        assert caught.value.jupyterhub_message.startswith(
            "The request body must be a JSON object (the user options"
        )
    assert spawner._plan is None


async def test_deep_links_preselect_or_start() -> None:
    spawner = make_spawner()
    with pytest.raises(spawner_module._ShowForm) as caught:
        spawner.options_from_query({"profile": ["gpu-1"]})
    assert caught.value.status_code == 200
    spawner.handler = handler(
        "GET", query={"profile": [b"gpu-1"], "opt-image": [b"cuda12-base"], "next": [b"/x"]}
    )
    page = await spawner._render_form(spawner)
    assert 'id="gdb-profile-gpu-1" value="gpu-1" checked' in page
    assert '<option value="cuda12-base" selected>' in page
    starter = make_spawner(deep_links="start")
    assert starter.options_from_query({"profile": ["gpu-1"], "image": ["cuda12-base"]}) == {
        "profile": "gpu-1",
        "image": "cuda12-base",
    }
    with pytest.raises(UserFacingError, match="nope: is not a field of this form"):
        starter.options_from_query({"nope": ["1"]})


async def test_fail_fast_when_the_scheduler_finds_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    spawner = make_spawner(unschedulable_grace=0.2)
    await spawner.apply_catalog_options({"profile": "gpu-1"})
    pod = {
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/3 nodes are available: 2 Insufficient nvidia.com/gpu, "
                    "1 node(s) didn't match Pod's node affinity/selector.",
                }
            ],
        }
    }
    reflector = types.SimpleNamespace(pods={f"{spawner.namespace}/{spawner.pod_name}": pod})
    monkeypatch.setattr(GPUDevboxSpawner, "pod_reflector", property(lambda self: reflector))
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(UserFacingError) as caught:
        await asyncio.wait_for(spawner._watch_for_gpu_shortage(), 5)
    assert loop.time() - started < 2
    assert caught.value.status_code == 409
    # the inventory still counts free GPUs, so the scheduler's words are given
    assert caught.value.jupyterhub_message == (
        "No A100-SXM4-80GB or H100-80GB-HBM3 GPU is free for this server (0/3 nodes are "
        "available: 2 Insufficient nvidia.com/gpu, 1 node(s) didn't match Pod's node "
        "affinity/selector.); try 'CPU only' or 'Several large GPUs' (8 free)"
    )


async def test_an_invalid_catalog_file_is_a_clear_500_and_a_broken_edit_keeps_the_last(
    tmp_path: Path,
) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text("images: [\n")
    spawner = make_spawner(catalog_path=str(path))
    with pytest.raises(UserFacingError) as caught:
        spawner.catalog()
    assert caught.value.status_code == 500
    assert f"{path}:2: not valid YAML" in caught.value.jupyterhub_message
    path.write_text(default_catalog_text())
    spawner_module._CATALOGS.clear()
    assert spawner.catalog().default_profile.slug == "cpu"
    path.write_text(default_catalog_text().replace("slug: cpu", "slug: CPU!"))
    assert spawner.catalog().default_profile.slug == "cpu"  # the broken edit is not used
    path.write_text(default_catalog_text().replace("slug: cpu", "slug: cpu-only"))
    assert spawner.catalog().default_profile.slug == "cpu-only"


async def test_progress_speaks_plainly() -> None:
    from gpu_devbox_spawner.progress import describe_event, unschedulable_for_gpus

    assert describe_event(
        {"reason": "Scheduled", "message": "Successfully assigned jh/jupyter-a to gpu-3"}
    ) == ("Scheduling: the server was placed on node gpu-3.")
    assert describe_event(
        {"reason": "Pulled", "message": 'Container image "x" already present on machine'}
    ) == ("Image: already on the node, no download needed.")
    assert describe_event(
        {"reason": "Pulled", "message": 'Successfully pulled image "x" in 1m2.5s'}
    ) == ("Image: downloaded in 1m2.5s.")
    assert describe_event({"reason": "BackOff", "message": "Back-off restarting"}).startswith(
        "Problem:"
    )
    assert describe_event({"reason": "Odd", "message": "thing"}) == "Odd: thing"
    volume = {
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "persistentvolumeclaim not found",
                }
            ],
        }
    }
    assert unschedulable_for_gpus(volume) is None  # not about GPUs: left to the start timeout
    assert unschedulable_for_gpus({"status": {"phase": "Running"}}) is None
    assert unschedulable_for_gpus(None) is None


def _catalog_with_unused_images(count: int) -> str:
    """The shipped catalog plus ``count`` images no profile uses: slow to read, quick to offer."""
    extra = "".join(f"  - {{name: extra-{i}, reference: example/nb:{i}}}\n" for i in range(count))
    return default_catalog_text().replace("images:\n", f"images:\n{extra}", 1)


async def test_the_hub_reads_a_changed_catalog_off_its_event_loop(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(default_catalog_text())
    spawner = make_spawner(catalog_path=str(path))
    await spawner.offers()
    path.write_text(_catalog_with_unused_images(3500))
    started = time.perf_counter()
    assert len(load_catalog(path).images) > 3500
    reading = time.perf_counter() - started  # what a read on the loop would block it for

    gaps: list[float] = []

    async def ticker() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.002)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    # A full garbage collection stops every thread, for a time that grows with all the objects
    # the test process holds (pytest, JupyterHub, KubeSpawner): park those, so that what is
    # measured is the reload.
    gc.collect()
    gc.freeze()
    try:
        ticking = asyncio.ensure_future(ticker())
        await asyncio.sleep(0.01)
        await spawner.offers()
        await asyncio.sleep(0.01)  # the ticker notes the gap it wakes up to
        ticking.cancel()
    finally:
        gc.unfreeze()
    assert len((await spawner.current_catalog()).images) > 3500  # the new version is in use
    assert reading > 0.05, "the test catalog reads too fast to tell"
    # read on the loop, it would stop for the whole read: one gap as long as `reading`
    assert max(gaps) < reading / 2, (max(gaps), reading)


async def test_the_hub_refuses_a_hostile_catalog_in_time_and_keeps_the_last_good_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(default_catalog_text())
    spawner = make_spawner(catalog_path=str(path))
    assert (await spawner.current_catalog()).default_profile.slug == "cpu"
    bomb = "".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10))
    for hostile in ("a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + bomb, "# pad\n" * 400_000, None):
        path.unlink()
        if hostile is None:
            os.mkfifo(path)
        else:
            path.write_text(hostile)
        catalog = await asyncio.wait_for(spawner.current_catalog(), 5)
        assert catalog.default_profile.slug == "cpu"  # the last good one
    spawner_module._CATALOGS.clear()  # a hub starting with the FIFO as its catalog
    with pytest.raises(UserFacingError) as caught:
        await asyncio.wait_for(spawner.offers(), 5)
    assert caught.value.status_code == 500
    assert "cannot read the catalog: it is a FIFO (named pipe), not a file" in str(
        caught.value.jupyterhub_message
    )
