"""The hub image for Zero to JupyterHub (images/hub.Dockerfile) and what it installs.

``gpu-devbox[hub]`` must install into the hub image of the two latest Z2JH releases without
replacing their JupyterHub. tests/fixtures/z2jh/ holds each release's pins (its
images/hub/requirements.txt); uv resolves the project's hub requirements for the image's Python
with those pins as constraints, KubeSpawner's excepted: the chart's 7.0.0 is below the
spawner's minimum and pip raises it, as the Dockerfile's install does.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.floors import tomllib

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "images" / "hub.Dockerfile"
FIXTURES = Path(__file__).parent / "fixtures" / "z2jh"
#: The two latest Zero to JupyterHub releases, and the JupyterHub each ships.
RELEASES = {"4.4.0": "5.5.0", "4.3.5": "5.4.6"}
#: The packages of the chart's image the install may change (and why): KubeSpawner 7.0.0 is
#: below the spawner's minimum (7.1).
MAY_CHANGE = {"jupyterhub-kubespawner"}


def pins(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==([^\s;]+)", line)
        if match:
            out[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return out


def hub_requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [*project["dependencies"], *project["optional-dependencies"]["hub"]]


def test_the_dockerfile_builds_on_the_latest_chart_and_keeps_its_jupyterhub() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM quay\.io/jupyterhub/k8s-hub:\$\{Z2JH_VERSION\}$", text, re.M)
    default = re.search(r"^ARG Z2JH_VERSION=(\S+)$", text, re.M)
    assert default
    assert default.group(1) == next(iter(RELEASES))
    # the constraint is the image's own JupyterHub, read from the image at build time
    assert "grep -i '^jupyterhub==' > /tmp/chart-jupyterhub.txt" in text
    assert re.search(r'--constraint /tmp/chart-jupyterhub.txt\s+\\\s+"gpu-devbox\[hub\]==', text)
    prose = " ".join(" ".join(line.lstrip("# ") for line in text.splitlines()).split())
    for release, jupyterhub in RELEASES.items():
        assert f"{release} ships JupyterHub {jupyterhub}" in prose
        assert pins((FIXTURES / f"hub-{release}.txt").read_text())["jupyterhub"] == jupyterhub


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("release", list(RELEASES))
def test_gpu_devbox_hub_installs_into_the_chart_image_keeping_its_jupyterhub(
    release: str, tmp_path: Path
) -> None:
    chart = pins((FIXTURES / f"hub-{release}.txt").read_text())
    requirements = tmp_path / "requirements.in"
    requirements.write_text("\n".join(hub_requirements()) + "\n")
    constraints = tmp_path / "chart.txt"
    constraints.write_text(
        "".join(f"{name}=={version}\n" for name, version in chart.items() if name not in MAY_CHANGE)
    )
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert uv, "uv is not installed: pip install -e '.[dev]'"
    done = subprocess.run(
        [
            uv, "pip", "compile", str(requirements), "--constraint", str(constraints),
            "--python-version", "3.12", "--python-platform", "x86_64-unknown-linux-gnu",
            "--no-header", "--no-annotate", "--quiet",
        ],
        capture_output=True, text=True, timeout=540, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    resolved = pins(done.stdout)
    assert resolved["jupyterhub"] == RELEASES[release]
    kubespawner = tuple(int(p) for p in resolved["jupyterhub-kubespawner"].split(".")[:2])
    assert kubespawner >= (7, 1)
    changed = {name for name, version in chart.items() if resolved.get(name, version) != version}
    assert changed <= MAY_CHANGE, changed
