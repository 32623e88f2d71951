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

and then checked against the images: each ``build: true`` image needs a base of its own CUDA
line, a flavor ``images/Dockerfile`` has a stage for, and (pytorch) a torch entry.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Protocol

from gpu_devbox.catalog.model import (
    BUILD_FLAVORS,
    CUDA_BASE_TAG,
    BuildBase,
    BuildSettings,
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
    )


def read_base(reader: Reader, raw: Mapping[str, Any], path: str) -> BuildBase:
    """One ``build.bases`` entry: a CUDA line (or null) and a base image of that line."""
    cuda = None if raw["cuda"] is None else str(raw["cuda"])  # YAML reads 13.0 as a number
    image = raw["image"]
    if cuda is None:
        return BuildBase(cuda=None, image=image)
    if not CUDA_LINE.match(cuda):
        raise reader.fail(f"{path}.cuda", f'{cuda!r} is not a CUDA line like "13.0"; quote it')
    _repository, tag, _digest = split_reference(image)
    match = CUDA_BASE_TAG.match(tag or "")
    if match is None or not match.group("release").startswith(f"{cuda}."):
        release = match.group("release") if match else tag
        raise reader.fail(f"{path}.image", f"{image!r} is CUDA {release}, not the line {cuda}")
    return BuildBase(cuda=cuda, image=image)


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
        if image.flavor == "pytorch" and not any(f.name == "torch" for f in image.frameworks):
            raise reader.fail(
                f"images[{i}].frameworks",
                "a pytorch image needs a torch entry (its version and CUDA pick the wheel)",
            )
        key = (image.cuda, image.flavor)
        if key in built:
            line = f"CUDA {image.cuda}" if image.cuda else "the CPU line"
            raise reader.fail(
                where, f"{built[key]!r} already builds the {image.flavor} flavor on {line}"
            )
        built[key] = image.name
