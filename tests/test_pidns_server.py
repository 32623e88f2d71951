"""A real jupyter-server with real kernels in its own PID namespace, as in a Kubernetes pod.

The server runs as PID 1 of a new PID namespace (``unshare``, see tests/pidns.py) with regular
files standing in for ``/dev/nvidia0`` and ``/dev/nvidia1``. Its kernels open them (as CUDA does)
and start children (a DataLoader-like worker, a ``subprocess`` run). The simulated backend's
processes file reports those processes with the PIDs *the host* sees (read by this test from the
host's ``/proc/<pid>/status`` ``NSpid``), exactly what NVML reports inside a container. Nothing
in the server is told the mapping: it must find the owners through the device files.
"""

from __future__ import annotations

import json
import os
import pathlib
import queue
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient

from tests import pidns
from tests.openapi import validate_response

pytestmark = pytest.mark.skipif(not pidns.AVAILABLE, reason=pidns.REASON)

GIB = 1024**3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """The server in its namespace, and the processes file its simulated GPUs read."""

    def __init__(self, tmp: pathlib.Path, process: subprocess.Popen[bytes], port: int) -> None:
        self.tmp = tmp
        self.process = process
        self.url = f"http://127.0.0.1:{port}/"
        self.token = secrets.token_hex(16)
        self.namespace = ""
        self.listed = tmp / "gpu-processes.json"

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - http://127.0.0.1 built here
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    def get(self, path: str) -> Any:
        code, body = self.request("GET", path)
        assert code == 200, (path, body)
        return body

    def host_pid(self, pid: int) -> int:
        found = pidns.host_pid(self.namespace, pid)
        assert found is not None, f"no host PID for {pid}"
        return found

    def list_processes(self, processes: list[dict[str, int]]) -> None:
        """What NVML reports: written atomically, read again by the simulated backend."""
        part = self.listed.with_suffix(".part")
        part.write_text(json.dumps(processes))
        part.replace(self.listed)

    def session(self, path: str) -> str:
        code, body = self.request(
            "POST",
            "api/sessions",
            {"path": path, "name": path, "type": "notebook", "kernel": {"name": "python3"}},
        )
        assert code == 201, body
        return str(body["kernel"]["id"])

    def run(self, kernel_id: str, code: str) -> str:
        """Run code in a kernel (through its connection file, from outside the namespace).

        The code given is idempotent; under a loaded machine a freshly started kernel has
        been seen to drop the first execution's IOPub output, so it is asked once more.
        """
        try:
            return self._run_once(kernel_id, code)
        except TimeoutError:
            return self._run_once(kernel_id, code)

    def _run_once(self, kernel_id: str, code: str) -> str:
        client = BlockingKernelClient()
        client.load_connection_file(str(self.tmp / "runtime" / f"kernel-{kernel_id}.json"))
        client.start_channels()
        out: list[str] = []
        try:
            # (not wait_for_ready: without a manager it judges by heartbeats, which may not
            # have started yet)
            deadline = time.monotonic() + 60
            while True:
                client.kernel_info()
                try:
                    if client.get_shell_msg(timeout=1)["msg_type"] == "kernel_info_reply":
                        # the reply came; so must its status on IOPub, or the subscription is
                        # not up yet and the execution's output would be missed: ask again
                        client.get_iopub_msg(timeout=0.5)
                        break
                except queue.Empty:
                    assert time.monotonic() < deadline, "the kernel never answered"
            reply = client.execute_interactive(
                code,
                timeout=45,
                output_hook=lambda msg: out.append(msg["content"].get("text", "")),
            )
        finally:
            client.stop_channels()
        assert reply["content"]["status"] == "ok", reply["content"]
        return "".join(out)


@pytest.fixture
def server(tmp_path: pathlib.Path) -> Iterator[Server]:
    port = free_port()
    (tmp_path / "root").mkdir()
    (tmp_path / "runtime").mkdir()
    config = tmp_path / "jupyter_server_config.json"
    (tmp_path / "gpu-processes.json").write_text("[]")  # no invented work: only what tests list
    process_holder: list[subprocess.Popen[bytes]] = []
    server = Server(tmp_path, None, port)  # type: ignore[arg-type]
    config.write_text(
        json.dumps(
            {
                "ServerApp": {
                    "jpserver_extensions": {
                        "gpu_devbox": True,
                        # only what the test needs: faster to start
                        "jupyterlab": False,
                        "jupyter_lsp": False,
                        "nbgitpuller": False,
                        "notebook_shim": False,
                    },
                    "allow_root": True,
                    "token": server.token,
                    "port": port,
                    "ip": "127.0.0.1",
                    "open_browser": False,
                    "root_dir": str(tmp_path / "root"),
                },
                "GPUDevbox": {
                    "backend": "simulated",
                    "simulated_gpus": 2,
                    "simulated_processes_file": str(server.listed),
                    "interval": 0.2,
                    "slow_interval": 0.4,
                },
            }
        )
    )
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp_path),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),
    }
    log = (tmp_path / "server.log").open("wb")
    process = pidns.start(
        [sys.executable, "-m", "jupyter", "server", f"--config={config}"],
        tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    process_holder.append(process)
    server.process = process
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if server.request("GET", "gpu-devbox/api/status")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()
            time.sleep(0.2)
        server.namespace = pidns.namespace_of(pidns.init_pid(process))
        yield server
    finally:
        pidns.stop(process)
        log.close()


def until(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


HOLD = (
    "import os, subprocess, sys\n"
    "gpu = open('/dev/nvidia{gpu}', 'rb')  # as CUDA does\n"
    "worker = subprocess.Popen([sys.executable, '-c', "
    '\'import time; f = open("/dev/nvidia{gpu}", "rb"); time.sleep(300)\'])\n'
    "print(os.getpid(), worker.pid)\n"
)


def test_kernels_in_their_own_pid_namespace_are_found_through_device_files(
    server: Server,
) -> None:
    train = server.session("work/train.ipynb")
    evaluate = server.session("eval.ipynb")
    kernel, worker = map(int, server.run(train, HOLD.format(gpu=0)).split())
    [other_kernel] = map(
        int,
        server.run(
            evaluate, "import os\ng = open('/dev/nvidia1', 'rb')\nprint(os.getpid())"
        ).split(),
    )
    assert kernel > 1  # PIDs of the namespace, which NVML never reports
    hosts = {pid: server.host_pid(pid) for pid in (kernel, worker, other_kernel)}
    assert all(hosts[pid] != pid for pid in hosts)
    server.list_processes(
        [
            {"gpu": 0, "pid": hosts[kernel], "used_memory": 2 * GIB, "local_pid": kernel},
            {"gpu": 0, "pid": hosts[worker], "used_memory": GIB, "local_pid": worker},
            {
                "gpu": 1,
                "pid": hosts[other_kernel],
                "used_memory": 3 * GIB,
                "local_pid": other_kernel,
            },
        ]
    )

    def attributed() -> bool:
        gpus = server.get("gpu-devbox/api/gpus")["gpus"]
        return sum(len(g["processes"] or []) for g in gpus) == 3 and all(
            p["owner"] is not None for g in gpus for p in g["processes"]
        )

    until(attributed, "the three processes' owners")
    gpus = server.get("gpu-devbox/api/gpus")
    validate_response("/gpus", "get", 200, gpus)
    owners = {p["pid"]: p["owner"] for g in gpus["gpus"] for p in g["processes"]}
    assert owners[hosts[kernel]]["kernel_id"] == train
    assert owners[hosts[kernel]]["path"] == "work/train.ipynb"
    assert owners[hosts[worker]]["kernel_id"] == train  # the kernel's worker is the kernel's
    assert owners[hosts[other_kernel]]["kernel_id"] == evaluate
    # the one process on GPU 1 and its one local holder: NVML's PID maps to the kernel's
    local = {p["pid"]: p["local_pid"] for g in gpus["gpus"] for p in g["processes"]}
    assert local[hosts[other_kernel]] == other_kernel

    document = server.get("gpu-devbox/api/kernels")
    validate_response("/kernels", "get", 200, document)
    assert document["attribution"]["method"] == "device_files"
    kernels = {k["id"]: k for k in document["kernels"]}
    [gpu] = kernels[train]["gpus"]
    assert (gpu["index"], gpu["memory"], gpu["shared_with"]) == (0, 3 * GIB, [])
    [gpu] = kernels[evaluate]["gpus"]
    assert (gpu["index"], gpu["memory"]) == (1, 3 * GIB)


def test_two_kernels_on_one_gpu_share_memory_honestly_and_strangers_are_counted(
    server: Server,
) -> None:
    first = server.session("a.ipynb")
    second = server.session("b.ipynb")
    one = int(server.run(first, "import os\ng = open('/dev/nvidia1', 'rb')\nprint(os.getpid())"))
    two = int(server.run(second, "import os\ng = open('/dev/nvidia1', 'rb')\nprint(os.getpid())"))
    # both kernels hold GPU 1's device file; NVML lists two processes there with different
    # memory: which is which cannot be told from inside the container
    server.list_processes(
        [
            {"gpu": 1, "pid": server.host_pid(one), "used_memory": GIB, "local_pid": one},
            {"gpu": 1, "pid": server.host_pid(two), "used_memory": 3 * GIB, "local_pid": two},
        ]
    )

    def listed() -> bool:
        document = server.get("gpu-devbox/api/kernels")
        return all(k["gpus"] for k in document["kernels"])

    until(listed, "both kernels on GPU 1")
    document = server.get("gpu-devbox/api/kernels")
    validate_response("/kernels", "get", 200, document)
    kernels = {k["id"]: k for k in document["kernels"]}
    for mine, theirs in ((first, second), (second, first)):
        [gpu] = kernels[mine]["gpus"]
        assert gpu["memory"] is None  # never a guess
        assert gpu["shared_memory"] == 4 * GIB  # "shared by 2 kernels: 4 GiB together"
        assert [o["kernel_id"] for o in gpu["shared_with"]] == [theirs]
    gpus = server.get("gpu-devbox/api/gpus")["gpus"]
    assert [p["owner"] for p in gpus[1]["processes"]] == [None, None]  # not certain: no owner

    # another pod's process appears on GPU 0, which none of ours holds: counted, not named
    # (local_pid 1, the server, only keeps the simulated entry alive; the server is not told)
    stranger = subprocess.Popen(["sleep", "120"])  # a host process, outside the namespace
    try:
        server.list_processes(
            [{"gpu": 0, "pid": stranger.pid, "used_memory": 5 * GIB, "local_pid": 1}]
        )

        def counted() -> bool:
            totals = server.get("gpu-devbox/api/kernels")["gpus"]
            return bool(totals[0]["others"] == 1)

        until(counted, "the other pod's process")
        document = server.get("gpu-devbox/api/kernels")
        assert document["gpus"][0]["others_memory"] == 5 * GIB
        assert all(not k["gpus"] for k in document["kernels"])
        [process] = server.get("gpu-devbox/api/gpus")["gpus"][0]["processes"]
        assert process["owner"] == {"type": "other"}
        assert process["local_pid"] is None
    finally:
        stranger.kill()
        stranger.wait()


def test_a_kernel_that_dies_while_nvml_still_lists_it_never_breaks_a_sample(
    server: Server,
) -> None:
    kernel_id = server.session("dies.ipynb")
    pid = int(
        server.run(kernel_id, "import os\ng = open('/dev/nvidia0', 'rb')\nprint(os.getpid())")
    )
    host = server.host_pid(pid)
    # local_pid 1 (the server, always alive) keeps the entry listed after the kernel is gone,
    # as NVML lists a process for a moment after it exits
    server.list_processes([{"gpu": 0, "pid": host, "used_memory": GIB, "local_pid": 1}])
    until(
        lambda: bool(server.get("gpu-devbox/api/kernels")["kernels"][0]["gpus"]),
        "the kernel on GPU 0",
    )
    code, _ = server.request("DELETE", f"api/kernels/{kernel_id}")
    assert code == 204
    until(lambda: server.get("api/kernels") == [], "the kernel to go")

    def settled() -> bool:
        [process] = server.get("gpu-devbox/api/gpus")["gpus"][0]["processes"]
        return process["owner"] in ({"type": "other"}, None)

    until(settled, "the dead kernel's process to lose its owner")
    document = server.get("gpu-devbox/api/kernels")
    validate_response("/kernels", "get", 200, document)
    assert document["kernels"] == []
    assert server.get("gpu-devbox/api/status")["nvml"]["available"] is True
