"""A hub as admins run it: groups, profile_filter, GPU quotas, ``?image=`` links, shared claims.

A real JupyterHub (groups made through its REST API, an admin user, named servers) on a fake
cluster: an A100 node on an R550 driver (runs the CUDA 12.6 image only), an H100 node with 8
free GPUs and a CPU node. The catalog is tests_hub/catalog-admin.yaml.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jupyterhub
import kubernetes_validate
import pytest

from tests import k8s_objects as k
from tests_hub.fake_api import K8S_VERSION, FakeKube
from tests_hub.fake_kubelet import FakeKubelet
from tests_hub.hub import Hub
from tests_hub.test_hub_e2e import checked_profile, form_page, progress, submit

pytestmark = pytest.mark.slow
JUPYTERHUB_MAJOR = int(jupyterhub.__version__.split(".")[0])
CATALOG = Path(__file__).with_name("catalog-admin.yaml")

#: An admin's hook (async, as profile_list callables may be): guests get the CPU profile only.
PROFILE_FILTER = """
async def guests_get_cpu(spawner, offers):
    if spawner.user.name.startswith("guest-"):
        return [offer for offer in offers if offer.slug == "cpu"]
    return offers

c.GPUDevboxSpawner.profile_filter = guests_get_cpu
"""


@pytest.fixture(scope="module")
def hub(
    cluster: tuple[FakeKube, FakeKubelet], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Hub]:
    kube, _ = cluster
    kube.add(
        "nodes",
        [
            k.gpu_node("a100-1", k.A100, driver="550.54.15", cuda="12.4"),
            k.gpu_node("h100-1", k.H100),
            k.node("cpu-1"),
            # R470 runs none of the catalog's images: the admin hears of it, users do not
            k.gpu_node("old-1", k.V100, driver="470.256.02", cuda="11.4"),
        ],
    )
    workdir = tmp_path_factory.mktemp("hub-admin")
    config = kube.write_kubeconfig(str(workdir / "kubeconfig"))
    extra = f"""
c.GPUDevboxSpawner.catalog_path = {str(CATALOG)!r}
c.GPUDevboxSpawner.admins_see_all_profiles = True
c.JupyterHub.allow_named_servers = True
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 1}}
c.Authenticator.admin_users = {{"root"}}
{PROFILE_FILTER}
"""
    running = Hub(workdir, config, extra).start()
    created = running.api("POST", "/groups/research", json={"users": []})
    assert created.status_code == 201, created.text
    yield running
    running.stop()
    assert kube.invalid == [], "the spawner sent invalid pod bodies"


def user(hub: Hub, name: str, *, groups: tuple[str, ...] = ()) -> None:
    assert hub.api("POST", f"/users/{name}").status_code in (201, 409)
    for group in groups:
        added = hub.api("POST", f"/groups/{group}/users", json={"users": [name]})
        assert added.status_code == 200, added.text


def profiles_on(page: str) -> list[str]:
    return re.findall(r'<input type="radio" name="profile" id="[^"]+" value="([^"]+)"', page)


def pods_named(kube: FakeKube, name: str) -> list[dict[str, Any]]:
    return [p for p in kube.created_pods if p["metadata"]["name"] == name]


def api_calls(kube: FakeKube) -> list[tuple[str, str, str]]:
    """The requests to the API server other than the watches the inventory keeps open."""
    return [r for r in kube.requests if "watch=" not in r[2]]


def test_groups_decide_who_sees_and_starts_a_profile(
    hub: Hub, cluster: tuple[FakeKube, FakeKubelet]
) -> None:
    kube, _ = cluster
    user(hub, "ursula")
    user(hub, "rita", groups=("research",))
    user(hub, "root")
    assert profiles_on(form_page(hub.login("ursula"), hub)) == ["cpu", "gpu", "a100"]
    assert profiles_on(form_page(hub.login("rita"), hub)) == ["cpu", "gpu", "a100", "h100"]
    # admins_see_all_profiles: the admin is in no group and sees every profile
    assert profiles_on(form_page(hub.login("root"), hub)) == ["cpu", "gpu", "a100", "h100"]

    # a forged REST start of the research profile: a 400 naming it, no pod
    message = "profile: you may not start profile 'h100'; your profiles are cpu, gpu, a100"
    answer = hub.api("POST", "/users/ursula/server", json={"profile": "h100"})
    assert answer.status_code == 400, answer.text
    assert answer.json()["message"] == message
    # ... and a forged form post (the radio button is not on ursula's page)
    session = hub.login("ursula")
    page = form_page(session, hub)
    posted = submit(session, hub, page, {"profile": "h100", "image--h100": "cuda13"})
    # JupyterHub 5 shows the form again with the error, as a 200
    assert posted.status_code == (400 if JUPYTERHUB_MAJOR >= 6 else 200)
    assert message in html.unescape(posted.text)
    # ... and a link naming it
    linked = session.get(f"{hub.url}/hub/spawn?profile=h100", timeout=60)
    assert linked.status_code == (400 if JUPYTERHUB_MAJOR >= 6 else 200)
    assert "you may not start profile 'h100'" in html.unescape(linked.text)
    assert pods_named(kube, "jupyter-ursula") == []
    assert not hub.api("GET", "/users/ursula").json()["servers"]
    assert "Traceback" not in hub.log()


def test_profile_filter_hook_narrows_the_offers(
    hub: Hub, cluster: tuple[FakeKube, FakeKubelet]
) -> None:
    kube, _ = cluster
    user(hub, "guest-1", groups=("research",))
    assert profiles_on(form_page(hub.login("guest-1"), hub)) == ["cpu"]
    answer = hub.api("POST", "/users/guest-1/server", json={"profile": "gpu"})
    assert answer.status_code == 400
    assert answer.json()["message"] == (
        "profile: you may not start profile 'gpu'; your profiles are cpu"
    )
    assert pods_named(kube, "jupyter-guest-1") == []


def test_a_start_over_the_gpu_quota_names_the_servers_holding_them(
    hub: Hub, cluster: tuple[FakeKube, FakeKubelet]
) -> None:
    kube, _ = cluster
    user(hub, "quinn")
    session = hub.login("quinn")
    assert "You hold 0 of your 2 GPUs" in form_page(session, hub)
    started = hub.api("POST", "/users/quinn/servers/train", json={"profile": "gpu", "gpus": 2})
    assert started.status_code in (201, 202), started.text
    try:
        hub.wait_ready("quinn", server="train")
        calls = len(api_calls(kube))
        # counted from the pod the inventory saw: the form says so, and the GPU profiles are
        # unavailable with which server holds the GPUs
        page = html.unescape(form_page(session, hub))
        assert "You hold 2 of your 2 GPUs" in page
        assert "'train' holds 2" in page
        refused = hub.api("POST", "/users/quinn/servers/more", json={"profile": "a100"})
        assert refused.status_code == 400, refused.text
        assert refused.json()["message"] == (
            "'One A100' needs 1 GPU, but you hold 2 of your 2 GPUs ('train' holds 2); stop one "
            "of those servers first"
        )
        assert pods_named(kube, "jupyter-quinn--more") == []
        # neither the form nor the refused start asked the API server anything
        assert api_calls(kube)[calls:] == []
        # a CPU server is no GPU: always within the quota
        cpu = hub.api("POST", "/users/quinn/servers/notes", json={"profile": "cpu"})
        assert cpu.status_code in (201, 202), cpu.text
        hub.wait_ready("quinn", server="notes")
    finally:
        for name in ("train", "notes"):
            hub.api("DELETE", f"/users/quinn/servers/{name}")
        hub.wait_stopped("quinn")

    # the research group's limit (4) replaces the top-level one (2) for its members
    user(hub, "rosa", groups=("research",))
    assert "You hold 0 of your 4 GPUs" in form_page(hub.login("rosa"), hub)


@pytest.mark.parametrize(
    ("who", "query", "profile"),
    [
        ("una", "?image=cuda12", "gpu"),  # the first profile, in catalog order, offering it
        ("una", "?image=cpu", "cpu"),
        ("rhea", "?image=cuda13", "gpu"),
        ("rhea", "?profile=h100", "h100"),  # ?profile= still works
        ("rhea", "?image=cuda12&gpus=2", "gpu"),
    ],
)
def test_a_launch_link_naming_an_image_preselects_its_profile(
    hub: Hub, cluster: tuple[FakeKube, FakeKubelet], who: str, query: str, profile: str
) -> None:
    kube, _ = cluster
    user(hub, who, groups=("research",) if who == "rhea" else ())
    page = form_page(hub.login(who), hub, query)
    assert checked_profile(page) == profile
    if "image=" in query:
        image = query.split("image=")[1].split("&")[0]
        assert re.search(rf'<option value="{image}"[^>]* selected', page), page
    if "gpus=2" in query:
        assert '<option value="2" selected>2</option>' in page
    assert pods_named(kube, f"jupyter-{who}") == []


def test_a_launch_link_naming_an_unknown_image_lists_the_images(hub: Hub) -> None:
    user(hub, "una")
    page = hub.login("una").get(f"{hub.url}/hub/spawn?image=nope", timeout=60)
    assert page.status_code == (400 if JUPYTERHUB_MAJOR >= 6 else 200)
    assert (
        "The link cannot be used: image: there is no image 'nope'; the images are cpu, cuda13, "
        "cuda12"
    ) in html.unescape(page.text)
    # an image of a profile una may not start is not listed as hers
    page = hub.login("una").get(f"{hub.url}/hub/spawn?image=cuda13&profile=h100", timeout=60)
    assert "you may not start profile 'h100'" in html.unescape(page.text)


def test_the_shared_claim_follows_the_user_to_every_gpu_node(
    hub: Hub, cluster: tuple[FakeKube, FakeKubelet]
) -> None:
    kube, _ = cluster
    user(hub, "sam", groups=("research",))
    nodes = []
    for profile in ("a100", "h100"):
        started = hub.api("POST", "/users/sam/server", json={"profile": profile})
        assert started.status_code in (201, 202), started.text
        messages = [e.get("message", "") for e in progress(hub, "sam")]
        if profile == "a100":  # one node can take it: said so, not "one of 1 node"
            assert any(m.endswith(" on node a100-1.") for m in messages), messages
            assert not any("one of 1 node" in m for m in messages), messages
        hub.wait_ready("sam")
        nodes.append(kube.objects[("pods", "jh", "jupyter-sam")]["spec"]["nodeName"])
        assert hub.api("DELETE", "/users/sam/server").status_code in (202, 204)
        hub.wait_stopped("sam")
    assert nodes == ["a100-1", "h100-1"]

    pods = pods_named(kube, "jupyter-sam")
    assert len(pods) == 2
    for pod in pods:
        spec = pod["spec"]
        claims = [v for v in spec["volumes"] if "persistentVolumeClaim" in v]
        assert claims == [
            {"name": "notebooks", "persistentVolumeClaim": {"claimName": "notebooks-shared"}}
        ]
        mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "notebooks")
        assert mount == {"name": "notebooks", "mountPath": "/home/jovyan/work", "subPath": "sam"}
        kubernetes_validate.validate(pod, K8S_VERSION, strict=True)

    # the claim was created once, as the catalog says, and is a valid PersistentVolumeClaim
    claim = kube.objects[("persistentvolumeclaims", "jh", "notebooks-shared")]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["spec"]["storageClassName"] == "nfs-client"
    assert claim["spec"]["resources"]["requests"]["storage"] == "100Gi"
    body = {key: claim[key] for key in ("apiVersion", "kind", "metadata", "spec")}
    body["metadata"] = {
        key: value
        for key, value in claim["metadata"].items()
        if key in ("name", "namespace", "labels", "annotations")
    }
    kubernetes_validate.validate(body, K8S_VERSION, strict=True)

    # deleting the user keeps the claim every user shares
    assert hub.api("DELETE", "/users/sam").status_code == 204
    assert ("persistentvolumeclaims", "jh", "notebooks-shared") in kube.objects
    assert "Traceback" not in hub.log()


def test_gpu_nodes_no_image_can_use_are_told_to_the_admin_not_to_users(hub: Hub) -> None:
    user(hub, "vera")
    page = form_page(hub.login("vera"), hub)
    assert "old-1" not in page
    assert "470" not in page
    log = hub.log_path.read_text(errors="replace")  # all of it: this was said at the start
    lines = [line for line in log.splitlines() if "no image of the catalog" in line]
    assert len(lines) == 1, lines  # once, not per form
    assert lines[0].startswith("[W ")
    assert "GPU node old-1 (V100-SXM2-32GB, driver 470.256.02, CUDA 11.4): " in lines[0]


def test_a_refused_start_leaves_the_last_started_options(
    hub: Hub, cluster: tuple[FakeKube, FakeKubelet]
) -> None:
    kube, _ = cluster
    user(hub, "olga")
    started = hub.api("POST", "/users/olga/server", json={"profile": "cpu"})
    assert started.status_code in (201, 202), started.text
    hub.wait_ready("olga")
    assert hub.api("DELETE", "/users/olga/server").status_code in (202, 204)
    hub.wait_stopped("olga")
    refused = hub.api("POST", "/users/olga/server", json={"profile": "a100", "image": "cpu"})
    assert refused.status_code == 400
    # the admin page's model and the next form show what last started, not what was refused
    model = hub.api("GET", "/users/olga", params={"include_stopped_servers": "1"}).json()
    assert model["servers"][""]["user_options"] == {"profile": "cpu"}
    page = html.unescape(form_page(hub.login("olga"), hub))
    assert "no longer offered" not in page
    assert checked_profile(page) == "cpu"
    assert len(pods_named(kube, "jupyter-olga")) == 1
