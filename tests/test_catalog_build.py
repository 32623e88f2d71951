"""The catalog's build section: which images gpu-devbox builds, on which base, with which Python."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest

from gpu_devbox.catalog import CatalogError, default_catalog, parse_catalog, schema
from gpu_devbox.catalog.model import BUILD_FLAVORS, BuildBase, split_reference

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
        base = catalog.build.base_for(image.cuda)
        assert base is not None, image.name
        if image.cuda:
            assert (base.release or "").startswith(image.cuda + "."), image.name
            assert base.variant == "cudnn-runtime"
        assert base.ubuntu == "24.04"


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
]


@pytest.mark.parametrize(("edit", "field", "words"), BAD)
def test_a_bad_build_field_is_named(edit: Any, field: str, words: str) -> None:
    doc = changed(edit)
    with pytest.raises(CatalogError) as caught:
        parse_catalog(doc, "c.yaml")
    assert caught.value.path == field
    assert words in caught.value.problem
