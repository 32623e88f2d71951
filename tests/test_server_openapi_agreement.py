"""openapi.json and the server agree (issue 10, item 16), case by case.

The schema-driven fuzzer (test_openapi_fuzz.py) explores; these pin down each disagreement the
issue found: the undocumented maximum of ``since``, empty ``limit=``/``refresh=`` accepted, the
stream's HTML 400 and 405 answers without ``Allow``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from gpu_devbox.bench.devices import MAX_DEVICES
from gpu_devbox.server.gpus_handlers import MAX_SINCE, load_openapi
from gpu_devbox.server.limits import (
    MAX_BODY_BYTES,
    MAX_JSON_DEPTH,
    MAX_JSON_ITEMS,
    MAX_QUERY_VALUE,
)
from tests.conftest import Fetch, fetch_json
from tests.openapi import validate_response

API = ("gpu-devbox", "api")
DOCUMENT = load_openapi()


def parameter(path: str, name: str) -> dict[str, Any]:
    [found] = [p for p in DOCUMENT["paths"][path]["get"]["parameters"] if p["name"] == name]
    return found


async def test_the_documented_maximum_of_since_is_the_servers(jp_fetch: Fetch) -> None:
    documented = parameter("/gpus/history", "since")["schema"]["maximum"]
    assert documented == MAX_SINCE
    code, _ = await fetch_json(jp_fetch, *API, "gpus", "history", params={"since": f"{MAX_SINCE}"})
    assert code == 200
    code, body = await fetch_json(
        jp_fetch, *API, "gpus", "history", params={"since": f"{MAX_SINCE * 1.000001}"}
    )
    assert code == 400
    assert "since must be at most 1e+10" in body["message"]


@pytest.mark.parametrize(
    ("route", "name"),
    [("benchmarks", "limit"), ("checks", "refresh"), ("gpus/history", "since")],
)
async def test_an_empty_query_parameter_is_a_400_naming_it(
    jp_fetch: Fetch, route: str, name: str
) -> None:
    code, body = await fetch_json(jp_fetch, *API, *route.split("/"), params={name: ""})
    assert code == 400
    validate_response(f"/{route}", "get", 400, body)
    assert body["message"].startswith(f"{name} must be")


async def test_refresh_takes_exactly_the_documented_words(jp_fetch: Fetch) -> None:
    words = parameter("/checks", "refresh")["schema"]["enum"]
    code, _ = await fetch_json(jp_fetch, *API, "checks", params={"refresh": "TRUE"})
    assert code == 400
    assert "TRUE" not in words


@pytest.mark.parametrize(
    ("params", "headers", "words"),
    [
        ({}, {}, "websocket"),  # a plain GET, as a browser or curl sends it
        ({"interval": ""}, {}, "interval must be a number"),
        ({"interval": "0"}, {}, "positive"),
        ({}, {"Upgrade": "websocket", "Connection": "close"}, "Connection: Upgrade"),
    ],
)
async def test_the_streams_refusals_are_json(
    jp_fetch: Fetch, params: dict[str, str], headers: dict[str, str], words: str
) -> None:
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch(*API, "stream", params=params, headers=headers)
    response = caught.value.response
    assert response is not None
    assert caught.value.code == 400
    assert response.headers["Content-Type"].startswith("application/json")
    body = json.loads(response.body)
    validate_response("/stream", "get", 400, body)
    assert words in body["message"]


ROUTES = {
    "/status": ("status",),
    "/gpus": ("gpus",),
    "/gpus/history": ("gpus", "history"),
    "/openapi.json": ("openapi.json",),
    "/benchmarks": ("benchmarks",),
    "/benchmarks/{id}": ("benchmarks", "0123abcd"),
    "/checks": ("checks",),
    "/kernels": ("kernels",),
    "/stream": ("stream",),
    "/keep-running": ("keep-running",),
    "/simulated/load": ("simulated", "load"),
}
#: Routes only a server on the simulated backend has (the others answer them with 404).
SIMULATED_ONLY = {"/simulated/load"}


def documented_methods(path: str) -> set[str]:
    return {m.upper() for m in DOCUMENT["paths"][path] if m != "parameters"}


UNDOCUMENTED = [
    (path, method)
    for path in ROUTES
    for method in ("GET", "PUT", "PATCH", "DELETE", "POST", "TRACE")
    if method not in documented_methods(path)
]


def test_every_documented_path_is_probed() -> None:
    assert set(ROUTES) == set(DOCUMENT["paths"])


def on(simulated: bool) -> list[Any]:
    return [
        pytest.param(path, method, id=f"{method} {path}")
        for path, method in UNDOCUMENTED
        if (path in SIMULATED_ONLY) == simulated
    ]


@pytest.mark.parametrize(("path", "method"), on(simulated=False))
async def test_an_undocumented_method_is_a_405_naming_the_allowed_ones(
    jp_fetch: Fetch, path: str, method: str
) -> None:
    await check_405(jp_fetch, path, method)


class TestOnTheSimulatedBackend:
    @pytest.fixture
    def gpu_devbox_config(self) -> dict[str, Any]:
        return {"interval": 0.1, "backend": "simulated"}

    @pytest.mark.parametrize(("path", "method"), on(simulated=True))
    async def test_an_undocumented_method_is_a_405_naming_the_allowed_ones(
        self, jp_fetch: Fetch, path: str, method: str
    ) -> None:
        await check_405(jp_fetch, path, method)


async def check_405(jp_fetch: Fetch, path: str, method: str) -> None:
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch(
            *API,
            *ROUTES[path],
            method=method,
            body=b"{}" if method in ("PUT", "PATCH", "POST") else None,
            allow_nonstandard_methods=True,
        )
    assert caught.value.code == 405
    response = caught.value.response
    assert response is not None
    assert response.headers["Content-Type"].startswith("application/json")
    allowed = {m.strip() for m in response.headers["Allow"].split(",")}
    assert allowed - {"HEAD", "OPTIONS"} == documented_methods(path)


def test_the_documented_request_limits_are_the_servers() -> None:
    request = DOCUMENT["components"]["schemas"]["BenchmarkRequest"]["properties"]
    assert request["devices"]["maxItems"] == MAX_DEVICES
    assert "413" in DOCUMENT["paths"]["/benchmarks"]["post"]["responses"]
    description = DOCUMENT["info"]["description"]
    assert f"over {MAX_BODY_BYTES} bytes" in description
    assert f"more than {MAX_JSON_DEPTH} levels" in description
    assert f"more than {MAX_JSON_ITEMS} entries" in description
    assert f"longer than {MAX_QUERY_VALUE} characters" in description


@pytest.mark.parametrize("path", ["nope", "gpus/0", "status/x", "benchmarks/a/b"])
async def test_an_unknown_api_path_is_a_json_404_pointing_at_the_document(
    jp_fetch: Fetch, path: str
) -> None:
    code, body = await fetch_json(jp_fetch, *API, *path.split("/"))
    assert code == 404
    assert "no gpu-devbox API route" in body["message"]
    assert "/gpu-devbox/api/openapi.json" in body["message"]
