"""The catalog's build section: which images gpu-devbox builds, on which base, with which Python."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest

from gpu_devbox.catalog import CatalogError, default_catalog, parse_catalog, schema
from gpu_devbox.catalog.model import BUILD_FLAVORS, BuildBase, Flavor, split_reference

VALIDATOR = jsonschema.Draft202012Validator(schema())

DOC: dict[str, Any] = {
    "images": [
        {"name": "cpu", "reference": "r/base:cpu", "cuda": None, "build": True},
        {"name": "c13", "reference": "r/base:cuda-13.0", "cuda": "13.0", "build": True},
        {
            "name": "c13-pt",
            "reference": "r/pytorch:cuda-13.0",
            "cuda": "13.0",
            "flavor": "pytorch",
            "frameworks": [{"name": "torch", "version": "2.14", "cuda": "13.0"}],
            "build": True,
        },
        {"name": "outside", "reference": "quay.io/jupyter/scipy-notebook:latest"},
    ],
    "profiles": [{"slug": "cpu", "display_name": "CPU", "images": ["cpu", "c13", "outside"]}],
    "build": {
        "python": "3.12",
        "bases": [
            {"cuda": "13.0", "image": "nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04"},
            {"cuda": None, "image": "ubuntu:24.04"},
        ],
    },
}


def changed(edit: Any) -> dict[str, Any]:
    doc = copy.deepcopy(DOC)
    edit(doc)
    return doc


def test_the_shipped_catalog_builds_every_image_on_a_base_of_its_line() -> None:
    catalog = default_catalog()
    assert catalog.build is not None
    built = [image for image in catalog.images if image.build]
    assert {image.flavor for image in built} == set(BUILD_FLAVORS)
    for image in built:
        base = catalog.build.base_for(image.cuda, image.flavor)
        assert base is not None, image.name
        if image.cuda:
            assert (base.release or "").startswith(image.cuda + "."), image.name
            # No CUDA library twice: PyTorch's wheels carry CUDA, cuDNN and NCCL, so its
            # flavors start from the -base image; the base flavor gets the runtime libraries
            # (for CuPy, Numba and your own code) and no cuDNN.
            assert base.variant == ("runtime" if image.flavor == "base" else "base"), image.name
        assert base.ubuntu == "24.04"
        assert image.size_budget is not None, image.name


def test_the_shipped_flavors_stack_the_stack_people_expect() -> None:
    build = default_catalog().build
    assert build is not None
    base, pytorch, finetune = build.lineage("finetune")
    names = {spec.split("==")[0] for spec in base.packages}
    assert {"numpy", "pandas", "scipy", "matplotlib", "ipywidgets"} <= names
    assert {"jupyterlab-git", "nbgitpuller", "jupyter-kernel-gateway", "boto3"} <= names
    assert {"git", "curl", "nano"} <= set(base.apt)
    assert pytorch.cuda_variant == finetune.cuda_variant == "base"
    tuned = {spec.split("==")[0] for spec in finetune.packages}
    assert tuned == {"transformers", "accelerate", "peft", "trl", "bitsandbytes", "datasets",
                     "unsloth"}  # fmt: skip
    # Every pin names a version; torch and friends come from the images' frameworks entries.
    assert all("==" in spec for f in (base, pytorch, finetune) for spec in f.packages)
    catalog = default_catalog()
    for image in catalog.images:
        if image.build and image.flavor != "base":
            assert {f.name for f in image.frameworks} == {"torch", "torchvision", "torchaudio"}


def test_the_fine_tuning_profile_offers_the_fine_tuning_image() -> None:
    catalog = default_catalog()
    profile = catalog.profile("finetune")
    assert profile.default_image == "cuda13-finetune"
    assert catalog.image("cuda13-finetune").flavor == "finetune"
    assert (profile.gpu.count, profile.gpu.max_count) == (1, 2)
    assert profile.gpu.min_memory is not None
    assert profile.gpu.min_memory >= 40 * 2**30
    default = catalog.profile("gpu-1")
    assert profile.cpu.limit
    assert default.cpu.limit
    assert profile.cpu.limit > default.cpu.limit
    assert profile.memory.limit
    assert default.memory.limit
    assert profile.memory.limit > default.memory.limit
    assert profile.shm
    assert default.shm
    assert profile.shm > default.shm


def test_a_line_may_narrow_the_platforms() -> None:
    build = default_catalog().build
    assert build is not None
    assert set(build.platforms) == {"linux/amd64", "linux/arm64"}
    cu12 = build.base_for("12.9")
    assert cu12 is not None
    assert cu12.platforms == ("linux/amd64",)


def test_with_variant_keeps_the_release_and_drops_a_digest() -> None:
    base = BuildBase(
        "13.0", "nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04@sha256:ab", ("linux/amd64",)
    )
    other = base.with_variant("base")
    assert other == BuildBase("13.0", "nvidia/cuda:13.0.2-base-ubuntu24.04", ("linux/amd64",))
    assert base.with_variant(None) is base
    assert BuildBase(None, "ubuntu:24.04").with_variant("base").image == "ubuntu:24.04"


def test_a_build_section_is_read_with_its_defaults() -> None:
    VALIDATOR.validate(DOC)
    catalog = parse_catalog(DOC)
    assert catalog.build is not None
    assert catalog.build.python == "3.12"
    assert catalog.build.platforms == ("linux/amd64",)
    assert catalog.build.torch_index == "https://download.pytorch.org/whl"
    assert [i.build for i in catalog.images] == [True, True, True, False]
    base = catalog.build.base_for("13.0")
    assert base == BuildBase("13.0", "nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04")
    assert (base.release, base.variant, base.ubuntu) == ("13.0.2", "cudnn-runtime", "24.04")
    cpu = catalog.build.base_for(None)
    assert cpu is not None
    assert (cpu.release, cpu.variant, cpu.ubuntu) == (None, None, "24.04")
    assert catalog.build.base_for("12.6") is None
    # No flavors section: every flavor adds nothing of its own.
    assert catalog.build.flavor("pytorch") == Flavor("pytorch")
    assert catalog.build.base_for("13.0", "pytorch") == base


def test_flavors_are_read_in_order_with_their_variants() -> None:
    doc = changed(
        _set(
            ("build", "flavors"),
            {
                "pytorch": {"cuda_variant": "base", "packages": ["einops==0.8.*"]},
                "base": {"apt": ["git"], "packages": ["numpy==2.5.*", "Jupyterlab_Git[x]==0.55.0"]},
            },
        )
    )
    VALIDATOR.validate(doc)
    build = parse_catalog(doc).build
    assert build is not None
    assert build.flavor("base") == Flavor(
        "base", ("numpy==2.5.*", "Jupyterlab_Git[x]==0.55.0"), ("git",), None
    )
    assert [f.name for f in build.lineage("finetune")] == ["base", "pytorch", "finetune"]
    assert build.base_for("13.0", "pytorch") == BuildBase(
        "13.0", "nvidia/cuda:13.0.2-base-ubuntu24.04"
    )
    assert build.base_for("13.0", "base") == BuildBase(
        "13.0", "nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04"
    )


def test_a_catalog_without_a_build_section_builds_nothing() -> None:
    def edit(doc: dict[str, Any]) -> None:
        del doc["build"]
        for image in doc["images"]:
            image.pop("build", None)

    doc = changed(edit)
    VALIDATOR.validate(doc)
    assert parse_catalog(doc).build is None


@pytest.mark.parametrize(
    ("ref", "parts"),
    [
        ("nvidia/cuda:13.0.2-base-ubuntu24.04", ("nvidia/cuda", "13.0.2-base-ubuntu24.04", None)),
        ("localhost:5000/a/b", ("localhost:5000/a/b", None, None)),
        ("ubuntu:24.04@sha256:ab12", ("ubuntu", "24.04", "sha256:ab12")),
        ("ghcr.io/o/nb:cuda-13.0", ("ghcr.io/o/nb", "cuda-13.0", None)),
    ],
)
def test_split_reference(ref: str, parts: tuple[str, str | None, str | None]) -> None:
    assert split_reference(ref) == parts


def _set(path: tuple[Any, ...], value: Any) -> Any:
    def edit(doc: dict[str, Any]) -> None:
        target: Any = doc
        for key in path[:-1]:
            target = target[key]
        if value is ...:
            del target[path[-1]]
        else:
            target[path[-1]] = value

    return edit


BAD = [
    # (edit, field the loader names, words of its message)
    (_set(("build", "python"), 3.12), "build.python", "in quotes"),
    (_set(("build", "python"), "python3"), "build.python", '"3.12"'),
    (_set(("build", "platforms"), ["linux/s390x"]), "build.platforms[0]", "linux/amd64"),
    (_set(("build", "platforms"), []), "build.platforms", "at least one"),
    (_set(("build", "torch_index"), "pypi"), "build.torch_index", "URL"),
    (_set(("build", "bases"), []), "build.bases", "at least one"),
    (_set(("build", "colour"), "red"), "build.colour", "not a known field"),
    (_set(("build", "bases", 0, "cuda"), ...), "build.bases[0]", "'cuda'"),
    (
        _set(("build", "bases", 0, "image"), "nvidia/cuda:13.0-runtime"),
        "build.bases[0].image",
        "full release",
    ),
    (
        _set(("build", "bases", 0, "image"), "nvidia/cuda:13.0.2-cudnn-runtime-ubi9"),
        "build.bases[0].image",
        "Ubuntu-based",
    ),
    (
        _set(("build", "bases", 0, "image"), "nvidia/cuda:12.9.1-cudnn-runtime-ubuntu24.04"),
        "build.bases[0].image",
        "not the line 13.0",
    ),
    (_set(("build", "bases", 0, "cuda"), "13.0.2"), "build.bases[0].cuda", "CUDA line"),
    (
        _set(("build", "bases", 1, "image"), "debian:bookworm"),
        "build.bases[1].image",
        "ubuntu:24.04",
    ),
    (
        _set(("build", "bases", 1), dict(DOC["build"]["bases"][0])),
        "build.bases[1].cuda",
        "already has a base",
    ),
    (_set(("images", 0, "build"), "yes"), "images[0].build", "true or false"),
    (_set(("build",), ...), "images[0].build", "top-level build section"),
    (
        _set(("images", 1, "flavor"), "tensorflow"),
        "images[1].build",
        "cannot build the flavor 'tensorflow'",
    ),
    (_set(("images", 1, "cuda"), "12.6"), "images[1].build", "no base for CUDA 12.6"),
    (_set(("images", 2, "frameworks"), []), "images[2].frameworks", "torch entry"),
    (_set(("images", 1, "flavor"), "pytorch"), "images[1].frameworks", "torch entry"),
    (
        _set(("images", 3), {"name": "x", "reference": "r/x:1", "cuda": None, "build": True}),
        "images[3].build",
        "'cpu' already builds the base flavor on the CPU line",
    ),
    (_set(("build", "flavors"), {"r": {}}), "build.flavors.r", "not a known field"),
    (
        _set(("build", "flavors"), {"base": {"packages": ["numpy>=2"]}}),
        "build.flavors.base.packages[0]",
        "pin each package like numpy==2.4.*",
    ),
    (
        _set(("build", "flavors"), {"base": {"packages": ["numpy"]}}),
        "build.flavors.base.packages[0]",
        "== only",
    ),
    (
        _set(("build", "flavors"), {"pytorch": {"packages": ["torch==2.14.*"]}}),
        "build.flavors.pytorch.packages[0]",
        "frameworks entry",
    ),
    (
        _set(
            ("build", "flavors"),
            {"base": {"packages": ["numpy==2.5.*"]}, "finetune": {"packages": ["NumPy==2.4.*"]}},
        ),
        "build.flavors.finetune.packages[0]",
        "already pinned by the base flavor",
    ),
    (
        _set(
            ("build", "flavors"),
            {
                "base": {"packages": ["Jupyter__Core==5.9.*"]},
                "pytorch": {"packages": ["jupyter-core==5.8"]},
            },
        ),
        "build.flavors.pytorch.packages[0]",
        "jupyter-core is already pinned by the base flavor",
    ),
    (
        _set(("build", "flavors"), {"base": {"apt": ["git", "git"]}}),
        "build.flavors.base.apt[1]",
        "listed twice",
    ),
    (
        _set(("build", "flavors"), {"base": {"apt": ["Git Tools"]}}),
        "build.flavors.base.apt[0]",
        "a package name",
    ),
    (
        _set(("build", "flavors"), {"pytorch": {"cuda_variant": "tiny"}}),
        "build.flavors.pytorch.cuda_variant",
        "not an nvidia/cuda flavor",
    ),
    (
        _set(("build", "bases", 0, "platforms"), ["linux/riscv64"]),
        "build.bases[0].platforms[0]",
        "linux/amd64",
    ),
    (_set(("images", 0, "size_budget"), "huge"), "images[0].size_budget", "16Gi"),
    (
        _set(("images", 2, "frameworks", 0, "version"), ...),
        "images[2].frameworks[0].version",
        "give its version",
    ),
    (
        _set(("images", 1, "frameworks"), [{"name": "torch", "version": "2.14"}]),
        "images[1].frameworks",
        "the base flavor installs no PyTorch",
    ),
]


@pytest.mark.parametrize(("edit", "field", "words"), BAD)
def test_a_bad_build_field_is_named(edit: Any, field: str, words: str) -> None:
    doc = changed(edit)
    with pytest.raises(CatalogError) as caught:
        parse_catalog(doc, "c.yaml")
    assert caught.value.path == field
    assert words in caught.value.problem
