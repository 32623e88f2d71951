"""A real JupyterHub process: the gpu-devbox spawner, configurable-http-proxy, a fake cluster."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests

TOKEN = "gpu-devbox-test-token-0123456789"
ROOT = Path(__file__).resolve().parents[1]
#: The configurable-http-proxy the hub tests run (./run-tests installs it): the newest release
#: whose dependencies all support Node.js 20 (5.3 needs 22.12 through commander 15).
CHP_VERSION = "5.2.0"


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def find_chp() -> str:
    """configurable-http-proxy from the project's node_modules, else from PATH."""
    local = ROOT / "node_modules" / ".bin" / "configurable-http-proxy"
    if local.exists():
        return str(local)
    found = shutil.which("configurable-http-proxy")
    if found:
        return found
    raise RuntimeError(
        "configurable-http-proxy is not installed: run "
        f"`npm install --no-save --engine-strict configurable-http-proxy@{CHP_VERSION}` in the "
        "project root (./run-tests does)"
    )


class Hub:
    """Start, use and stop a JupyterHub."""

    def __init__(self, workdir: Path, kubeconfig: str, extra_config: str = "") -> None:
        self.workdir = workdir
        self.kubeconfig = kubeconfig
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_config = extra_config
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "hub.log"

    def config(self) -> str:
        hub_port, api_port, pod_port = free_port(), free_port(), free_port()
        return f"""
c = get_config()  # noqa
c.JupyterHub.spawner_class = "gpu-devbox"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {self.port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.ConfigurableHTTPProxy.command = [{find_chp()!r}]
c.JupyterHub.db_url = "sqlite:///{self.workdir / "hub.sqlite"}"
c.JupyterHub.cookie_secret_file = "{self.workdir / "cookie_secret"}"
c.JupyterHub.pid_file = "{self.workdir / "hub.pid"}"
c.JupyterHub.services = [{{"name": "tester", "api_token": "{TOKEN}"}}]
c.JupyterHub.load_roles = [{{
    "name": "tester-role",
    "scopes": [
        "admin:users", "admin:servers", "access:servers", "list:users", "read:users",
        "admin:groups",
    ],
    "services": ["tester"],
}}]
c.KubeSpawner.namespace = "jh"
c.KubeSpawner.port = {pod_port}
c.KubeSpawner.cmd = ["jupyterhub-singleuser"]
c.KubeSpawner.args = ["--allow-root"]
c.KubeSpawner.start_timeout = 90
c.KubeSpawner.http_timeout = 90
c.KubeSpawner.k8s_api_request_timeout = 5
c.GPUDevboxSpawner.inventory_watch_timeout = 5
{self.extra_config}
"""

    def start(self) -> Hub:
        (self.workdir / "jupyterhub_config.py").write_text(self.config())
        env = dict(os.environ, KUBECONFIG=self.kubeconfig)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", "jupyterhub_config.py"],
            cwd=self.workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterHub exited:\n{self.log()}")
            try:
                if requests.get(f"{self.url}/hub/api/", timeout=2).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"JupyterHub did not answer in 60 s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-20000:]

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    # -- using it -----------------------------------------------------------------------------

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A REST call as the test service."""
        headers = {"Authorization": f"token {TOKEN}", **kwargs.pop("headers", {})}
        timeout = kwargs.pop("timeout", 120)
        return requests.request(
            method, f"{self.url}/hub/api{path}", headers=headers, timeout=timeout, **kwargs
        )

    def login(self, name: str) -> requests.Session:
        """A browser-like session logged in through the login form."""
        session = requests.Session()
        page = session.get(f"{self.url}/hub/login", timeout=30)
        page.raise_for_status()
        xsrf = session.cookies.get("_xsrf", "")
        done = session.post(
            f"{self.url}/hub/login?next=",
            data={"username": name, "password": "x", "_xsrf": xsrf},
            timeout=30,
            allow_redirects=False,
        )
        if done.status_code not in (302, 303):
            raise RuntimeError(f"login failed: {done.status_code} {done.text[:500]}")
        return session

    def wait_ready(self, user: str, timeout: float = 90, server: str = "") -> Mapping[str, Any]:
        """Poll until the user's server (default: their default one) is ready; returns the
        user model."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.api("GET", f"/users/{user}").json()
            state = (model.get("servers") or {}).get(server)
            if state and state.get("ready"):
                return model  # type: ignore[no-any-return]
            if not (state and state.get("pending")) and not model.get("pending"):
                raise AssertionError(f"{user}'s server is neither pending nor ready: {model}")
            time.sleep(0.3)
        raise AssertionError(f"{user}'s server was not ready in {timeout} s:\n{self.log()}")

    def wait_stopped(self, user: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.api("GET", f"/users/{user}").json()
            if not model.get("servers") and not model.get("pending"):
                return
            time.sleep(0.3)
        raise AssertionError(f"{user}'s server did not stop in {timeout} s")
