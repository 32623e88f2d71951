"""Schema-driven fuzzing (issue 10, item 16): the server and openapi.json agree on every route.

Schemathesis generates requests from the shipped OpenAPI document (valid ones, invalid ones and
methods the document does not list) and sends them to a real ``jupyter server`` process running
gpu-devbox on the simulated backend. Every response must be documented (status code, content type,
schema), no request may get a server error, invalid input must be refused and an undocumented
method must get a 405 with an ``Allow`` header.

The run is reproducible and bounded: derandomized generation, no example database, a fixed number
of examples per operation, a per-example deadline and a time limit for each operation.

``positive_data_acceptance`` (a request the document allows gets a 2xx) is checked on the routes
whose answer depends on the request alone. It is not on the others: a benchmark request can match
the schema and still be refused for what the server holds at the moment (a GPU index that does not
exist, simulated GPUs, a run in progress: 400 and 409, both documented), a random run id is a 404,
the stream answers a plain HTTP request (no websocket handshake) with 400, "Keep running" is
refused (409) once its presses are used, and a simulated load may name a GPU the server does not
simulate or more memory than it has (400).
"""

from __future__ import annotations

import os
import pathlib
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import positive_data_acceptance

from gpu_devbox.server.gpus_handlers import load_openapi

pytestmark = pytest.mark.slow

#: Examples per operation and phase: enough to reach every parameter and body field.
EXAMPLES = 40
#: Operations whose valid requests may be refused for the server's state (see above).
STATEFUL = {
    "POST /benchmarks",
    "GET /benchmarks/{id}",
    "DELETE /benchmarks/{id}",
    "GET /stream",
    # "Keep running" is allowed a few times, then 409; a valid load may name a GPU or more
    # memory than this server simulates (400)
    "POST /keep-running",
    "PUT /simulated/load",
}

CONFIG = SchemathesisConfig.from_dict(
    {"generation": {"max-examples": EXAMPLES, "deterministic": True, "database": "none"}}
)
schema = schemathesis.openapi.from_dict(load_openapi(), config=CONFIG)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A real ``jupyter server`` with gpu-devbox (simulated GPUs): (API base URL, token)."""
    home = tmp_path_factory.mktemp("fuzz")
    port, token = free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GPU_DEVBOX_", "JUPYTER"))}
    env.update(
        {
            "HOME": str(home),
            "JUPYTER_CONFIG_DIR": str(home / "config"),
            "JUPYTER_DATA_DIR": str(home / "data"),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
            "GPU_DEVBOX_BACKEND": "simulated",
            # an idle policy, so that `cull` and "Keep running" answer with documents too
            "GPU_DEVBOX_CULL_GPU_IDLE_AFTER": "3600",
            "GPU_DEVBOX_CULL_WARN_BEFORE": "600",
            "GPU_DEVBOX_CULL_KEEP_RUNNING": "3",
        }
    )
    log = (home / "server.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "server",
            "--no-browser",
            "--allow-root",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={home}",
            "--GPUDevbox.interval=0.5",
            # A run started by a valid POST is cancelled by the test at once; this bounds the
            # CPU one can take if a cancel is missed.
            "--GPUDevbox.benchmark_timeouts=quick=20",
            "--GPUDevbox.benchmark_timeouts=full=20",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status = f"{base}/gpu-devbox/api/status"
                request = urllib.request.Request(  # noqa: S310 - a local http URL
                    status, headers={"Authorization": f"token {token}"}
                )
                urllib.request.urlopen(request, timeout=5).close()  # noqa: S310 - the same
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, (home / "server.log").read_text()
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        yield f"{base}/gpu-devbox/api", token
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
        server_log = pathlib.Path(home / "server.log").read_text()
        assert "Traceback" not in server_log, server_log[-4000:]


@schema.parametrize()
@settings(
    deadline=timedelta(seconds=10),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@pytest.mark.timeout(240)
def test_the_server_answers_as_its_openapi_document_says(case: Any, api: tuple[str, str]) -> None:
    base_url, token = api
    headers = {"Authorization": f"token {token}"}
    stateful = f"{case.method.upper()} {case.path}" in STATEFUL
    response = case.call_and_validate(
        base_url=base_url,
        headers=headers,
        excluded_checks=[positive_data_acceptance] if stateful else [],
        timeout=30,
    )
    if case.method.upper() == "POST" and response.status_code == 202:
        # A run really started: stop it so the fuzzing measures the API, not the CPU.
        cancel = case.operation.schema["/benchmarks/{id}"]["DELETE"]
        run_id = response.json()["id"]
        cancelled = cancel.Case(path_parameters={"id": run_id}).call(
            base_url=base_url, headers=headers, timeout=30
        )
        assert cancelled.status_code in (200, 409), cancelled.text
