"""One decision round of gpu-devbox-culler for many servers, on loopback.

    python benchmarks/culler_round.py                  # 1,000 servers
    python benchmarks/culler_round.py --servers 200

A child process serves the simulated answers (tests/fakehub.py): the hub's paginated users
list, every server's ``gpu-devbox/api/status`` and ``gpus``, and a Prometheus query with
gpu-devbox's series of every server. This process runs the culler's rounds as the service does
(SQLite accounting included) and prints, per round, its wall time and the CPU time of this
process (all its threads: the culler's own cost, not the simulated answers', which the child
pays), the culler's CPU per server (steadier than wall time on a busy machine), and the ratio
of the median to the target: <= 2 s wall with the default source (every server read, two
requests each, over kept-alive connections), <= 200 ms CPU with the Prometheus source (one
query). A ratio <= 1 meets the target.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpu_devbox.catalog import parse_catalog_text
from gpu_devbox_culler.culler import Culler, Source
from gpu_devbox_culler.hub import HubClient
from gpu_devbox_culler.sources import PrometheusSource, ServerSource, http_client
from gpu_devbox_culler.store import Store
from tests.fakehub import TOKEN, FakeHub, FakeServer

CATALOG = parse_catalog_text(
    """
images: [{name: cuda, reference: x/cuda, cuda: "12.6"}]
cull: {gpu_idle_after: 2h, warn_before: 15m}
profiles: [{slug: gpu, display_name: GPU, gpu: {count: 1, max_count: 8}, images: [cuda]}]
"""
)


def serve(servers: int, port_out: Any) -> None:
    """The child: a fake hub, proxy, servers and Prometheus."""

    async def main() -> None:
        hub = FakeHub().start()
        rng = random.Random(1)
        for i in range(servers):
            hub.add(
                FakeServer(
                    f"user{i:04d}",
                    gpus=rng.choice((1, 1, 1, 2, 4, 8)),
                    # a few idle long enough to be culled; the fake hub forgets nothing
                    idle=rng.choice((5.0, 600.0, 3000.0, 6000.0)),
                    utilization=rng.choice((0.0, 35.0, 90.0)),
                )
            )
        port_out.send(hub.port)
        await asyncio.Event().wait()

    asyncio.run(main())


class NoStops(HubClient):
    """Decides and accounts as usual, but keeps every server (each round sees all of them)."""

    async def stop(self, server: Any) -> None:
        return None


async def rounds(
    port: int, source_name: str, count: int, concurrency: int
) -> list[tuple[float, float]]:
    url = f"http://127.0.0.1:{port}"
    client = http_client(concurrency)
    direct = ServerSource(url, TOKEN, client, concurrency=concurrency, timeout=10)
    source: Source = direct
    if source_name == "prometheus":
        source = PrometheusSource(url, client, series="gpu-devbox", timeout=10)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(os.path.join(tmp, "culler.sqlite"))
        culler = Culler(
            hub=NoStops(f"{url}/hub/api", TOKEN, client),
            source=source,
            direct=direct,
            store=store,
            catalog=lambda: CATALOG,
            period=60,
        )
        out = []
        for _ in range(count):
            wall, cpu = time.perf_counter(), time.process_time()
            decisions = await culler.round()
            out.append((time.perf_counter() - wall, time.process_time() - cpu))
            assert decisions, culler.last_error
        await store.close()
    await client.close()
    return out


def child_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) the answering child has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    import logging

    logging.getLogger("gpu_devbox_culler").setLevel(logging.ERROR)
    receive, send = multiprocessing.Pipe(duplex=False)
    child = multiprocessing.Process(target=serve, args=(args.servers, send), daemon=True)
    child.start()
    try:
        port = receive.recv()
        print(
            f"{args.servers} servers, {args.rounds} rounds each, concurrency "
            f"{args.concurrency}, Python {sys.version.split()[0]}"
        )
        for name, target, limit, measure in (
            ("servers", "wall <= 2 s", 2.0, 0),
            ("prometheus", "CPU <= 200 ms", 0.2, 1),
        ):
            before = child_cpu(child.pid)
            measured = asyncio.run(rounds(port, name, args.rounds, args.concurrency))
            answers = (child_cpu(child.pid) - before) / args.rounds
            walls = [w for w, _ in measured]
            cpus = [c for _, c in measured]
            median = statistics.median([walls, cpus][measure])
            print(
                f"--source {name:10}  wall median {statistics.median(walls) * 1000:6.0f} ms "
                f"(max {max(walls) * 1000:.0f})   culler CPU median "
                f"{statistics.median(cpus) * 1000:5.0f} ms (max {max(cpus) * 1000:.0f}), "
                f"{statistics.median(cpus) / args.servers * 1e6:.0f} us/server   "
                f"answers' CPU (other process) {answers * 1000:.0f} ms/round   "
                f"target {target}: ratio {median / limit:.2f}"
            )
    finally:
        child.terminate()
        child.join(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
