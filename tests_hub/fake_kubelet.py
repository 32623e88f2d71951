"""A scheduler and a kubelet for the fake API: pods get a node, events, a process and an IP.

The scheduler honours what matters for GPU servers: cordoned and unready nodes, required node
affinity (``matchExpressions`` on labels, ``matchFields`` on ``metadata.name``), the node
selector, taints and tolerations, and ``nvidia.com/*`` limits against each node's allocatable
minus what bound pods hold. A pod that fits nowhere gets the scheduler's own condition and
``FailedScheduling`` event ("0/3 nodes are available: 3 Insufficient nvidia.com/gpu.").

The kubelet emits Scheduled/Pulling/Pulled/Created/Started events and, when asked to run
processes, starts the pod's command (``jupyterhub-singleuser``) with the pod's environment on
its own loopback address (127.0.0.x), marking the pod Running once it listens.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import os
import signal
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tests_hub.fake_api import FakeKube, now

_ips = itertools.count(10)


def _quantity(value: Any) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


def requested(pod: Mapping[str, Any]) -> dict[str, int]:
    """The ``nvidia.com/*`` limits of a pod's containers."""
    out: collections.Counter[str] = collections.Counter()
    for container in (pod.get("spec") or {}).get("containers") or []:
        for key, value in ((container.get("resources") or {}).get("limits") or {}).items():
            if key.startswith("nvidia.com/"):
                out[key] += _quantity(value)
    return dict(out)


def _expression_ok(expression: Mapping[str, Any], value: str | None) -> bool:
    operator = expression.get("operator")
    values = expression.get("values") or []
    if operator == "In":
        return value in values
    if operator == "NotIn":
        return value not in values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    if operator in ("Gt", "Lt") and value is not None and value.lstrip("-").isdigit():
        limit = int(values[0])
        return int(value) > limit if operator == "Gt" else int(value) < limit
    return False


def affinity_ok(pod: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """Required node affinity and the node selector."""
    spec = pod.get("spec") or {}
    labels = (node.get("metadata") or {}).get("labels") or {}
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = (
        ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        or {}
    ).get("nodeSelectorTerms")
    if not required:
        return True
    name = node["metadata"]["name"]
    for term in required:
        exprs_ok = all(
            _expression_ok(e, labels.get(e["key"])) for e in term.get("matchExpressions") or []
        )
        fields_ok = all(
            _expression_ok(e, name if e["key"] == "metadata.name" else None)
            for e in term.get("matchFields") or []
        )
        if exprs_ok and fields_ok:
            return True
    return False


def preference_score(pod: Mapping[str, Any], node: Mapping[str, Any]) -> int:
    """The summed weights of the preferred node-affinity terms a node matches."""
    spec = pod.get("spec") or {}
    preferred = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "preferredDuringSchedulingIgnoredDuringExecution"
    ) or []
    labels = (node.get("metadata") or {}).get("labels") or {}
    score = 0
    for item in preferred:
        term = item.get("preference") or {}
        if all(_expression_ok(e, labels.get(e["key"])) for e in term.get("matchExpressions") or []):
            score += int(item.get("weight", 0))
    return score


def untolerated(pod: Mapping[str, Any], node: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The node's NoSchedule/NoExecute taints the pod does not tolerate."""
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    out = []
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        ok = False
        for t in tolerations:
            if t.get("effect") and t["effect"] != taint.get("effect"):
                continue
            if (not t.get("key") and t.get("operator") == "Exists") or (
                t.get("key") == taint.get("key")
                and (t.get("operator") == "Exists" or t.get("value") == taint.get("value"))
            ):
                ok = True
        if not ok:
            out.append(taint)
    return out


class FakeKubelet:
    """Schedules and runs the fake API's pods."""

    def __init__(self, kube: FakeKube, workdir: Path, *, run_processes: bool = True) -> None:
        self.kube = kube
        self.workdir = workdir
        self.run_processes = run_processes
        self.processes: dict[tuple[str, str], asyncio.subprocess.Process] = {}
        self.pending: set[tuple[str, str]] = set()
        #: run once, just before the next pod is scheduled (to stage a race for a GPU)
        self.before_next_schedule: list[Callable[[], None]] = []
        self._tasks: set[asyncio.Future[None]] = set()
        kube.on_pod_created.append(self._created)
        kube.on_pod_deleted.append(self._deleted)

    # -- scheduling ---------------------------------------------------------------------------

    def _used(self, node_name: str) -> collections.Counter[str]:
        used: collections.Counter[str] = collections.Counter()
        for pod in self.kube.list("pods"):
            spec = pod.get("spec") or {}
            phase = (pod.get("status") or {}).get("phase")
            if spec.get("nodeName") == node_name and phase not in ("Succeeded", "Failed"):
                used.update(requested(pod))
        return used

    def fit(self, pod: Mapping[str, Any]) -> tuple[str | None, str]:
        """The node a pod goes to, or None and the scheduler's message."""
        nodes = self.kube.list("nodes")
        reasons: collections.Counter[str] = collections.Counter()
        wants = requested(pod)
        fitting: list[dict[str, Any]] = []
        for node in nodes:
            spec = node.get("spec") or {}
            ready = any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (node.get("status") or {}).get("conditions") or []
            )
            if spec.get("unschedulable") or not ready:
                reasons["node(s) were unschedulable"] += 1
                continue
            if not affinity_ok(pod, node):
                reasons["node(s) didn't match Pod's node affinity/selector"] += 1
                continue
            taints = untolerated(pod, node)
            if taints:
                t = taints[0]
                reasons[f"node(s) had untolerated taint {{{t['key']}: {t.get('value', '')}}}"] += 1
                continue
            allocatable = (node.get("status") or {}).get("allocatable") or {}
            used = self._used(node["metadata"]["name"])
            short = [r for r, n in wants.items() if _quantity(allocatable.get(r, 0)) - used[r] < n]
            if short:
                for resource in short:
                    reasons[f"Insufficient {resource}"] += 1
                continue
            fitting.append(node)
        if fitting:
            best = max(fitting, key=lambda n: preference_score(pod, n))
            return best["metadata"]["name"], ""
        detail = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items()))
        return None, f"0/{len(nodes)} nodes are available: {detail}."

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _created(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        self._spawn(self._schedule((meta["namespace"], meta["name"])))

    async def _schedule(self, key: tuple[str, str]) -> None:
        await asyncio.sleep(0.05)
        while self.before_next_schedule:
            self.before_next_schedule.pop(0)()
        pod = self.kube.objects.get(("pods", *key))
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return
        node, message = self.fit(pod)
        pod = dict(pod)
        status = dict(pod.get("status") or {})
        if node is None:
            self.pending.add(key)
            status["conditions"] = [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": message,
                    "lastTransitionTime": now(),
                }
            ]
            pod["status"] = status
            self.kube.put("pods", pod)
            self.kube.event(pod, "FailedScheduling", message, "Warning")
            return
        self.pending.discard(key)
        pod["spec"] = {**pod["spec"], "nodeName": node}
        status["conditions"] = [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now()}
        ]
        pod["status"] = status
        pod = self.kube.put("pods", pod)
        self.kube.event(pod, "Scheduled", f"Successfully assigned {key[0]}/{key[1]} to {node}")
        await self._run(key, pod, node)

    # -- running ------------------------------------------------------------------------------

    async def _run(self, key: tuple[str, str], pod: dict[str, Any], node: str) -> None:
        container = pod["spec"]["containers"][0]
        image = container.get("image", "")
        self.kube.event(pod, "Pulling", f'Pulling image "{image}"')
        await asyncio.sleep(0.05)
        self.kube.event(
            pod, "Pulled", f'Successfully pulled image "{image}" in 50ms (50ms including waiting)'
        )
        self.kube.event(pod, "Created", f"Created container: {container['name']}")
        ip = f"127.0.0.{next(_ips) % 240 + 10}"
        if self.run_processes:
            started = await self._start_process(key, container, ip)
            if not started:
                return
        self.kube.event(pod, "Started", f"Started container {container['name']}")
        await asyncio.sleep(0.3)  # the readiness probe
        current = self.kube.objects.get(("pods", *key))
        if current is None or current["metadata"].get("deletionTimestamp"):
            return
        running = dict(current)
        running["status"] = {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "hostIP": "10.0.0.1",
            "startTime": now(),
            "qosClass": "Burstable",
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now()},
                {"type": "Ready", "status": "True", "lastTransitionTime": now()},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": now()},
            ],
            "containerStatuses": [
                {
                    "name": container["name"],
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "image": image,
                    "imageID": f"docker-pullable://{image}@sha256:{'0' * 64}",
                    "containerID": f"containerd://{key[1]}",
                    "state": {"running": {"startedAt": now()}},
                }
            ],
        }
        self.kube.put("pods", running)

    async def _start_process(
        self, key: tuple[str, str], container: dict[str, Any], ip: str
    ) -> bool:
        env = {"PATH": os.environ["PATH"], "HOME": str(self.workdir), "LANG": "C.UTF-8"}
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = str(item["value"])
        port = next(
            (
                p["containerPort"]
                for p in container.get("ports") or []
                if p.get("name") == "notebook-port"
            ),
            8888,
        )
        if "JUPYTERHUB_SERVICE_URL" in env:
            parts = urlsplit(env["JUPYTERHUB_SERVICE_URL"])
            env["JUPYTERHUB_SERVICE_URL"] = urlunsplit(parts._replace(netloc=f"{ip}:{port}"))
        argv = [*(container.get("command") or []), *(container.get("args") or [])]
        home = self.workdir / key[1]
        home.mkdir(parents=True, exist_ok=True)
        log = open(home / "server.log", "ab")  # noqa: SIM115 - closed with the process
        process = await asyncio.create_subprocess_exec(
            *argv, env=env, cwd=home, stdout=log, stderr=log, start_new_session=True
        )
        log.close()
        self.processes[key] = process
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 90
        while loop.time() < deadline:
            if process.returncode is not None:
                return False
            with contextlib.suppress(OSError), socket.create_connection((ip, port), timeout=0.2):
                return True
            await asyncio.sleep(0.1)
        return False

    async def _stop_process(self, key: tuple[str, str]) -> None:
        process = self.processes.pop(key, None)
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 10)
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()

    def _deleted(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        self._spawn(self._terminate((meta["namespace"], meta["name"])))

    async def _terminate(self, key: tuple[str, str]) -> None:
        pod = self.kube.objects.get(("pods", *key))
        if pod is not None and pod.get("spec", {}).get("nodeName"):
            self.kube.event(
                pod, "Killing", f"Stopping container {pod['spec']['containers'][0]['name']}"
            )
        await self._stop_process(key)
        self.pending.discard(key)
        self.kube.remove("pods", *key)
        for waiting in sorted(self.pending):  # a GPU may have been freed
            self._spawn(self._schedule(waiting))

    async def shutdown(self) -> None:
        """Stop every process."""
        for key in list(self.processes):
            await self._stop_process(key)


def attach(kube: FakeKube, workdir: Path, *, run_processes: bool = True) -> FakeKubelet:
    """Create a kubelet on the fake's loop (from any thread)."""
    result: FakeKubelet = kube.call(lambda: FakeKubelet(kube, workdir, run_processes=run_processes))
    return result
