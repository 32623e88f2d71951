"""On a machine with an NVIDIA GPU: does gpu-devbox name the kernel that holds GPU memory?

Starts a real ``jupyter server`` with gpu-devbox on the real NVML backend, opens a notebook
session (a real ipykernel kernel), makes the kernel allocate 2 GiB on GPU 0 with torch, then
compares ``GET gpus`` and ``GET kernels`` with ``nvidia-smi --query-compute-apps``:

* nvidia-smi lists a process on GPU 0 holding at least 2 GiB, and so does ``GET gpus``, with the
  same PID (NVML's) and memory within ±64 MiB;
* that process's ``owner`` is the kernel (its id and notebook path), and where the server shares
  the host's PID namespace its ``local_pid`` is the PID the kernel itself reports;
* ``GET kernels`` gives the kernel GPU 0 with ``memory`` equal to its processes' memory (or, in a
  container whose device files other kernels hold too, ``shared_with`` and ``shared_memory``);
* after the session is shut down through jupyter-server's API, the process leaves both lists.

In a container nvidia-smi may list no processes at all (it cannot see the host's PIDs): the
script then says so and compares with NVML's list through ``GET gpus`` alone.

    python gpu-tests/attribution_vs_nvidia_smi.py [--gib 2] [--device 0]

Requires jupyter_server, ipykernel, torch with CUDA and gpu-devbox importable, and nvidia-smi.
Prints one line per check and exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import queue
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from typing import Any

MIB = 2**20
#: How far NVML's and nvidia-smi's memory of one process may differ (read moments apart).
TOLERANCE_MIB = 64
ALLOCATE = """
import os, torch
x = torch.empty({size}, dtype=torch.uint8, device="cuda:{device}")
x.fill_(1)
torch.cuda.synchronize()
print(os.getpid())
"""

Row = tuple[str, Any, Any, bool]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def compute_apps() -> list[dict[str, Any]]:
    """``nvidia-smi --query-compute-apps``: one row per process and GPU."""
    out = subprocess.run(
        [
            "nvidia-smi",
            "--query-compute-apps=pid,gpu_uuid,used_memory",
            "--format=csv,noheader,nounits",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    return parse_compute_apps(out)


def parse_compute_apps(text: str) -> list[dict[str, Any]]:
    """The rows of ``--query-compute-apps=pid,gpu_uuid,used_memory --format=csv,noheader,nounits``
    (memory ``[N/A]`` where the driver does not report it)."""
    rows = []
    for line in text.strip().splitlines():
        pid, uuid, used = (value.strip() for value in line.split(","))
        rows.append(
            {"pid": int(pid), "gpu_uuid": uuid, "used_mib": int(used) if used.isdigit() else None}
        )
    return rows


def compare(
    gpus: list[dict[str, Any]],
    kernels: dict[str, Any],
    apps: list[dict[str, Any]],
    *,
    device: int,
    kernel_id: str,
    path: str,
    kernel_pid: int,
    gib: float,
) -> list[Row]:
    """The checks, as (what, gpu-devbox says, expected or nvidia-smi says, good)."""
    rows: list[Row] = []
    floor = int(gib * 1024**3 * 0.99)
    [gpu] = [g for g in gpus if g["index"] == device] or [None]
    if gpu is None:
        return [(f"GPU {device} in GET gpus", None, "present", False)]
    mine = [
        p for p in gpu["processes"] or [] if (p.get("owner") or {}).get("kernel_id") == kernel_id
    ]
    big = [p for p in mine if (p["used_memory"] or 0) >= floor]
    rows.append(("kernel's process holding the memory", len(big), 1, len(big) == 1))
    if len(big) != 1:
        return rows
    process = big[0]
    owner = process["owner"]
    rows.append(("owner.type", owner["type"], "kernel", owner["type"] == "kernel"))
    rows.append(("owner.path", owner["path"], path, owner["path"] == path))
    if kernels["attribution"]["method"] == "pids":
        rows.append(
            ("local_pid", process["local_pid"], kernel_pid, process["local_pid"] == kernel_pid)
        )
    on_gpu = [a for a in apps if a["gpu_uuid"] == gpu["uuid"]]
    if on_gpu:
        [app] = [a for a in on_gpu if a["pid"] == process["pid"]] or [None]
        rows.append(
            (
                "NVML pid in nvidia-smi",
                process["pid"],
                sorted(a["pid"] for a in on_gpu),
                app is not None,
            )
        )
        if app is not None and app["used_mib"] is not None:
            used = round(process["used_memory"] / MIB)
            rows.append(
                (
                    "used_memory MiB",
                    used,
                    app["used_mib"],
                    abs(used - app["used_mib"]) <= TOLERANCE_MIB,
                )
            )
    else:
        rows.append(("nvidia-smi lists the GPU's processes", "no", "(container: skipped)", True))
    [kernel] = [k for k in kernels["kernels"] if k["id"] == kernel_id] or [None]
    if kernel is None:
        rows.append(("kernel in GET kernels", None, kernel_id, False))
        return rows
    [usage] = [g for g in kernel["gpus"] if g["index"] == device] or [None]
    if usage is None:
        rows.append((f"GPU {device} in the kernel's gpus", None, "present", False))
        return rows
    if usage["memory"] is not None:
        total = sum(p["used_memory"] or 0 for p in usage["processes"])
        rows.append(
            (
                "GET kernels memory",
                usage["memory"],
                f"= {total}, >= {floor}",
                usage["memory"] == total and usage["memory"] >= floor,
            )
        )
    else:
        rows.append(
            (
                "GET kernels shared_memory",
                usage["shared_memory"],
                f">= {floor}, shared_with given",
                bool(usage["shared_with"]) and (usage["shared_memory"] or 0) >= floor,
            )
        )
    return rows


class Server:
    def __init__(self) -> None:
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.tmp = tempfile.TemporaryDirectory(prefix="gpu-devbox-gpu-test-")
        root = pathlib.Path(self.tmp.name)
        (root / "notebooks").mkdir()
        (root / "runtime").mkdir()
        config = {
            "ServerApp": {
                "jpserver_extensions": {"gpu_devbox": True},
                "root_dir": str(root / "notebooks"),
            },
            "IdentityProvider": {"token": self.token},
            "GPUDevbox": {"interval": 0.5, "slow_interval": 1.0, "backend": "nvml"},
        }
        (root / "jupyter_server_config.json").write_text(json.dumps(config))
        self.runtime = root / "runtime"
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(root),
            "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
        }
        env.pop("GPU_DEVBOX_BACKEND", None)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter",
                "server",
                "--no-browser",
                "--allow-root",
                f"--port={self.port}",
                "--ip=127.0.0.1",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def request(self, method: str, path: str, body: Any = None) -> Any:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/{path}",
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            raw = response.read()
            return json.loads(raw) if raw else None

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                self.request("GET", "gpu-devbox/api/status")
                return
            except OSError:  # noqa: PERF203 - not up yet; poll again
                time.sleep(0.3)
        raise SystemExit("the jupyter server with gpu-devbox did not start")

    def run_in_kernel(self, kernel_id: str, code: str) -> str:
        from jupyter_client.blocking.client import BlockingKernelClient

        client = BlockingKernelClient()
        client.load_connection_file(str(self.runtime / f"kernel-{kernel_id}.json"))
        client.start_channels()
        out: list[str] = []
        try:
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
                    if time.monotonic() > deadline:
                        raise SystemExit("the kernel never answered") from None
            reply = client.execute_interactive(
                code,
                timeout=300,
                output_hook=lambda msg: out.append(msg["content"].get("text", "")),
            )
        finally:
            client.stop_channels()
        if reply["content"]["status"] != "ok":
            raise SystemExit(f"the kernel failed: {reply['content'].get('evalue')}")
        return "".join(out)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.tmp.cleanup()


def until(check: Callable[[], bool], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=2.0, help="GiB the kernel allocates")
    parser.add_argument("--device", type=int, default=0, help="the CUDA device it allocates on")
    args = parser.parse_args()
    if shutil.which("nvidia-smi") is None:
        print(
            "error: nvidia-smi not found: run this on a machine with NVIDIA GPUs", file=sys.stderr
        )
        return 2
    path = "gpu-test.ipynb"
    server = Server()
    failures = 0
    try:
        server.wait_ready()
        session = server.request(
            "POST",
            "api/sessions",
            {"path": path, "name": path, "type": "notebook", "kernel": {"name": "python3"}},
        )
        kernel_id = session["kernel"]["id"]
        size = int(args.gib * 1024**3)
        kernel_pid = int(
            server.run_in_kernel(kernel_id, ALLOCATE.format(size=size, device=args.device))
        )
        print(
            f"kernel {kernel_id} (pid {kernel_pid}) allocated {args.gib} GiB on cuda:{args.device}"
        )

        def attributed() -> bool:
            gpus = server.request("GET", "gpu-devbox/api/gpus")["gpus"]
            return any(
                (p.get("owner") or {}).get("kernel_id") == kernel_id
                for g in gpus
                for p in g["processes"] or []
            )

        if not until(attributed):
            print("the kernel's process never appeared with its owner in GET gpus")
            failures += 1
        gpus = server.request("GET", "gpu-devbox/api/gpus")["gpus"]
        kernels = server.request("GET", "gpu-devbox/api/kernels")
        apps = compute_apps()
        print(f"attribution method: {kernels['attribution']['method']}")
        # CUDA_VISIBLE_DEVICES may renumber: the device the kernel used is NVML's by UUID, but
        # without it set, cuda:N is NVML index N
        for what, mine, theirs, good in compare(
            gpus,
            kernels,
            apps,
            device=args.device,
            kernel_id=kernel_id,
            path=path,
            kernel_pid=kernel_pid,
            gib=args.gib,
        ):
            failures += not good
            print(
                f"{what:<40} gpu-devbox={mine!s:<24} expected={theirs!s:<30} "
                f"{'ok' if good else 'FAIL'}"
            )

        # NVML's PIDs of the kernel's processes (the host's, in a container)
        held = {
            p["pid"]
            for g in gpus
            for p in g["processes"] or []
            if (p.get("owner") or {}).get("kernel_id") == kernel_id
        }
        # Shut down through jupyter-server's own API: the memory is freed, the process leaves
        server.request("DELETE", f"api/sessions/{session['id']}")

        def freed() -> bool:
            gpus = server.request("GET", "gpu-devbox/api/gpus")["gpus"]
            return not any(
                (p.get("owner") or {}).get("kernel_id") == kernel_id
                for g in gpus
                for p in g["processes"] or []
            ) and not held & {a["pid"] for a in compute_apps()}

        ok = until(freed)
        failures += not ok
        print(f"{'freed after shutdown':<40} {'ok' if ok else 'FAIL'}")
    finally:
        server.stop()
    print("RESULT:", "PASS" if failures == 0 else f"FAIL ({failures} failed checks)")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
