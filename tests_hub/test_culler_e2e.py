"""End to end: gpu-devbox-culler as a real hub-managed service stops idle GPU servers.

A real JupyterHub and configurable-http-proxy run the culler from the shipped configuration
(jupyter-config/hub/gpu-devbox-culler.py) every second. The fake kubelet starts a real
``jupyterhub-singleuser`` per pod with gpu-devbox on the simulated backend, whose load the test
pins through the server's own test control. Five users, five GPU servers: one idle (warned,
then stopped), one busy (kept), one in an exempt group (kept), one whose user pressed "Keep
running" (stopped later than the idle one), and one that stops answering (never stopped for
that).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests import k8s_objects as k
from tests_hub.fake_api import FakeKube
from tests_hub.fake_kubelet import FakeKubelet
from tests_hub.hub import ROOT, TOKEN, Hub, free_port

pytestmark = pytest.mark.slow

IDLE_AFTER = 30
WARN_BEFORE = 20
CATALOG = f"""
version: 1
defaults:
  cpu: {{guarantee: 0.1, limit: 1}}
  memory: {{guarantee: 256Mi, limit: 1Gi}}
images:
  - {{name: cpu, reference: example.org/nb:cpu, cuda: null}}
  - {{name: cuda, reference: example.org/nb:cuda12.6, cuda: "12.6"}}
cull: {{gpu_idle_after: {IDLE_AFTER}s, warn_before: {WARN_BEFORE}s, keep_running: 1}}
profiles:
  - {{slug: cpu, display_name: CPU only, default: true, images: [cpu]}}
  - {{slug: gpu, display_name: One GPU, gpu: {{count: 1}}, images: [cuda]}}
"""
USERS = ("alice", "bob", "carol", "dave", "erin")
GIB = 1024**3


@pytest.fixture(scope="module")
def hub(
    cluster: tuple[FakeKube, FakeKubelet], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Hub]:
    kube, _ = cluster
    kube.add("nodes", [k.gpu_node("a100-1", k.A100, driver="550.54.15", cuda="12.4")])
    workdir = tmp_path_factory.mktemp("culler-hub")
    catalog = workdir / "catalog.yaml"
    catalog.write_text(CATALOG)
    config = kube.write_kubeconfig(str(workdir / "kubeconfig"))
    command = [
        sys.executable,
        "-m",
        "gpu_devbox_culler",
        "--catalog",
        str(catalog),
        "--exempt-group",
        "gpu-no-cull",
        "--period",
        "1",
        "--timeout",
        "3",
        "--db",
        str(workdir / "culler.sqlite"),
    ]
    extra = f"""
c.GPUDevboxSpawner.catalog_path = {str(catalog)!r}
c.KubeSpawner.environment = {{"GPU_DEVBOX_BACKEND": "simulated", "GPU_DEVBOX_SIMULATED_GPUS": "1"}}
load_subconfig({str(ROOT / "jupyter-config" / "hub" / "gpu-devbox-culler.py")!r})
service = c.JupyterHub.services[-1]
assert service["name"] == "gpu-devbox", service
service["url"] = "http://127.0.0.1:{free_port()}"
service["command"] = {command!r} + ["--proxy-url", "http://127.0.0.1:{{}}".format(c.JupyterHub.port)]
c.JupyterHub.load_groups = {{
    "gpu-no-cull": {{"users": ["carol"]}},
    "gpu-admins": {{"users": ["vera"]}},
}}
"""
    running = Hub(workdir, config, extra).start()
    yield running
    running.stop()


def proxied(hub: Hub, method: str, user: str, path: str, **kwargs: Any) -> requests.Response:
    """A call to a user's server through the proxy, as the tester service."""
    return requests.request(
        method,
        f"{hub.url}/user/{user}/gpu-devbox/api/{path}",
        headers={"Authorization": f"token {TOKEN}"},
        timeout=kwargs.pop("timeout", 30),
        allow_redirects=False,
        **kwargs,
    )


def pin(hub: Hub, user: str, utilization: float) -> None:
    answer = proxied(
        hub, "PUT", user, "simulated/load", json={"utilization": utilization, "memory_used": GIB}
    )
    assert answer.status_code == 200, answer.text


def running(hub: Hub, user: str) -> bool:
    model = hub.api("GET", f"/users/{user}").json()
    return bool(model.get("servers"))


@pytest.mark.timeout(400)
def test_idle_busy_exempt_keep_running_and_silent_servers(
    hub: Hub, cluster: tuple[FakeKube, FakeKubelet]
) -> None:
    kube, kubelet = cluster
    for user in USERS:
        assert hub.api("POST", f"/users/{user}").status_code in (201, 409)
        started = hub.api("POST", f"/users/{user}/server", json={"profile": "gpu"})
        assert started.status_code in (201, 202), started.text
        hub.wait_ready(user)
        # busy until the test says otherwise, so no server idles while the others start
        pin(hub, user, 90)

    # the spawner hands the profile's policy to the pod
    pod = kube.objects[("pods", "jh", "jupyter-alice")]
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["GPU_DEVBOX_CULL_GPU_IDLE_AFTER"] == str(IDLE_AFTER)
    assert env["GPU_DEVBOX_CULL_WARN_BEFORE"] == str(WARN_BEFORE)
    assert env["GPU_DEVBOX_CULL_KEEP_RUNNING"] == "1"

    for user in ("alice", "carol", "dave", "erin"):
        pin(hub, user, 0)
    idle_since = time.time()
    # erin's server stops answering: frozen, its port still open
    erin = kubelet.processes[("jh", "jupyter-erin")]
    os.kill(erin.pid, signal.SIGSTOP)
    try:
        warned = kept = False
        alice_stopped = dave_stopped = None
        deadline = idle_since + IDLE_AFTER + 60
        while time.time() < deadline and (alice_stopped is None or dave_stopped is None):
            now = time.time()
            if alice_stopped is None:
                status = proxied(hub, "GET", "alice", "status")
                if status.status_code == 200:
                    cull = status.json()["cull"]
                    warned = warned or cull["warning"]
                if not running(hub, "alice"):
                    alice_stopped = now
            if not kept and now - idle_since > IDLE_AFTER - WARN_BEFORE + 2:
                # dave sees the warning and presses "Keep running"
                status = proxied(hub, "GET", "dave", "status").json()
                assert status["cull"]["warning"], status
                answer = proxied(hub, "POST", "dave", "keep-running")
                assert answer.status_code == 200, answer.text
                assert answer.json()["keep_running"]["used"] == 1
                kept_until = answer.json()["keep_running"]["until"]
                kept = True
            if dave_stopped is None and not running(hub, "dave"):
                dave_stopped = now
            time.sleep(0.5)
        log = hub.log_path.read_text(errors="replace")
        assert alice_stopped is not None, f"the idle server was not stopped:\n{log[-20000:]}"
        assert warned, "alice's server never said it would stop soon"
        assert alice_stopped >= idle_since + IDLE_AFTER
        assert dave_stopped is not None, f"the kept server was never stopped:\n{log[-20000:]}"
        assert kept
        assert dave_stopped >= kept_until > alice_stopped
        # the busy, the exempt and the silent server all still run
        for user in ("bob", "carol", "erin"):
            assert running(hub, user), f"{user}'s server was stopped:\n{log[-20000:]}"
        # one line per decision: user, profile, GPUs, idle time, reason
        assert "gpu-devbox-culler: cull alice: profile gpu, GPUs 1 \u00d7 " in log
        assert ": gpu-idle: GPUs idle longer than 30 s" in log
        assert "gpu-devbox-culler: skip carol: profile gpu" in log
        assert "exempt-group: in the exempt group gpu-no-cull" in log
        unreadable = [
            line for line in log.splitlines() if "skip erin:" in line and "unreadable" in line
        ]
        assert len(unreadable) == 1, unreadable  # logged once, not every round
        # the culls are accounted in SQLite with their reason
        with sqlite3.connect(hub.workdir / "culler.sqlite") as db:
            culls = db.execute("SELECT user, reason, dry_run FROM culls ORDER BY at").fetchall()
        assert culls == [("alice", "gpu-idle", 0), ("dave", "gpu-idle", 0)]
    finally:
        os.kill(erin.pid, signal.SIGCONT)
    for user in ("bob", "carol", "erin"):
        hub.api("DELETE", f"/users/{user}/server")
    for user in ("bob", "carol", "erin"):
        hub.wait_stopped(user)


def test_the_admin_view_needs_a_hub_login_with_the_view_scope(hub: Hub) -> None:
    url = f"{hub.url}/services/gpu-devbox/"
    anonymous = requests.get(url, timeout=30, allow_redirects=False)
    assert anonymous.status_code == 302
    assert "/hub/api/oauth2/authorize" in anonymous.headers["Location"]

    # a user without the view scope is refused after logging in
    session = hub.login("mallory")
    page = session.get(url, timeout=60)
    assert page.status_code == 403, page.text[:500]

    # a member of gpu-admins (the shipped viewer role) gets the page and the JSON API
    session = hub.login("vera")
    page = session.get(url, timeout=60)
    assert page.status_code == 200, page.text[:500]
    assert "GPU servers" in page.text
    api = session.get(f"{url}api/servers", timeout=60)
    assert api.status_code == 200, api.text
    assert isinstance(api.json()["servers"], list)
    metrics = requests.get(f"{url}metrics", timeout=30)
    assert "gpu_devbox_culler_culls_total" in metrics.text


def culler_process(hub: Hub) -> int | None:
    """The pid of this hub's culler service (its command names this test's database)."""
    database = str(hub.workdir / "culler.sqlite").encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"gpu_devbox_culler" in argv and database in argv:
                return int(entry.name)
    return None


def held_today(page: Any, user: str) -> float:
    """GPU-hours held today by ``user``'s server, from the view's JSON API in the browser."""
    document = page.evaluate(
        """async () => (await fetch("api/servers", {
               headers: {"X-XSRFToken": XSRF, Accept: "application/json"}})).json()"""
    )
    (row,) = [r for r in document["servers"] if r["user"] == user]
    return float(row["gpu_hours"]["today"]["held"])


@pytest.mark.timeout(300)
def test_the_admin_page_sorts_and_stops_a_server_after_confirmation(hub: Hub) -> None:
    from playwright import sync_api

    chromium = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    for user, load in (("frank", 90), ("grace", 30)):
        hub.api("POST", f"/users/{user}")
        started = hub.api("POST", f"/users/{user}/server", json={"profile": "gpu"})
        assert started.status_code in (201, 202), started.text
        hub.wait_ready(user)
        pin(hub, user, load)

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=["--no-sandbox"]
        )
        page = browser.new_page(viewport={"width": 1600, "height": 240})
        console: list[str] = []
        page.on("console", lambda message: console.append(message.text))
        page.on("pageerror", lambda error: console.append(str(error)))
        page.goto(f"{hub.url}/hub/login")
        page.fill("input[name=username]", "vera")
        page.fill("input[name=password]", "x")
        page.click("input[type=submit], button[type=submit]")
        page.wait_for_url("**/hub/**")
        page.goto(f"{hub.url}/services/gpu-devbox/")
        users = page.locator("#servers tbody tr")

        def listed() -> list[str]:
            return [str(u) for u in users.evaluate_all("rows => rows.map(r => r.dataset.user)")]

        # both servers, once a round has read them (the page reloads the list every 5 s)
        try:
            sync_api.expect(users).to_have_count(2, timeout=30_000)
        except AssertionError:
            raise AssertionError(f"{page.inner_text('p.meta')}\n{console}") from None
        sync_api.expect(page.locator("#servers tbody")).to_contain_text("30 %", timeout=30_000)
        page.click("th[data-key=user] button")
        assert listed() == ["frank", "grace"]
        assert page.get_attribute("th[data-key=user]", "aria-sort") == "ascending"
        page.click("th[data-key=user] button")
        assert listed() == ["grace", "frank"]
        page.click("th[data-key=utilization] button")
        assert listed() == ["grace", "frank"]  # 30 % before 90 %
        page.click("th[data-key=utilization] button")
        assert listed() == ["frank", "grace"]
        row = page.locator("#servers tbody tr[data-user=grace]")
        sync_api.expect(row).to_contain_text("NVIDIA H100 80GB HBM3")
        # where the spawner placed it (its state, read with admin:server_state)
        assert row.locator("td").nth(3).inner_text() == "a100-1"
        page.screenshot(path=str(hub.workdir / "culler-admin.png"))

        # the accounting survives a restart of the service (the hub restarts it when it exits)
        held_before = held_today(page, "frank")
        assert held_before > 0
        culler = culler_process(hub)
        assert culler is not None
        os.kill(culler, signal.SIGTERM)
        metrics = f"{hub.url}/services/gpu-devbox/metrics"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if culler_process(hub) not in (culler, None):
                with contextlib.suppress(requests.RequestException):
                    if requests.get(metrics, timeout=5).status_code == 200:
                        break
            time.sleep(0.5)
        else:
            raise AssertionError("the hub did not restart the culler")
        page.goto(f"{hub.url}/services/gpu-devbox/")
        sync_api.expect(users).to_have_count(2, timeout=30_000)
        assert held_today(page, "frank") >= held_before

        # Stop asks first; Cancel leaves the server alone
        row.locator("button.stop").click()
        dialog = page.locator("dialog#confirm")
        sync_api.expect(dialog).to_be_visible()
        sync_api.expect(dialog).to_contain_text("Stop grace's server")
        dialog.locator("button[value=cancel]").click()
        sync_api.expect(dialog).to_be_hidden()
        time.sleep(1)
        assert running(hub, "grace")

        row.locator("button.stop").click()
        dialog.locator("#confirm-stop").click()
        sync_api.expect(row).to_have_count(0)
        sync_api.expect(page.locator("#error")).to_have_text("")
        browser.close()
    hub.wait_stopped("grace")
    assert running(hub, "frank")
    log = hub.log_path.read_text(errors="replace")
    assert "gpu-devbox-culler: stop grace: asked by vera in the admin view" in log
    with sqlite3.connect(hub.workdir / "culler.sqlite") as db:
        assert db.execute("SELECT reason FROM culls WHERE user = 'grace'").fetchall() == [
            ("admin",)
        ]
    hub.api("DELETE", "/users/frank/server")
    hub.wait_stopped("frank")
