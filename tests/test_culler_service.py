"""The culler service's rounds against a loopback hub and servers (tests/fakehub.py): what it
reads, stops, skips and logs, the accounting across a restart, its metrics and its CLI.

The end-to-end tests with a real JupyterHub and real servers are in tests_hub/test_culling.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from gpu_devbox.catalog import parse_catalog_text
from gpu_devbox.culling import Action, RunningServer
from gpu_devbox_culler.app import _bind_address, main
from gpu_devbox_culler.client import MAX_BODY, HttpClient
from gpu_devbox_culler.culler import Culler
from gpu_devbox_culler.hub import HubClient
from gpu_devbox_culler.sources import ServerSource, http_client, pool_size
from gpu_devbox_culler.store import Store
from gpu_devbox_culler.web import row_document
from tests.fakehub import TOKEN, FakeHub, FakeServer

CATALOG = parse_catalog_text(
    """
images:
  - {name: cuda, reference: x/cuda, cuda: "12.6"}
  - {name: cpu, reference: x/cpu, cuda: null}
cull: {gpu_idle_after: 2h, warn_before: 15m, keep_running: 2}
profiles:
  - {slug: gpu, display_name: GPU, gpu: {count: 1, max_count: 8}, images: [cuda]}
  - {slug: free, display_name: Exempt, gpu: {count: 1}, images: [cuda], cull: false}
  - {slug: cpu, display_name: CPU, images: [cpu]}
"""
)


def run(scenario: Callable[[FakeHub, Callable[..., Culler]], Awaitable[None]]) -> None:
    """Run ``scenario`` with a started fake hub and a factory of cullers against it."""

    async def main() -> None:
        hub = FakeHub().start()
        clients: list[HttpClient] = []
        stores: list[Store] = []

        def make(store: Store, *, concurrency: int = 10, **kwargs: Any) -> Culler:
            client = http_client(concurrency)
            clients.append(client)
            stores.append(store)
            source = ServerSource(
                hub.url, TOKEN, client, concurrency=concurrency, timeout=kwargs.pop("timeout", 2.0)
            )
            return Culler(
                hub=HubClient(hub.api_url, TOKEN, client),
                source=source,
                direct=source,
                store=store,
                catalog=lambda: CATALOG,
                period=60,
                **kwargs,
            )

        try:
            await scenario(hub, make)
        finally:
            for store in stores:
                if store._db is not None:
                    await store.close()
            for client in clients:
                await client.close()
            hub.stop()

    asyncio.run(main())


def test_a_round_stops_only_idle_gpu_servers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "gpu_devbox_culler")
    first_round: list[str] = []

    async def scenario(hub: FakeHub, make: Callable[..., Culler]) -> None:
        hub.add(FakeServer("idle", idle=3 * 3600, gpus=2))
        hub.add(FakeServer("busy", idle=10, utilization=80))
        hub.add(FakeServer("warned", idle=7200 - 600))
        hub.add(FakeServer("kept", idle=3 * 3600, keep_until=9e12, keep_used=1))
        hub.add(FakeServer("vip", idle=3 * 3600, groups=("staff",)))
        hub.add(FakeServer("exempt", profile="free", idle=3 * 3600))
        hub.add(FakeServer("cpu", profile="cpu", idle=3 * 3600))
        hub.add(FakeServer("named", name="train", idle=3 * 3600))
        for behaviour in ("slow", "500", "garbage", "no-gpu-devbox"):
            hub.add(FakeServer(behaviour, idle=3 * 3600, behaviour=behaviour))
        hub.add(FakeServer("nogpu", idle=3 * 3600, behaviour="no-gpu"))
        store = Store(str(tmp_path / "db.sqlite"))
        culler = make(store, exempt_groups={"staff"}, timeout=0.5)
        decisions = {d.server.label: d for d in await culler.round()}
        assert sorted(hub.deleted) == [("idle", ""), ("named", "train")]
        assert {label: (d.action, d.reason) for label, d in decisions.items()} == {
            "idle": (Action.CULL, "gpu-idle"),
            "named/train": (Action.CULL, "gpu-idle"),
            "busy": (Action.KEEP, "busy"),
            "warned": (Action.WARN, "warning"),
            "kept": (Action.KEEP, "keep-running"),
            "vip": (Action.SKIP, "exempt-group"),
            "exempt": (Action.SKIP, "no-policy"),
            "slow": (Action.SKIP, "unreadable"),
            "500": (Action.SKIP, "unreadable"),
            "garbage": (Action.SKIP, "unreadable"),
            "no-gpu-devbox": (Action.SKIP, "unreadable"),
            "nogpu": (Action.SKIP, "no-gpu"),
        }  # the CPU server is never read
        assert decisions["slow"].message == "cannot read its GPU activity: no answer within 0.5 s"
        assert decisions["garbage"].message.endswith("the answer is not JSON")
        assert "HTTP 404: the server has no gpu-devbox API" in decisions["no-gpu-devbox"].message
        first_round.extend(r.getMessage() for r in caplog.records if r.name == "gpu_devbox_culler")
        # a second round: the unreadable servers are not logged again
        caplog.clear()
        await culler.round()
        assert not [r for r in caplog.records if "unreadable" in r.getMessage()]

    run(scenario)
    lines = first_round
    assert len(lines) == 12  # one line per decision
    assert (
        "gpu-devbox-culler: cull idle: profile gpu, GPUs 2 \u00d7 NVIDIA H100 80GB HBM3, idle 3 h: "
        "gpu-idle: GPUs idle longer than 2 h"
    ) in lines
    assert any(
        line.startswith("gpu-devbox-culler: skip 500: profile gpu, GPUs 1 GPU, idle -: unreadable")
        for line in lines
    )


def test_dry_run_stops_nothing_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "gpu_devbox_culler")

    async def scenario(hub: FakeHub, make: Callable[..., Culler]) -> None:
        hub.add(FakeServer("idle", idle=3 * 3600))
        store = Store(str(tmp_path / "db.sqlite"))
        culler = make(store, dry_run=True)
        (decision,) = await culler.round()
        assert decision.action is Action.CULL
        assert hub.deleted == []
        (cull,) = await store.culls()
        assert (cull["user"], cull["reason"], cull["dry_run"]) == ("idle", "gpu-idle", 1)

    run(scenario)
    assert any("cull (dry run: not stopped) idle" in r.getMessage() for r in caplog.records)


def test_accounting_and_metrics_survive_a_restart(tmp_path: Path) -> None:
    path = str(tmp_path / "db.sqlite")

    async def scenario(hub: FakeHub, make: Callable[..., Culler]) -> None:
        busy = hub.add(FakeServer("busy", idle=0, gpus=4, utilization=60))
        hub.add(FakeServer("idle", idle=9000, profile="free"))
        now = [1_800_000_000.0]
        first = make(Store(path), clock=lambda: now[0])
        await first.round()
        now[0] += 60
        await first.round()
        row = first.rows[("busy", "")]
        assert row.summary is not None
        # 60 s of 4 GPUs held, all busy (the fake says it was idle for well under a minute)
        assert row.summary.today.held == pytest.approx(240)
        assert row.summary.today.busy > 200
        metrics = generate_latest(first.metrics.registry).decode()
        assert "gpu_devbox_culler_gpus_held 5.0" in metrics
        assert "gpu_devbox_culler_gpus_idle 1.0" in metrics
        assert 'gpu_devbox_culler_culls_total{reason="gpu-idle"} 0.0' in metrics
        await first.store.close()
        first.store._db = None

        # the service restarts: a new store on the same file, a minute later
        now[0] += 60
        busy.idle = 0
        second = make(Store(path), clock=lambda: now[0])
        await second.round()
        summary = second.rows[("busy", "")].summary
        assert summary is not None
        assert summary.today.held == pytest.approx(480)
        assert summary.week.held == pytest.approx(480)
        document = row_document(second.rows[("busy", "")], second.user_model(("busy", "")))
        assert document["gpu_hours"]["today"]["held"] == pytest.approx(480 / 3600, abs=1e-4)
        assert document["gpu_models"] == "4 \u00d7 NVIDIA H100 80GB HBM3"
        assert document["node"] == "h100-1"
        assert document["utilization"] == 60

    run(scenario)


def test_the_stop_button_path_stops_and_counts(tmp_path: Path) -> None:
    async def scenario(hub: FakeHub, make: Callable[..., Culler]) -> None:
        hub.add(FakeServer("alice", idle=10))
        culler = make(Store(str(tmp_path / "db.sqlite")))
        await culler.round()
        await culler.stop_from_admin("alice", "", "root")
        assert hub.deleted == [("alice", "")]
        with pytest.raises(KeyError):
            await culler.stop_from_admin("nobody", "", "root")
        metrics = generate_latest(culler.metrics.registry).decode()
        assert 'gpu_devbox_culler_culls_total{reason="admin"} 1.0' in metrics

    run(scenario)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--period", "soon"], "argument --period: 'soon' is not a number"),
        (["--period", "0"], "argument --period: 0 is not between 1 and 86400"),
        (["--concurrency", "-3"], "argument --concurrency: -3 is not between 1 and 1000"),
        (["--source", "carrier-pigeon"], "argument --source: invalid choice: 'carrier-pigeon'"),
        (["--source", "prometheus"], "--source prometheus needs --prometheus-url"),
        (["--source", "prometheus", "--prometheus-url", "prom:9090"], "is not an http(s) URL"),
        (["--prometheus-url", "http://p:9090"], "only used with --source prometheus"),
        (["--user-label", "user-name"], "'user-name' is not a Prometheus label name"),
        (["--catalog", "/nonexistent/catalog.yaml"], "--catalog: /nonexistent/catalog.yaml"),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    ],
)
def test_bad_options_exit_2_with_one_line(
    argv: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "t")
    monkeypatch.setenv("JUPYTERHUB_API_URL", "http://127.0.0.1:1/hub/api")
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.startswith("gpu-devbox-culler: error: ")
    assert message in err


def test_python_m_runs_the_same_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gpu_devbox_culler", "--period", "soon"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "JUPYTERHUB_API_TOKEN": "t"},
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == (
        "gpu-devbox-culler: error: argument --period: 'soon' is not a number "
        "(see gpu-devbox-culler --help)\n"
    )


def test_without_a_hub_it_says_what_is_missing() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gpu_devbox_culler"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 2
    assert "the hub's API URL is unknown" in done.stderr


def test_help_names_every_option() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gpu_devbox_culler", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for option in ("--dry-run", "--exempt-group", "--source", "--prometheus-url", "--db"):
        assert option in done.stdout


@pytest.mark.parametrize(
    ("host", "bound"),
    [("127.0.0.1", "127.0.0.1"), ("::1", "::1"), ("hub", ""), (None, "127.0.0.1")],
)
def test_the_view_binds_an_ip_or_every_interface_for_a_name(host: str | None, bound: str) -> None:
    # Zero to JupyterHub's service URL names the hub's Kubernetes service, not an interface
    assert _bind_address(host) == bound


def test_a_round_reuses_its_connections(tmp_path: Path) -> None:
    """Two rounds over 200 servers (400 reads each) open no more connections than the pool."""
    concurrency = 5

    async def scenario(hub: FakeHub, make: Callable[..., Culler]) -> None:
        for i in range(200):
            hub.add(FakeServer(f"user{i:03d}", idle=600))
        culler = make(Store(str(tmp_path / "db.sqlite")), concurrency=concurrency, timeout=5)
        for _ in range(2):
            decisions = await culler.round()
            assert len(decisions) == 200
            assert all(d.reason != "unreadable" for d in decisions), decisions[0].message
        assert hub.requests >= 2 * 2 * 200
        assert 1 <= hub.connections <= pool_size(concurrency), hub.connections

    run(scenario)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_an_answer_over_the_size_limit_is_refused_not_read(framing: str) -> None:
    """A server announcing (or streaming) more than 32 MiB is unreadable, whatever it sends."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if framing == "content-length":
            writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n".encode())
            writer.write(b"{" * 1024)
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"x" * (1 << 20)
            for _ in range(MAX_BODY // len(chunk) + 2):
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
        with contextlib.suppress(OSError):
            await writer.drain()
            writer.close()

    async def main() -> str:
        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = http_client(1)
        source = ServerSource(f"http://127.0.0.1:{port}", TOKEN, client, concurrency=1, timeout=10)
        try:
            reading = await source.read(
                RunningServer(
                    user="big", name="", url="/user/big/", profile="gpu", gpus=1, policy=None
                )
            )
        finally:
            await client.close()
            server.close()
        assert reading.observation is None
        return reading.error or ""

    assert asyncio.run(main()) == "the answer is larger than 32 MiB"
