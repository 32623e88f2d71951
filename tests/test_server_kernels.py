"""``GET kernels`` and the owners in ``GET gpus`` on a real server with real kernels.

Here NVML's PIDs are this server's (same PID namespace, as on a workstation or with
``hostPID``): the fake NVML seam lists the PIDs of real ipykernel kernels, of a process one of
them starts, and of a process that is not the server's. The container case (own PID namespace)
is tests/test_pidns_server.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from tests.conftest import Fetch, fetch_json
from tests.fakenvml import FakeNVML
from tests.openapi import validate_response

API = ("gpu-devbox", "api")
GIB = 1024**3


async def start_session(jp_fetch: Fetch, path: str) -> dict[str, Any]:
    """A notebook session with a real ipykernel kernel, as JupyterLab opens one."""
    response = await jp_fetch(
        "api",
        "sessions",
        method="POST",
        body=json.dumps(
            {"path": path, "name": path, "type": "notebook", "kernel": {"name": "python3"}}
        ),
    )
    session: dict[str, Any] = json.loads(response.body)
    return session


def kernel_pid(serverapp: Any, kernel_id: str) -> int:
    pid = serverapp.kernel_manager.get_kernel(kernel_id).provisioner.pid
    assert isinstance(pid, int)
    return pid


async def run_in_kernel(serverapp: Any, kernel_id: str, code: str) -> str:
    """Run ``code`` in the kernel; its standard output."""
    client = serverapp.kernel_manager.get_kernel(kernel_id).client()
    client.start_channels()
    out: list[str] = []
    try:
        await client.wait_for_ready(timeout=60)
        reply = await client.execute_interactive(
            code,
            timeout=60,
            output_hook=lambda msg: out.append(msg["content"].get("text", "")),
        )
        assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        client.stop_channels()
    return "".join(out)


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def kernels_doc(jp_fetch: Fetch) -> dict[str, Any]:
    code, body = await fetch_json(jp_fetch, *API, "kernels")
    assert code == 200, body
    validate_response("/kernels", "get", 200, body)
    return body  # type: ignore[no-any-return]


@pytest.fixture
def stranger() -> Iterator[int]:
    """Another user's process outside the server's tree: on a shared machine, someone else's job.

    Started by a shell that exits at once, so it is reparented away from this process (which is
    the server here).
    """
    shell = subprocess.run(
        ["sh", "-c", "sleep 120 >/dev/null 2>&1 & echo $!"],
        user=65534,
        group=65534,
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(shell.stdout)
    yield pid
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


async def test_kernels_their_children_and_strangers_get_their_owners(
    jp_fetch: Fetch, jp_serverapp: Any, fake_nvml: FakeNVML, stranger: int
) -> None:
    train = await start_session(jp_fetch, "work/train.ipynb")
    other = await start_session(jp_fetch, "eval.ipynb")
    train_id, other_id = train["kernel"]["id"], other["kernel"]["id"]
    # the training kernel starts a subprocess (a training run, a DataLoader worker)
    child = int(
        await run_in_kernel(
            jp_serverapp,
            train_id,
            "import subprocess, sys\n"
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
            "print(p.pid)",
        )
    )
    train_pid = kernel_pid(jp_serverapp, train_id)
    fake_nvml.processes = {
        0: [(train_pid, 2 * GIB, 30), (child, 3 * GIB, 50), (stranger, 5 * GIB, 0)],
        1: [(kernel_pid(jp_serverapp, other_id), GIB, 0)],
    }

    async def attributed() -> bool:
        code, body = await fetch_json(jp_fetch, *API, "gpus")
        return (
            code == 200
            and all(p.get("owner") is not None for g in body["gpus"] for p in g["processes"] or [])
            and sum(len(g["processes"] or []) for g in body["gpus"]) == 4
        )

    await until(attributed)
    _, body = await fetch_json(jp_fetch, *API, "gpus")
    validate_response("/gpus", "get", 200, body)
    gpu0 = {p["pid"]: p for p in body["gpus"][0]["processes"]}
    kernel_owner = {
        "type": "kernel",
        "kernel_id": train_id,
        "kernel_name": "python3",
        "path": "work/train.ipynb",
        "execution_state": gpu0[train_pid]["owner"]["execution_state"],
    }
    assert gpu0[train_pid]["owner"] == kernel_owner
    assert gpu0[train_pid]["local_pid"] == train_pid  # same namespace: NVML's PID is ours
    assert gpu0[child]["owner"] == kernel_owner  # a kernel's child is the kernel's
    assert gpu0[stranger]["owner"] == {"type": "other"}  # not the server's: not named
    assert gpu0[stranger]["local_pid"] == stranger  # a PID of this namespace, all the same

    doc = await kernels_doc(jp_fetch)
    assert doc["attribution"]["method"] == "pids"
    kernels = {k["id"]: k for k in doc["kernels"]}
    [gpu] = kernels[train_id]["gpus"]
    assert (gpu["index"], gpu["memory"], gpu["shared_with"]) == (0, 5 * GIB, [])
    assert sorted(p["sm_utilization"] for p in gpu["processes"]) == [30, 50]
    assert kernels[train_id]["path"] == "work/train.ipynb"
    assert kernels[train_id]["gpu_since"] is not None
    [gpu] = kernels[other_id]["gpus"]
    assert (gpu["index"], gpu["memory"]) == (1, GIB)
    assert doc["gpus"][0]["others"] == 1
    assert doc["gpus"][0]["others_memory"] == 5 * GIB


async def test_a_kernel_shut_down_mid_sample_never_breaks_one(
    jp_fetch: Fetch, jp_serverapp: Any, fake_nvml: FakeNVML
) -> None:
    session = await start_session(jp_fetch, "gone.ipynb")
    kernel_id = session["kernel"]["id"]
    pid = kernel_pid(jp_serverapp, kernel_id)
    # NVML still lists the kernel's PID after it died (the driver frees memory a little later),
    # and a PID no process has
    fake_nvml.processes = {0: [(pid, GIB, 0), (4_000_000, GIB, 0)]}

    async def owned() -> bool:
        doc = await kernels_doc(jp_fetch)
        return any(k["gpus"] for k in doc["kernels"])

    await until(owned)
    await jp_fetch("api", "sessions", session["id"], method="DELETE")
    await until(lambda: _no_kernel(jp_fetch))

    async def settled() -> bool:
        code, body = await fetch_json(jp_fetch, *API, "gpus")
        owners = [p["owner"] for p in body["gpus"][0]["processes"]]
        return code == 200 and owners == [{"type": "other"}, {"type": "other"}]

    await until(settled)
    doc = await kernels_doc(jp_fetch)
    assert doc["kernels"] == []
    assert doc["gpus"][0]["others"] == 2


async def _no_kernel(jp_fetch: Fetch) -> bool:
    code, body = await fetch_json(jp_fetch, "api", "kernels")
    return code == 200 and body == []


async def test_a_terminal_owns_what_is_started_from_it(
    jp_fetch: Fetch, jp_serverapp: Any, fake_nvml: FakeNVML
) -> None:
    code, terminal = await fetch_json(jp_fetch, "api", "terminals", method="POST", body="{}")
    assert code == 200, terminal
    name = terminal["name"]
    manager = jp_serverapp.web_app.settings["terminal_manager"]
    shell = manager.get_terminal(name).ptyproc.pid
    fake_nvml.processes = {0: [(shell, GIB, 0)]}

    async def owned() -> bool:
        code, body = await fetch_json(jp_fetch, *API, "gpus")
        processes = body["gpus"][0]["processes"] or []
        return code == 200 and [p["owner"] for p in processes] == [
            {"type": "terminal", "name": name}
        ]

    await until(owned)
    doc = await kernels_doc(jp_fetch)
    [entry] = doc["terminals"]
    assert entry["name"] == name
    assert entry["gpus"][0]["memory"] == GIB
    await jp_fetch("api", "terminals", name, method="DELETE")


async def test_kernels_needs_authentication(jp_fetch: Fetch) -> None:
    code, body = await fetch_json(jp_fetch, *API, "kernels", headers={"Authorization": ""})
    assert code == 403
    validate_response("/kernels", "get", 403, body)
