"""End to end: a real JupyterHub, configurable-http-proxy and the spawner on a fake cluster.

The cluster has an A100 node on an R550 driver (CUDA 12.4, so only the CUDA 12.6 image runs,
by minor-version compatibility), an H100 node whose 8 GPUs other pods hold, and a CPU node.
Every pod body the spawner sends is checked with kubernetes-validate by the fake API.
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jupyterhub
import pytest
import requests

from tests import k8s_objects as k
from tests_hub.fake_api import FakeKube
from tests_hub.fake_kubelet import FakeKubelet
from tests_hub.hub import TOKEN, Hub

pytestmark = pytest.mark.slow
JUPYTERHUB_MAJOR = int(jupyterhub.__version__.split(".")[0])
CATALOG = Path(__file__).with_name("catalog.yaml")
A100_DRIVER = {"driver": "550.54.15", "cuda": "12.4"}


@pytest.fixture(scope="module")
def hub(
    cluster: tuple[FakeKube, FakeKubelet], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Hub]:
    kube, _ = cluster
    kube.add(
        "nodes",
        [
            k.gpu_node("a100-1", k.A100, **A100_DRIVER),
            k.gpu_node(
                "h100-1",
                k.H100,
                taints=[{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
            ),
            k.node("cpu-1"),
        ],
    )
    kube.add("pods", k.gpu_pods("h100-1", 8, prefix="batch"))
    workdir = tmp_path_factory.mktemp("hub")
    config = kube.write_kubeconfig(str(workdir / "kubeconfig"))
    catalog = workdir / "catalog.yaml"  # a copy: a test edits it as an admin would
    catalog.write_text(CATALOG.read_text())
    extra = f"""
c.GPUDevboxSpawner.catalog_path = {str(catalog)!r}
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 1}}
"""
    running = Hub(workdir, config, extra).start()
    yield running
    running.stop()
    assert kube.invalid == [], "the spawner sent invalid pod bodies"


def pods_of(kube: FakeKube, user: str) -> list[dict[str, Any]]:
    return [p for p in kube.created_pods if p["metadata"]["name"] == f"jupyter-{user}"]


def progress(hub: Hub, user: str, timeout: float = 90) -> list[dict[str, Any]]:
    """The progress events of a starting server, up to ready or failed."""
    response = hub.api("GET", f"/users/{user}/server/progress", stream=True, timeout=timeout)
    assert response.status_code == 200, response.text
    events = []
    for line in response.iter_lines():
        if line.startswith(b"data:"):
            event = json.loads(line[5:])
            events.append(event)
            if event.get("ready") or event.get("failed"):
                break
    response.close()
    return events


def form_page(session: requests.Session, hub: Hub, query: str = "") -> str:
    page = session.get(f"{hub.url}/hub/spawn{query}", timeout=60)
    assert page.status_code == 200, page.text[:2000]
    return page.content.decode("utf-8")


def submit(
    session: requests.Session, hub: Hub, page: str, fields: dict[str, str], **kwargs: Any
) -> requests.Response:
    """Post the spawn form as a browser does: to its action, which carries the XSRF token."""
    action = re.search(r'<form[^>]*id="spawn_form"[^>]*action="([^"]+)"', page, re.S)
    assert action, "the spawn page has no form"
    return session.post(hub.url + html.unescape(action.group(1)), data=fields, timeout=60, **kwargs)


def checked_profile(page: str) -> str | None:
    match = re.search(
        r'<input type="radio" name="profile" id="[^"]+" value="([^"]+)" checked', page
    )
    return match.group(1) if match else None


def section(page: str, slug: str) -> str:
    start = page.index(f'data-profile="{slug}"')
    end = page.find('data-profile="', start + 10)
    return page[start : end if end > 0 else len(page)]


def test_a_gpu_server_starts_is_reachable_and_stops(
    hub: Hub, cluster: tuple[FakeKube, FakeKubelet]
) -> None:
    kube, _ = cluster
    assert hub.api("POST", "/users/alice").status_code == 201
    started = hub.api("POST", "/users/alice/server", json={"profile": "gpu", "gpus": 1})
    assert started.status_code in (201, 202), started.text
    events = progress(hub, "alice")
    messages = [e.get("message", "") for e in events]
    assert events[-1].get("ready"), messages
    assert any(m.startswith("Starting 'A100 or H100' with CUDA 12.6: 1 ") for m in messages), (
        messages
    )
    assert any(m == "Scheduling: the server was placed on node a100-1." for m in messages), messages
    assert any(m.startswith("Downloading the image example.org/nb:cuda12.6") for m in messages)
    assert any(m.startswith("Starting: the server") for m in messages), messages
    hub.wait_ready("alice")

    # through the proxy to the single-user server
    status = requests.get(
        f"{hub.url}/user/alice/api/status", headers={"Authorization": f"token {TOKEN}"}, timeout=30
    )
    assert status.status_code == 200
    assert "last_activity" in status.json()

    # the pod: GPU limits only, pinned to nodes whose driver runs the image, GPU taint tolerated
    (pod,) = pods_of(kube, "alice")
    spec = pod["spec"]
    notebook = spec["containers"][0]
    assert notebook["image"] == "example.org/nb:cuda12.6"  # the H100 (CUDA 13) is full
    assert notebook["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert not any(r.startswith("nvidia.com/") for r in notebook["resources"].get("requests", {}))
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert terms == [
        {
            "matchFields": [
                {"key": "metadata.name", "operator": "In", "values": ["a100-1", "h100-1"]}
            ]
        }
    ]
    assert {"key": "nvidia.com/gpu", "operator": "Exists"} in spec["tolerations"]
    env = {e["name"]: e.get("value") for e in notebook["env"]}
    assert "NVIDIA_VISIBLE_DEVICES" not in env
    assert (env["GPU_DEVBOX_PROFILE"], env["GPU_DEVBOX_IMAGE"]) == ("gpu", "cuda12")
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["gpu-devbox-shm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "1Gi"}
    assert volumes["notebooks"]["persistentVolumeClaim"] == {"claimName": "claim-alice"}
    assert volumes["scratch"]["emptyDir"] == {"sizeLimit": "10Gi"}
    mounts = {m["mountPath"]: m["name"] for m in notebook["volumeMounts"]}
    assert mounts["/dev/shm"] == "gpu-devbox-shm"
    assert mounts["/scratch"] == "scratch"
    assert pod["metadata"]["labels"]["gpu-devbox.io/profile"] == "gpu"
    assert kube.objects[("pods", "jh", "jupyter-alice")]["spec"]["nodeName"] == "a100-1"

    assert hub.api("DELETE", "/users/alice/server").status_code in (202, 204)
    hub.wait_stopped("alice")
    assert ("pods", "jh", "jupyter-alice") not in kube.objects


FORGED = [
    (
        {"profile": "nope"},
        "profile: there is no profile 'nope'; the profiles are cpu, gpu, h100, mig",
    ),
    (
        {"profile": "gpu", "image": "cpu"},
        "image: 'cpu' is not an image of profile 'gpu'; its images are cuda13, cuda12",
    ),
    ({"profile": "gpu", "gpus": 3}, "gpus: 3 GPUs is not allowed for profile 'gpu' (1 to 2)"),
    ({"profile": "gpu", "gpus": "two"}, "gpus: 'two' is not a whole number"),
    (
        {"profile": "mig", "gpus": 2},
        "gpus: profile 'mig' has exactly one GPU slice or share; it cannot be 2",
    ),
    (
        {"profile": "cpu", "colour": "blue"},
        "colour: is not an option; the options are profile, image, gpus",
    ),
    ({"profile": ["gpu"]}, "profile: must be a profile's slug (text)"),
]


@pytest.mark.parametrize(
    ("options", "message"),
    FORGED,
    ids=[m.split(":")[0] + str(i) for i, (_, m) in enumerate(FORGED)],
)
def test_forged_rest_options_get_a_400_naming_the_field(
    hub: Hub, cluster: tuple[FakeKube, FakeKubelet], options: dict[str, Any], message: str
) -> None:
    kube, _ = cluster
    hub.api("POST", "/users/mallory")
    answer = hub.api("POST", "/users/mallory/server", json=options)
    assert answer.status_code == 400
    assert answer.json()["message"] == message
    assert pods_of(kube, "mallory") == []
    # the hub logs a user's mistake in one WARNING line, without a traceback or an error
    lines = [line for line in hub.log().splitlines() if message in line]
    assert lines, hub.log()
    assert all(
        line.startswith("[W ") and f"gpu-devbox: mallory: not started (HTTP 400): {message}" in line
        for line in lines
    ), lines
    assert len(lines) == len({line.split("] ", 1)[0] for line in lines})  # one per request
    assert "Traceback" not in hub.log()
    assert not hub.api("GET", "/users/mallory").json()["servers"]


@pytest.mark.parametrize(
    "body",
    [b"[]", b'["gpu"]', b'"gpu"', b"null", b"0", b'{"user_options": "gpu"}'],
    ids=["empty-list", "list", "string", "null", "number", "user_options-string"],
)
def test_a_body_that_is_not_a_json_object_gets_a_400(
    hub: Hub, cluster: tuple[FakeKube, FakeKubelet], body: bytes
) -> None:
    kube, _ = cluster
    hub.api("POST", "/users/oscar")
    answer = hub.api(
        "POST", "/users/oscar/server", data=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400, answer.text
    # JupyterHub 6 refuses some of these itself ("Body must be a JSON object"), the spawner
    # the others (and all of them on JupyterHub 5)
    assert re.search(r"must be a JSON object|must be an object", answer.json()["message"])
    assert pods_of(kube, "oscar") == []
    assert not hub.api("GET", "/users/oscar").json()["servers"]
    assert "Traceback" not in hub.log()


@pytest.mark.parametrize(
    ("form", "message"),
    [
        (
            {"profile": "gpu", "image--gpu": "evil"},
            "image: 'evil' is not an image of profile 'gpu'",
        ),
        ({"profile": "gpu", "hack": "1"}, "hack: is not a field of this form"),
        (
            {"profile": "gpu", "gpus--gpu": "64"},
            "gpus: 64 GPUs is not allowed for profile 'gpu' (1 to 2)",
        ),
    ],
)
def test_forged_form_fields_get_a_400_naming_the_field(
    hub: Hub, cluster: tuple[FakeKube, FakeKubelet], form: dict[str, str], message: str
) -> None:
    kube, _ = cluster
    session = hub.login("trudy")
    answer = submit(session, hub, form_page(session, hub), form)
    # JupyterHub 6 answers the spawner's 400; 5 shows the form again (200) with the error
    assert answer.status_code == (400 if JUPYTERHUB_MAJOR >= 6 else 200)
    assert 'id="spawn_form"' in answer.text
    assert message in html.unescape(answer.text)
    assert pods_of(kube, "trudy") == []


def test_a_full_profile_fails_at_once_with_what_to_try(
    hub: Hub, cluster: tuple[FakeKube, FakeKubelet]
) -> None:
    kube, _ = cluster
    hub.api("POST", "/users/frank")
    started = time.monotonic()
    answer = hub.api("POST", "/users/frank/server", json={"profile": "h100"})
    assert time.monotonic() - started < 10
    assert answer.status_code == 409
    message = "No H100-80GB-HBM3 GPU is free (0 of 8); try 'CPU only' or 'A100 or H100' (8 free)"
    assert answer.json()["message"] == message
    assert pods_of(kube, "frank") == []
    # a full cluster is no failure of the hub: one WARNING line, no error, no traceback
    log = hub.log()
    assert [line[:3] for line in log.splitlines() if message in line] == ["[W "], log
    assert "frank: not started (HTTP 409)" in log
    assert not re.search(r"^\[E .*frank", log, re.M), log
    assert "Task exception was never retrieved" not in log


def test_a_gpu_taken_while_starting_fails_within_10_seconds(
    hub: Hub, cluster: tuple[FakeKube, FakeKubelet]
) -> None:
    kube, kubelet = cluster
    blockers = k.gpu_pods("a100-1", 8, prefix="race")
    # another workload takes every A100 GPU between the spawner's check and the scheduler
    kube.call(kubelet.before_next_schedule.append, lambda: [kube.put("pods", p) for p in blockers])
    try:
        hub.api("POST", "/users/grace")
        started = time.monotonic()
        answer = hub.api("POST", "/users/grace/server", json={"profile": "gpu"})
        assert answer.status_code in (202, 409), answer.text
        events = progress(hub, "grace") if answer.status_code == 202 else []
        hub.wait_stopped("grace", timeout=30)
        assert time.monotonic() - started < 10
        message = events[-1]["message"] if events else answer.json()["message"]
        assert message.endswith(
            "No A100-SXM4-80GB or H100-80GB-HBM3 GPU is free (0 of 16); try 'CPU only'"
        ), message
        assert ("pods", "jh", "jupyter-grace") not in kube.objects  # its GPU request is gone
        log = hub.log()
        assert not re.search(r"^\[E .*grace", log, re.M), log
        assert "Task exception was never retrieved" not in log
        (pod,) = pods_of(kube, "grace")
        assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    finally:
        kube.call(
            lambda: [kube.remove("pods", "research", p["metadata"]["name"]) for p in blockers]
        )


def test_the_form_shows_offers_and_starts_a_cpu_server(
    hub: Hub, cluster: tuple[FakeKube, FakeKubelet]
) -> None:
    kube, _ = cluster
    session = hub.login("bob")
    form_page(session, hub)  # the first form of a fresh hub starts the inventory (one list)
    before = len(kube.requests)
    pages = [form_page(session, hub) for _ in range(5)]
    # rendering the form asked the API server nothing: the inventory's watches are all there is
    inventory_calls = [
        (m, p, q)
        for m, p, q in kube.requests[before:]
        if p in ("/api/v1/nodes", "/api/v1/pods") and "watch=" not in q
    ]
    assert inventory_calls == []
    assert not [r for r in kube.requests[before:] if r[0] != "GET"]
    page = pages[-1]
    assert checked_profile(page) == "cpu"
    gpu = html.unescape(section(page, "gpu"))
    assert "8 of 16 GPUs free (at most 8 on one node) · A100-SXM4-80GB, H100-80GB-HBM3" in gpu
    # the CUDA 13 image runs only on the full H100 node: it cannot be chosen, CUDA 12 is
    assert re.search(r'<option value="cuda13" disabled>\s*CUDA 13.0 \(no room right now\)', gpu)
    assert '<option value="cuda12" selected>CUDA 12.6 (8 free, at most 8 on one node)' in gpu
    assert '<option value="2">2</option>' in gpu
    h100 = section(page, "h100")
    assert "disabled" in h100
    assert "Not available: No H100-80GB-HBM3 GPU is free (0 of 8)" in html.unescape(h100)
    mig = section(page, "mig")
    assert "Not available: No node offers MIG 1g.10gb slices (nvidia.com/mig-1g.10gb)." in mig

    posted = submit(
        session,
        hub,
        page,
        {"profile": "cpu", "image--cpu": "cpu", "image--gpu": "cuda12", "gpus--gpu": "1"},
        allow_redirects=False,
    )
    assert posted.status_code == 302, posted.text[:2000]
    assert "/hub/spawn-pending/bob" in posted.headers["Location"]
    messages = [e.get("message", "") for e in progress(hub, "bob")]
    assert "Starting 'CPU only' with Python." in messages
    hub.wait_ready("bob")
    (pod,) = pods_of(kube, "bob")
    notebook = pod["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in notebook["env"]}
    assert env["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert not any(r.startswith("nvidia.com/") for r in notebook["resources"]["limits"])
    affinity = pod["spec"]["affinity"]["nodeAffinity"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in affinity
    assert affinity["preferredDuringSchedulingIgnoredDuringExecution"][0]["preference"] == {
        "matchExpressions": [{"key": "nvidia.com/gpu.count", "operator": "DoesNotExist"}]
    }
    assert kube.objects[("pods", "jh", "jupyter-bob")]["spec"]["nodeName"] == "cpu-1"
    assert hub.api("DELETE", "/users/bob/server").status_code in (202, 204)
    hub.wait_stopped("bob")


def test_a_deep_link_preselects_without_starting(
    hub: Hub, cluster: tuple[FakeKube, FakeKubelet]
) -> None:
    kube, _ = cluster
    session = hub.login("dave")
    page = form_page(session, hub, "?profile=gpu&image=cuda12&gpus=2")
    assert checked_profile(page) == "gpu"
    assert "spawn-error-msg" not in page  # a preselecting link is no error (JupyterHub 5 said one)
    gpu = section(page, "gpu")
    assert '<option value="cuda12" selected>' in gpu
    assert '<option value="2" selected>2</option>' in gpu
    assert pods_of(kube, "dave") == []
    assert not hub.api("GET", "/users/dave").json()["servers"]
    # an unknown name: a 400 listing what exists (JupyterHub 5 shows it with a 200)
    page = session.get(f"{hub.url}/hub/spawn?profile=nope", timeout=60)
    assert page.status_code == (400 if JUPYTERHUB_MAJOR >= 6 else 200)
    bad = html.unescape(page.text)
    assert (
        "The link cannot be used: profile: there is no profile 'nope'; the profiles are cpu, "
        "gpu, h100, mig"
    ) in bad
    assert bad.count("there is no profile 'nope'") == 1  # said once, above the form
    assert checked_profile(page.text) == "cpu"
    assert "Failed to spawn single-user server with query arguments" not in hub.log()
    assert pods_of(kube, "dave") == []


def test_saved_options_that_no_longer_exist_fall_back_with_a_notice(
    hub: Hub, cluster: tuple[FakeKube, FakeKubelet]
) -> None:
    kube, _ = cluster
    catalog = hub.workdir / "catalog.yaml"
    original = catalog.read_text()
    # the admin adds a profile, erin starts it, and the admin removes it again
    catalog.write_text(
        original + "  - {slug: retired-a100, display_name: Retired, images: [cpu]}\n"
    )
    session = hub.login("erin")
    started = hub.api("POST", "/users/erin/server", json={"profile": "retired-a100"})
    assert started.status_code in (201, 202), started.text
    hub.wait_ready("erin")
    assert hub.api("DELETE", "/users/erin/server").status_code in (202, 204)
    hub.wait_stopped("erin")
    catalog.write_text(original)
    page = form_page(session, hub)
    assert "Your last choice is no longer offered (profile: there is no profile" in html.unescape(
        page
    )
    assert checked_profile(page) == "cpu"
    # the admin starts it with the saved options (no body): the default profile starts
    started = hub.api("POST", "/users/erin/server")
    assert started.status_code in (201, 202), started.text
    messages = [e.get("message", "") for e in progress(hub, "erin")]
    notice = next(m for m in messages if m.startswith("Your saved choice"))
    assert notice.startswith(
        "Your saved choice is no longer offered (profile: there is no profile 'retired-a100'"
    ), messages
    assert notice.endswith("starting 'CPU only' instead.")
    hub.wait_ready("erin")
    retired, pod = pods_of(kube, "erin")
    assert retired["metadata"]["labels"]["gpu-devbox.io/profile"] == "retired-a100"
    assert pod["metadata"]["labels"]["gpu-devbox.io/profile"] == "cpu"
    assert hub.api("DELETE", "/users/erin/server").status_code in (202, 204)
    hub.wait_stopped("erin")


def test_a_full_profile_chosen_on_the_form_is_said_once(
    hub: Hub, cluster: tuple[FakeKube, FakeKubelet]
) -> None:
    kube, _ = cluster
    session = hub.login("fiona")
    page = form_page(session, hub)
    refused = submit(session, hub, page, {"profile": "h100", "image--h100": "cuda13"})
    # JupyterHub 5 shows the form again with the error, as a 200
    assert refused.status_code == (409 if JUPYTERHUB_MAJOR >= 6 else 200)
    text = html.unescape(refused.text)
    sentence = "No H100-80GB-HBM3 GPU is free (0 of 8)"
    assert text.count(sentence) == 1, text  # above the form, not again on the card
    assert "Not available right now (see the message above)." in text
    assert pods_of(kube, "fiona") == []
