"""A loopback stand-in for a hub and its proxy, for the culler's unit tests and benchmark.

One tornado application answers what the culler asks: the hub's paginated users list and
DELETE of a server under ``/hub/api``, and each server's ``gpu-devbox/api/status`` and ``gpus``
under ``/user/<name>/[<server>/]``, with the contract's fields. A server can be made slow,
broken (5xx, garbage, no gpu-devbox) or busy. The end-to-end tests use a real hub and real
servers instead (tests_hub/).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import socket
import time
from typing import Any
from urllib.parse import unquote

from tornado import web
from tornado.httpserver import HTTPServer

TOKEN = "culler-test-token"


@dataclasses.dataclass
class FakeServer:
    """One running server and what it answers."""

    user: str
    name: str = ""
    profile: str = "gpu"
    gpus: int = 1
    #: Seconds its GPUs have been idle when asked (grows with time unless busy).
    idle: float = 0.0
    keep_until: float | None = None
    keep_used: int = 0
    groups: tuple[str, ...] = ()
    #: "ok", "slow", "500", "garbage", "no-gpu-devbox", "no-gpu"
    behaviour: str = "ok"
    utilization: float = 0.0
    stopped: bool = False
    started: str = "2026-12-01T08:00:00.000000Z"
    _since: float = dataclasses.field(default_factory=time.time)

    def status(self, now: float) -> dict[str, Any]:
        idle = self.idle + (now - self._since)
        no_gpu = self.behaviour == "no-gpu"
        doc: dict[str, Any] = {
            "nvml": {"available": not no_gpu},
            "gpu_count": 0 if no_gpu else self.gpus,
            "visible_gpu_count": 0 if no_gpu else self.gpus,
            "visible_devices": "",
            "interval": 1.0,
            "history_seconds": 600.0,
            "simulated": True,
            "version": "0.0.0",
            "gpu_busy_at": None if no_gpu else now - idle,
            "gpu_idle_seconds": None if no_gpu else idle,
            "gpu_memory_held": None if no_gpu else True,
            "cull": None,
        }
        if not no_gpu:
            doc["cull"] = {
                "gpu_idle_after": 7200,
                "warn_before": 900,
                "stops_at": max(now - idle + 7200, self.keep_until or 0),
                "warning": False,
                "keep_running": {"used": self.keep_used, "max": 2, "until": self.keep_until},
            }
        return doc

    def gpu_list(self) -> dict[str, Any]:
        return {
            "gpus": [
                {
                    "index": i,
                    "name": "NVIDIA H100 80GB HBM3",
                    "utilization": {"gpu": self.utilization, "memory": 0},
                    "memory": {"total": 80 * 2**30, "used": 2**30, "reserved": 0, "free": 0},
                }
                for i in range(self.gpus)
            ],
            "simulated": True,
        }

    def model(self) -> dict[str, Any]:
        path = f"/user/{self.user}/" + (f"{self.name}/" if self.name else "")
        return {
            "name": self.name,
            "ready": True,
            "pending": None,
            "stopped": False,
            "url": path,
            "started": self.started,
            "last_activity": self.started,
            "user_options": {"profile": self.profile, "gpus": self.gpus},
            "state": {
                "pod_name": f"jupyter-{self.user}",
                "namespace": "jh",
                "gpu_devbox": {"node": "h100-1"},
            },
        }


class FakeHub:
    """The hub API and the servers, on one loopback port."""

    def __init__(self) -> None:
        self.servers: dict[tuple[str, str], FakeServer] = {}
        self.deleted: list[tuple[str, str]] = []
        self.requests = 0
        #: TCP connections accepted so far (a client that keeps connections alive opens few).
        self.connections = 0
        self.port = 0
        self._server: HTTPServer | None = None
        self._release: asyncio.Event | None = None

    def add(self, server: FakeServer) -> FakeServer:
        self.servers[(server.user, server.name)] = server
        return server

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/hub/api"

    def start(self) -> FakeHub:
        """Listen on a free loopback port (call within the running event loop)."""
        hub = self
        self._release = asyncio.Event()

        class Base(web.RequestHandler):
            def prepare(self) -> None:
                hub.requests += 1
                if self.request.headers.get("Authorization") != f"token {TOKEN}":
                    raise web.HTTPError(403)

        class Users(Base):
            def get(self) -> None:
                offset = int(self.get_argument("offset", "0"))
                limit = int(self.get_argument("limit", "200"))
                users: dict[str, dict[str, Any]] = {}
                for s in hub.servers.values():
                    if s.stopped:
                        continue
                    entry = users.setdefault(
                        s.user,
                        {"kind": "user", "name": s.user, "groups": list(s.groups), "servers": {}},
                    )
                    entry["servers"][s.name] = s.model()
                items = sorted(users.values(), key=lambda u: u["name"])
                page = items[offset : offset + limit]
                following = offset + limit if offset + limit < len(items) else None
                self.finish(
                    {
                        "items": page,
                        "_pagination": {
                            "offset": offset,
                            "limit": limit,
                            "total": len(items),
                            "next": None
                            if following is None
                            else {"offset": following, "limit": limit},
                        },
                    }
                )

        class Stop(Base):
            def delete(self, user: str, name: str | None = None) -> None:
                key = (unquote(user), unquote(name or ""))
                server = hub.servers.get(key)
                if server is None or server.stopped:
                    raise web.HTTPError(404)
                server.stopped = True
                hub.deleted.append(key)
                self.set_status(204)

        class Api(Base):
            async def get(self, user: str, rest: str) -> None:
                name, _, endpoint = rest.rpartition("gpu-devbox/api/")
                key = (unquote(user), name.strip("/"))
                server = hub.servers.get(key)
                if server is None or server.stopped:
                    self.redirect("/hub/login")
                    return
                if server.behaviour == "slow" and hub._release is not None:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(hub._release.wait(), 30)
                if server.behaviour == "500":
                    raise web.HTTPError(500)
                if server.behaviour == "no-gpu-devbox":
                    raise web.HTTPError(404)
                if server.behaviour == "garbage":
                    self.finish("<html>not json</html>")
                    return
                if endpoint == "status":
                    self.finish(json.dumps(server.status(time.time())))
                elif endpoint == "gpus":
                    self.finish(server.gpu_list())
                else:
                    raise web.HTTPError(404)

        class Query(web.RequestHandler):
            """Prometheus' instant query, answering gpu-devbox's series of every server."""

            def post(self) -> None:
                hub.requests += 1
                query = self.get_body_argument("query", "")
                now = time.time()
                result = []
                for s in hub.servers.values():
                    if s.stopped or s.behaviour != "ok":
                        continue
                    labels = {"username": s.user, "servername": s.name}
                    if "avg_over_time" in query:  # the last hour's utilization
                        result.append({"metric": labels, "value": [now, str(s.utilization / 100)]})
                        continue
                    # what Prometheus answers gpu_devbox_query(): six parts per server
                    doc = s.status(now)
                    parts: list[tuple[dict[str, str], float]] = [
                        ({"gpu_devbox_part": "idle"}, doc["gpu_idle_seconds"]),
                        ({"gpu_devbox_part": "busy_at"}, doc["gpu_busy_at"]),
                        ({"gpu_devbox_part": "memory_held"}, 1),
                        ({"gpu_devbox_part": "utilization"}, s.utilization / 100),
                        ({"gpu_devbox_part": "memory_used"}, s.gpus * 2**30),
                        ({"gpu_devbox_part": "models", "model": "NVIDIA H100 80GB HBM3"}, s.gpus),
                    ]
                    result.extend(
                        {"metric": {**extra, **labels}, "value": [now, str(value)]}
                        for extra, value in parts
                    )
                self.finish(
                    {"status": "success", "data": {"resultType": "vector", "result": result}}
                )

        app = web.Application(
            [
                (r"/api/v1/query", Query),
                (r"/hub/api/users", Users),
                (r"/hub/api/users/([^/]+)/server", Stop),
                (r"/hub/api/users/([^/]+)/servers/([^/]+)", Stop),
                (r"/user/([^/]+)/(.*)", Api),
            ]
        )
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]

        class Counting(HTTPServer):
            def handle_stream(self, stream: Any, address: Any) -> None:
                hub.connections += 1
                super().handle_stream(stream, address)

        self._server = Counting(app)
        self._server.add_sockets([sock])
        return self

    def stop(self) -> None:
        if self._release is not None:
            self._release.set()
        if self._server is not None:
            self._server.stop()
