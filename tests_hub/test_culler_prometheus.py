"""The culler's Prometheus source against a real Prometheus scraping real gpu-devbox servers.

Two ``jupyter server`` processes with gpu-devbox on the simulated backend (alice with one GPU,
idle; bob with two, busy), a Prometheus (Debian's ``prometheus``; ./run-tests installs it)
started with a generated configuration that scrapes their ``/metrics`` every second with each
server's token, labelled as a hub's scrape configuration would label them. The source's
queries, gpu-devbox's own series and dcgm-exporter's names alike, run on Prometheus' real
engine and must agree with what each server says about itself.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from gpu_devbox.culling import RunningServer
from gpu_devbox_culler.sources import PrometheusSource, Reading, http_client
from tests_hub.hub import free_port

pytestmark = pytest.mark.slow

GIB = 1024**3
TOKEN = "culler-prometheus-test-token"
PROMETHEUS = os.environ.get("PROMETHEUS", "/usr/bin/prometheus")


class Server:
    """One real gpu-devbox server on the simulated backend."""

    def __init__(self, user: str, gpus: int, workdir: Path) -> None:
        self.user = user
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        home = workdir / user
        home.mkdir()
        env = dict(
            os.environ,
            GPU_DEVBOX_BACKEND="simulated",
            GPU_DEVBOX_SIMULATED_GPUS=str(gpus),
            JUPYTER_CONFIG_DIR=str(home / "config"),
            JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        )
        self.log = (home / "server.log").open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter_server",
                "--no-browser",
                "--allow-root",
                f"--port={self.port}",
                "--ip=127.0.0.1",
                f"--IdentityProvider.token={TOKEN}",
                f"--ServerApp.root_dir={home}",
                "--GPUDevbox.prometheus_dcgm_names=True",
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(
            method,
            f"{self.url}/gpu-devbox/api/{path}",
            headers={"Authorization": f"token {TOKEN}"},
            timeout=30,
            **kwargs,
        )

    def wait(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"{self.user}'s server exited"
            try:
                if self.call("GET", "status").status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"{self.user}'s server did not answer in 60 s")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.log.close()


def scrape_config(servers: list[Server]) -> str:
    """One job per server, labelled with its user, server name and pod as a hub would."""
    jobs = [
        f"""
  - job_name: jupyter-{server.user}
    scrape_interval: 1s
    scrape_timeout: 1s
    authorization: {{type: token, credentials: {TOKEN}}}
    static_configs:
      - targets: ["127.0.0.1:{server.port}"]
        labels: {{username: {server.user}, namespace: jh, pod: jupyter-{server.user}}}
"""
        for server in servers
    ]
    header = "global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:"
    return header + "".join(jobs)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, Server]]]:
    if not shutil.which(PROMETHEUS):
        pytest.fail(f"Prometheus is not installed at {PROMETHEUS}: apt-get install prometheus")
    workdir = tmp_path_factory.mktemp("prometheus")
    servers = {"alice": Server("alice", 1, workdir), "bob": Server("bob", 2, workdir)}
    prometheus = None
    try:
        for server in servers.values():
            server.wait()
        servers["alice"].call("PUT", "simulated/load", json={"utilization": 0, "memory_used": GIB})
        servers["bob"].call("PUT", "simulated/load", json={"utilization": 90, "memory_used": GIB})
        (workdir / "prometheus.yml").write_text(scrape_config(list(servers.values())))
        port = free_port()
        log = (workdir / "prometheus.log").open("ab")
        prometheus = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert prometheus.poll() is None, (workdir / "prometheus.log").read_text()
            try:
                answer = requests.get(
                    f"{url}/api/v1/query",
                    params={"query": "count(gpu_devbox_gpu_idle_seconds)"},
                    timeout=5,
                ).json()
                result = answer["data"]["result"]
                if result and result[0]["value"][1] == "2":
                    break
            except (requests.ConnectionError, ValueError, KeyError):
                pass
            time.sleep(0.5)
        else:
            raise AssertionError((workdir / "prometheus.log").read_text()[-5000:])
        yield url, servers
    finally:
        if prometheus is not None:
            prometheus.send_signal(signal.SIGTERM)
            prometheus.wait(30)
        for server in servers.values():
            server.stop()


def running(user: str, gpus: int) -> RunningServer:
    return RunningServer(
        user=user,
        name="",
        url=f"/user/{user}/",
        profile="gpu",
        gpus=gpus,
        policy=None,
        started=time.time() - 600,
        pod=("jh", f"jupyter-{user}"),
    )


def observe(url: str, series: str) -> tuple[dict[tuple[str, str], Reading], Any]:
    async def go() -> tuple[dict[tuple[str, str], Reading], Any]:
        client = http_client(4)
        source = PrometheusSource(url, client, series=series, timeout=10, lookback=600, step=1)
        readings = await source.observe([running("alice", 1), running("bob", 2), running("eve", 1)])
        await client.close()
        return readings, source.hour_utilization()

    return asyncio.run(go())


def test_gpu_devbox_series_agree_with_the_servers(setup: tuple[str, dict[str, Server]]) -> None:
    url, servers = setup
    time.sleep(4)  # alice idle for a few scrapes
    readings, hour = observe(url, "gpu-devbox")
    own = {user: s.call("GET", "status").json() for user, s in servers.items()}

    alice = readings[("alice", "")].observation
    assert alice is not None, readings[("alice", "")].error
    # the busy time is the server's own (unchanged since the pin); the idle time lags a scrape
    assert alice.gpu_busy_at is not None
    assert alice.gpu_idle_seconds is not None
    assert abs(alice.gpu_busy_at - own["alice"]["gpu_busy_at"]) < 0.01
    assert 3 <= alice.gpu_idle_seconds <= own["alice"]["gpu_idle_seconds"]
    assert alice.gpu_memory_held is True
    assert alice.gpu_count == 1
    names = [g["name"] for g in servers["alice"].call("GET", "gpus").json()["gpus"]]
    assert list(alice.gpus.names) == names
    assert alice.gpus.utilization == 0
    assert alice.gpus.memory_used == GIB

    bob = readings[("bob", "")].observation
    assert bob is not None
    assert bob.gpu_idle_seconds is not None
    assert bob.gpu_idle_seconds < 3
    assert bob.gpu_count == 2
    assert bob.gpus.utilization == 90
    assert bob.gpus.memory_used == 2 * GIB

    # a server Prometheus has no series for is unreadable (so never culled), not idle
    eve = readings[("eve", "")]
    assert eve.observation is None
    assert eve.error == "Prometheus has no GPU series for it"
    assert hour[("bob", "")] > hour[("alice", "")]


def test_dcgm_series_give_each_pod_its_last_busy_time(
    setup: tuple[str, dict[str, Server]],
) -> None:
    url, servers = setup
    # alice works for a few scrapes, then idles: Prometheus saw her last busy sample
    alice_server = servers["alice"]
    alice_server.call("PUT", "simulated/load", json={"utilization": 80, "memory_used": GIB})
    time.sleep(3)
    alice_server.call("PUT", "simulated/load", json={"utilization": 0, "memory_used": GIB})
    time.sleep(5)
    readings, hour = observe(url, "dcgm")
    alice = readings[("alice", "")].observation
    assert alice is not None, readings[("alice", "")].error
    assert alice.gpu_idle_seconds is not None
    assert 3 <= alice.gpu_idle_seconds < 60
    # idle since its last busy sample, as the server itself says (to within the scrape step)
    own = servers["alice"].call("GET", "status").json()
    assert abs(alice.gpu_idle_seconds - own["gpu_idle_seconds"]) < 3
    assert alice.gpu_count == 1
    assert alice.gpus.memory_used == GIB
    bob = readings[("bob", "")].observation
    assert bob is not None
    assert bob.gpu_idle_seconds is not None
    assert bob.gpu_idle_seconds < 3
    assert bob.gpu_count == 2
    assert bob.gpus.utilization == 90
    assert readings[("eve", "")].observation is None
    assert hour[("bob", "")] > hour[("alice", "")]
