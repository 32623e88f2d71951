"""What process attribution costs: the /proc scan with N processes, and the pure matching.

    python benchmarks/attribution_cost.py                 # 0, 200 and 800 extra processes
    python benchmarks/attribution_cost.py --processes 100 400

Starts N extra ``sleep`` processes, each holding 24 open files (as a small kernel does), and times
on this machine's real ``/proc``:

* ``device_holders()``: the container-mode scan, which lists every process's open files
  (``/proc/<pid>/fd``) to find the NVIDIA device files: the cost grows with processes and files;
* ``lineage()`` of 8 processes: the same-namespace read (a few ``/proc`` files per ancestor);
* ``Attributor.annotate()`` on a tick where nothing changed (what the sampler thread pays every
  tick while GPU processes run): no ``/proc`` read at all;
* ``attribute()`` in device-file mode on synthetic tables: 8 GPUs, one kernel with 3 workers per
  GPU (exact) and 2 kernels sharing each GPU (uncertain), i.e. the matching and the
  every-assignment check.

All of it runs in the sampler thread, never on the event loop. Prints per-call times (median
of the repeats) and, for the scan, the cost per process, so runs on a noisy machine are compared
as ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from gpu_devbox.attribution import (
    Attributor,
    GpuEntry,
    GpuView,
    Kernel,
    LocalProcess,
    ProcessTable,
    ProcReader,
    Workspace,
    attribute,
)

FILES_PER_PROCESS = 24


def median_ms(call: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def start_sleepers(count: int) -> tuple[list[subprocess.Popen[bytes]], list[int]]:
    fds = []
    for _ in range(FILES_PER_PROCESS):
        with tempfile.TemporaryFile() as f:
            fds.append(os.dup(f.fileno()))
    processes = [subprocess.Popen(["sleep", "600"], pass_fds=fds) for _ in range(count)]
    return processes, fds


def stop(processes: list[subprocess.Popen[bytes]], fds: list[int]) -> None:
    for process in processes:
        process.kill()
    for process in processes:
        process.wait()
    for fd in fds:
        os.close(fd)


def synthetic(gpus: int) -> tuple[list[GpuView], ProcessTable, Workspace]:
    """8 GPUs: on even ones a kernel with 3 workers (4 NVML processes, all its); on odd ones two
    kernels both holding the device file, 2 NVML processes (which is which: unknown)."""
    processes: dict[int, LocalProcess] = {1: LocalProcess(1, 0, 0, 1, "jupyter-server")}
    kernels = []
    views = []
    pid = 100
    host = 40_000
    for gpu in range(gpus):
        entries = []
        owners = 1 if gpu % 2 == 0 else 2
        for k in range(owners):
            root = pid
            kernels.append(Kernel(f"k{gpu}-{k}", "python3", f"n{gpu}-{k}.ipynb", root, "idle", 0))
            members = 4 if owners == 1 else 1
            for m in range(members):
                processes[pid] = LocalProcess(
                    pid, 1 if m == 0 else root, 0, pid, "python", devices=frozenset({gpu})
                )
                entries.append(GpuEntry(host, 1 << 30))
                pid += 1
                host += 1
        views.append(GpuView(index=gpu, minor=gpu, entries=tuple(entries)))
    table = ProcessTable(processes, shared_namespace=False, self_pid=1, self_uid=0)
    return views, table, Workspace(kernels=tuple(kernels), server_pid=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[0, 200, 800])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    reader = ProcReader()
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    base = None
    for extra in args.processes:
        processes, fds = start_sleepers(extra)
        try:
            time.sleep(0.5)
            total = len(reader.pids())
            scan = median_ms(reader.device_holders, args.repeats)
            pids = [p.pid for p in processes[:8]] or [os.getpid()]
            lineage = median_ms(lambda pids=pids: reader.lineage(pids), args.repeats)
        finally:
            stop(processes, fds)
        per = scan / total * 1000
        base = base if base is not None else per
        print(
            f"{total:5d} processes ({extra:4d} extra, {FILES_PER_PROCESS} files each): "
            f"device_holders {scan:7.2f} ms ({per:5.1f} µs/process, x{per / base:.2f}), "
            f"lineage(8) {lineage:5.2f} ms"
        )

    views, table, workspace = synthetic(8)
    pure = median_ms(lambda: attribute(views, table, workspace), args.repeats * 5)
    print(f"attribute(), device files, 8 GPUs, 24 GPU processes, 12 kernels: {pure:.3f} ms")

    attributor = Attributor(namespace="shared", rescan=3600)
    me = os.getpid()
    gpu = {
        "index": 0,
        "uuid": "GPU-0",
        "minor_number": 0,
        "mig": {"enabled": False, "instances": []},
        "processes": [{"pid": me, "used_memory": 1 << 30, "gpu_instance_id": None}],
    }
    gpus = (gpu,)
    first = median_ms(lambda: Attributor(namespace="shared").annotate(gpus), args.repeats)
    attributor.annotate(gpus)
    cached = median_ms(lambda: attributor.annotate(gpus), args.repeats * 20)
    print(
        f"annotate(), 1 GPU process: first tick {first:.3f} ms, "
        f"unchanged tick {cached * 1000:.1f} µs (no /proc read)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
