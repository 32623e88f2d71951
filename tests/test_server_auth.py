"""Authentication and authorization on every route the extension registers."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from jupyter_server.auth.authorizer import Authorizer
from jupyter_server.base.handlers import APIHandler
from jupyter_server.serverapp import ServerApp
from tornado import web
from tornado.httpclient import HTTPClientError

from gpu_devbox.server.app import GPUDevbox
from gpu_devbox.server.base import AUTH_RESOURCE
from tests.conftest import Fetch, fetch_json

VERBS = ("get", "post", "put", "patch", "delete")
NO_AUTH = {"Authorization": ""}


def extension_routes(serverapp: ServerApp) -> list[tuple[str, type[web.RequestHandler]]]:
    """Every (url pattern, handler) the gpu-devbox extension registered."""
    point = serverapp.extension_manager.extension_points["gpu_devbox"]
    app = point.app
    assert isinstance(app, GPUDevbox)
    return [(route[0], route[1]) for route in app.handlers]


def concrete_url(pattern: str) -> list[str]:
    """Turn a route regex into URL parts, filling each group with a plausible value."""
    path = re.sub(r"\(\?P<\w+>[^)]*\)|\([^)]*\)", "00000000", pattern).rstrip("$")
    return [part for part in path.split("/") if part]


def verbs_of(handler: type[web.RequestHandler]) -> list[str]:
    """The HTTP verbs the handler implements itself."""
    return [
        verb for verb in VERBS if getattr(handler, verb) is not getattr(web.RequestHandler, verb)
    ]


async def test_every_route_refuses_unauthenticated_requests(
    jp_fetch: Fetch, jp_serverapp: ServerApp
) -> None:
    routes = extension_routes(jp_serverapp)
    assert len(routes) >= 5  # status, gpus, history, openapi, stream (and later features)
    checked = 0
    for pattern, handler in routes:
        for verb in verbs_of(handler):
            body = b"{}" if verb in ("post", "put", "patch") else None
            with pytest.raises(HTTPClientError) as caught:
                await jp_fetch(
                    *concrete_url(pattern),
                    method=verb.upper(),
                    body=body,
                    headers=dict(NO_AUTH),
                    allow_nonstandard_methods=True,
                )
            code = caught.value.code
            assert code == 403, f"{verb.upper()} {pattern} answered {code} without auth"
            if issubclass(handler, APIHandler):  # JSON APIs explain themselves in JSON
                response = caught.value.response
                assert response is not None
                assert "message" in json.loads(response.body)
            checked += 1
    assert checked >= len(routes)


async def test_the_websocket_refuses_unauthenticated_clients(jp_ws_fetch: Any) -> None:
    with pytest.raises(HTTPClientError) as caught:
        await jp_ws_fetch("gpu-devbox", "api", "stream", headers=dict(NO_AUTH))
    assert caught.value.code == 403


class DenyGpuDevbox(Authorizer):
    """Allows everything except the gpu-devbox resources."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return not resource.startswith(AUTH_RESOURCE)


class TestAuthorization:
    @pytest.fixture
    def jp_server_config(self, jp_server_config: dict[str, Any]) -> dict[str, Any]:
        jp_server_config["ServerApp"]["authorizer_class"] = DenyGpuDevbox
        return jp_server_config

    @pytest.mark.parametrize("route", ["status", "gpus", "gpus/history", "openapi.json"])
    async def test_an_unauthorized_user_is_refused(self, jp_fetch: Fetch, route: str) -> None:
        code, body = await fetch_json(jp_fetch, "gpu-devbox", "api", *route.split("/"))
        assert code == 403
        assert "message" in body

    async def test_an_unauthorized_user_cannot_stream(self, jp_ws_fetch: Any) -> None:
        with pytest.raises(HTTPClientError) as caught:
            await jp_ws_fetch("gpu-devbox", "api", "stream")
        assert caught.value.code == 403

    async def test_the_rest_of_the_server_is_unaffected(self, jp_fetch: Fetch) -> None:
        code, _ = await fetch_json(jp_fetch, "api", "status")
        assert code == 200
