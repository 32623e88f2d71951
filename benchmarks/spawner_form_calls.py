"""API calls and time per options-form render, counted at a fake API server (target: 0 calls).

Usage: python benchmarks/spawner_form_calls.py [--nodes 1000] [--pods 20000] [--renders 50]
                                                [--distinct]

It serves a 1,000-node, 20,000-pod cluster from the test suite's fake Kubernetes API, points
KubeSpawner's client at it with a kubeconfig (as a hub would), makes a user's GPUDevboxSpawner
as JupyterHub does (a User over an in-memory database) and asks it for its options form
(``get_options_form``, as the spawn page does): the first form starts the shared inventory
(its paged lists), every later one must make no API call at all.

Then it times forms rendered right after a cluster change: a pod is bound or unbound at the
fake API, the inventory's watch delivers the event, and the next form computes the offers anew
(target: <= 20 ms, still 0 API calls). ``--distinct`` makes every node differ (the worst case
for placement, see spawner_offers.py). The first form's time is split into the inventory's
start (paged lists of nodes and pods, parsing them into the store) and the form itself
(catalog, offers, HTML) by a profile of that first render (``--profile-first``).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.spawner_cluster import build
from tests_hub.fake_api import FakeKube


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=20000)
    parser.add_argument("--renders", type=int, default=50)
    parser.add_argument("--distinct", action="store_true", help="no two nodes alike")
    parser.add_argument(
        "--profile-first", action="store_true", help="print where the first render's time goes"
    )
    args = parser.parse_args()

    nodes, pods = build(args.nodes, args.pods, distinct=args.distinct)
    kube = FakeKube().start()
    kube.add("nodes", nodes)
    kube.add("pods", pods)
    workdir = Path(tempfile.mkdtemp(prefix="gpu-devbox-bench-"))
    os.environ["KUBECONFIG"] = kube.write_kubeconfig(str(workdir / "kubeconfig"))
    try:
        return asyncio.run(measure(kube, args, len(nodes), len(pods)))
    finally:
        kube.stop()


async def measure(kube: FakeKube, args: argparse.Namespace, nodes: int, pods: int) -> int:
    from jupyterhub import orm
    from jupyterhub.objects import Hub
    from jupyterhub.user import User
    from traitlets.config import Config

    from gpu_devbox_spawner.inventory import Inventory
    from gpu_devbox_spawner.spawner import GPUDevboxSpawner

    db = orm.new_session_factory("sqlite:///:memory:")()
    db.add(orm.User(name="bench"))
    db.commit()
    orm_user = db.query(orm.User).one()
    settings = {"spawner_class": GPUDevboxSpawner, "config": Config(), "hub": Hub()}
    spawner = User(orm_user, settings).spawners[""]
    renders = args.renders
    before = len(kube.requests)
    profile = cProfile.Profile() if args.profile_first else None
    started = time.perf_counter()
    if profile is not None:
        profile.enable()
    first = await spawner.get_options_form()
    first_time = time.perf_counter() - started
    if profile is not None:
        profile.disable()
    first_calls = [r for r in kube.requests[before:] if "watch=" not in r[2]]

    times = []
    before = len(kube.requests)
    for _ in range(renders):
        t = time.perf_counter()
        page = await spawner.get_options_form()
        times.append(time.perf_counter() - t)
    during = kube.requests[before:]
    calls = [r for r in during if "watch=" not in r[2]]
    watches = len(during) - len(calls)

    # forms right after a change: one pod bound / unbound, delivered by the watch
    inventory = await spawner.inventory()
    pod = copy.deepcopy(kube.list("pods")[0])
    pod["metadata"]["name"] = "bench-moving"
    gpu_node = next(
        n.node.name for n in inventory.snapshot().nodes if "nvidia.com/gpu" in n.node.allocatable
    )
    pod["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
    after_change = []
    before = len(kube.requests)
    for i in range(renders):
        pod["spec"]["nodeName"] = gpu_node if i % 2 == 0 else None
        version = inventory.state.version
        kube.call(kube.put, "pods", pod)
        for _ in range(5000):
            if inventory.state.version != version:
                break
            await asyncio.sleep(0.001)
        else:
            raise SystemExit("the watch did not deliver the pod event within 5 s")
        t = time.perf_counter()
        await spawner.get_options_form()
        after_change.append(time.perf_counter() - t)
    changed_calls = [r for r in kube.requests[before:] if "watch=" not in r[2]]
    await Inventory.stop_shared()

    kind = "no two nodes alike" if args.distinct else "nodes of a pool alike"
    print(
        f"cluster at the fake API: {nodes} nodes ({kind}), {pods} pods; "
        f"Python {sys.version.split()[0]}"
    )
    print(
        f"first render (starts the inventory):  {first_time * 1e3:8.1f} ms, "
        f"{len(first_calls)} list calls (paged: nodes and pods)"
    )
    print(
        f"next {renders} renders:                    {len(calls)} API calls "
        f"(target: 0); {watches} watch renewals ran meanwhile"
    )
    print(
        f"time per render (offers + HTML):      median {statistics.median(times) * 1e3:.2f} ms, "
        f"max {max(times) * 1e3:.2f} ms; {len(page) // 1024} KiB of HTML"
    )
    print(
        f"render right after a pod event:       median {statistics.median(after_change) * 1e3:.2f}"
        f" ms, p95 {sorted(after_change)[int(len(after_change) * 0.95) - 1] * 1e3:.2f} ms, "
        f"max {max(after_change) * 1e3:.2f} ms (target: <= 20 ms); "
        f"{len(changed_calls)} API calls"
    )
    if profile is not None:
        print_profile(profile)
    assert first == page or first  # both are full forms
    fast = statistics.median(after_change) <= 0.020
    return 0 if not calls and not changed_calls and fast else 1


def print_profile(profile: cProfile.Profile) -> None:
    """The first render's time by the project's own functions and the few big outside ones."""
    stats = pstats.Stats(profile)
    rows = []
    for (filename, line, name), (_, calls, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append((cumulative, calls, f"{Path(filename).name}:{line}({name})"))
    rows.sort(reverse=True)
    print("first render, cumulative time by function (profiled, so slower than above):")
    for cumulative, calls, where in rows[:25]:
        print(f"  {cumulative * 1e3:9.1f} ms  {calls:7} calls  {where}")


if __name__ == "__main__":
    sys.exit(main())
