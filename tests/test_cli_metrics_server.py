"""``gpu-devbox metrics --server URL --token TOKEN``: a real subprocess reading a real server."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
from typing import Any

import pytest

from tests.conftest import Fetch
from tests.fakenvml import FakeNVML
from tests.test_server_kernels import kernel_pid, start_session, until

EXE = shutil.which("gpu-devbox") or ""
GIB = 1024**3


async def cli(*args: str, token_env: str | None = None) -> tuple[int, str, str]:
    """Run the command without blocking the loop the test server runs on."""
    env = {k: v for k, v in os.environ.items() if k != "JUPYTER_TOKEN"}
    if token_env is not None:
        env["JUPYTER_TOKEN"] = token_env
    process = await asyncio.create_subprocess_exec(
        EXE,
        "metrics",
        *args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def url_and_token(serverapp: Any) -> tuple[str, str]:
    """(jp_fetch must be requested too: it is what makes the test server listen)"""
    return serverapp.connection_url, serverapp.identity_provider.token


async def test_the_table_names_the_notebook_holding_each_gpu_process(
    jp_fetch: Fetch, jp_serverapp: Any, fake_nvml: FakeNVML
) -> None:
    session = await start_session(jp_fetch, "work/train.ipynb")
    pid = kernel_pid(jp_serverapp, session["kernel"]["id"])
    fake_nvml.processes = {0: [(pid, 2 * GIB, 0)]}
    url, token = url_and_token(jp_serverapp)

    async def owned() -> bool:
        code, out, _ = await cli("--server", url, "--token", token, "--json")
        if code != 0:
            return False
        # the first samples may predate the process: wait until it is seen and owned
        processes = json.loads(out)["gpus"][0]["processes"]
        return bool(processes) and processes[0]["owner"] is not None

    await until(owned)
    code, out, err = await cli("--server", url, "--token", token)
    assert (code, err) == (0, "")
    [line] = [line for line in out.splitlines() if f"pid {pid}" in line]
    # the state is the kernel's (starting until a client connects, then idle)
    assert re.fullmatch(
        rf"GPU 0 pid {pid}: 2\.0 GiB · work/train\.ipynb \(python3, (starting|idle|busy)\)",
        line.strip(),
    ), line
    # the token may come from the environment, as in a server's terminal
    code, out, _ = await cli("--server", url, "--json", token_env=token)
    assert code == 0
    document = json.loads(out)
    assert document["status"]["nvml"]["available"] is True
    assert document["gpus"][0]["processes"][0]["owner"]["path"] == "work/train.ipynb"


async def test_a_wrong_token_is_exit_2_with_one_line(jp_fetch: Fetch, jp_serverapp: Any) -> None:
    url, _ = url_and_token(jp_serverapp)
    code, out, err = await cli("--server", url, "--token", "wrong")
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert "refused the token (HTTP 403)" in err


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--server", "localhost:8888"], "--server must be the server's http(s) URL"),
        (["--server", "http://127.0.0.1:notaport/"], "has an invalid port"),
        (["--server", f"http://127.0.0.1:{closed_port()}/", "--token", "x"], "cannot reach"),
        (["--token", "abc"], "--token goes with --server"),
    ],
)
async def test_bad_server_options_are_exit_2_with_one_line(args: list[str], words: str) -> None:
    code, out, err = await cli(*args)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert err.startswith("gpu-devbox metrics: error: ")
    assert words in err


async def test_a_server_without_gpu_devbox_is_named(jp_fetch: Fetch, jp_serverapp: Any) -> None:
    url, token = url_and_token(jp_serverapp)
    code, _, err = await cli("--server", url + "nothing-here/", "--token", token)
    assert code == 2
    assert "no gpu-devbox API (HTTP 404)" in err
