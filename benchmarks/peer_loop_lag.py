"""gpu-devbox beside its peers: what K open GPU charts cost every other request of the server.

Usage:
    python benchmarks/peer_loop_lag.py --peer-python /path/to/venv/bin/python
        [--gpus 8] [--clients 0,5,20,50] [--seconds 10]

Starts one ``jupyter server`` at a time, each with one extension and the benchmark-only
``loop_probe`` extension, all under the same latency-faithful fake NVML
(``benchmarks/latency_nvml/pynvml.py``: simulated H100s whose calls take the latencies
measured on a real H100, ~21 ms for ``nvmlDeviceGetPcieThroughput``):

* gpu-devbox (this checkout, with this interpreter; ``GPU_DEVBOX_BACKEND=nvml``), K clients on
  ``/gpu-devbox/api/stream?interval=1`` as its Lab panel opens it;
* jupyterlab-nvdashboard, K clients on ``/nvdashboard/gpu_resource``, each sending
  ``{"updateFrequency": 100, "isPaused": false}`` as its "GPU Resources" chart does;
* jupyter-resource-usage (no GPU metrics: it applies as the other extension a Lab user runs),
  K clients polling ``/api/metrics/v1`` every 5 s as its status bar does.

The peers run with ``--peer-python``, an interpreter with ``jupyterlab-nvdashboard`` and
``jupyter-resource-usage`` installed (a separate virtualenv: they are not gpu-devbox's
dependencies). For each K it prints ``GET /api/status`` p50/p99 (jupyter's cheapest route, timed
from outside as a user feels it), the server's event-loop lag (how late a 10 ms timer fires
inside it) and each row's status p50 as a ratio of the same server's idle p50. A row runs for
``--seconds`` and at least 3 requests, however slow they are. Goal (issue 12): gpu-devbox's
status p50 with 50 streams <= 1.1x its idle p50.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pathlib
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from benchmarks.event_loop_lag import free_port  # noqa: E402

GOAL_RATIO = 1.1
MIN_REQUESTS = 3


class Server:
    """A jupyter server with one extension, the loop probe and the latency-faithful NVML."""

    def __init__(self, python: str, extensions: dict[str, bool], gpus: int) -> None:
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}"
        self.config_dir = tempfile.TemporaryDirectory(prefix="gpu-devbox-peers-")
        config = {
            "ServerApp": {"jpserver_extensions": {**extensions, "loop_probe": True}},
            "IdentityProvider": {"token": self.token},
            "GPUDevbox": {"interval": 1.0},
        }
        pathlib.Path(self.config_dir.name, "jupyter_server_config.json").write_text(
            json.dumps(config)
        )
        paths = [str(HERE / "latency_nvml"), str(HERE), str(ROOT), os.environ.get("PYTHONPATH")]
        env = dict(os.environ)
        env.update(
            {
                "GPU_DEVBOX_BACKEND": "nvml",
                "GPU_DEVBOX_SIMULATED_GPUS": str(gpus),
                "PYTHONPATH": os.pathsep.join(filter(None, paths)),
                "JUPYTER_CONFIG_DIR": self.config_dir.name,
            }
        )
        self.proc = subprocess.Popen(
            [
                python,
                "-m",
                # not "jupyter server", which runs the first jupyter-server on PATH
                "jupyter_server",
                "--no-browser",
                f"--port={self.port}",
                "--ip=127.0.0.1",
                "--allow-root",
                "--log-level=WARN",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    async def request(self, path: str, method: str = "GET", timeout: float = 300) -> Any:
        response = await AsyncHTTPClient().fetch(
            HTTPRequest(
                self.base + path, method=method, headers=self.headers, request_timeout=timeout
            )
        )
        return json.loads(response.body) if response.body else None

    async def wait_ready(self, probe: str) -> None:
        deadline = time.monotonic() + 90
        while True:
            try:
                await self.request(probe, timeout=10)
                return
            except Exception:  # noqa: BLE001, PERF203 - not up yet; poll again
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"the jupyter server did not serve {probe}") from None
                await asyncio.sleep(0.3)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.config_dir.cleanup()


async def open_clients(server: Server, kind: str, count: int) -> list[Any]:
    """K clients as each extension's Lab chart opens them; returns tasks to cancel."""
    tasks: list[Any] = []

    async def drain(ws: Any) -> None:
        while await ws.read_message() is not None:
            pass

    async def poll(path: str, every: float) -> None:
        while True:
            with contextlib.suppress(Exception):  # a poller carries on, as the status bar does
                await server.request(path)
            await asyncio.sleep(every)

    ws_base = f"ws://127.0.0.1:{server.port}"

    async def connect(path: str, greeting: str | None) -> Any:
        # a saturated server answers late: wait as long as a user's browser would keep trying
        request = HTTPRequest(
            ws_base + path, headers=server.headers, connect_timeout=600, request_timeout=600
        )
        ws = await websocket_connect(request)
        if greeting is not None:
            await ws.write_message(greeting)
        return ws

    if kind == "gpu-devbox":
        opening = [connect("/gpu-devbox/api/stream?interval=1", None) for _ in range(count)]
    elif kind == "nvdashboard":
        greeting = json.dumps({"updateFrequency": 100, "isPaused": False})
        opening = [connect("/nvdashboard/gpu_resource", greeting) for _ in range(count)]
    else:
        opening = []
        tasks += [asyncio.ensure_future(poll("/api/metrics/v1", 5.0)) for _ in range(count)]
    sockets = list(await asyncio.gather(*opening))  # all at once, as tabs reopening would
    tasks += [asyncio.ensure_future(drain(ws)) for ws in sockets]
    return [*tasks, *sockets]


async def measure(server: Server, kind: str, clients: int, seconds: float) -> dict[str, float]:
    opened = await open_clients(server, kind, clients)
    await asyncio.sleep(2)  # every client greeted and ticking
    await server.request("/loop-probe", "DELETE")
    latencies = []
    started = time.monotonic()
    while time.monotonic() - started < seconds or len(latencies) < MIN_REQUESTS:
        t0 = time.perf_counter()
        await server.request("/api/status")
        latencies.append((time.perf_counter() - t0) * 1e3)
        await asyncio.sleep(0.1)
    lag = await server.request("/loop-probe")
    for item in opened:
        if hasattr(item, "cancel"):
            item.cancel()
        else:
            item.close()
    await asyncio.sleep(0.5)
    ordered = sorted(latencies)
    return {
        "clients": clients,
        "requests": len(ordered),
        "p50": statistics.median(ordered),
        "p99": ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))],
        "lag_p50": lag.get("p50_ms", float("nan")),
        "lag_p99": lag.get("p99_ms", float("nan")),
    }


PEERS = {
    "gpu-devbox": ({"gpu_devbox": True}, "/gpu-devbox/api/status"),
    "nvdashboard": (
        {"jupyterlab_nvdashboard": True, "jupyter_resource_usage": False},
        "/nvdashboard/accelerators/check",
    ),
    "resource-usage": (
        {"jupyter_resource_usage": True, "jupyterlab_nvdashboard": False},
        "/api/metrics/v1",
    ),
}


def print_row(kind: str, r: dict[str, float], idle: float, ours: float | None) -> None:
    versus = f"{r['p50'] / ours:>17.1f}x" if ours else f"{'-':>18}"
    print(
        f"{kind:<15}{r['clients']:>4.0f}{r['requests']:>10.0f}{r['p50']:>10.2f}ms"
        f"{r['p99']:>10.2f}ms{r['lag_p50']:>10.2f}ms{r['lag_p99']:>10.2f}ms"
        f"{r['p50'] / idle:>11.2f}x{versus}",
        flush=True,
    )


async def main_async(args: argparse.Namespace) -> int:
    counts = [int(k) for k in args.clients.split(",")]
    print(
        f"{args.gpus} simulated H100s behind the H100's NVML latencies, {os.cpu_count()} CPU "
        f"cores, {args.seconds:.0f} s (at least {MIN_REQUESTS} requests) per row, a row given "
        f"up after {args.row_timeout:.0f} s"
    )
    print(
        f"{'server':<15}{'K':>4}{'requests':>10}{'status p50':>12}{'p99':>12}"
        f"{'lag p50':>12}{'lag p99':>12}{'p50 / idle':>12}{'p50 / gpu-devbox':>18}",
        flush=True,
    )
    ours: dict[float, float] = {}
    gpu_devbox_rows: list[dict[str, float]] = []
    for kind, (extensions, probe) in PEERS.items():
        python = sys.executable if kind == "gpu-devbox" else args.peer_python
        server = Server(python, extensions, args.gpus)
        try:
            await server.wait_ready(probe)
            idle = None
            for k in counts:
                try:
                    row = await asyncio.wait_for(
                        measure(server, kind, k, args.seconds), args.row_timeout
                    )
                except (TimeoutError, asyncio.TimeoutError):
                    print(f"{kind:<15}{k:>4} did not finish within {args.row_timeout:.0f} s")
                    break  # more clients only take longer
                idle = idle or row["p50"]
                if kind == "gpu-devbox":
                    ours[row["clients"]] = row["p50"]
                    gpu_devbox_rows.append(row)
                print_row(kind, row, idle, ours.get(row["clients"]))
        finally:
            server.stop()
    ratio = gpu_devbox_rows[-1]["p50"] / gpu_devbox_rows[0]["p50"]
    verdict = "PASS" if ratio <= GOAL_RATIO else "FAIL"
    print(
        f"gpu-devbox: status p50 with {gpu_devbox_rows[-1]['clients']:.0f} streams is "
        f"{ratio:.2f}x its idle p50 (goal <= {GOAL_RATIO}x): {verdict}"
    )
    return 0 if verdict == "PASS" else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--peer-python",
        required=True,
        help="an interpreter with jupyterlab-nvdashboard and jupyter-resource-usage installed",
    )
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--clients", default="0,5,20,50", help="K values, comma-separated")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument(
        "--row-timeout", type=float, default=300, help="give a row up after this many seconds"
    )
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
