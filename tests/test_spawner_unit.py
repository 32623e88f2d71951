"""GPUDevboxSpawner through JupyterHub's hooks, without a cluster.

Spawners are made as JupyterHub makes them (a real ``User`` over SQLite) from the test catalog
(``tests/fixtures/spawner-catalog.yaml``), on a fixed cluster (``tests/spawners.py``), and
driven through the hooks JupyterHub calls: ``get_options_form``, ``run_options_from_form``,
``options_from_query``, ``apply_user_options``, ``load_user_options``, ``progress``. The
end-to-end tests (tests_hub/) run the same spawner in a real JupyterHub.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from jupyterhub.utils import maybe_future
from sqlalchemy.orm import Session

from gpu_devbox.catalog import load_catalog
from gpu_devbox_spawner.spawner import DeepLinkShowsForm, GPUDevboxSpawner, UserFacingError
from tests import k8s_objects as k
from tests.spawners import (  # noqa: F401  (the two fixtures)
    CATALOG_PATH,
    FixedInventory,
    hub_db_fixture,
    kube_client_config_fixture,
    new_spawner,
    rest_start,
    spawn_page,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("kube_client_config")]

NODES = [
    k.gpu_node("a100-1", k.A100, driver="550.54.15", cuda="12.4"),
    k.gpu_node("h100-1", k.H100),
    k.node("cpu-1"),
]
H100_FULL = k.gpu_pods("h100-1", 8)
ALL_FULL = [*H100_FULL, *k.gpu_pods("a100-1", 8)]
CATALOG_TEXT = CATALOG_PATH.read_text()


def cluster(pods: list[dict[str, Any]] = H100_FULL) -> FixedInventory:
    """The A100 node (driver R550: CUDA 12.4), the H100 node and a CPU node."""
    return FixedInventory(NODES, pods)


async def apply(spawner: GPUDevboxSpawner, options: Any) -> None:
    """Run the ``apply_user_options`` hook as JupyterHub (5.3 and later) does before a start."""
    await maybe_future(spawner.apply_user_options(spawner, options))


async def first(events: AsyncIterator[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async for event in events:
        out.append(event)
        if len(out) == n:
            break
    return out


async def test_a_gpu_start_sets_every_pod_setting(hub_db: Session) -> None:
    spawner = new_spawner(
        hub_db,
        cluster(),
        extra_resource_limits={"nvidia.com/gpu": "0", "ephemeral-storage": "5Gi"},
    )
    await apply(spawner, {"profile": "one"})
    assert spawner.image == "example.org/nb:torch-cuda12.4"  # the H100 (CUDA 13) is full
    assert spawner.extra_resource_limits == {"ephemeral-storage": "5Gi", "nvidia.com/gpu": "1"}
    pod = await spawner.get_pod_manifest()
    limits = pod.spec.containers[0].resources.limits
    assert limits["nvidia.com/gpu"] == "1"
    assert "nvidia.com/gpu" not in (pod.spec.containers[0].resources.requests or {})
    term = pod.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
    assert term.node_selector_terms[0].match_fields[0]["values"] == ["a100-1", "h100-1"]
    assert pod.metadata.labels["gpu-devbox.io/profile"] == "one"
    # a CPU start on the same spawner keeps nothing of the GPU start
    spawner.clear_state()
    await apply(spawner, {"profile": "cpu"})
    assert spawner.extra_resource_limits == {"ephemeral-storage": "5Gi"}
    assert spawner.environment["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert spawner.node_affinity_required == []
    pod = await spawner.get_pod_manifest()
    assert (
        pod.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution is None
    )


REFUSED = {
    "a count the profile does not allow": (
        H100_FULL,
        {"profile": "one", "gpus": 3},
        {},
        400,
        "gpus: 3 GPUs is not allowed for profile 'one' (exactly 1)",
    ),
    "no GPU free for the profile": (
        ALL_FULL,
        {"profile": "one"},
        {},
        409,
        "No A100-SXM4-80GB or H100-80GB-HBM3 GPU is free (0 of 16); try 'No GPU'",
    ),
    "the chosen image runs only on the full node": (
        H100_FULL,
        {"profile": "one", "image": "torch13"},
        {},
        409,
        (
            "No H100-80GB-HBM3 GPU is free (0 of 8); try the image Torch (CUDA 12.4) (8 free) "
            "or the image CUDA 12.2 (8 free)"
        ),
    ),
    "no node offers the profile": (
        ALL_FULL,
        {"profile": "slice"},
        {},
        409,
        "'GPU slice' with Torch (CUDA 13.0) cannot start now: No node offers MIG 1g.10gb",
    ),
}


@pytest.mark.parametrize(
    ("pods", "options", "config", "status", "message"), REFUSED.values(), ids=REFUSED.keys()
)
async def test_bad_options_are_a_400_and_a_full_profile_a_409(
    hub_db: Session,
    pods: list[dict[str, Any]],
    options: dict[str, Any],
    config: dict[str, Any],
    status: int,
    message: str,
) -> None:
    spawner = new_spawner(hub_db, cluster(pods), **config)
    spawner.handler = rest_start(json.dumps(options).encode())
    with pytest.raises(UserFacingError) as caught:
        await apply(spawner, options)
    assert caught.value.status_code == status
    assert caught.value.jupyterhub_message.startswith(message)
    assert spawner.extra_resource_limits == {}  # nothing of the refused start was set


async def test_without_fail_fast_a_full_profile_is_left_to_kubernetes(hub_db: Session) -> None:
    # with a cluster autoscaler adding nodes for pending pods
    spawner = new_spawner(hub_db, cluster(ALL_FULL), fail_fast=False)
    await apply(spawner, {"profile": "one"})
    assert spawner.extra_resource_limits == {"nvidia.com/gpu": "1"}


async def test_saved_options_that_vanished_start_the_default_with_a_notice(
    hub_db: Session,
) -> None:
    saved = {"profile": "retired"}
    spawner = new_spawner(hub_db, cluster(), saved_options=saved)
    spawner.handler = rest_start(b"")  # a start without a body: JupyterHub reuses the saved ones
    await apply(spawner, spawner.orm_spawner.user_options)
    events = await first(spawner.progress(), 2)
    assert events[0]["message"] == (
        "Your saved choice is no longer offered (profile: there is no profile 'retired'; the "
        "profiles are cpu, one, big, slice, shared); starting 'No GPU' instead."
    )
    assert events[1]["message"] == "Starting 'No GPU' with Python."
    pod = await spawner.get_pod_manifest()
    assert pod.metadata.labels["gpu-devbox.io/profile"] == "cpu"
    # the same options in a start's body are the user's mistake: a 400 naming the field
    again = new_spawner(hub_db, cluster())
    again.handler = rest_start(json.dumps(saved).encode())
    with pytest.raises(UserFacingError, match="profile: there is no profile 'retired'") as caught:
        await apply(again, saved)
    assert caught.value.status_code == 400


NOT_OBJECTS = {
    "empty list": (b"[]", "not a list"),
    "list": (b'["one"]', "not a list"),
    "string": (b'"one"', "not a string"),
    "null": (b"null", "not null"),
    "number": (b"0", "not a number"),
    "boolean": (b"false", "not a boolean"),
    "user_options a string": (
        b'{"user_options": "one"}',
        "user_options must be a JSON object or null, not a string",
    ),
    "user_options a list": (
        b'{"user_options": ["one"]}',
        "user_options must be a JSON object or null, not a list",
    ),
}


@pytest.mark.parametrize(("body", "message"), NOT_OBJECTS.values(), ids=NOT_OBJECTS.keys())
async def test_a_body_that_is_not_an_object_is_a_400_not_the_default_profile(
    hub_db: Session, body: bytes, message: str
) -> None:
    # JupyterHub 5 passes the body on as the options and saves it with the server;
    # JupyterHub 6 reads null, [], 0 and false as "no options" (the saved ones)
    options = json.loads(body)
    spawner = new_spawner(hub_db, cluster(), saved_options=options)
    spawner.handler = rest_start(body)
    with pytest.raises(UserFacingError) as caught:
        await apply(spawner, options or {})
    assert caught.value.status_code == 400
    assert message in caught.value.jupyterhub_message
    if not body.startswith(b"{"):
        assert caught.value.jupyterhub_message.startswith(
            "The request body must be a JSON object (the user options"
        )
        # what JupyterHub 5 saved is dropped: the next form does not trip over it
        assert spawner.orm_spawner.user_options in ({}, None)
    assert spawner.extra_resource_limits == {}


async def test_a_deep_link_preselects_the_form(hub_db: Session) -> None:
    spawner = new_spawner(hub_db, cluster())
    with pytest.raises(DeepLinkShowsForm) as caught:
        await spawner.options_from_query({"profile": ["one"]})
    # JupyterHub shows the exception's text above the form: there is none
    assert str(caught.value) == ""
    assert caught.value.jupyterhub_message is None
    spawner.handler = spawn_page("GET", "profile=one&opt-image=base12&next=/x")
    page = await spawner.get_options_form()
    assert 'id="gdb-profile-one" value="one" checked' in page
    assert '<option value="base12" selected>' in page
    # an unknown name is a 400 listing what exists (JupyterHub shows it above the form)
    with pytest.raises(UserFacingError) as refused:
        await spawner.options_from_query({"profile": ["nope"]})
    assert refused.value.status_code == 400
    assert refused.value.jupyterhub_message == (
        "The link cannot be used: profile: there is no profile 'nope'; the profiles are cpu, "
        "one, big, slice, shared"
    )
    spawner.handler = spawn_page("GET", "profile=nope")
    page = await spawner.get_options_form()
    assert "gdb-notice" not in page  # said once, by JupyterHub, above the form
    assert 'id="gdb-profile-cpu" value="cpu" checked' in page


async def test_a_deep_link_starts_with_deep_links_start(hub_db: Session) -> None:
    starter = new_spawner(hub_db, cluster(), deep_links="start")
    options = await starter.options_from_query({"profile": ["one"], "image": ["base12"]})
    assert options == {"profile": "one", "image": "base12"}
    with pytest.raises(UserFacingError) as caught:
        await starter.options_from_query({"nope": ["1"]})
    assert caught.value.status_code == 400
    assert caught.value.jupyterhub_message == (
        "The link cannot be used: nope: is not a field of this form"
    )


FORMS = {
    "the chosen profile's pickers": (
        {
            "profile": ["big"],
            "image--big": ["torch12"],
            "gpus--big": ["4"],
            "image--one": ["torch13"],  # another profile's picker, posted without JavaScript
            "_xsrf": ["token"],
        },
        {"profile": "big", "image": "torch12", "gpus": "4"},
    ),
    "a field the form does not have": ({"profile": ["one"], "hack": ["1"]}, "hack: is not a"),
    "an image of another profile": (
        {"profile": ["one"], "image--one": ["py"]},
        "image: 'py' is not an image of profile 'one'",
    ),
    "a count over the profile's": (
        {"profile": ["big"], "gpus--big": ["64"]},
        "gpus: 64 GPUs is not allowed for profile 'big' (2 to 8)",
    ),
}


@pytest.mark.parametrize(("formdata", "expected"), FORMS.values(), ids=FORMS.keys())
async def test_the_form_post_is_checked_field_by_field(
    hub_db: Session, formdata: dict[str, list[str]], expected: dict[str, Any] | str
) -> None:
    spawner = new_spawner(hub_db, cluster())
    if isinstance(expected, dict):
        assert await maybe_future(spawner.run_options_from_form(formdata)) == expected
        return
    with pytest.raises(UserFacingError) as caught:
        await maybe_future(spawner.run_options_from_form(formdata))
    assert caught.value.status_code == 400
    assert caught.value.jupyterhub_message.startswith(expected)


async def test_the_form_shows_free_gpus_and_the_saved_choice(hub_db: Session) -> None:
    spawner = new_spawner(hub_db, cluster(), saved_options={"profile": "big", "gpus": 4})
    page = await spawner.get_options_form()
    assert "8 of 16 GPUs free (at most 8 on one node) · A100-SXM4-80GB, H100-80GB-HBM3" in (
        page.replace("&middot;", "·")
    )
    assert 'id="gdb-profile-big" value="big" checked' in page
    assert '<option value="4" selected>4</option>' in page
    stale = new_spawner(hub_db, cluster(), saved_options={"profile": "retired"})
    page = await stale.get_options_form()
    assert "Your last choice is no longer offered (profile: there is no profile" in page
    assert 'id="gdb-profile-cpu" value="cpu" checked' in page


async def test_load_user_options_applies_them_when_an_admin_replaced_the_hook(
    hub_db: Session,
) -> None:
    seen: list[Any] = []
    spawner = new_spawner(
        hub_db, cluster(), apply_user_options=lambda spawner, options: seen.append(options)
    )
    spawner.user_options = {"profile": "one"}
    await apply(spawner, spawner.user_options)  # the admin's hook: nothing of ours ran
    assert seen == [{"profile": "one"}]
    assert spawner.extra_resource_limits == {}
    await spawner.load_user_options()  # KubeSpawner's first step of a start
    assert spawner.extra_resource_limits == {"nvidia.com/gpu": "1"}
    assert (await first(spawner.progress(), 1))[0]["message"].startswith(
        "Starting 'One GPU' with Torch (CUDA 12.4): 1 "
    )


async def test_an_invalid_catalog_file_is_a_clear_500_and_a_broken_edit_keeps_the_last(
    hub_db: Session, tmp_path: Path
) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text("images: [\n")
    spawner = new_spawner(hub_db, cluster(), catalog_path=str(path))
    with pytest.raises(UserFacingError) as caught:
        await spawner.current_catalog()
    assert caught.value.status_code == 500
    assert f"{path}:2: not valid YAML" in caught.value.jupyterhub_message
    path.write_text(CATALOG_TEXT)
    assert (await spawner.current_catalog()).default_profile.slug == "cpu"
    path.write_text(CATALOG_TEXT.replace("slug: cpu", "slug: CPU!"))
    assert (await spawner.current_catalog()).default_profile.slug == "cpu"  # broken: not used
    path.write_text(CATALOG_TEXT.replace("slug: cpu", "slug: cpu-only"))
    assert (await spawner.current_catalog()).default_profile.slug == "cpu-only"


async def test_the_spawners_of_a_hub_share_catalog_and_offers(hub_db: Session) -> None:
    shared = cluster()
    alice, bob = new_spawner(hub_db, shared), new_spawner(hub_db, shared)
    assert await alice.current_catalog() is await bob.current_catalog()
    assert await alice.offers() is await bob.offers()  # computed once for the snapshot
    shared.state.upsert_pod(k.pod("new", "a100-1", {"nvidia.com/gpu": 2}))
    after = {o.slug: o.free for o in await bob.offers()}
    assert after["one"] == 6


def _catalog_with_unused_images(count: int) -> str:
    """The test catalog plus ``count`` images no profile uses: slow to read, quick to offer."""
    extra = "".join(f"  - {{name: extra-{i}, reference: example/nb:{i}}}\n" for i in range(count))
    return CATALOG_TEXT.replace("images:\n", f"images:\n{extra}", 1)


async def test_the_hub_reads_a_changed_catalog_off_its_event_loop(
    hub_db: Session, tmp_path: Path
) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(CATALOG_TEXT)
    spawner = new_spawner(hub_db, cluster(), catalog_path=str(path))
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
    hub_db: Session, tmp_path: Path
) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(CATALOG_TEXT)
    spawner = new_spawner(hub_db, cluster(), catalog_path=str(path))
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
    # a hub starting with the FIFO as its catalog
    fresh = new_spawner(hub_db, cluster(), catalog_path=str(path))
    with pytest.raises(UserFacingError) as caught:
        await asyncio.wait_for(fresh.offers(), 5)
    assert caught.value.status_code == 500
    assert "cannot read the catalog: it is a FIFO (named pipe), not a file" in str(
        caught.value.jupyterhub_message
    )
