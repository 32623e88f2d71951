"""How long the doctor takes: gathering the facts, and judging them.

    python benchmarks/doctor_checks.py [--rounds N]

Prints (1) a cold gathering on this machine: container facts, and one probe subprocess of this
interpreter (what ``GET checks?refresh=1`` costs beyond torch's own import time), (2) judging a
facts document (the pure checks a cached ``GET checks`` runs on every request), with the
simulated backend's two H100s so every check has GPUs to judge, and (3) judging each of the
doctor's scenario facts from the test suite (old and new GPUs, drivers, images, frameworks,
compatibility packages: the facts other machines have), reporting the slowest. Target: judging
<= 2 ms on any facts.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpu_devbox.cuda import environments, facts
from gpu_devbox.cuda.checks import checks_document


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200, help="judging rounds (default 200)")
    parser.add_argument(
        "--judging-only", action="store_true", help="skip the gathering (no subprocesses)"
    )
    args = parser.parse_args()
    if args.judging_only:
        return judge_scenarios(args.rounds)

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
        started = time.thread_time()
        checks_document(document)
        times.append(time.thread_time() - started)
    print(f"python {sys.version.split()[0]}")
    print(f"container facts (ldconfig -p, nvcc --version, files): {container_s * 1000:.1f} ms")
    print(f"probe of this interpreter (subprocess, no frameworks): {probe_s * 1000:.1f} ms")
    print(
        f"judging the facts ({len(checks_document(document)['checks'])} checks, CPU time): "
        f"median {statistics.median(times) * 1000:.2f} ms, "
        f"p95 {sorted(times)[int(len(times) * 0.95) - 1] * 1000:.2f} ms over {args.rounds} rounds"
    )
    return judge_scenarios(args.rounds)


def judge_scenarios(rounds: int) -> int:
    """Judge every scenario of the doctor's tests; print the median and the slowest."""
    from tests.doctor_facts import make_facts
    from tests.test_doctor_scenarios import SCENARIOS

    medians = []
    for scenario in SCENARIOS:
        document = make_facts(**scenario.facts)
        checks_document(document)
        times = []
        for _ in range(max(10, rounds // 10)):
            started = time.thread_time()
            checks_document(document)
            times.append(time.thread_time() - started)
        medians.append((statistics.median(times), scenario.id))
    medians.sort()
    slowest, name = medians[-1]
    middle = statistics.median(m for m, _ in medians)
    print(
        f"judging {len(medians)} scenarios' facts (CPU time): median {middle * 1000:.2f} ms, "
        f"slowest {slowest * 1000:.2f} ms ({name}); target <= 2 ms: "
        f"{'PASS' if slowest <= 0.002 else 'FAIL'}"
    )
    return 0 if slowest <= 0.002 else 1


if __name__ == "__main__":
    sys.exit(main())
