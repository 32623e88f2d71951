"""How gpu-devbox's costs grow with the number of GPUs: 1, 8 and 64 simulated GPUs.

Usage: python benchmarks/scaling.py [--gpus 1,8,64] [--seconds 20] [--clients 20]

For each GPU count it prints:

* sampler CPU per tick: ``Sampler.tick()`` (reading, GPU documents, serialising the snapshot and
  its history entry) against the simulated NVML with constant load, CPU time of the thread,
  median of batches; and that as a share of one core at the default 1 s interval;
* history memory: the sampler's history filled to its default length (600 samples: 10 minutes
  at 1 s), the Python allocations it holds (``tracemalloc``);
* server CPU with 0 and with 20 stream clients: a real ``jupyter server`` (simulated backend,
  sampling every second), the server process's CPU time (user + system) per second of wall
  time, as a share of one core (the kernel counts it in 10 ms steps: over 20 s, 0.05 %);
* ``GET gpus``: its latency from outside (p50 of 50 requests) and the body's size.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect

from benchmarks.event_loop_lag import Server
from benchmarks.sampler_cost import FlatNVML, time_per_tick
from gpu_devbox.gpus import NvmlAdapter, Sampler, SamplerConfig, VisibleDevices
from gpu_devbox.gpus.simulated import build_gpus


def make_sampler(gpus: int) -> Sampler:
    lib = FlatNVML(build_gpus(gpus))
    sampler = Sampler(
        NvmlAdapter(lambda: lib),
        visible=VisibleDevices.from_env({}),
        config=SamplerConfig(interval=1.0, history_seconds=600),
    )
    sampler.tick()
    return sampler


def sampler_figures(gpus: int) -> dict[str, float]:
    sampler = make_sampler(gpus)
    sampler._last_slow = time.time()  # fast ticks; slow fields are every 5 s
    tick = statistics.median(time_per_tick(sampler.tick, max(200, 4000 // gpus)))
    sampler.stop()

    tracemalloc.start()
    sampler = make_sampler(gpus)
    before = tracemalloc.get_traced_memory()[0]
    clock = 0.0
    sampler._clock = lambda: clock
    for i in range(sampler.config.history_length):
        clock = 1e9 + i
        sampler.tick()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    samples = len(sampler.history())
    sampler.stop()
    return {"tick_s": tick, "history_bytes": held, "samples": samples}


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


async def server_figures(gpus: int, clients: int, seconds: float) -> dict[str, float]:
    server = Server(gpus)
    try:
        await server.wait_ready()
        http = AsyncHTTPClient()
        latencies, size = [], 0
        for _ in range(50):
            t0 = time.perf_counter()
            response = await http.fetch(
                HTTPRequest(server.base + "/gpu-devbox/api/gpus", headers=server.headers)
            )
            latencies.append(time.perf_counter() - t0)
            size = len(response.body)
            await asyncio.sleep(0.02)

        async def cpu_per_second() -> float:
            start, t0 = process_cpu(server.proc.pid), time.monotonic()
            await asyncio.sleep(seconds)
            return (process_cpu(server.proc.pid) - start) / (time.monotonic() - t0)

        idle = await cpu_per_second()
        url = f"ws://127.0.0.1:{server.port}/gpu-devbox/api/stream?interval=1"
        sockets = [
            await websocket_connect(HTTPRequest(url, headers=server.headers))
            for _ in range(clients)
        ]

        async def drain(ws: Any) -> None:
            while await ws.read_message() is not None:
                pass

        readers = [asyncio.ensure_future(drain(ws)) for ws in sockets]
        await asyncio.sleep(2)
        busy = await cpu_per_second()
        for ws in sockets:
            ws.close()
        for task in readers:
            task.cancel()
    finally:
        server.stop()
    return {
        "gets_p50_s": statistics.median(latencies),
        "body_bytes": size,
        "idle_cpu": idle,
        "stream_cpu": busy - idle,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", default="1,8,64")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=20)
    args = parser.parse_args()
    rows = []
    for gpus in (int(g) for g in args.gpus.split(",")):
        figures = sampler_figures(gpus)
        figures.update(asyncio.run(server_figures(gpus, args.clients, args.seconds)))
        rows.append((gpus, figures))
    print(
        f"simulated GPUs, sampling every 1 s, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPU cores; server CPU over {args.seconds:.0f} s per figure"
    )
    print(
        "| GPUs | sampler CPU per tick | of one core | history memory (600 samples) "
        f"| server CPU, 0 clients | {args.clients} clients | GET gpus p50 | GET gpus body |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for gpus, f in rows:
        print(
            f"| {gpus} | {f['tick_s'] * 1e3:.3f} ms | {f['tick_s'] * 100:.2f} % "
            f"| {f['history_bytes'] / 2**20:.2f} MiB "
            f"| {f['idle_cpu'] * 100:.2f} % | {(f['idle_cpu'] + f['stream_cpu']) * 100:.2f} % "
            f"| {f['gets_p50_s'] * 1e3:.2f} ms | {f['body_bytes'] / 1024:.1f} KiB |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
