"""The README's promise: ``jupyter lab`` comes up and serves the API on a machine with no GPU."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A real ``jupyter lab`` process on the real NVML backend (this machine has no GPU)."""
    port, token = free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPU_DEVBOX_")}
    env.update({"JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "HOME": str(tmp_path)})
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            "--allow-root",
            f"--port={port}",
            "--ip=127.0.0.1",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={tmp_path}",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5)  # noqa: S310
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline, "jupyter lab did not come up in 90 s"
                time.sleep(0.5)
        yield base, token
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
        assert "Traceback" not in out, out


def get(base: str, token: str, path: str) -> tuple[int, bytes]:
    request = urllib.request.Request(  # noqa: S310 - a loopback http URL built here
        base + path, headers={"Authorization": f"token {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        return response.status, response.read()


def test_jupyter_lab_serves_the_gpu_api_without_a_gpu(lab: tuple[str, str]) -> None:
    base, token = lab
    code, body = get(base, token, "/gpu-devbox/api/status")
    status = json.loads(body)
    assert code == 200
    assert status["nvml"]["available"] is False
    assert status["nvml"]["reason_code"] == "library_not_found"
    assert "utility" in status["nvml"]["remedy"]
    code, body = get(base, token, "/gpu-devbox/api/gpus")
    assert (code, json.loads(body)["gpus"]) == (200, [])
    code, _ = get(base, token, "/lab")
    assert code == 200


# ---------------------------------------------------------------------------------------------
# README command 1, verbatim, in a fresh copy of this source tree: as root and as a normal user
# ---------------------------------------------------------------------------------------------

README = Path(__file__).resolve().parents[1] / "README.md"
ROOT = README.parent
#: An unprivileged user every Linux system has.
NOBODY = 65534


def readme_command() -> str:
    """The quick start's command 1, as the README prints it."""
    quick_start = README.read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    [line] = [ln for ln in quick_start.splitlines() if ln.startswith("python3 -m venv .venv &&")]
    return line


@pytest.fixture(scope="module")
def fresh_clone() -> Iterator[Path]:
    """What `git clone` gives (plus uncommitted changes), where any user may read it."""
    base = Path(tempfile.mkdtemp(prefix="gpu-devbox-quickstart-"))
    base.chmod(0o755)
    source = base / "gpu-devbox"
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    built = ROOT / "gpu_devbox" / "labextension" / "static" / "style.js"
    if built.exists():  # the Lab extension as ./run-tests built it: the wheel ships it as is
        shutil.copytree(built.parents[1], source / "gpu_devbox" / "labextension")
    try:
        yield source
    finally:
        shutil.rmtree(base, ignore_errors=True)


def start_quickstart(
    source: Path, home: Path, *, as_user: int | None = None
) -> tuple[Any, str, str]:
    """Run README command 1 (install, then `jupyter lab`); returns the process and its URL."""
    port, token = free_port(), secrets.token_hex(16)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GPU_DEVBOX_", "JUPYTER_", "VIRTUAL_ENV"))
    }
    # The PATH both users share: not this checkout's .venv, nor what only root may enter (a
    # Python installed in root's home), so that root and the user run the same python3.
    path = [p for p in env["PATH"].split(":") if not p.startswith((str(ROOT), str(Path.home())))]
    env.update(
        HOME=str(home),
        PATH=":".join(path),
        JUPYTER_PORT=str(port),  # jupyter-server's own variables: the command line stays as is
        JUPYTER_PORT_RETRIES="0",
        JUPYTER_TOKEN=token,
        BROWSER="true",  # no browser to open here
    )
    if not (source / "gpu_devbox" / "labextension" / "static" / "style.js").exists():
        env["SKIP_JUPYTER_BUILDER"] = "1"  # no built panel to ship: install the Python part
    argv = ["bash", "-c", readme_command()]
    if as_user is not None:
        argv = [
            "setpriv",
            f"--reuid={as_user}",
            f"--regid={as_user}",
            "--clear-groups",
            "--inh-caps=-all",
            *argv,
        ]
    proc = subprocess.Popen(
        argv,
        cwd=source,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    return proc, f"http://127.0.0.1:{port}", token


def answers(base: str, token: str) -> bool:
    try:
        get(base, token, "/api/status")
    except (urllib.error.URLError, ConnectionError):
        return False
    return True


def wait_up(proc: Any, base: str, token: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not answers(base, token):
        if proc.poll() is not None:
            out = proc.stdout.read()[-5000:]
            raise AssertionError(f"README command 1 exited with {proc.returncode}:\n{out}")
        assert time.monotonic() < deadline, f"README command 1 did not serve in {timeout} s"
        time.sleep(1)


def stop(proc: Any) -> str:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    return str(out)


def post(base: str, token: str, path: str, body: Any) -> tuple[int, Any]:
    request = urllib.request.Request(  # noqa: S310 - a loopback http URL built here
        base + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        return response.status, json.loads(response.read())


def check_the_panels_api_and_benchmark(base: str, token: str) -> None:
    """What the panel shows first (simulated GPUs) and its benchmark (the CPU, with NumPy)."""
    status = json.loads(get(base, token, "/gpu-devbox/api/status")[1])
    assert status["simulated"] is True
    code, run = post(
        base,
        token,
        "/gpu-devbox/api/benchmarks",
        {"devices": [], "sizes": {"matmul_n": 32, "copy_bytes": 65536}},
    )
    assert code == 202
    deadline = time.monotonic() + 120
    while run["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.5)
        run = json.loads(get(base, token, f"/gpu-devbox/api/benchmarks/{run['id']}")[1])
    assert run["state"] == "succeeded", run["error"]
    assert run["environment"]["backend"] == "numpy"


@pytest.mark.timeout(1500)
def test_readme_command_1_works_as_a_normal_user_and_as_root_with_the_cpu_benchmark(
    fresh_clone: Path,
) -> None:
    assert os.geteuid() == 0, "this test runs the quick start as another user, then as root"
    # 1. an unprivileged user, in a clone of their own
    home = fresh_clone.parent / "home-user"
    home.mkdir()
    subprocess.run(
        ["chown", "-R", f"{NOBODY}:{NOBODY}", str(fresh_clone), str(home)], check=True, timeout=120
    )
    proc, base, token = start_quickstart(fresh_clone, home, as_user=NOBODY)
    try:
        wait_up(proc, base, token, timeout=900)
        check_the_panels_api_and_benchmark(base, token)
        servers = subprocess.run(
            ["pgrep", "-u", str(NOBODY), "-f", "jupyter-lab"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.split()
        assert servers, "JupyterLab does not run as the unprivileged user"
    finally:
        out = stop(proc)
    assert "Traceback" not in out, out[-5000:]

    # 2. the same command line as root (a container, this machine): no "Use --allow-root"
    home = fresh_clone.parent / "home-root"
    home.mkdir()
    proc, base, token = start_quickstart(fresh_clone, home)
    try:
        wait_up(proc, base, token, timeout=600)
        check_the_panels_api_and_benchmark(base, token)
    finally:
        out = stop(proc)
    assert "Running as root is not recommended" not in out
    assert "Traceback" not in out, out[-5000:]

    # 3. `gpu-devbox bench` from the same install
    bench = subprocess.run(
        [".venv/bin/gpu-devbox", "bench", "--json", "--matmul-n", "32", "--copy-bytes", "65536"],
        cwd=fresh_clone,
        env={**os.environ, "HOME": str(home), "JUPYTER_DATA_DIR": str(home / "data")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bench.returncode == 0, bench.stderr
    assert json.loads(bench.stdout)["state"] == "succeeded"
