"""API calls and time per options-form render, counted at a fake API server (target: 0 calls).

Usage: python benchmarks/spawner_form_calls.py [--nodes 1000] [--pods 20000] [--renders 50]

It serves a 1,000-node, 20,000-pod cluster from the test suite's fake Kubernetes API, points
KubeSpawner's client at it with a kubeconfig (as a hub would), makes a user's GPUDevboxSpawner
as JupyterHub does (a User over an in-memory database) and asks it for its options form
(``get_options_form``, as the spawn page does): the first form starts the shared inventory
(its paged lists), every later one must make no API call at all.
"""

from __future__ import annotations

import argparse
import asyncio
import os
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
    args = parser.parse_args()

    nodes, pods = build(args.nodes, args.pods)
    kube = FakeKube().start()
    kube.add("nodes", nodes)
    kube.add("pods", pods)
    workdir = Path(tempfile.mkdtemp(prefix="gpu-devbox-bench-"))
    os.environ["KUBECONFIG"] = kube.write_kubeconfig(str(workdir / "kubeconfig"))
    try:
        return asyncio.run(measure(kube, args.renders, len(nodes), len(pods)))
    finally:
        kube.stop()


async def measure(kube: FakeKube, renders: int, nodes: int, pods: int) -> int:
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
    before = len(kube.requests)
    started = time.perf_counter()
    first = await spawner.get_options_form()
    first_time = time.perf_counter() - started
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
    await Inventory.stop_shared()

    print(f"cluster at the fake API: {nodes} nodes, {pods} pods; Python {sys.version.split()[0]}")
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
    assert first == page or first  # both are full forms
    return 0 if not calls else 1


if __name__ == "__main__":
    sys.exit(main())
