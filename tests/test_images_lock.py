"""One lock per image (images/locks/): current with the catalog, split into the layers the
Dockerfile installs, and resolved for real by uv."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from gpu_devbox.catalog import default_catalog, default_catalog_text, parse_catalog_text
from gpu_devbox.images import lock, plan

ROOT = Path(__file__).resolve().parents[1]
EXE = shutil.which("gpu-devbox") or ""
BUILDS = plan.plan(default_catalog())
# Locks of the images whose packages all come from the package index; the PyTorch images'
# locks need PyTorch's wheel index, which this machine cannot reach (images/README.md).
RESOLVABLE_HERE = [b for b in BUILDS if b.torch_index is None]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    assert EXE, "the gpu-devbox command is not installed"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPU_DEVBOX_")}
    return subprocess.run(
        [EXE, "images", "lock", *args],
        capture_output=True, text=True, timeout=600, env=env, check=False, cwd=ROOT,
    )  # fmt: skip


@pytest.mark.parametrize("build", RESOLVABLE_HERE, ids=lambda b: b.name)
def test_the_committed_lock_is_current(build: plan.ImageBuild) -> None:
    assert lock.status(build, ROOT) == "current", (
        f"{build.lock} is stale: run `gpu-devbox images lock {build.name}`"
    )
    text = (ROOT / build.lock).read_text()
    sections = lock.split_sections(text)
    assert list(sections) == list(build.flavors)
    pins = lock.pinned(text)
    # Every pin of the catalog is in the lock at a version it allows.
    for _flavor, packages in build.packages:
        for spec in packages:
            name, version = spec.split("==")
            got = pins[lock.normalise(name.split("[")[0])]
            assert got == version or (version.endswith(".*") and got.startswith(version[:-1]))
    # gpu-devbox's own requirements are in it (the wheel is installed without dependencies).
    assert {"jupyterlab", "jupyter-server", "jupyterhub", "nvidia-ml-py"} <= set(pins)
    # Every entry carries hashes (pip --require-hashes refuses anything else).
    entries = [line for line in text.splitlines() if lock._ENTRY.match(line)]
    assert entries
    assert all(line.endswith("\\") for line in entries)


def test_check_says_which_locks_are_missing() -> None:
    result = cli("--check")
    missing = {b.lock for b in BUILDS if b.torch_index is not None}
    lines = result.stdout.splitlines()
    assert {line.split()[1] for line in lines if line.startswith("missing")} == missing
    assert {line.split()[1] for line in lines if line.startswith("current")} == {
        b.lock for b in RESOLVABLE_HERE
    }
    assert result.returncode == 1
    assert "locks not current:" in result.stderr
    assert cli("--check", "cpu").returncode == 0


def test_a_changed_pin_makes_the_lock_stale(tmp_path: Path) -> None:
    text = default_catalog_text().replace("numpy==2.5.*", "numpy==2.4.*")
    build = plan.find(plan.plan(parse_catalog_text(text)), "cpu")
    (tmp_path / "images").mkdir()
    shutil.copytree(ROOT / "images" / "locks", tmp_path / "images" / "locks")
    assert lock.status(build, tmp_path) == "stale"
    assert lock.status(plan.find(BUILDS, "cpu"), tmp_path) == "current"
    (tmp_path / "images" / "locks" / "cpu.txt").unlink()
    assert lock.status(build, tmp_path) == "missing"


def test_install_sh_installs_the_same_sections_python_reads(tmp_path: Path) -> None:
    """images/install.sh extracts a section with awk; it must be the lines lock.py wrote."""
    text = (
        "# gpu-devbox lock of x\n# inputs: sha256:" + "0" * 64 + "\n"
        "# [section base]\nsix==1.17.0 \\\n    --hash=sha256:aa\n"
        "# [section pytorch] index: https://example.invalid/whl/cu130\n"
        "torch==2.14.0+cu130 ; platform_machine == 'x86_64' \\\n    --hash=sha256:bb\n"
    )
    path = tmp_path / "lock.txt"
    path.write_text(text)
    install = ROOT / "images" / "install.sh"
    script = f'. <(sed -n "/^lock_section()/,/^}}/p" {install}); lock_section "$1" "$2"'
    for name, expected in lock.split_sections(text).items():
        out = subprocess.run(
            ["bash", "-c", script, "sh", str(path), name],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout  # fmt: skip
        assert out == expected


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_lock_resolves_a_catalog_for_real(tmp_path: Path) -> None:
    """`gpu-devbox images lock` with uv against the package index: the pins, with hashes."""
    text = default_catalog_text()
    start = text.index("  flavors:\n")
    text = text[:start] + "  flavors:\n    base:\n      packages: [six==1.17.0]\n"
    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    (tmp_path / "images").mkdir()
    result = cli("cpu", "--catalog", str(path), "--root", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("wrote images/locks/cpu.txt: ")
    written = (tmp_path / "images/locks/cpu.txt").read_text()
    assert lock.pinned(written)["six"] == "1.17.0"
    assert "--hash=sha256:" in written
    check = cli("--check", "cpu", "--catalog", str(path), "--root", str(tmp_path))
    assert check.returncode == 0, check.stdout
    # A pin nothing satisfies: one line naming the image, exit 2.
    path.write_text(text.replace("six==1.17.0", "six==999.0"))
    bad = cli("cpu", "--catalog", str(path), "--root", str(tmp_path))
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1
    assert "cpu: cannot resolve its packages" in bad.stderr


def test_lock_refuses_a_folder_that_is_not_the_repository(tmp_path: Path) -> None:
    result = cli("--check", "--root", str(tmp_path))
    assert result.returncode == 2
    assert "no images/ folder there" in result.stderr
