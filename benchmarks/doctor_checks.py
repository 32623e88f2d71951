"""How long the doctor takes: gathering the facts, and judging them.

    python benchmarks/doctor_checks.py [--rounds N]

Prints (1) a cold gathering on this machine: container facts, and one probe subprocess of this
interpreter (what ``GET checks?refresh=1`` costs beyond torch's own import time), (2) judging a
facts document (the pure checks a cached ``GET checks`` runs on every request), with the
simulated backend's two H100s so every check has GPUs to judge.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time

from gpu_devbox.cuda import environments, facts
from gpu_devbox.cuda.checks import checks_document


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200, help="judging rounds (default 200)")
    args = parser.parse_args()

    started = time.perf_counter()
    container = facts.gather_container()
    container_s = time.perf_counter() - started
    started = time.perf_counter()
    envs = asyncio.run(environments.gather_environments(None, timeout=60))
    probe_s = time.perf_counter() - started
    nvml = facts.read_nvml("simulated")
    document = facts.assemble(nvml, container, envs)

    checks_document(document)  # warm the table caches
    times = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        checks_document(document)
        times.append(time.perf_counter() - started)
    print(f"python {sys.version.split()[0]}")
    print(f"container facts (ldconfig -p, nvcc --version, files): {container_s * 1000:.1f} ms")
    print(f"probe of this interpreter (subprocess, no frameworks): {probe_s * 1000:.1f} ms")
    print(
        f"judging the facts ({len(checks_document(document)['checks'])} checks): "
        f"median {statistics.median(times) * 1000:.2f} ms, "
        f"p95 {sorted(times)[int(len(times) * 0.95) - 1] * 1000:.2f} ms over {args.rounds} rounds"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
