"""On a machine with NVIDIA GPUs: does gpu-devbox report what nvidia-smi reports?

Starts a real ``jupyter server`` with gpu-devbox on the real NVML backend, then, for several
rounds, reads ``GET /gpu-devbox/api/gpus`` and ``nvidia-smi --query-gpu=...`` at the same moment
and compares them field by field:

* exactly: name, UUID, memory total, driver version, the driver's CUDA version;
* within tolerance (they are read a few milliseconds apart): memory used (±64 MiB),
  utilization (±15 points), temperature (±3 °C), power (±10 % or ±25 W).

``--load`` runs a bf16 matmul loop on every GPU meanwhile (needs torch), so the live values are
compared under load and not only at idle. Prints a table and exits 1 on any disagreement.

    python gpu-tests/metrics_vs_nvidia_smi.py [--rounds 5] [--load]

Requires jupyter_server and gpu-devbox importable (e.g. wheels on PYTHONPATH), nvidia-smi.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import pathlib
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any

SMI_FIELDS = (
    "name,uuid,memory.total,memory.used,utilization.gpu,temperature.gpu,power.draw,driver_version"
)
LOAD_SCRIPT = """
import torch, time
devs = [torch.device(f"cuda:{i}") for i in range(torch.cuda.device_count())]
mats = [(torch.randn(8192, 8192, device=d, dtype=torch.bfloat16),) * 2 for d in devs]
end = time.time() + float(__import__("sys").argv[1])
while time.time() < end:
    for a, b in mats:
        a @ b
    torch.cuda.synchronize()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nvidia_smi() -> list[dict[str, str]]:
    out = subprocess.run(
        ["nvidia-smi", f"--query-gpu={SMI_FIELDS}", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    keys = SMI_FIELDS.split(",")
    return [
        dict(zip(keys, (v.strip() for v in line.split(",")), strict=True))
        for line in out.strip().splitlines()
    ]


def smi_cuda_version() -> str:
    out = subprocess.run(["nvidia-smi"], capture_output=True, text=True, check=True, timeout=30)
    for token in out.stdout.split("CUDA Version:")[1:2]:
        return token.split()[0]
    return "?"


class Server:
    def __init__(self) -> None:
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.tmp = tempfile.TemporaryDirectory(prefix="gpu-devbox-gpu-test-")
        config = {
            "ServerApp": {"jpserver_extensions": {"gpu_devbox": True}},
            "IdentityProvider": {"token": self.token},
            "GPUDevbox": {"interval": 0.5, "backend": "nvml"},
        }
        pathlib.Path(self.tmp.name, "jupyter_server_config.json").write_text(json.dumps(config))
        env = {**os.environ, "JUPYTER_CONFIG_DIR": self.tmp.name}
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

    def get(self, path: str) -> Any:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/gpu-devbox/api/{path}",
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            return json.loads(response.read())

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                self.get("status")
                return
            except OSError:  # noqa: PERF203 - not up yet; poll again
                time.sleep(0.3)
        raise SystemExit("the jupyter server with gpu-devbox did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(15)
        self.tmp.cleanup()


def close(a: float, b: float, absolute: float, relative: float = 0.0) -> bool:
    return abs(a - b) <= max(absolute, relative * abs(b))


def compare(
    gpu: dict[str, Any], smi: dict[str, str], driver: str
) -> list[tuple[str, Any, Any, bool]]:
    mib = 2**20
    rows: list[tuple[str, Any, Any, bool]] = [
        ("name", gpu["name"], smi["name"], gpu["name"] == smi["name"]),
        ("uuid", gpu["uuid"], smi["uuid"], gpu["uuid"] == smi["uuid"]),
        ("driver_version", driver, smi["driver_version"], driver == smi["driver_version"]),
    ]
    total = round(gpu["memory"]["total"] / mib)
    rows.append(
        ("memory.total MiB", total, int(smi["memory.total"]), total == int(smi["memory.total"]))
    )
    used = round(gpu["memory"]["used"] / mib)
    rows.append(
        ("memory.used MiB", used, int(smi["memory.used"]), close(used, int(smi["memory.used"]), 64))
    )
    util = gpu["utilization"]["gpu"]
    rows.append(
        (
            "utilization.gpu %",
            util,
            int(smi["utilization.gpu"]),
            util is not None and close(util, int(smi["utilization.gpu"]), 15),
        )
    )
    temp = gpu["temperature"]["gpu"]
    rows.append(
        (
            "temperature.gpu C",
            temp,
            int(smi["temperature.gpu"]),
            temp is not None and close(temp, int(smi["temperature.gpu"]), 3),
        )
    )
    power = gpu["power"]["usage"]
    rows.append(
        (
            "power.draw W",
            power,
            float(smi["power.draw"]),
            power is not None and close(power, float(smi["power.draw"]), 25, 0.10),
        )
    )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--load", action="store_true", help="run a bf16 matmul loop meanwhile")
    args = parser.parse_args()
    if shutil.which("nvidia-smi") is None:
        print(
            "error: nvidia-smi not found: run this on a machine with NVIDIA GPUs", file=sys.stderr
        )
        return 2

    load = None
    if args.load:
        load = subprocess.Popen([sys.executable, "-c", LOAD_SCRIPT, str(10 + 3 * args.rounds)])
        time.sleep(5)
    server = Server()
    failures = 0
    try:
        server.wait_ready()
        status = server.get("status")
        print("status:", json.dumps(status["nvml"]))
        cuda = smi_cuda_version()
        ok = status["nvml"]["cuda_driver_version"] == cuda
        failures += not ok
        print(
            f"cuda_driver_version: gpu-devbox {status['nvml']['cuda_driver_version']} "
            f"nvidia-smi {cuda} {'ok' if ok else 'MISMATCH'}"
        )
        time.sleep(1.5)  # a few samples, so PCIe rates and history exist
        for round_no in range(args.rounds):
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                ours = pool.submit(server.get, "gpus")
                theirs = pool.submit(nvidia_smi)
                gpus, smi = ours.result()["gpus"], theirs.result()
            if len(gpus) != len(smi):
                print(f"round {round_no}: {len(gpus)} GPUs from gpu-devbox, {len(smi)} from smi")
                failures += 1
                continue
            for gpu, row in zip(gpus, smi, strict=True):
                for field, mine, theirs_value, good in compare(
                    gpu, row, status["nvml"]["driver_version"]
                ):
                    failures += not good
                    print(
                        f"round {round_no} GPU {gpu['index']} {field:<20} "
                        f"gpu-devbox={mine!s:<42} nvidia-smi={theirs_value!s:<42} "
                        f"{'ok' if good else 'MISMATCH'}"
                    )
            time.sleep(1.0)
        history = server.get("gpus/history")
        print(f"history samples kept: {len(history['samples'])}")
        failures += not history["samples"]
    finally:
        server.stop()
        if load is not None:
            load.terminate()
    print("RESULT:", "PASS" if failures == 0 else f"FAIL ({failures} mismatches)")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
