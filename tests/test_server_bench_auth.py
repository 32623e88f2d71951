"""Benchmarks are authorized on their own resource, so an admin can refuse them while the GPU
metrics stay readable (the pattern of jupyter_server's examples/simple tests)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import Fetch, fetch_json
from tests.fakenvml import FakeNVML

API = ("gpu-devbox", "api", "benchmarks")


@pytest.fixture
def jp_server_auth_resources(jp_server_auth_core_resources: dict[str, str]) -> dict[str, str]:
    """Which resource each of gpu-devbox's URLs must be authorized on."""
    return {
        **jp_server_auth_core_resources,
        "/gpu-devbox/api/(status|gpus|gpus/history|openapi.json|stream)": "gpu-devbox",
        "/gpu-devbox/api/benchmarks(/[^/]+)?": "gpu-devbox-benchmarks",
    }


@pytest.fixture
def jp_server_config(
    fake_nvml: FakeNVML, gpu_devbox_config: dict[str, Any], jp_server_authorizer: Any
) -> dict[str, Any]:
    return {
        "ServerApp": {
            "jpserver_extensions": {"gpu_devbox": True},
            "allow_unauthenticated_access": False,
            "authorizer_class": jp_server_authorizer,
        },
        "GPUDevbox": gpu_devbox_config,
    }


@pytest.fixture
def permit(jp_server_authorizer: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    def set_permissions(resources: list[str]) -> None:
        permissions = {"actions": ["read", "write"], "resources": resources}
        monkeypatch.setattr(jp_server_authorizer, "permissions", permissions)

    return set_permissions


async def test_without_the_benchmark_resource_every_benchmark_route_is_403(
    jp_fetch: Fetch, permit: Any
) -> None:
    # Given a user allowed the metrics but not the benchmarks
    permit(["gpu-devbox"])
    code, _ = await fetch_json(jp_fetch, "gpu-devbox", "api", "gpus")
    assert code == 200
    # Then every benchmark route refuses
    for parts, method, body in [
        (API, "GET", None),
        (API, "POST", json.dumps({"sizes": {"matmul_n": 32}})),
        ((*API, "0123abcd"), "GET", None),
        ((*API, "0123abcd"), "DELETE", None),
    ]:
        code, _ = await fetch_json(jp_fetch, *parts, method=method, body=body)
        assert code == 403, (method, parts)


async def test_reading_benchmarks_does_not_allow_starting_one(
    jp_fetch: Fetch, jp_server_authorizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    permissions = {"actions": ["read"], "resources": ["gpu-devbox", "gpu-devbox-benchmarks"]}
    monkeypatch.setattr(jp_server_authorizer, "permissions", permissions)
    code, _ = await fetch_json(jp_fetch, *API)
    assert code == 200
    code, _ = await fetch_json(jp_fetch, *API, method="POST", body="{}")
    assert code == 403


async def test_with_the_benchmark_resource_a_run_starts(jp_fetch: Fetch, permit: Any) -> None:
    permit(["gpu-devbox", "gpu-devbox-benchmarks"])
    code, started = await fetch_json(
        jp_fetch, *API, method="POST", body=json.dumps({"devices": [0]})
    )
    assert code == 202
    code, run = await fetch_json(jp_fetch, *API, started["id"])
    assert code == 200
    assert run["id"] == started["id"]
