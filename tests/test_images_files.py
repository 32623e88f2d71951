"""The files under images/, .github/ and .devcontainer/: lint-clean, and doing what they say.

Real programs throughout: hadolint and shellcheck (from the dev extra), the install script's
wheel step, the HEALTHCHECK script and the smoke test against real Jupyter servers, and the
entrypoint scripts with stand-ins for the programs they start.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from gpu_devbox.catalog import default_catalog
from gpu_devbox.images import plan

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "images"
BIN = Path(sys.executable).parent
SKIP_DIRS = {".venv", "node_modules", ".scratch", ".git"}


def tool(name: str) -> str:
    path = shutil.which(name, path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    assert path, f"{name} is not installed: pip install -e '.[dev]'"
    return path


def repo_files(pattern: str) -> list[Path]:
    return sorted(p for p in ROOT.rglob(pattern) if not SKIP_DIRS & set(p.relative_to(ROOT).parts))


def test_every_dockerfile_is_hadolint_clean() -> None:
    dockerfiles = sorted({*repo_files("Dockerfile*"), *repo_files("*.Dockerfile")})
    assert IMAGES / "Dockerfile" in dockerfiles
    assert IMAGES / "hub.Dockerfile" in dockerfiles
    result = subprocess.run(
        [tool("hadolint"), *map(str, dockerfiles)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_scripts_are_shellcheck_clean() -> None:
    scripts = sorted(
        [*IMAGES.glob("*.sh"), IMAGES / "gpu-devbox-sync", *(ROOT / "gpu-tests").glob("*.sh")]
    )
    assert len(scripts) >= 8
    result = subprocess.run(
        [tool("shellcheck"), *map(str, scripts)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_nothing_but_the_catalog_names_cuda_versions() -> None:
    """The Dockerfile, the scripts, the workflow and the dev container take versions from the
    catalog; a CUDA version written into one of them would be a second list to keep in step."""
    versions = re.compile(r"\b1[1-9]\.\d\b|\bcu1[1-9]\d\b|\bubuntu2\d\.\d\d\b")
    files = [
        IMAGES / "Dockerfile",
        *IMAGES.glob("*.sh"),
        ROOT / ".github/workflows/images.yml",
        ROOT / ".devcontainer/devcontainer.json",
    ]
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.lstrip().startswith("#"):
                continue
            assert not versions.search(line), f"{path.relative_to(ROOT)}:{number}: {line.strip()}"


def test_the_wheel_step_builds_the_wheel_with_the_panel(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(IMAGES / "install.sh"), "wheel", str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    built = (ROOT / "gpu_devbox" / "labextension" / "static" / "style.js").is_file()
    if not built and os.environ.get("SKIP_JUPYTER_BUILDER"):
        # A Python-only build ships no panel: the step refuses it before any image build.
        assert result.returncode != 0
        assert "carries no Lab extension" in result.stderr
        return
    assert result.returncode == 0, result.stderr
    wheels = list(tmp_path.glob("gpu_devbox-*.whl"))
    assert len(wheels) == 1
    assert "with the Lab extension" in result.stderr
    import zipfile

    with zipfile.ZipFile(wheels[0]) as wheel:
        names = wheel.namelist()
    assert any(n.endswith("labextensions/gpu-devbox/package.json") for n in names)


def test_the_lock_has_what_the_image_needs_besides_the_wheel() -> None:
    """The images install gpu-devbox without dependencies: its lock carries them."""
    from gpu_devbox.images import lock

    names = {re.split(r"[<>=!~ ;\[]", line)[0].lower() for line in lock.image_requirements()}
    assert {"jupyter-server", "nvidia-ml-py", "jupyterlab", "jupyterhub"} <= names
    # The spawner's Kubernetes packages stay out of notebook images.
    assert not names & {"jupyterhub-kubespawner", "kubernetes-asyncio", "pytest"}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"WITH_NSYS": "1", "TARGETARCH": "arm64", "CUDA_VERSION": "13.0.2"},
            (
                "WITH_NSYS=1: the Nsight Systems CLI option is amd64 only; "
                "build linux/arm64 without it"
            ),
        ),
        (
            {"WITH_NSYS": "1", "TARGETARCH": "amd64"},
            "WITH_NSYS=1: Nsight Systems needs a CUDA image (this base sets no CUDA_VERSION)",
        ),
        ({"WITH_ZSH": "yes"}, "WITH_ZSH must be 0 or 1, not 'yes'"),
    ],
)
def test_the_dockerfile_refuses_a_build_option_in_one_line(
    env: dict[str, str], message: str
) -> None:
    """Checked first in the image's first RUN step, before apt or any other change."""
    full = {k: v for k, v in os.environ.items() if k not in ("CUDA_VERSION", "TARGETARCH")}
    full.update(env)
    result = subprocess.run(
        [str(IMAGES / "install.sh"), "system"],
        capture_output=True, text=True, timeout=30, env=full, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == f"install.sh system: error: {message}"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bogus"], "unknown step 'bogus'"),
        (["python", "/nonexistent"], "usage: install.sh python LOCK"),
        (["flavors", "/nonexistent"], "usage: install.sh flavors LOCK"),
        (["gpu-devbox", "/nonexistent"], "usage: install.sh gpu-devbox DIR"),
        (["fix-permissions", "/nonexistent"], "/nonexistent is not a directory"),
    ],
)
def test_install_script_errors_are_one_clear_line(argv: list[str], message: str) -> None:
    env = dict(os.environ, VIRTUAL_ENV="/nonexistent", PYTHON_VERSION="3")
    result = subprocess.run(
        [str(IMAGES / "install.sh"), *argv],
        capture_output=True, text=True, timeout=30, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr


# -- a real server for the HEALTHCHECK and the smoke test -----------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def jupyter_server(tmp_path: Path) -> Iterator[Path]:
    """A real `jupyter server` with gpu-devbox; yields its runtime directory."""
    runtime = tmp_path / "runtime"
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(runtime))
    argv = [
        tool("jupyter"), "server", "--no-browser", f"--ServerApp.port={free_port()}",
        "--ServerApp.ip=127.0.0.1", "--IdentityProvider.token=s3cret",
        f"--ServerApp.root_dir={tmp_path}", "--ServerApp.port_retries=0",
    ]  # fmt: skip
    if os.geteuid() == 0:
        argv.append("--allow-root")
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while not list(runtime.glob("jpserver-*.json")):
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, "the server wrote no runtime file"
            time.sleep(0.2)
        yield runtime
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        log.close()


def healthcheck(runtime: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(IMAGES / "healthcheck.py")],
        capture_output=True, text=True, timeout=60, check=False,
        env=dict(os.environ, JUPYTER_RUNTIME_DIR=str(runtime)),
    )  # fmt: skip


@pytest.mark.slow
def test_the_healthcheck_asks_the_running_server(jupyter_server: Path, tmp_path: Path) -> None:
    result = healthcheck(jupyter_server)
    assert result.returncode == 0, result.stdout
    assert result.stdout.startswith("healthy: ")
    assert "/gpu-devbox/api/status answered 200" in result.stdout
    # Behind JupyterHub the server refuses our token: the public /api still proves it serves.
    hub_like = tmp_path / "hub-like"
    hub_like.mkdir()
    for info_file in jupyter_server.glob("jpserver-*.json"):
        info = json.loads(info_file.read_text())
        info["token"] = ""
        (hub_like / info_file.name).write_text(json.dumps(info))
    fallback = healthcheck(hub_like)
    assert fallback.returncode == 0, fallback.stdout
    assert "api answered 200 (gpu-devbox/api/status wants a hub token)" in fallback.stdout


def test_the_healthcheck_fails_without_a_server(tmp_path: Path) -> None:
    result = healthcheck(tmp_path)
    assert result.returncode == 1
    assert result.stdout.startswith("unhealthy: no running Jupyter server")
    # A runtime file left by a dead server does not count.
    (tmp_path / "jpserver-999999.json").write_text(
        json.dumps({"pid": 2**22 + 12345, "url": "http://127.0.0.1:9/", "token": "x"})
    )
    assert healthcheck(tmp_path).returncode == 1


@pytest.mark.slow
def test_the_smoke_test_passes_here_with_the_gpu_parts_skipped() -> None:
    result = subprocess.run(
        [sys.executable, str(IMAGES / "smoke_test.py"), "--json"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    status = {r["check"]: r["status"] for r in document["results"]}
    assert document["ok"] is True
    assert status["import"] == status["server extension"] == status["server"] == "pass"
    assert status["notebook"] == "pass"  # a notebook ran end to end through nbclient
    # This machine has no GPU: those parts are skipped, and say why.
    details = {r["check"]: r["detail"] for r in document["results"]}
    gpu_parts = [name for name in status if name.startswith("torch")]
    assert all(status[name] in ("skip", "pass") for name in gpu_parts)
    assert "0 GPU(s)" in details["server"]
    # The Lab extension is checked strictly as soon as this build ships one.
    shipped = (ROOT / "gpu_devbox" / "labextension" / "package.json").is_file()
    assert status["lab extension"] == ("pass" if shipped else "skip")
    assert "kernel gateway" not in status  # only with --gateway URL


@pytest.mark.slow
def test_the_smoke_test_fails_when_a_gpu_is_expected_and_absent() -> None:
    result = subprocess.run(
        [sys.executable, str(IMAGES / "smoke_test.py"), "--expect-gpu"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "FAIL  GPU: --expect-gpu, but NVML sees no GPU" in result.stderr


# -- the entrypoint and the default command --------------------------------------------------------


def stand_in(directory: Path, name: str) -> None:
    """A program that prints its name and arguments, one per line."""
    path = directory / name
    path.write_text(f'#!/bin/sh\necho "{name}"\nfor a in "$@"; do echo "$a"; done\n')
    path.chmod(0o755)


def run_script(script: str, args: list[str], env: dict[str, str], bin_dir: Path) -> list[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTERHUB_")}
    full.update(env)
    full["PATH"] = f"{bin_dir}{os.pathsep}{full['PATH']}"
    result = subprocess.run(
        [str(IMAGES / script), *args],
        capture_output=True, text=True, timeout=30, env=full, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_start_notebook_runs_lab_or_the_hub_single_user_server(tmp_path: Path) -> None:
    for name in ("jupyter", "jupyterhub-singleuser"):
        stand_in(tmp_path, name)
    lab = run_script("start-notebook.sh", ["--LabApp.x=1"], {}, tmp_path)
    assert lab == [
        "jupyter", "lab", "--ServerApp.ip=0.0.0.0", "--ServerApp.port=8888",
        "--ServerApp.open_browser=False", "--LabApp.x=1",
    ]  # fmt: skip
    hub = run_script("start-notebook.sh", ["--debug"], {"JUPYTERHUB_API_TOKEN": "t"}, tmp_path)
    assert hub == ["jupyterhub-singleuser", "--debug"]
    port = run_script("start-notebook.sh", [], {"JUPYTER_PORT": "9999"}, tmp_path)
    assert "--ServerApp.port=9999" in port


def test_the_entrypoint_runs_the_command_or_start_notebook(tmp_path: Path) -> None:
    stand_in(tmp_path, "start-notebook")
    stand_in(tmp_path, "some-command")
    assert run_script("entrypoint.sh", [], {}, tmp_path) == ["start-notebook"]
    assert run_script("entrypoint.sh", ["some-command", "a b"], {}, tmp_path) == [
        "some-command",
        "a b",
    ]


# -- the workflow and the dev container ------------------------------------------------------------


def test_the_workflow_builds_the_generated_matrix() -> None:
    workflow = yaml.safe_load((ROOT / ".github/workflows/images.yml").read_text())
    jobs = workflow["jobs"]
    text = json.dumps(workflow)
    assert "gpu-devbox images matrix" in text
    assert "fromJSON(needs.plan.outputs.matrix)" in json.dumps(jobs["build"]["strategy"])
    assert "gpu-devbox images bake" in text
    assert "gpu-devbox images audit" in text
    assert "smoke_test.py" in text
    assert "type=gha" in text  # layer caching
    assert "ghcr.io" in text
    # Pushes happen on main and on version tags only.
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads `on` as True
    assert triggers["push"]["branches"] == ["main"]
    assert triggers["push"]["tags"] == ["v*"]


def steps_of(workflow: dict[str, object], job: str) -> list[dict[str, object]]:
    jobs = workflow["jobs"]
    assert isinstance(jobs, dict)
    steps: list[dict[str, object]] = jobs[job]["steps"]
    return steps


def test_every_action_is_pinned_by_its_commit() -> None:
    text = (ROOT / ".github/workflows/images.yml").read_text()
    uses = re.findall(r"uses: (\S+)(.*)", text)
    assert len(uses) >= 10
    for action, comment in uses:
        _, _, ref = action.partition("@")
        assert re.fullmatch(r"[0-9a-f]{40}", ref), f"{action} is not pinned by a commit"
        assert re.fullmatch(r" # v\d+\.\d+\.\d+", comment), f"{action}: say the release it is"


def test_the_workflow_scans_attests_and_builds_arm64() -> None:
    workflow = yaml.safe_load((ROOT / ".github/workflows/images.yml").read_text())
    build = steps_of(workflow, "build")
    trivy = [s for s in build if str(s.get("uses", "")).startswith("aquasecurity/trivy-action")]
    gate = trivy[0]["with"]
    assert isinstance(gate, dict)
    # Fails on CRITICAL findings that have a fix; everything else is reported, not fatal.
    assert (gate["severity"], gate["ignore-unfixed"], gate["exit-code"]) == ("CRITICAL", True, "1")
    report = trivy[1]["with"]
    assert isinstance(report, dict)
    assert report["exit-code"] == "0"
    assert "LOW" in str(report["severity"])
    assert any(isinstance(s.get("with"), dict) and s["with"].get("format") == "cyclonedx"
               for s in trivy)  # fmt: skip
    push = next(s for s in build if "Push every tag" in str(s.get("name")))
    assert isinstance(push["with"], dict)
    assert push["with"]["sbom"] is True
    assert push["with"]["provenance"] == "mode=max"
    assert any(str(s.get("uses", "")).startswith("docker/setup-qemu-action") for s in build)
    text = json.dumps(workflow)
    assert "gpu-devbox images size" in text  # the size budget, checked
    assert "gpu-devbox images lock --check" in text
    assert "GPU_DEVBOX_JUPYTER_CMD=kernelgateway" in text
    assert "audit --pull" in text
    # The catalog decides which lines get arm64; the matrix carries it.
    builds = plan.plan(default_catalog())
    assert {"linux/arm64" in b.platforms for b in builds} == {True, False}


def test_the_dev_container_uses_the_base_image_with_gpus() -> None:
    config = json.loads((ROOT / ".devcontainer/devcontainer.json").read_text())
    builds = plan.plan(default_catalog())
    newest_base = [b for b in builds if b.target == "base" and b.cuda]
    pushed = {ref for b in newest_base for ref in plan.references(b, builds)}
    assert config["image"] in pushed
    assert config["hostRequirements"]["gpu"] in (True, "optional")
    assert config["remoteUser"] == "jovyan"
    assert 8888 in config["forwardPorts"]


def test_build_sh_bakes_the_catalogs_images_with_docker(tmp_path: Path) -> None:
    """images/build.sh with docker: the generated bake file, one platform, overrides applied."""
    stand_in(tmp_path, "docker")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPU_DEVBOX")}
    env.update(
        PATH=f"{tmp_path}{os.pathsep}{BIN}{os.pathsep}{env['PATH']}",
        BUILDER="docker",
        BUILD_ARGS="BASE_IMAGE=mirror.example/nvidia/cuda:x PIP_CERT=/ca.pem",
    )
    result = subprocess.run(
        [str(IMAGES / "build.sh"), "cpu"],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    argv = result.stdout.splitlines()
    assert argv[:6] == ["docker", "buildx", "bake", "--file", ".scratch/images/bake.json", "--load"]
    platform = "linux/arm64" if os.uname().machine == "aarch64" else "linux/amd64"
    assert argv[6:] == [
        "--set", f"*.platform={platform}",
        "--set", "*.args.BASE_IMAGE=mirror.example/nvidia/cuda:x",
        "--set", "*.args.PIP_CERT=/ca.pem",
    ]  # fmt: skip
    bake = json.loads((ROOT / ".scratch/images/bake.json").read_text())
    assert bake["group"]["default"]["targets"] == ["cpu"]
    assert bake["target"]["cpu"]["platforms"] == [platform]
    assert all(tag.startswith("localhost/") for t in bake["target"].values() for tag in t["tags"])
    assert list((IMAGES / "wheels").glob("gpu_devbox-*.whl"))
    # An image whose lock is missing stops before the wheel and the build: the PyTorch locks
    # need PyTorch's wheel index (not reachable on this machine), so 13.0's are missing here.
    stale = subprocess.run(
        [str(IMAGES / "build.sh"), "13.0"],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip
    assert stale.returncode == 2
    assert "missing  images/locks/cuda13-pytorch.txt" in stale.stderr
    assert "the locks above are not current" in stale.stderr
    # A line the catalog does not build stops before any work.
    bad = subprocess.run(
        [str(IMAGES / "build.sh"), "11.8"],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "no images for '11.8'" in bad.stderr
