#!/usr/bin/env python3
"""Smoke test of a gpu-devbox environment: a built image, a venv, a JupyterHub user's server.

  python smoke_test.py                 any environment with gpu-devbox installed
  python smoke_test.py --image         inside a gpu-devbox image: also its conventions
  python smoke_test.py --expect-gpu    on a GPU host: a missing GPU is a failure, not a skip
  python smoke_test.py --gateway URL   only: run code through the Kernel Gateway at URL

Checks: gpu-devbox imports; ``jupyter server extension list`` and ``jupyter labextension
list`` show it enabled and OK; a Jupyter server starts and ``/gpu-devbox/api/status``
answers; a notebook runs end to end (nbclient); ``gpu-devbox doctor`` runs; PyTorch (when
installed) multiplies matrices on the CPU and, on a GPU host, on the GPU; the fine-tuning
stack imports where it is installed. GPU parts are reported as skipped where there is no GPU.
``--image`` adds: PID 1 is tini, the user is not root, home and venv are writable, the
NVIDIA and GPU_DEVBOX_BASE_IMAGE variables are set, the HEALTHCHECK command passes, the Lab
extension is required, the notebook also uses the scientific stack, and the helpers and
examples the image ships are there.

Exit status: 0 when nothing failed, 1 otherwise. Standard library only, besides the Jupyter
packages every gpu-devbox environment has (nbformat, nbclient, tornado).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS: list[dict[str, str]] = []
#: Multiplies every time limit: GPU_DEVBOX_SMOKE_SLOW=10 for an image run under emulation (QEMU).
SLOW = max(1.0, float(os.environ.get("GPU_DEVBOX_SMOKE_SLOW") or 1))


def report(name: str, status: str, detail: str) -> None:
    """Record and print one check's outcome (``pass``, ``fail`` or ``skip``)."""
    RESULTS.append({"check": name, "status": status, "detail": detail})
    print(f"{status.upper():4}  {name}: {detail}", file=sys.stderr, flush=True)


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def run(argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a command (colours stripped); a missing program or a timeout gives code 127 or 124."""
    timeout *= SLOW
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        result.stdout, result.stderr = ANSI.sub("", result.stdout), ANSI.sub("", result.stderr)
        return result
    except FileNotFoundError:
        return subprocess.CompletedProcess(argv, 127, "", f"{argv[0]}: command not found")
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 124, "", f"timed out after {timeout:.0f} s")


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


# -- the package and its extensions --------------------------------------------------------------


def check_import() -> str | None:
    try:
        import gpu_devbox
    except ImportError as exc:
        report("import", "fail", f"gpu_devbox does not import: {exc}")
        return None
    report("import", "pass", f"gpu_devbox {gpu_devbox.__version__} from {gpu_devbox.__path__[0]}")
    return str(gpu_devbox.__version__)


def check_server_extension() -> None:
    result = run(["jupyter", "server", "extension", "list"])
    lines = (result.stdout + result.stderr).splitlines()
    enabled = any(re.match(r"\s*gpu_devbox\s+enabled\b", ln) for ln in lines)
    ok = next((ln.strip() for ln in lines if re.match(r"\s*gpu_devbox\s+\S+\s+OK\b", ln)), "")
    if result.returncode == 0 and enabled and ok:
        report("server extension", "pass", f"jupyter server extension list: enabled, {ok}")
    else:
        shown = next((ln.strip() for ln in lines if "gpu_devbox" in ln), "") or last_line(
            result.stderr
        )
        report("server extension", "fail", f"gpu_devbox is not enabled and OK: {shown!r}")


#: The Lab extension's npm name (labextension/package.json); what ``jupyter labextension list``
#: prints first on the extension's own line.
LAB_EXTENSION = "gpu-devbox"


def lab_extension_shipped() -> str | None:
    """Where this gpu-devbox install says its Lab extension is, or ``None`` if it ships none.

    An installed wheel lists ``share/jupyter/labextensions/gpu-devbox/package.json`` among its
    files (that is how a built image has it); an editable checkout has the built extension in
    ``gpu_devbox/labextension``.
    """
    try:
        files = metadata.files("gpu-devbox") or []
    except metadata.PackageNotFoundError:  # no distribution metadata: look at the package
        files = []
    suffix = f"labextensions/{LAB_EXTENSION}/package.json"
    for file in files:
        if str(file).replace("\\", "/").endswith(suffix):
            return f"the installed wheel ({file})"
    spec = importlib.util.find_spec("gpu_devbox")
    for location in list(spec.submodule_search_locations or []) if spec else []:
        package = Path(location, "labextension", "package.json")
        if package.is_file():
            return f"the checkout ({package})"
    return None


#: One extension's line of ``jupyter labextension list``: its name first, then the version,
#: enabled/disabled and OK/X. The directory headers above the lines never match: they are
#: paths, and a clone in a folder named gpu-devbox puts the name in them.
def extension_line(text: str, name: str = LAB_EXTENSION) -> str | None:
    """The line of ``jupyter labextension list`` output that describes ``name``, if any."""
    pattern = re.compile(rf"^\s*{re.escape(name)}\s+v\S+\s+(enabled|disabled)\b")
    return next((ln.strip() for ln in text.splitlines() if pattern.match(ln)), None)


def check_lab_extension(in_image: bool) -> None:
    """``jupyter labextension list`` shows gpu-devbox enabled and OK.

    Required in an image (the wheel it installs carries the panel) and wherever this install
    ships the extension; skipped only outside an image for a Python-only build.
    """
    shipped = lab_extension_shipped()
    if shipped is None and not in_image:
        report(
            "lab extension",
            "skip",
            "this gpu-devbox build ships no Lab extension (a Python-only build)",
        )
        return
    result = run(["jupyter", "labextension", "list"])
    text = result.stdout + result.stderr
    line = extension_line(text)
    if result.returncode == 0 and line and re.search(r"\benabled\s+OK\b", line):
        report("lab extension", "pass", f"jupyter labextension list: {line}")
    elif line:
        report("lab extension", "fail", f"{LAB_EXTENSION} is not enabled and OK: {line}")
    else:
        where = shipped or "this gpu-devbox build ships none"
        report(
            "lab extension",
            "fail",
            f"jupyter labextension list does not show {LAB_EXTENSION} (exit "
            f"{result.returncode}; {where})",
        )


# -- a real server ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get_json(url: str, token: str) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5 * SLOW) as response:  # noqa: S310 - local
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), None
    except (OSError, ValueError):
        return 0, None


def check_server(version: str | None, in_image: bool) -> dict[str, Any] | None:
    """Start ``jupyter server``, ask for the status, run the healthcheck; the status document."""
    port, token = free_port(), secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="gpu-devbox-smoke-") as tmp:
        env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(Path(tmp, "runtime")))
        argv = [
            "jupyter", "server", "--no-browser", f"--ServerApp.port={port}",
            "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={tmp}", "--ServerApp.port_retries=0",
        ]  # fmt: skip
        if os.geteuid() == 0:
            argv.append("--allow-root")
        log = Path(tmp, "server.log")
        with log.open("w") as out:
            server = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            status, document = 0, None
            deadline = time.monotonic() + 90 * SLOW
            while time.monotonic() < deadline and server.poll() is None:
                status, document = get_json(f"http://127.0.0.1:{port}/gpu-devbox/api/status", token)
                if status == 200:
                    break
                time.sleep(0.5)
            if status != 200 or not isinstance(document, dict):
                why = (
                    f"exited with {server.returncode}" if server.poll() is not None else "timed out"
                )
                report("server", "fail", f"/gpu-devbox/api/status: {status or why}; log: "
                       f"{last_line(log.read_text())}")  # fmt: skip
                return None
            served = document.get("version")
            if version is not None and served != version:
                report("server", "fail", f"the server runs gpu-devbox {served}, not {version}")
                return None
            nvml = document.get("nvml", {})
            seen = "NVML available" if nvml.get("available") else f"NVML: {nvml.get('reason_code')}"
            report("server", "pass", f"/gpu-devbox/api/status answered 200 ({seen}, "
                   f"{document.get('gpu_count')} GPU(s))")  # fmt: skip
            check_healthcheck(env, in_image)
            return document
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)


def check_healthcheck(env: dict[str, str], in_image: bool) -> None:
    exe = shutil.which("gpu-devbox-healthcheck")
    if exe is None:
        status = "fail" if in_image else "skip"
        report("healthcheck", status, "gpu-devbox-healthcheck is not on PATH (not in an image)")
        return
    try:
        result = subprocess.run(
            [exe], capture_output=True, text=True, timeout=30 * SLOW, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        report("healthcheck", "fail", "gpu-devbox-healthcheck did not answer within 30 s")
        return
    status = "pass" if result.returncode == 0 else "fail"
    report("healthcheck", status, last_line(result.stdout + result.stderr))


# -- a notebook, end to end ----------------------------------------------------------------------

NOTEBOOK_CELLS = [
    (
        "import gpu_devbox, platform\nprint('gpu-devbox', gpu_devbox.__version__, 'on', "
        "platform.python_version())"
    ),
    "total = sum(i * i for i in range(1000))\nassert total == 332833500\ntotal",
]
#: The scientific stack an image's notebook must be able to use (the base flavor's packages).
STACK_CELLS = [
    (
        "import numpy as np, pandas as pd, scipy.linalg, ipywidgets\n"
        "frame = pd.DataFrame({'x': np.arange(5.0)})\n"
        "assert abs(scipy.linalg.det(np.eye(3) * 2) - 8) < 1e-9\n"
        "print('pandas', pd.__version__, 'sum', frame['x'].sum())"
    ),
    (
        "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
        "%matplotlib inline\nplt.plot([0, 1, 4, 9])\nplt.show()"
    ),
]


def check_notebook(in_image: bool) -> None:
    """Run a notebook end to end through a real kernel (nbclient), as a user's would run."""
    try:
        import nbformat
        from nbclient import NotebookClient
    except ImportError as exc:
        report("notebook", "fail" if in_image else "skip", f"nbclient is not importable: {exc}")
        return
    from nbformat.v4 import new_code_cell, new_notebook

    sources = NOTEBOOK_CELLS + (STACK_CELLS if in_image else [])
    notebook = new_notebook(cells=[new_code_cell(src) for src in sources])
    with tempfile.TemporaryDirectory(prefix="gpu-devbox-nb-") as tmp:
        client = NotebookClient(
            notebook,
            timeout=int(180 * SLOW),
            startup_timeout=int(60 * SLOW),
            kernel_name="python3",
            resources={"metadata": {"path": tmp}},
        )
        try:
            client.execute()
        except Exception as exc:  # noqa: BLE001 - nbclient raises many kinds; report any
            report("notebook", "fail", f"{type(exc).__name__}: {last_line(str(exc))}")
            return
    nbformat.validate(notebook)
    outputs = [o for cell in notebook.cells for o in cell.get("outputs", [])]
    images = sum(1 for o in outputs if "image/png" in o.get("data", {}))
    if in_image and not images:
        report("notebook", "fail", "the matplotlib cell drew no image/png output")
        return
    report("notebook", "pass", f"{len(sources)} cells ran in a python3 kernel (nbclient), "
           f"{len(outputs)} outputs, {images} image(s)")  # fmt: skip


# -- the Kernel Gateway --------------------------------------------------------------------------

GATEWAY_CODE = "import platform; print('gateway says', 6 * 7, platform.python_version())"


def check_gateway(url: str, token: str) -> None:
    """Through a running Kernel Gateway: list kernelspecs, start a kernel, run code over its
    websocket, read the printed result, stop the kernel."""
    import asyncio

    headers = {"Authorization": f"token {token}"} if token else {}
    base = url.rstrip("/")

    def call(method: str, path: str) -> tuple[int, Any]:
        body = b"{}" if method == "POST" else None
        request = urllib.request.Request(  # noqa: S310 - the gateway in this container
            f"{base}{path}", data=body, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=30 * SLOW) as response:  # noqa: S310
                text = response.read()
                return int(response.status), json.loads(text) if text else None
        except urllib.error.HTTPError as exc:
            return int(exc.code), None
        except (OSError, ValueError) as exc:
            return 0, str(exc)

    deadline = time.monotonic() + 90 * SLOW
    status, specs = call("GET", "/api/kernelspecs")
    while status == 0 and time.monotonic() < deadline:
        time.sleep(1)
        status, specs = call("GET", "/api/kernelspecs")
    if status != 200 or not isinstance(specs, dict):
        report("kernel gateway", "fail", f"GET /api/kernelspecs: {status or specs}")
        return
    status, kernel = call("POST", "/api/kernels")
    if status != 201 or not isinstance(kernel, dict):
        report("kernel gateway", "fail", f"POST /api/kernels: {status}")
        return

    async def execute() -> str:
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        ws_url = base.replace("http", "ws", 1) + f"/api/kernels/{kernel['id']}/channels"
        conn = await websocket_connect(HTTPRequest(ws_url, headers=headers))
        msg_id = secrets.token_hex(8)
        await conn.write_message(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "smoke",
                       "session": secrets.token_hex(8), "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": GATEWAY_CODE, "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False},
        }))  # fmt: skip
        printed = ""
        while True:
            raw = await asyncio.wait_for(conn.read_message(), timeout=60 * SLOW)
            if raw is None:
                raise ConnectionError("the gateway closed the websocket")
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                printed += msg["content"]["text"]
            elif msg["msg_type"] == "error":
                raise RuntimeError(f"{msg['content']['ename']}: {msg['content']['evalue']}")
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                conn.close()
                return printed

    try:
        printed = asyncio.run(execute())
    except Exception as exc:  # noqa: BLE001 - websocket, timeout or kernel errors alike
        report("kernel gateway", "fail", f"running code: {type(exc).__name__}: {exc}")
        return
    finally:
        call("DELETE", f"/api/kernels/{kernel['id']}")
    names = sorted((specs.get("kernelspecs") or {}).keys())
    ok = "gateway says 42" in printed
    report("kernel gateway", "pass" if ok else "fail",
           f"kernelspecs {names}; a kernel ran code and printed {printed.strip()!r}")  # fmt: skip


# -- the doctor and the GPU --------------------------------------------------------------------


def check_doctor(expect_gpu: bool) -> None:
    probe = run(["gpu-devbox", "doctor", "--help"], timeout=60)
    if probe.returncode != 0:
        if "invalid choice" in probe.stderr:
            report("doctor", "skip", "this gpu-devbox build has no 'gpu-devbox doctor'")
        else:
            report("doctor", "fail", f"gpu-devbox doctor --help: {last_line(probe.stderr)}")
        return
    result = run(["gpu-devbox", "doctor", "--json"], timeout=300)
    try:
        document = json.loads(result.stdout)
    except ValueError:
        report("doctor", "fail", f"exit {result.returncode}, no JSON: {last_line(result.stderr)}")
        return
    if result.returncode not in (0, 1) or not isinstance(document, dict):
        report("doctor", "fail", f"exit {result.returncode}: {last_line(result.stderr)}")
        return
    verdict = document.get("status", "?")
    counts: dict[str, int] = {}
    for check in document.get("checks", []):
        counts[check.get("status", "?")] = counts.get(check.get("status", "?"), 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no checks"
    ok = result.returncode == 0 or not expect_gpu
    report("doctor", "pass" if ok else "fail", f"ran; verdict {verdict} ({summary})")


TORCH_PROBE = r"""
import json, torch
a = torch.randn(256, 256, generator=torch.Generator().manual_seed(0))
b = torch.randn(256, 256, generator=torch.Generator().manual_seed(1))
cpu = a @ b
out = {"version": torch.__version__, "cuda": torch.version.cuda,
       "available": torch.cuda.is_available(), "cpu_ok": bool(torch.isfinite(cpu).all())}
if out["available"]:
    gpu = (a.cuda() @ b.cuda()).cpu()
    out["device"] = torch.cuda.get_device_name(0)
    out["gpu_ok"] = bool(torch.allclose(gpu, cpu, rtol=1e-3, atol=1e-2))
print(json.dumps(out))
"""


def check_torch(gpus: int) -> None:
    if importlib.util.find_spec("torch") is None:
        report("torch", "skip", "PyTorch is not installed (a base image)")
        if gpus:
            report("torch on GPU", "skip", "PyTorch is not installed")
        return
    result = run([sys.executable, "-c", TORCH_PROBE], timeout=300)
    try:
        probe = json.loads(last_line(result.stdout))
    except ValueError:
        report("torch", "fail", f"exit {result.returncode}: {last_line(result.stderr)}")
        return
    built = f"torch {probe['version']} (CUDA {probe['cuda'] or 'none, a CPU build'})"
    report("torch", "pass" if probe["cpu_ok"] else "fail", f"{built}: a CPU matmul works")
    if not gpus:
        report("torch on GPU", "skip", "no NVIDIA GPU is visible here")
    elif not probe["available"]:
        report("torch on GPU", "fail", f"{gpus} GPU(s) visible but torch.cuda.is_available() "
               "is False (see gpu-devbox doctor)")  # fmt: skip
    else:
        ok = probe.get("gpu_ok")
        detail = f"a matmul on {probe['device']} {'matches' if ok else 'DIFFERS FROM'} the CPU's"
        report("torch on GPU", "pass" if ok else "fail", detail)


# -- image conventions -----------------------------------------------------------------------------


FINETUNE = ("transformers", "accelerate", "peft", "trl", "datasets", "bitsandbytes", "unsloth")


def check_finetune() -> None:
    """Where the fine-tuning flavor installed its stack, every package of it imports."""
    present = [name for name in FINETUNE if importlib.util.find_spec(name) is not None]
    if not present:
        return  # not a fine-tuning image
    code = "; ".join(f"import {name}" for name in FINETUNE if name != "unsloth")
    result = run([sys.executable, "-c", code], timeout=300)
    missing = [name for name in FINETUNE if name not in present]
    if result.returncode != 0 or missing:
        detail = f"missing {missing}" if missing else last_line(result.stderr)
        report("fine-tuning stack", "fail", detail)
    else:
        # unsloth patches torch at import and wants a GPU: imported by the GPU tests only.
        report("fine-tuning stack", "pass", f"{', '.join(present)} installed; all but unsloth "
               "imported")  # fmt: skip


def check_image() -> None:
    try:
        argv = Path("/proc/1/cmdline").read_bytes().decode().split("\0")
    except OSError:
        argv = [""]
    # Under QEMU's binfmt handler the emulator is the process; the program follows it.
    init = argv[1] if Path(argv[0]).name.startswith("qemu-") and len(argv) > 1 else argv[0]
    report("PID 1", "pass" if Path(init).name.startswith("tini") else "fail", f"PID 1 is {init!r}")
    uid = os.getuid()
    report("user", "pass" if uid != 0 else "fail", f"uid {uid}, gid {os.getgid()}")
    for what, path in (("home", Path.home()), ("venv", Path(sys.prefix))):
        writable = os.access(path, os.W_OK)
        report(f"{what} writable", "pass" if writable else "fail", f"{path}")
    for name in ("NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES", "GPU_DEVBOX_BASE_IMAGE"):
        value = os.environ.get(name)
        report(name, "pass" if value else "fail", value or "is not set")
    tools = [
        name for name in ("git", "curl", "gpu-devbox-sync", "gitpuller") if not shutil.which(name)
    ]
    found = "git, curl, gpu-devbox-sync, gitpuller"
    report("tools", "fail" if tools else "pass", f"missing: {', '.join(tools)}" if tools else found)
    examples = sorted(Path("/opt/gpu-devbox/examples").glob("*.ipynb"))
    report("examples", "pass" if examples else "fail",
           ", ".join(e.name for e in examples) or "none in /opt/gpu-devbox/examples")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--image", action="store_true", help="also check the image conventions")
    parser.add_argument("--expect-gpu", action="store_true", help="fail when no GPU is visible")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    parser.add_argument(
        "--gateway", metavar="URL", help="only check the Kernel Gateway at URL (KG_AUTH_TOKEN)"
    )
    args = parser.parse_args(argv)
    if args.gateway:
        check_gateway(args.gateway, os.environ.get("KG_AUTH_TOKEN", ""))
        return finish(args.json)

    version = check_import()
    if version is not None:
        check_server_extension()
        check_lab_extension(args.image)
    if args.image:
        check_image()
    status = check_server(version, args.image) if version is not None else None
    gpus = int(status.get("gpu_count") or 0) if status else 0
    if status is not None and args.expect_gpu and not gpus:
        report("GPU", "fail", "--expect-gpu, but NVML sees no GPU")
    check_notebook(args.image)
    if version is not None:
        check_doctor(args.expect_gpu)
    check_torch(gpus)
    check_finetune()
    return finish(args.json)


def finish(as_json: bool) -> int:
    """Print the verdict (and the JSON); the exit status."""
    failed = [r["check"] for r in RESULTS if r["status"] == "fail"]
    verdict = f"FAILED: {', '.join(failed)}" if failed else "passed"
    print(f"smoke test {verdict} ({len(RESULTS)} checks)", file=sys.stderr)
    if as_json:
        print(json.dumps({"ok": not failed, "results": RESULTS}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
