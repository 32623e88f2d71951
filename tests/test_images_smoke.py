"""images/smoke_test.py's Lab extension check, notebook run and Kernel Gateway probe, for real.

The Lab extension check is run where it used to break: a checkout cloned into a folder named
``gpu-devbox`` (what ``git clone`` makes), whose virtual environment puts the name into the
directory header of ``jupyter labextension list``. The environment here is a real venv inside
such a folder, running the real ``jupyter labextension list``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "images" / "smoke_test.py"
HERE = Path(sys.executable).parent

# Runs one check of the smoke test in-process and prints its results as JSON.
RUN_CHECK = """
import json, runpy, sys
smoke = runpy.run_path(sys.argv[1])
smoke[sys.argv[2]](*json.loads(sys.argv[3]))
print(json.dumps(smoke["RESULTS"]))
"""


def run_check(
    python: str, name: str, args: list[object], env: dict[str, str]
) -> list[dict[str, str]]:
    result = subprocess.run(
        [python, "-c", RUN_CHECK, str(SMOKE), name, json.dumps(args)],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    results: list[dict[str, str]] = json.loads(result.stdout.strip().splitlines()[-1])
    return results


def installed_extension() -> Path:
    """This environment's gpu-devbox Lab extension (built by the editable install with Node)."""
    path = Path(sys.prefix, "share", "jupyter", "labextensions", "gpu-devbox")
    if not (path / "package.json").is_file():
        pytest.fail(
            "the gpu-devbox Lab extension is not installed here: `pip install -e .` with Node.js "
            "builds it (./run-tests lab)"
        )
    return path


@pytest.fixture
def clone_named_gpu_devbox(tmp_path: Path) -> tuple[str, dict[str, str]]:
    """A venv in ``<tmp>/gpu-devbox/.venv`` that sees this environment's packages (a .pth file)
    and has the Lab extension in its own ``share/jupyter/labextensions``, as a clone has."""
    venv = tmp_path / "gpu-devbox" / ".venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()  # fmt: skip
    Path(purelib, "outer-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    shared = venv / "share" / "jupyter" / "labextensions"
    shared.mkdir(parents=True)
    shutil.copytree(installed_extension(), shared / "gpu-devbox", symlinks=False)
    for script, module in (
        ("jupyter", "jupyter_core.command"),
        ("jupyter-labextension", "jupyterlab.labextensions"),
    ):
        path = venv / "bin" / script
        path.write_text(f"#!{python}\nimport sys\nfrom {module} import main\nsys.exit(main())\n")
        path.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "VIRTUAL_ENV"))}
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}",
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        JUPYTER_DATA_DIR=str(tmp_path / "data"),
    )
    return str(python), env


@pytest.mark.slow
def test_the_lab_extension_check_passes_in_a_clone_named_gpu_devbox(
    clone_named_gpu_devbox: tuple[str, dict[str, str]],
) -> None:
    python, env = clone_named_gpu_devbox
    listing = subprocess.run(
        ["jupyter", "labextension", "list"],
        capture_output=True, text=True, timeout=120, env=env, check=True,
    )  # fmt: skip
    text = listing.stdout + listing.stderr
    # The layout the bug needs: a header line naming the folder, above the extension's line.
    header = next(ln for ln in text.splitlines() if "gpu-devbox" in ln)
    assert header.strip().endswith("gpu-devbox/.venv/share/jupyter/labextensions"), text
    results = run_check(python, "check_lab_extension", [True], env)
    assert [(r["check"], r["status"]) for r in results] == [("lab extension", "pass")], results
    assert results[0]["detail"].startswith("jupyter labextension list: gpu-devbox v")


@pytest.mark.slow
def test_the_lab_extension_check_fails_when_it_is_disabled(
    clone_named_gpu_devbox: tuple[str, dict[str, str]],
) -> None:
    python, env = clone_named_gpu_devbox
    subprocess.run(
        ["jupyter", "labextension", "disable", "--level=user", "gpu-devbox"],
        capture_output=True, text=True, timeout=120, env=env, check=True,
    )  # fmt: skip
    results = run_check(python, "check_lab_extension", [True], env)
    assert results[0]["status"] == "fail", results
    assert "gpu-devbox is not enabled and OK: gpu-devbox v" in results[0]["detail"]
    assert "disabled" in results[0]["detail"]


@pytest.mark.slow
def test_in_an_image_a_missing_lab_extension_fails(tmp_path: Path) -> None:
    """An image whose wheel carried no panel: the check is required there, never skipped."""
    venv = tmp_path / "gpu-devbox" / ".venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()  # fmt: skip
    Path(purelib, "outer-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    for name, module in (
        ("jupyter", "jupyter_core.command"),
        ("jupyter-labextension", "jupyterlab.labextensions"),
    ):
        script = venv / "bin" / name
        script.write_text(f"#!{python}\nimport sys\nfrom {module} import main\nsys.exit(main())\n")
        script.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "VIRTUAL_ENV"))}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}", JUPYTER_PATH="")
    results = run_check(str(python), "check_lab_extension", [True], env)
    assert results[0]["status"] == "fail", results
    assert "does not show gpu-devbox" in results[0]["detail"]


def test_the_extension_line_is_found_below_any_header() -> None:
    smoke = _module()
    text = (
        "JupyterLab v4.6.6\n"
        "/home/me/gpu-devbox/.venv/share/jupyter/labextensions\n"
        "        jupyterlab_pygments v0.3.0 enabled OK (python, jupyterlab_pygments)\n"
        "        gpu-devbox v0.1.0 disabled OK (python, gpu-devbox)\n"
        "        gpu-devbox-extra v1.0.0 enabled OK\n"
    )
    assert smoke["extension_line"](text) == "gpu-devbox v0.1.0 disabled OK (python, gpu-devbox)"
    assert smoke["extension_line"](text.replace("        gpu-devbox v0.1.0", "  x v0")) is None


def _module() -> dict[str, object]:
    import runpy

    return runpy.run_path(str(SMOKE))


# -- the Kernel Gateway -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A real ``jupyter kernelgateway`` with a token; yields its URL and the token."""
    port, token = free_port(), "gateway-secret"
    env = dict(os.environ, KG_AUTH_TOKEN=token, JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"))
    log = (tmp_path / "gateway.log").open("w")
    argv = [
        str(HERE / "jupyter"), "kernelgateway", "--KernelGatewayApp.ip=127.0.0.1",
        f"--KernelGatewayApp.port={port}", "--KernelGatewayApp.port_retries=0",
    ]  # fmt: skip
    server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert server.poll() is None, (tmp_path / "gateway.log").read_text()
            assert time.monotonic() < deadline, "the gateway did not listen"
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}", token
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        log.close()


def smoke_gateway(url: str, token: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KG_AUTH_TOKEN=token)
    return subprocess.run(
        [sys.executable, str(SMOKE), "--gateway", url, "--json"],
        capture_output=True, text=True, timeout=180, env=env, check=False,
    )  # fmt: skip


@pytest.mark.slow
def test_the_gateway_probe_runs_code_through_a_real_kernel_gateway(
    gateway: tuple[str, str],
) -> None:
    url, token = gateway
    result = smoke_gateway(url, token)
    assert result.returncode == 0, result.stderr
    [check] = json.loads(result.stdout)["results"]
    assert check["status"] == "pass"
    assert "gateway says 42" in check["detail"]
    assert "python3" in check["detail"]
    # The wrong token is refused by the gateway, and the probe says so.
    wrong = smoke_gateway(url, "not-the-token")
    assert wrong.returncode == 1
    assert "FAIL  kernel gateway: GET /api/kernelspecs: 401" in wrong.stderr


def test_start_notebook_starts_the_kernel_gateway(tmp_path: Path) -> None:
    """GPU_DEVBOX_JUPYTER_CMD picks the server the image's command starts."""
    stand_in = tmp_path / "jupyter"
    stand_in.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    stand_in.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTERHUB_")}
    env["PATH"] = f"{tmp_path}{os.pathsep}{env['PATH']}"

    def start(mode: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(ROOT / "images" / "start-notebook.sh"), "--x=1"],
            capture_output=True, text=True, timeout=30, check=False,
            env=dict(env, GPU_DEVBOX_JUPYTER_CMD=mode, JUPYTER_PORT="9000"),
        )  # fmt: skip

    assert start("kernelgateway").stdout.splitlines() == [
        "kernelgateway", "--KernelGatewayApp.ip=0.0.0.0", "--KernelGatewayApp.port=9000", "--x=1"
    ]  # fmt: skip
    assert start("server").stdout.splitlines()[0] == "server"
    bad = start("notebook7")
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "start-notebook: GPU_DEVBOX_JUPYTER_CMD='notebook7' is not lab, server or kernelgateway"
    )
