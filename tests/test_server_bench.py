"""The benchmark routes on a real jupyter server without a GPU driver: the CPU benchmark runs in
a real worker process (NumPy, tiny sizes), and every answer is checked against the OpenAPI
document."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import sys
import time
from typing import Any

import pynvml  # noqa: TID251 - only for the error code the fake driver raises
import pytest

from tests.conftest import Fetch, fetch_json
from tests.fakenvml import FakeNVML
from tests.openapi import validate_component, validate_response

TINY = {"matmul_n": 32, "copy_bytes": 64 * 1024}
#: Big enough on a 2-core CPU that the run is still going when the test acts on it.
SLOW = {"suite": "full", "sizes": {"matmul_n": 2048}}
API = ("gpu-devbox", "api", "benchmarks")


@pytest.fixture
def fake_nvml(monkeypatch: pytest.MonkeyPatch) -> FakeNVML:
    """A machine without an NVIDIA driver: nvmlInit finds no library."""
    fake = FakeNVML([])
    fake.init_error = pynvml.NVML_ERROR_LIBRARY_NOT_FOUND
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    return fake


async def post(jp_fetch: Fetch, body: Any) -> tuple[int, Any]:
    raw = body if isinstance(body, str) else json.dumps(body)
    return await fetch_json(jp_fetch, *API, method="POST", body=raw)


async def wait_until(jp_fetch: Fetch, run_id: str, done: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        code, run = await fetch_json(jp_fetch, *API, run_id)
        assert code == 200
        if done(run):
            return run
        assert time.monotonic() < deadline, f"run never got there: {run}"
        await asyncio.sleep(0.05)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_post_starts_a_cpu_run_that_get_follows_to_the_end(
    jp_fetch: Fetch, jp_data_dir: pathlib.Path
) -> None:
    # When
    response = await jp_fetch(*API, method="POST", body=json.dumps({"sizes": TINY}))
    started = json.loads(response.body)
    # Then
    assert response.code == 202
    validate_response("/benchmarks", "post", 202, started)
    assert response.headers["Location"].endswith(f"/gpu-devbox/api/benchmarks/{started['id']}")
    assert started["state"] == "running"
    assert started["request"] == {"suite": "quick", "devices": [], "sizes": TINY, "backend": "auto"}
    run = await wait_until(jp_fetch, started["id"], lambda r: r["state"] != "running")
    assert run["state"] == "succeeded", run["error"]
    validate_response("/benchmarks/{id}", "get", 200, run)
    assert run["environment"]["backend"] == "numpy"
    [device] = run["devices"]
    assert [m["id"] for m in device["measurements"]] == [
        "matmul_fp32",
        "matmul_fp64",
        "memory_copy",
    ]
    assert all(m["value"] > 0 and m["peak"] is None for m in device["measurements"])
    # The history lists it, and it is in the user's Jupyter data directory.
    code, listing = await fetch_json(jp_fetch, *API, params={"limit": "5"})
    assert code == 200
    validate_response("/benchmarks", "get", 200, listing)
    assert listing["running"] is None
    assert listing["enabled"] is True
    assert set(listing["suites"]) == {"quick", "full"}
    assert [r["id"] for r in listing["runs"]] == [run["id"]]
    lines = (jp_data_dir / "gpu_devbox" / "benchmarks.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["id"] == run["id"]


async def test_the_history_is_the_users_shared_by_her_servers_and_the_cli(
    jp_fetch: Fetch, jp_data_dir: pathlib.Path
) -> None:
    """The panel's History is the user's: runs of ``gpu-devbox bench`` and of the server alike."""
    env = {
        **os.environ,
        "JUPYTER_DATA_DIR": str(jp_data_dir),  # the user's data directory, as the server's
        "GPU_DEVBOX_BACKEND": "simulated",
        "GPU_DEVBOX_SIMULATED_GPUS": "0",
    }
    cli = [sys.executable, "-m", "gpu_devbox", "bench", "--json", "--matmul-n", "32"]
    done = await asyncio.create_subprocess_exec(
        *cli, "--copy-bytes", "65536", env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(done.communicate(), 120)
    assert done.returncode == 0
    from_cli = json.loads(out)
    response = await jp_fetch(*API, method="POST", body=json.dumps({"sizes": TINY}))
    here = await wait_until(
        jp_fetch, json.loads(response.body)["id"], lambda r: r["state"] != "running"
    )
    code, listing = await fetch_json(jp_fetch, *API)
    assert code == 200
    assert [r["id"] for r in listing["runs"]] == [here["id"], from_cli["id"]]
    code, found = await fetch_json(jp_fetch, *API, from_cli["id"])
    assert (code, found["id"], found["state"]) == (200, from_cli["id"], "succeeded")
    assert found["environment"]["host"] == from_cli["environment"]["host"]
    # and the docs say so, where the panel's History is explained
    docs = pathlib.Path(__file__).resolve().parents[1] / "docs"
    panel = (docs / "lab-extension.md").read_text()
    history = panel[panel.index("**History**") :].split("\n\n")[0]
    assert "on this server" not in history
    assert "Jupyter data directory" in history
    assert "gpu-devbox bench" in history


async def test_a_second_post_while_one_runs_gets_409_with_the_running_id(
    jp_fetch: Fetch,
) -> None:
    code, first = await post(jp_fetch, SLOW)
    assert code == 202
    # When
    code, busy = await post(jp_fetch, {"sizes": TINY})
    # Then
    assert code == 409
    validate_response("/benchmarks", "post", 409, busy)
    assert busy["running_id"] == first["id"]
    code, listing = await fetch_json(jp_fetch, *API)
    assert listing["running"]["id"] == first["id"]
    code, _ = await fetch_json(jp_fetch, *API, first["id"], method="DELETE")
    assert code == 200


async def test_delete_cancels_and_the_worker_is_gone_within_2_s(jp_fetch: Fetch) -> None:
    code, started = await post(jp_fetch, SLOW)
    assert code == 202
    pid = started["environment"]["worker_pid"]
    await wait_until(jp_fetch, started["id"], lambda r: r["progress"]["step"] is not None)
    # When
    t0 = time.monotonic()
    code, run = await fetch_json(jp_fetch, *API, started["id"], method="DELETE")
    elapsed = time.monotonic() - t0
    # Then
    assert code == 200
    validate_response("/benchmarks/{id}", "delete", 200, run)
    assert run["state"] == "cancelled"
    assert elapsed < 2.0
    assert gone(pid)
    code, again = await fetch_json(jp_fetch, *API, started["id"], method="DELETE")
    assert code == 409
    validate_response("/benchmarks/{id}", "delete", 409, again)
    assert "already finished (cancelled)" in again["message"]


async def test_unknown_ids_are_404(jp_fetch: Fetch) -> None:
    for method in ("GET", "DELETE"):
        code, body = await fetch_json(jp_fetch, *API, "0123abcd", method=method)
        assert code == 404
        validate_response("/benchmarks/{id}", method.lower(), 404, body)
        assert "no benchmark run with id '0123abcd'" in body["message"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ({"suite": "slow"}, "unknown suite 'slow'; choose one of: quick, full"),
        ({"suite": 3}, "unknown suite 3"),
        ({"colour": "red"}, "unknown field(s) ['colour']"),
        ({"devices": 0}, "devices must be a list"),
        ({"devices": [True]}, "GPU indices (integers >= 0), not True"),
        ({"devices": [0]}, "no visible GPU has index 0 (visible: none)"),
        ({"sizes": [64]}, "sizes must be an object"),
        ({"sizes": {"matmul_n": 10**9}}, "sizes.matmul_n=1000000000 is outside the allowed range"),
        ({"sizes": {"matmul_n": "64"}}, "sizes.matmul_n must be an integer"),
        ({"sizes": {"threads": 4}}, "unknown size 'threads'"),
        ({"sizes": {"copy_bytes": 1 << 40}}, "needs 2048.00 GiB of host memory"),
    ],
)
async def test_bad_requests_are_400_with_a_message(jp_fetch: Fetch, body: Any, words: str) -> None:
    code, answer = await post(jp_fetch, body)
    assert code == 400
    validate_response("/benchmarks", "post", 400, answer)
    assert words in answer["message"]
    code, listing = await fetch_json(jp_fetch, *API)
    assert listing["running"] is None


@pytest.mark.parametrize("limit", ["0", "abc", "1.5", "100000"])
async def test_a_bad_limit_is_400(jp_fetch: Fetch, limit: str) -> None:
    code, answer = await fetch_json(jp_fetch, *API, params={"limit": limit})
    assert code == 400
    assert "limit" in answer["message"]


async def test_every_route_refuses_unauthenticated_requests(jp_fetch: Fetch) -> None:
    no_auth = {"Authorization": ""}
    for parts, method, body in [
        (API, "GET", None),
        (API, "POST", "{}"),
        ((*API, "0123abcd"), "GET", None),
        ((*API, "0123abcd"), "DELETE", None),
    ]:
        code, _ = await fetch_json(jp_fetch, *parts, method=method, body=body, headers=no_auth)
        assert code == 403, (method, parts)
    code, listing = await fetch_json(jp_fetch, *API)
    assert listing["running"] is None


@pytest.mark.parametrize("gpu_devbox_config", [{"interval": 0.1, "benchmarks_enabled": False}])
async def test_an_admin_can_disable_benchmarks(jp_fetch: Fetch) -> None:
    code, answer = await post(jp_fetch, {"sizes": TINY})
    assert code == 403
    assert "benchmarks are disabled" in answer["message"]
    code, listing = await fetch_json(jp_fetch, *API)
    assert code == 200
    assert listing["enabled"] is False


async def test_a_cookie_authenticated_post_needs_the_xsrf_token(jp_fetch: Fetch) -> None:
    # Given a browser-like session: the login cookie a token request set, the _xsrf cookie
    # (double-submit: any value works as long as the header repeats it), and no token.
    response = await jp_fetch(*API)
    login = next(c.split(";")[0] for c in response.headers.get_list("Set-Cookie"))
    assert login.startswith("username-")
    token = "gpu-devbox-test-xsrf"
    browser = {"Authorization": "", "Cookie": f"{login}; _xsrf={token}"}
    body = json.dumps({"sizes": TINY})
    # The login cookie alone authenticates a read.
    code, _ = await fetch_json(jp_fetch, *API, headers=browser)
    assert code == 200
    # When the POST carries the cookies but not the token
    code, refused = await fetch_json(jp_fetch, *API, method="POST", body=body, headers=browser)
    # Then it is refused, and so is a DELETE
    assert code == 403
    assert "_xsrf" in refused["message"]
    code, _ = await fetch_json(jp_fetch, *API, "0123abcd", method="DELETE", headers=browser)
    assert code == 403
    # And with the token echoed in the header it goes through.
    code, started = await fetch_json(
        jp_fetch, *API, method="POST", body=body, headers={**browser, "X-XSRFToken": token}
    )
    assert code == 202
    await wait_until(jp_fetch, started["id"], lambda r: r["state"] != "running")


async def test_the_stream_carries_every_step_of_a_run(jp_fetch: Fetch, jp_ws_fetch: Any) -> None:
    ws = await jp_ws_fetch("gpu-devbox", "api", "stream")
    try:
        code, started = await post(jp_fetch, {"sizes": TINY})
        assert code == 202
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + 60
        while not events or events[-1]["event"] != "finished":
            message = await asyncio.wait_for(ws.read_message(), deadline - time.monotonic())
            assert message is not None, "the stream closed"
            decoded = json.loads(message)
            validate_component("StreamMessage", decoded)
            if decoded["type"] == "benchmark":
                validate_component("BenchmarkEvent", decoded["data"])
                events.append(decoded["data"])
    finally:
        ws.close()
    kinds = [e["event"] for e in events]
    assert kinds[0] == "started"
    assert kinds.count("step") == 3
    assert kinds.count("measurement") == 3
    assert {e["id"] for e in events} == {started["id"]}
    finished = events[-1]
    assert finished["state"] == "succeeded"
    assert finished["run"]["progress"]["fraction"] == 1.0
    measured = [e["measurement"]["id"] for e in events if e["event"] == "measurement"]
    assert measured == ["matmul_fp32", "matmul_fp64", "memory_copy"]
