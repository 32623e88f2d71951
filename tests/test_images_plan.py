"""`gpu-devbox images matrix | tags | bake | docs`: everything generated from the catalog."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gpu_devbox.catalog import default_catalog, default_catalog_text, parse_catalog_text
from gpu_devbox.images import bake, docs, plan

ROOT = Path(__file__).resolve().parents[1]
EXE = shutil.which("gpu-devbox") or ""
SHA = "0123456789abcdef0123456789abcdef01234567"


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert EXE, "the gpu-devbox command is not installed"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPU_DEVBOX_")}
    return subprocess.run(
        [EXE, "images", *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    """Exit 2, nothing on stdout, one line on stderr containing ``words``."""
    assert result.returncode == 2, result
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for word in words:
        assert word in result.stderr


# A catalog where a 13.2 line was added by editing the catalog only.
WITH_13_2 = default_catalog_text().replace(
    "    - cuda: null                 # the CPU image",
    '    - cuda: "13.2"\n'
    "      image: nvidia/cuda:13.2.2-runtime-ubuntu24.04\n"
    "    - cuda: null                 # the CPU image",
) + (
    ""  # the images: appended to the images list below
)
WITH_13_2 = WITH_13_2.replace(
    "\nprofiles:\n",
    """
  - name: cuda13-2-pytorch
    reference: ghcr.io/gpu-devbox/pytorch-notebook:cuda-13.2
    build: true
    cuda: "13.2"
    flavor: pytorch
    frameworks:
      - {name: torch, version: "2.14", cuda: "13.2"}
      - {name: torchvision, version: "0.29"}

profiles:
""",
    1,
)


def test_the_shipped_catalog_plans_its_six_images() -> None:
    builds = plan.plan(default_catalog())
    assert [(b.name, b.target, b.cuda) for b in builds] == [
        ("cpu", "base", None),
        ("cuda12-base", "base", "12.9"),
        ("cuda12-pytorch", "pytorch", "12.9"),
        ("cuda13-base", "base", "13.0"),
        ("cuda13-pytorch", "pytorch", "13.0"),
        ("cuda13-finetune", "finetune", "13.0"),
    ]
    by_name = {b.name: b for b in builds}
    assert by_name["cuda12-pytorch"].torch_index == "https://download.pytorch.org/whl/cu126"
    assert by_name["cuda13-pytorch"].torch_index == "https://download.pytorch.org/whl/cu130"
    assert by_name["cuda13-finetune"].torch_index == "https://download.pytorch.org/whl/cu130"
    assert by_name["cuda13-pytorch"].torch_version == "2.14"
    assert by_name["cuda13-pytorch"].torch_packages == (
        "torch==2.14.*", "torchvision==0.29.*", "torchaudio==2.11.*"
    )  # fmt: skip
    assert by_name["cuda13-base"].torch_index is None
    assert by_name["cuda13-finetune"].flavors == ("base", "pytorch", "finetune")
    assert by_name["cuda13-finetune"].lock == "images/locks/cuda13-finetune.txt"
    # PyTorch's cu126 wheels exist for x86_64 only: the catalog builds that line for amd64.
    assert by_name["cuda12-pytorch"].platforms == ("linux/amd64",)
    assert by_name["cuda13-pytorch"].platforms == ("linux/amd64", "linux/arm64")
    assert by_name["cpu"].platforms == ("linux/amd64", "linux/arm64")
    # What pods pull is exactly a tag the build pushes.
    for build in builds:
        assert build.reference == build.image.reference
        assert build.reference in plan.references(build, builds)


def test_the_tag_scheme() -> None:
    result = cli("tags", "cuda13-pytorch", "--sha", SHA, "--version", "v1.2.0")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "ghcr.io/gpu-devbox/pytorch-notebook:cuda-13.0",
        "ghcr.io/gpu-devbox/pytorch-notebook:cuda-13.0-latest",
        "ghcr.io/gpu-devbox/pytorch-notebook:latest",
        "ghcr.io/gpu-devbox/pytorch-notebook:cuda-13.0-0123456",
        "ghcr.io/gpu-devbox/pytorch-notebook:v1.2.0-cuda-13.0",
    ]
    # An older CUDA line never takes `latest`.
    older = json.loads(cli("tags", "cuda12-base", "--sha", SHA[:7], "--json").stdout)
    assert older == [
        "ghcr.io/gpu-devbox/base-notebook:cuda-12.9",
        "ghcr.io/gpu-devbox/base-notebook:cuda-12.9-latest",
        "ghcr.io/gpu-devbox/base-notebook:cuda-12.9-0123456",
    ]
    # The CPU image shares the base repository but not its `latest`.
    cpu = cli("tags", "cpu", "--sha", SHA, "--version", "2.0.0rc1", "--registry", "localhost")
    assert cpu.stdout.splitlines() == [
        "localhost/base-notebook:cpu",
        "localhost/base-notebook:cpu-latest",
        "localhost/base-notebook:cpu-0123456",
        "localhost/base-notebook:v2.0.0rc1-cpu",
    ]


def test_a_repository_of_cpu_images_only_gives_them_latest() -> None:
    text = default_catalog_text().replace(
        "reference: ghcr.io/gpu-devbox/base-notebook:cpu",
        "reference: ghcr.io/gpu-devbox/cpu-notebook:cpu",
    )
    builds = plan.plan(parse_catalog_text(text))
    cpu = plan.find(builds, "cpu")
    assert plan.tags(cpu, builds) == ["cpu", "cpu-latest", "latest"]


def test_adding_a_cuda_line_is_editing_the_catalog_only(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(WITH_13_2)
    matrix = json.loads(cli("matrix", "--catalog", str(path)).stdout)
    assert [e["cuda"] for e in matrix["include"]] == [
        "cpu", "12.9", "12.9", "13.0", "13.0", "13.0", "13.2"
    ]  # fmt: skip
    new = matrix["include"][-1]
    assert new["base_image"] == "nvidia/cuda:13.2.2-base-ubuntu24.04"
    # `latest` moves to the new line; the old one keeps its own tags.
    newest = cli("tags", "cuda13-2-pytorch", "--catalog", str(path), "--sha", SHA).stdout
    assert "ghcr.io/gpu-devbox/pytorch-notebook:latest" in newest.splitlines()
    old = cli("tags", "cuda13-pytorch", "--catalog", str(path), "--sha", SHA).stdout
    assert "ghcr.io/gpu-devbox/pytorch-notebook:latest" not in old.splitlines()
    document = json.loads(cli("bake", "--catalog", str(path), "--cuda", "13.2").stdout)
    assert document["group"]["default"]["targets"] == ["cuda13-2-pytorch"]
    args = document["target"]["cuda13-2-pytorch"]["args"]
    assert args["TORCH_INDEX"] == "https://download.pytorch.org/whl/cu132"
    assert args["CUDA_VERSION"] == "13.2.2"
    # The filtered bake file still knows which line is the newest.
    assert (
        "ghcr.io/gpu-devbox/pytorch-notebook:latest"
        in (document["target"]["cuda13-2-pytorch"]["tags"])
    )


def test_the_matrix_is_what_a_workflow_takes() -> None:
    result = cli("matrix", "--registry", "ghcr.io/a-fork")
    assert result.returncode == 0, result.stderr
    matrix = json.loads(result.stdout)
    assert list(matrix) == ["include"]
    assert [e["image"] for e in matrix["include"]] == [b.name for b in plan.plan(default_catalog())]
    first = matrix["include"][0]
    assert first == {
        "image": "cpu",
        "target": "base",
        "cuda": "cpu",
        "base_image": "ubuntu:24.04",
        "repository": "ghcr.io/a-fork/base-notebook",
        "reference": "ghcr.io/a-fork/base-notebook:cpu",
        "platforms": "linux/amd64,linux/arm64",
    }
    only = json.loads(cli("matrix", "--cuda", "12.9").stdout)
    assert {e["cuda"] for e in only["include"]} == {"12.9"}
    assert json.loads(cli("matrix", "--cuda", "cpu").stdout)["include"][0]["image"] == "cpu"


def dockerfile_args() -> dict[str, set[str]]:
    """The ARGs a build of each stage of images/Dockerfile sees (``""``: before the first FROM).

    A stage built ``FROM`` another stage sees that stage's ARGs too.
    """
    stages: dict[str, set[str]] = {"": set()}
    current = ""
    for line in (ROOT / "images/Dockerfile").read_text().splitlines():
        if match := re.match(r"FROM (\S+) AS (\S+)", line):
            parent, current = match.groups()
            stages[current] = set(stages.get(parent, set()))
        elif match := re.match(r"ARG (\w+)", line):
            stages[current].add(match.group(1))
    return stages


def test_the_bake_file_passes_exactly_the_dockerfiles_arguments() -> None:
    result = cli(
        "bake", "--sha", SHA, "--version", "1.2.0", "--created", "2026-11-22T11:00:00+01:00"
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    builds = plan.plan(default_catalog())
    assert document["group"]["default"]["targets"] == [b.name for b in builds]
    stages = dockerfile_args()
    for build in builds:
        target = document["target"][build.name]
        assert target["dockerfile"] == "images/Dockerfile"
        assert target["context"] == "."
        assert target["target"] in stages, f"images/Dockerfile has no stage {target['target']}"
        # Every argument is one the Dockerfile declares for that stage (or globally); none is
        # silently ignored, and PIP_CERT is the only one left to the person building.
        declared = stages[""] | stages[target["target"]]
        assert set(target["args"]) <= declared
        # PIP_CERT is left to the person building, TARGETARCH to BuildKit.
        assert declared - set(target["args"]) == {"PIP_CERT", "TARGETARCH"}
        assert target["tags"] == plan.references(build, builds, sha=SHA, version="1.2.0")
        args = target["args"]
        assert args["BASE_IMAGE"] == build.base.image
        assert args["IMAGE_REVISION"] == SHA
        assert args["IMAGE_VERSION"] == "1.2.0"
        assert args["IMAGE_CREATED"] == "2026-11-22T10:00:00Z"
        assert args["PYTHON_VERSION"] == "3.12"
        assert args["GPU_DEVICES"] == ("all" if build.cuda else "void")
    cuda13 = document["target"]["cuda13-pytorch"]["args"]
    assert (cuda13["CUDA_VERSION"], cuda13["CUDNN_FLAVOR"], cuda13["UBUNTU_VERSION"]) == (
        "13.0.2",
        "base",
        "24.04",
    )
    assert cuda13["BASE_IMAGE"] == "nvidia/cuda:13.0.2-base-ubuntu24.04"
    assert cuda13["FLAVORS"] == "base pytorch"
    assert (cuda13["WITH_ZSH"], cuda13["WITH_NSYS"]) == ("0", "0")
    assert "git" in cuda13["APT_PACKAGES"].split()
    assert document["target"]["cuda13-finetune"]["args"]["FLAVORS"] == "base pytorch finetune"
    cpu = document["target"]["cpu"]["args"]
    assert (cpu["BASE_IMAGE"], cpu["CUDA_VERSION"], cpu["CUDNN_FLAVOR"]) == ("ubuntu:24.04", "", "")
    assert (cpu["FLAVORS"], cpu["TORCH_INDEX"]) == ("base", "")


def test_build_options_and_platforms() -> None:
    zsh = json.loads(cli("bake", "--option", "zsh", "--cuda", "cpu").stdout)
    assert zsh["target"]["cpu"]["args"]["WITH_ZSH"] == "1"
    # Nsight Systems: CUDA images only, and amd64 only.
    refused = cli("bake", "--option", "nsys")
    one_line_error(refused, "--option nsys", "amd64 only", "--platform linux/amd64")
    nsys = json.loads(cli("bake", "--option", "nsys", "--platform", "linux/amd64").stdout)
    for name, target in nsys["target"].items():
        assert target["platforms"] == ["linux/amd64"]
        assert target["args"]["WITH_NSYS"] == ("0" if name == "cpu" else "1")
    # The CPU image alone may have nsys asked for on arm64: it never gets it.
    cpu = json.loads(cli("bake", "--option", "nsys", "--cuda", "cpu").stdout)
    assert cpu["target"]["cpu"]["args"]["WITH_NSYS"] == "0"
    arm = json.loads(cli("bake", "--platform", "linux/arm64").stdout)
    assert "cuda12-pytorch" not in arm["target"]  # built for amd64 only
    assert arm["target"]["cpu"]["platforms"] == ["linux/arm64"]


def test_the_dockerfile_has_a_stage_per_buildable_flavor() -> None:
    from gpu_devbox.catalog.model import BUILD_FLAVORS

    assert set(BUILD_FLAVORS) <= set(dockerfile_args())


def buildx() -> list[str] | None:
    """A command running `docker buildx`, when a buildx plugin is installed."""
    docker = shutil.which("docker")
    if docker is None:
        return None
    probe = subprocess.run(
        [docker, "buildx", "version"], capture_output=True, text=True, timeout=30, check=False
    )
    return [docker, "buildx"] if probe.returncode == 0 else None


def test_docker_buildx_bake_reads_the_bake_file(tmp_path: Path) -> None:
    command = buildx()
    if command is None:
        pytest.skip("no docker buildx plugin here (`docker buildx version` fails): not checked")
    path = tmp_path / "bake.json"
    path.write_text(cli("bake", "--sha", SHA, "--created", "2026-11-22T10:00:00Z").stdout)
    result = subprocess.run(
        [*command, "bake", "--file", str(path), "--print"],
        capture_output=True, text=True, timeout=60, check=False, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    resolved: dict[str, Any] = json.loads(result.stdout)
    ours = json.loads(path.read_text())
    assert set(resolved["target"]) == set(ours["target"])
    for name, target in resolved["target"].items():
        assert target["target"] == ours["target"][name]["target"]
        assert target["args"] == ours["target"][name]["args"]
        assert target["tags"] == ours["target"][name]["tags"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["tags", "cuda14-base", "--sha", SHA], ["no image named 'cuda14-base'", "cuda13-base"]),
        (["tags", "cpu", "--sha", "main"], ["--sha 'main'", "hex"]),
        (["tags", "cpu", "--sha", SHA, "--version", "beta 2"], ["--version 'beta 2'"]),
        (["tags", "cpu"], ["--sha"]),
        (["matrix", "--registry", "GHCR.io/Me"], ["--registry 'GHCR.io/Me'"]),
        (["matrix", "--cuda", "11.8"], ["no images for '11.8'", "12.9, 13.0"]),
        (["bake", "--created", "yesterday"], ["--created 'yesterday'"]),
        (["bake", "--created", "2026-11-22T10:00:00"], ["with a zone"]),
        (["matrix", "--catalog", "/nonexistent/catalog.yaml"], ["cannot read the catalog"]),
        (["frobnicate"], ["invalid choice"]),
        (["bake", "--option", "emacs"], ["--option 'emacs'", "zsh, nsys"]),
        (["bake", "--platform", "linux/s390x"], ["--platform 'linux/s390x'"]),
        ([], ["required"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], words: list[str]) -> None:
    one_line_error(cli(*args), *words)


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        (
            "reference: ghcr.io/gpu-devbox/pytorch-notebook:cuda-13.0",
            "reference: ghcr.io/gpu-devbox/pytorch-notebook:cuda13-pytorch",
            ["cuda13-pytorch", "'cuda13-pytorch' is not one the build pushes", "cuda-13.0"],
        ),
        (
            "reference: ghcr.io/gpu-devbox/pytorch-notebook:cuda-13.0",
            "reference: ghcr.io/gpu-devbox/base-notebook:cuda-13.0",
            ["would push the same tags", "base-notebook:cuda-13.0"],
        ),
        (
            "reference: ghcr.io/gpu-devbox/base-notebook:cpu",
            "reference: ghcr.io/gpu-devbox/base-notebook",
            ["must name a tag"],
        ),
        ("    build: true\n", "", []),  # (the catalog still builds others: no error)
        ("  bases:", "  bogus: 1\n  bases:", ["build.bogus", "not a known field"]),
    ],
)
def test_a_catalog_outside_the_tag_scheme_is_refused(
    tmp_path: Path, old: str, new: str, words: list[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(default_catalog_text().replace(old, new, 1))
    result = cli("matrix", "--catalog", str(path))
    if not words:
        assert result.returncode == 0, result.stderr
        return
    one_line_error(result, *words)


def test_a_catalog_that_builds_nothing_says_so(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(default_catalog_text().replace("    build: true\n", ""))
    one_line_error(cli("bake", "--catalog", str(path)), "builds no images", "build: true")


def test_a_commit_tag_is_an_allowed_reference_for_rollback() -> None:
    text = default_catalog_text().replace(
        "pytorch-notebook:cuda-13.0\n", "pytorch-notebook:cuda-13.0-1a2b3c4\n", 1
    )
    builds = plan.plan(parse_catalog_text(text))
    assert plan.find(builds, "cuda13-pytorch").reference.endswith(":cuda-13.0-1a2b3c4")
    bad = default_catalog_text().replace(
        "pytorch-notebook:cuda-13.0\n", "pytorch-notebook:cuda-13.0-main\n", 1
    )
    with pytest.raises(plan.ImagesError, match=r"cuda-13\.0-<sha7>"):
        plan.plan(parse_catalog_text(bad))


def test_a_release_tag_is_an_allowed_reference() -> None:
    text = default_catalog_text().replace(
        "pytorch-notebook:cuda-13.0", "pytorch-notebook:v1.2.0-cuda-13.0"
    )
    builds = plan.plan(parse_catalog_text(text))
    assert plan.find(builds, "cuda13-pytorch").reference.endswith(":v1.2.0-cuda-13.0")


def test_the_readme_table_is_what_the_generator_prints(tmp_path: Path) -> None:
    readme = (ROOT / "images/README.md").read_text()
    builds = plan.plan(default_catalog())
    assert docs.block(builds) in readme, (
        "images/README.md's driver table is stale: run "
        "`gpu-devbox images docs --update images/README.md`"
    )
    assert docs.matrix_block(builds) in readme
    assert cli("docs").stdout == docs.table(builds) + "\n" + docs.matrix(builds)
    # --update rewrites only the marked block.
    stale = tmp_path / "README.md"
    stale.write_text(f"# Title\n\n{docs.BEGIN}\nold table\n{docs.END}\n\nAfter.\n")
    result = cli("docs", "--update", str(stale))
    assert result.returncode == 0, result.stderr
    assert stale.read_text() == f"# Title\n\n{docs.block(builds)}\nAfter.\n"
    assert "is current" in cli("docs", "--update", str(stale)).stdout
    unmarked = tmp_path / "plain.md"
    unmarked.write_text("no markers\n")
    one_line_error(cli("docs", "--update", str(unmarked)), "no table markers")


def test_the_driver_table_rows_come_from_the_cuda_tables() -> None:
    table = docs.table(plan.plan(default_catalog()))
    rows = {line.split("|")[1].strip(" *"): line for line in table.splitlines() if "| **" in line}
    assert ">= 580.65.06" in rows["cuda13-pytorch"]  # CUDA 13.0 GA driver
    assert ">= 575.51.03" in rows["cuda12-base"]  # CUDA 12.9 GA driver
    assert ">= 525.60.13" in rows["cuda12-base"]  # the 12.x minor-version floor
    assert "CPU only" in rows["cpu"]
    assert "sm_50" in rows["cuda12-pytorch"]


def test_the_compatibility_matrix_rows() -> None:
    rows = {
        line.split("|")[1].strip(" *"): [cell.strip() for cell in line.split("|")[2:-1]]
        for line in docs.matrix(plan.plan(default_catalog())).splitlines()
        if "| **" in line
    }
    base, torch, vision, cupy, driver, platforms = rows["cuda13-pytorch"]
    assert base == "`nvidia/cuda:13.0.2-base-ubuntu24.04`"
    assert (torch, vision) == ("2.14.x (cu130)", "0.29.x")
    assert cupy == "`cupy-cuda13x[ctk]`"  # the -base image has no CUDA libraries of its own
    assert driver == "580.65.06"
    assert platforms == "amd64, arm64"
    assert rows["cuda12-base"][3] == "`cupy-cuda12x`"
    assert rows["cuda12-base"][4] == "575.51.03 (525.60.13 with MVC)"
    assert rows["cuda12-pytorch"][5] == "amd64"
    assert rows["cpu"][1:5] == ["-", "-", "-", "none"]


def test_bake_and_matrix_in_process_agree_with_the_cli() -> None:
    builds = plan.plan(default_catalog())
    assert json.loads(cli("matrix").stdout) == bake.matrix(builds)
    document = bake.bake(builds, sha=SHA, created="2026-11-22T10:00:00Z", package_version="9")
    assert document["target"]["cpu"]["args"]["IMAGE_VERSION"] == "9"
