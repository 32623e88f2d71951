"""A fake Kubernetes API server (core/v1) that KubeSpawner and the gpu-devbox inventory accept.

It serves list and watch (``resourceVersion``, ``timeoutSeconds``, label and field selectors,
pagination, 410 Gone for an expired version, DELETED when an object stops matching a
selector), create, get and delete for pods, events, PVCs, services, secrets, namespaces and
nodes. Every pod body it receives is checked with ``kubernetes-validate`` and the GPU rules
(limits set, whole numbers, requests equal to limits); bodies that fail are answered 422 and
kept in ``invalid``. A scheduler and kubelet (``fake_kubelet``) act on the pods.

It runs on its own event loop in a background thread, so tests and benchmarks may drive a
real JupyterHub, an inventory or plain HTTP at it.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import copy
import datetime
import itertools
import json
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import kubernetes_validate
from aiohttp import web

KINDS = {
    "pods": "Pod",
    "events": "Event",
    "persistentvolumeclaims": "PersistentVolumeClaim",
    "services": "Service",
    "secrets": "Secret",
    "namespaces": "Namespace",
    "nodes": "Node",
}
CLUSTER_SCOPED = {"namespaces", "nodes"}
HISTORY = 20000
K8S_VERSION = "1.37.0"


def now() -> str:
    """An RFC 3339 timestamp, as the API server writes them."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    """A Kubernetes Status object."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def _get_path(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def parse_selector(text: str) -> list[tuple[str, str, str | None]]:
    """``a=b,c!=d,e`` -> [(key, op, value)]; op is ``=``, ``!=`` or ``exists``."""
    out: list[tuple[str, str, str | None]] = []
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        if "!=" in part:
            key, value = part.split("!=", 1)
            out.append((key.strip(), "!=", value.strip()))
        elif "==" in part:
            key, value = part.split("==", 1)
            out.append((key.strip(), "=", value.strip()))
        elif "=" in part:
            key, value = part.split("=", 1)
            out.append((key.strip(), "=", value.strip()))
        else:
            out.append((part, "exists", None))
    return out


Selector = list[tuple[str, str, str | None]]


def matches(obj: dict[str, Any], labels: str | Selector, fields: str | Selector) -> bool:
    """Whether an object matches a label and a field selector (text, or parsed once)."""
    if isinstance(labels, str):
        labels = parse_selector(labels)
    if isinstance(fields, str):
        fields = parse_selector(fields)
    have = (obj.get("metadata") or {}).get("labels") or {}
    for key, op, value in labels:
        if op == "exists" and key not in have:
            return False
        if op == "=" and have.get(key) != value:
            return False
        if op == "!=" and have.get(key) == value:
            return False
    for key, op, value in fields:
        actual = _get_path(obj, key)
        actual = "" if actual is None else str(actual)
        if op == "=" and actual != value:
            return False
        if op == "!=" and actual == value:
            return False
    return True


def gpu_rules(pod: dict[str, Any]) -> list[str]:
    """Problems the API server (or the device plugin) would have with a pod's GPU resources."""
    problems = []
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        limits = resources.get("limits") or {}
        requests = resources.get("requests") or {}
        for key in {*limits, *requests}:
            if not key.startswith("nvidia.com/"):
                continue
            if key not in limits:
                problems.append(f"{container.get('name')}: {key} requested without a limit")
                continue
            value = str(limits[key])
            if not value.isdigit():
                problems.append(f"{container.get('name')}: {key}={value} is not a whole number")
            if key in requests and str(requests[key]) != value:
                problems.append(f"{container.get('name')}: {key} request differs from its limit")
    return problems


class FakeKube:
    """The store, the HTTP API and the bookkeeping tests look at."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        #: per kind, the sorted keys of its objects (rebuilt after a change)
        self._sorted: dict[str, list[tuple[str, str, str]]] = {}
        self._list_cache: tuple[tuple[Any, ...], list[dict[str, Any]]] | None = None
        self.version = 0
        #: (resourceVersion, kind, type, old object, new object)
        self.history: list[tuple[int, str, str, dict[str, Any] | None, dict[str, Any]]] = []
        #: set (and replaced) on every change; watches wait on it
        self.changed: asyncio.Event | None = None
        #: every request: (method, path, query string)
        self.requests: list[tuple[str, str, str]] = []
        #: pod bodies received by create, and the invalid ones with their problems
        self.created_pods: list[dict[str, Any]] = []
        self.invalid: list[tuple[dict[str, Any], str]] = []
        #: called (on the loop) after a pod is created or deleted; the kubelet hooks in here
        self.on_pod_created: list[Callable[[dict[str, Any]], None]] = []
        self.on_pod_deleted: list[Callable[[dict[str, Any]], None]] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.url = ""
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._uid = itertools.count(1)
        #: watches from a resourceVersion below this get 410 Gone (tests of relisting)
        self.expired_below = 0
        #: path prefix -> how many more requests to it fail with 500 (tests of retries)
        self.fail_next: dict[str, int] = {}

    # -- store --------------------------------------------------------------------------------

    def _next_version(self) -> int:
        self.version += 1
        return self.version

    def _record(
        self, kind: str, kind_of_change: str, old: dict[str, Any] | None, new: dict[str, Any]
    ) -> None:
        self.history.append((self.version, kind, kind_of_change, old, copy.deepcopy(new)))
        if len(self.history) > HISTORY:
            del self.history[: len(self.history) - HISTORY]
        if self.changed is not None:
            self.changed.set()
            self.changed = asyncio.Event()

    def put(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or replace an object (server-owned metadata filled in). Call on the loop."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        namespace = "" if kind in CLUSTER_SCOPED else meta.setdefault("namespace", "default")
        key = (kind, namespace, meta["name"])
        old = self.objects.get(key)
        meta.setdefault("uid", (old or {}).get("metadata", {}).get("uid") or str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now())
        obj.setdefault("apiVersion", "v1")
        obj.setdefault("kind", KINDS[kind])
        meta["resourceVersion"] = str(self._next_version())
        if old is None:
            self._sorted.pop(kind, None)
        self.objects[key] = obj
        self._record(kind, "MODIFIED" if old else "ADDED", old, obj)
        return obj

    def remove(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """Delete an object now. Call on the loop."""
        obj = self.objects.pop((kind, namespace, name), None)
        if obj is not None:
            self._sorted.pop(kind, None)
            obj = copy.deepcopy(obj)
            obj["metadata"]["resourceVersion"] = str(self._next_version())
            self._record(kind, "DELETED", obj, obj)
        return obj

    def list(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Objects of a kind (in a namespace, or all)."""
        keys = self._sorted.get(kind)
        if keys is None:
            keys = self._sorted[kind] = sorted(key for key in self.objects if key[0] == kind)
        return [self.objects[key] for key in keys if namespace is None or key[1] == namespace]

    def event(self, pod: dict[str, Any], reason: str, message: str, kind: str = "Normal") -> None:
        """Record an Event about a pod, as the scheduler and kubelet do."""
        meta = pod["metadata"]
        stamp = now()
        self.put(
            "events",
            {
                "metadata": {
                    "name": f"{meta['name']}.{next(self._uid):x}",
                    "namespace": meta["namespace"],
                },
                "involvedObject": {
                    "kind": "Pod",
                    "name": meta["name"],
                    "namespace": meta["namespace"],
                    "uid": meta["uid"],
                    "apiVersion": "v1",
                },
                "reason": reason,
                "message": message,
                "type": kind,
                "count": 1,
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
                "source": {"component": "fake-kubelet"},
            },
        )

    # -- thread-safe helpers for tests --------------------------------------------------------

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` on the fake's loop and return its result."""
        assert self.loop is not None

        async def run() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=30)

    def add(self, kind: str, objects: Iterable[dict[str, Any]]) -> None:
        """Add objects (nodes, pods of other users...) from any thread."""
        items = list(objects)
        self.call(lambda: [self.put(kind, o) for o in items])

    def count(self, method: str | None = None, prefix: str = "/api") -> int:
        """Requests so far (optionally of one method)."""
        return sum(
            1
            for m, p, _ in self.requests
            if p.startswith(prefix) and (method is None or m == method)
        )

    # -- HTTP ---------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        r = app.router
        r.add_get("/api/v1/{kind}", self.handle_list)
        r.add_get("/api/v1/{kind}/{name}", self.handle_get_cluster)
        r.add_post("/api/v1/namespaces", self.handle_create_namespace)
        r.add_get("/api/v1/namespaces/{ns}/{kind}", self.handle_list)
        r.add_post("/api/v1/namespaces/{ns}/{kind}", self.handle_create)
        r.add_get("/api/v1/namespaces/{ns}/{kind}/{name}", self.handle_get)
        r.add_delete("/api/v1/namespaces/{ns}/{kind}/{name}", self.handle_delete)
        r.add_get("/version", self.handle_version)
        return app

    @web.middleware
    async def _log(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path, request.query_string))
        for prefix, left in self.fail_next.items():
            if left > 0 and request.path.startswith(prefix):
                self.fail_next[prefix] = left - 1
                return web.json_response(
                    status(500, "InternalError", "injected failure"), status=500
                )
        return await handler(request)

    async def handle_version(self, request: web.Request) -> web.Response:
        return web.json_response({"major": "1", "minor": "37", "gitVersion": "v1.37.0-fake"})

    def _kind(self, request: web.Request) -> str:
        kind = request.match_info["kind"]
        if kind not in KINDS:
            raise web.HTTPNotFound(
                text=json.dumps(status(404, "NotFound", f"the server could not find {kind}")),
                content_type="application/json",
            )
        return kind

    async def handle_list(self, request: web.Request) -> web.StreamResponse:
        kind = self._kind(request)
        namespace = request.match_info.get("ns")  # None: all namespaces
        query = request.query
        label_text = query.get("labelSelector", "")
        field_text = query.get("fieldSelector", "")
        labels = parse_selector(label_text)
        fields = parse_selector(field_text)
        if query.get("watch", "").lower() in ("true", "1"):
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            await response.prepare(request)
            with contextlib.suppress(ConnectionResetError):  # the client went away
                await self._watch(request, response, kind, namespace, labels, fields)
                await response.write_eof()
            return response
        limit = int(query.get("limit") or 0)
        start = int(query.get("continue") or 0)
        # a continued list reads the same snapshot, as the API server's continue token does
        cache_key = (kind, namespace, label_text, field_text, self.version)
        if start and self._list_cache and self._list_cache[0] == cache_key:
            items = self._list_cache[1]
        else:
            items = [o for o in self.list(kind, namespace) if matches(o, labels, fields)]
            self._list_cache = (cache_key, items)
        metadata: dict[str, Any] = {"resourceVersion": str(self.version)}
        if limit:
            page = items[start : start + limit]
            if start + limit < len(items):
                metadata["continue"] = str(start + limit)
            items = page
        return web.json_response(
            {"kind": f"{KINDS[kind]}List", "apiVersion": "v1", "metadata": metadata, "items": items}
        )

    async def _watch(
        self,
        request: web.Request,
        response: web.StreamResponse,
        kind: str,
        namespace: str | None,
        labels: Selector,
        fields: Selector,
    ) -> None:
        timeout = float(request.query.get("timeoutSeconds") or 1800)
        since_text = request.query.get("resourceVersion") or "0"

        async def send(kind_of_event: str, obj: dict[str, Any]) -> None:
            line = json.dumps({"type": kind_of_event, "object": obj}) + "\n"
            await response.write(line.encode())

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        since = int(since_text)
        if since == 0:
            for obj in self.list(kind, namespace):
                if matches(obj, labels, fields):
                    await send("ADDED", obj)
            since = self.version
        elif since < self.expired_below or (
            self.history and since < self.history[0][0] - 1 and since < self.version
        ):
            await send("ERROR", status(410, "Expired", f"too old resource version: {since}"))
            return
        while True:
            assert self.changed is not None
            changed = self.changed
            start = bisect.bisect_right(self.history, since, key=lambda entry: entry[0])
            for version, k, change, old, new in self.history[start:]:
                since = version
                if k != kind:
                    continue
                ns = (new.get("metadata") or {}).get("namespace", "")
                if namespace is not None and kind not in CLUSTER_SCOPED and ns != namespace:
                    continue
                now_match = matches(new, labels, fields)
                was_match = old is not None and matches(old, labels, fields)
                if change == "DELETED":
                    if was_match:
                        await send("DELETED", new)
                elif now_match:
                    await send("MODIFIED" if was_match else "ADDED", new)
                elif was_match:
                    await send("DELETED", new)
            left = deadline - loop.time()
            if left <= 0:
                break
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(changed.wait(), min(left, 1.0))

    async def handle_get_cluster(self, request: web.Request) -> web.Response:
        kind = self._kind(request)
        obj = self.objects.get((kind, "", request.match_info["name"]))
        if obj is None:
            return web.json_response(status(404, "NotFound", "not found"), status=404)
        return web.json_response(obj)

    async def handle_get(self, request: web.Request) -> web.Response:
        kind = self._kind(request)
        obj = self.objects.get((kind, request.match_info["ns"], request.match_info["name"]))
        if obj is None:
            name = request.match_info["name"]
            return web.json_response(
                status(404, "NotFound", f'{kind} "{name}" not found'), status=404
            )
        return web.json_response(obj)

    async def handle_create_namespace(self, request: web.Request) -> web.Response:
        body = await request.json()
        name = body["metadata"]["name"]
        if ("namespaces", "", name) in self.objects:
            return web.json_response(
                status(409, "AlreadyExists", f'namespaces "{name}" already exists'), status=409
            )
        return web.json_response(self.put("namespaces", body), status=201)

    async def handle_create(self, request: web.Request) -> web.Response:
        kind = self._kind(request)
        namespace = request.match_info["ns"]
        body = await request.json()
        body.setdefault("metadata", {})["namespace"] = namespace
        name = body["metadata"].get("name")
        if (kind, namespace, name) in self.objects:
            return web.json_response(
                status(409, "AlreadyExists", f'{kind} "{name}" already exists'), status=409
            )
        if kind == "pods":
            self.created_pods.append(copy.deepcopy(body))
            problems = []
            try:
                kubernetes_validate.validate(copy.deepcopy(body), K8S_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                problems.append(exc.message)
            problems.extend(gpu_rules(body))
            if problems:
                self.invalid.append((body, "; ".join(problems)))
                return web.json_response(status(422, "Invalid", "; ".join(problems)), status=422)
            body["status"] = {"phase": "Pending", "qosClass": "Burstable"}
        obj = self.put(kind, body)
        if kind == "pods":
            for hook in self.on_pod_created:
                hook(obj)
        return web.json_response(obj, status=201)

    async def handle_delete(self, request: web.Request) -> web.Response:
        kind = self._kind(request)
        key = (kind, request.match_info["ns"], request.match_info["name"])
        obj = self.objects.get(key)
        if obj is None:
            name = request.match_info["name"]
            return web.json_response(
                status(404, "NotFound", f'{kind} "{name}" not found'), status=404
            )
        if kind == "pods" and self.on_pod_deleted:
            obj = copy.deepcopy(obj)
            obj["metadata"]["deletionTimestamp"] = now()
            obj = self.put(kind, obj)
            for hook in self.on_pod_deleted:
                hook(obj)
            return web.json_response(obj)
        removed = self.remove(*key)
        return web.json_response(removed)

    # -- running ------------------------------------------------------------------------------

    def start(self) -> FakeKube:
        """Serve on 127.0.0.1 and a free port, in a background thread."""
        self._thread = threading.Thread(target=self._run, name="fake-kube", daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the fake Kubernetes API did not start")
        return self

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.changed = asyncio.Event()
        self._stop = asyncio.Event()
        app = self.app()
        app.middlewares.append(self._log)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def stop(self) -> None:
        """Stop serving (and end every watch)."""
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=15)

    def write_kubeconfig(self, path: str) -> str:
        """A kubeconfig whose current context is this fake; returns its path."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
            "current-context": "fake",
        }
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(config, handle)
        return path
