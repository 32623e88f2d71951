"""The catalog's ``build`` section: how gpu-devbox builds the images marked ``build: true``.

The schema says what each field may hold; read by the loader with the same located, one-line
errors as every other field::

    build:
      python: "3.12"
      platforms: [linux/amd64]
      torch_index: https://download.pytorch.org/whl    # optional; /cu130 or /cpu is appended
      bases:
        - {cuda: "13.0", image: nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04}
        - {cuda: null, image: "ubuntu:24.04"}
      flavors:                                         # optional: what each flavor adds
        base: {apt: [git, curl], packages: ["numpy==2.4.*"]}
        pytorch: {cuda_variant: base}

and then checked against the images: each ``build: true`` image needs a base of its own CUDA
line, a flavor ``images/Dockerfile`` has a stage for, and (pytorch, finetune) a torch entry;
each Python project is pinned by one flavor only, and torch, torchvision and torchaudio by the
images' frameworks entries, never by a flavor.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Protocol

from gpu_devbox.catalog.model import (
    BUILD_FLAVORS,
    CUDA_BASE_TAG,
    FLAVOR_PARENT,
    TORCH_INDEX_PACKAGES,
    BuildBase,
    BuildSettings,
    Flavor,
    Image,
    split_reference,
)

#: A CUDA line (``13.0``), as ``build.bases[].cuda`` writes it.
CUDA_LINE = re.compile(r"^\d{1,2}\.\d{1,2}$")


class Reader(Protocol):
    """The loader's field reader: what this module needs of it."""

    def fail(self, path: str, problem: str) -> Exception: ...


def read_build(reader: Reader, raw: Mapping[str, Any] | None, path: str) -> BuildSettings | None:
    """The ``build`` section (the schema accepted it), or ``None`` when the catalog has none."""
    if raw is None:
        return None
    bases: dict[str | None, BuildBase] = {}  # by CUDA line, in order
    for i, item in enumerate(raw["bases"]):
        base = read_base(reader, item, f"{path}.bases[{i}]")
        if base.cuda in bases:
            line = f"CUDA {base.cuda}" if base.cuda else "the CPU line (cuda: null)"
            raise reader.fail(f"{path}.bases[{i}].cuda", f"{line} already has a base")
        bases[base.cuda] = base
    return BuildSettings(
        python=raw["python"],
        bases=tuple(bases.values()),
        platforms=tuple(raw.get("platforms", ["linux/amd64"])),
        torch_index=str(raw.get("torch_index", BuildSettings.torch_index)).rstrip("/"),
        flavors=read_flavors(reader, raw.get("flavors") or {}, f"{path}.flavors"),
    )


def read_flavors(reader: Reader, raw: Mapping[str, Any], path: str) -> dict[str, Flavor]:
    """``build.flavors`` (the schema accepted it): per flavor, its pinned packages, apt
    packages and CUDA variant. A project may be pinned once, and never one PyTorch's wheel
    index provides: those are frameworks entries of the images."""
    out: dict[str, Flavor] = {}
    seen: dict[str, str] = {}  # project name -> the flavor that pins it
    for name in BUILD_FLAVORS:  # parents first, so a repeated pin names the earlier flavor
        if name not in raw:
            continue
        item = raw[name] or {}
        packages: tuple[str, ...] = tuple(item.get("packages") or ())
        for i, spec in enumerate(packages):
            at = f"{path}.{name}.packages[{i}]"
            project = _project(spec)
            if project in TORCH_INDEX_PACKAGES:
                raise reader.fail(
                    at,
                    f"{project} comes from PyTorch's wheel index: give it as a frameworks entry "
                    "of each image (name and version)",
                )
            if project in seen:
                raise reader.fail(at, f"{project} is already pinned by the {seen[project]} flavor")
            seen[project] = name
        out[name] = Flavor(name, packages, tuple(item.get("apt") or ()), item.get("cuda_variant"))
    return out


def _project(spec: str) -> str:
    """``Jupyterlab_Git[x]==0.55.*`` -> ``jupyterlab-git`` (PEP 503 normalised)."""
    name = spec.split("==", 1)[0].split("[", 1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def read_base(reader: Reader, raw: Mapping[str, Any], path: str) -> BuildBase:
    """One ``build.bases`` entry: a CUDA line (or null), a base image of that line and the
    platforms its images are built for (``None``: ``build.platforms``)."""
    cuda = None if raw["cuda"] is None else str(raw["cuda"])  # YAML reads 13.0 as a number
    image = raw["image"]
    platforms = None if raw.get("platforms") is None else tuple(raw["platforms"])
    if cuda is None:
        return BuildBase(cuda=None, image=image, platforms=platforms)
    if not CUDA_LINE.match(cuda):
        raise reader.fail(f"{path}.cuda", f'{cuda!r} is not a CUDA line like "13.0"; quote it')
    _repository, tag, _digest = split_reference(image)
    match = CUDA_BASE_TAG.match(tag or "")
    if match is None or not match.group("release").startswith(f"{cuda}."):
        release = match.group("release") if match else tag
        raise reader.fail(f"{path}.image", f"{image!r} is CUDA {release}, not the line {cuda}")
    return BuildBase(cuda=cuda, image=image, platforms=platforms)


def check_builds(reader: Reader, images: tuple[Image, ...], build: BuildSettings | None) -> None:
    """Every ``build: true`` image has a base and a Dockerfile stage, once per line and flavor."""
    built: dict[tuple[str | None, str], str] = {}
    lines = {base.cuda for base in build.bases} if build is not None else set()
    for i, image in enumerate(images):
        if not image.build:
            continue
        where = f"images[{i}].build"
        if build is None:
            raise reader.fail(where, "needs a top-level build section with its base image")
        if image.flavor not in BUILD_FLAVORS:
            raise reader.fail(
                where,
                f"images/Dockerfile cannot build the flavor {image.flavor!r}; "
                f"it builds {', '.join(BUILD_FLAVORS)}",
            )
        if image.cuda not in lines:
            line = f"CUDA {image.cuda}" if image.cuda else "the CPU line (cuda: null)"
            have = ", ".join(b.cuda or "null" for b in build.bases)
            raise reader.fail(where, f"build.bases has no base for {line}; it has: {have}")
        if image.flavor != "base" and not any(f.name == "torch" for f in image.frameworks):
            raise reader.fail(
                f"images[{i}].frameworks",
                f"a {image.flavor} image needs a torch entry (its version and CUDA pick the wheel)",
            )
        for j, framework in enumerate(image.frameworks):
            if framework.name in TORCH_INDEX_PACKAGES and not framework.version:
                raise reader.fail(
                    f"images[{i}].frameworks[{j}].version",
                    f'a built image pins {framework.name}: give its version, like "2.14"',
                )
        if image.flavor == "base" and any(f.name in TORCH_INDEX_PACKAGES for f in image.frameworks):
            raise reader.fail(
                f"images[{i}].frameworks",
                "the base flavor installs no PyTorch; use flavor: pytorch (or finetune)",
            )
        key = (image.cuda, image.flavor)
        if key in built:
            line = f"CUDA {image.cuda}" if image.cuda else "the CPU line"
            raise reader.fail(
                where, f"{built[key]!r} already builds the {image.flavor} flavor on {line}"
            )
        built[key] = image.name
    assert FLAVOR_PARENT.keys() == set(BUILD_FLAVORS)
