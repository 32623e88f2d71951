"""The catalog's ``build`` section: how gpu-devbox builds the images marked ``build: true``.

Read by the loader with the same located, one-line errors as every other field::

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

from typing import Any, Protocol

from gpu_devbox.catalog.model import (
    BUILD_FLAVORS,
    CUDA_BASE_TAG,
    UBUNTU_TAG,
    BuildBase,
    BuildSettings,
    Image,
    split_reference,
)

_CUDA_LINE = r"^\d{1,2}\.\d{1,2}$"
_PYTHON_VERSION = r"^3\.\d{1,2}$"
PLATFORMS = ("linux/amd64", "linux/arm64")


class Reader(Protocol):
    """The loader's field reader: what this module needs of it."""

    def fail(self, path: str, problem: str) -> Exception: ...

    def mapping(
        self, value: Any, path: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()
    ) -> dict[str, Any]: ...

    def sequence(self, value: Any, path: str, what: str) -> list[Any]: ...

    def string(
        self, value: Any, path: str, *, pattern: str | None = None, hint: str = ""
    ) -> str: ...


def read_build(reader: Reader, value: Any, path: str) -> BuildSettings | None:
    """The ``build`` section, or ``None`` when the catalog has none."""
    if value is None:
        return None
    raw = reader.mapping(
        value, path, ("python", "platforms", "torch_index", "bases"), ("python", "bases")
    )
    python = raw["python"]
    if isinstance(python, float):
        raise reader.fail(
            f"{path}.python", f'write the version in quotes, like "3.12" (not {python})'
        )
    python = reader.string(
        python, f"{path}.python", pattern=_PYTHON_VERSION, hint='a Python version like "3.12"'
    )
    platforms: list[str] = []
    raw_platforms = raw.get("platforms", ["linux/amd64"])
    for i, item in enumerate(reader.sequence(raw_platforms, f"{path}.platforms", "platforms")):
        where = f"{path}.platforms[{i}]"
        if item not in PLATFORMS:
            raise reader.fail(where, f"{item!r} is not allowed; use {' or '.join(PLATFORMS)}")
        if item in platforms:
            raise reader.fail(where, f"{item!r} is listed twice")
        platforms.append(item)
    if not platforms:
        raise reader.fail(f"{path}.platforms", "needs at least one platform")
    torch_index = reader.string(
        raw.get("torch_index", BuildSettings.torch_index),
        f"{path}.torch_index",
        pattern=r"^https?://\S+$",
        hint="(an http(s) URL of a PyTorch wheel index)",
    ).rstrip("/")
    bases: dict[str | None, BuildBase] = {}  # by CUDA line, in order
    for i, item in enumerate(reader.sequence(raw["bases"], f"{path}.bases", "base images")):
        base = read_base(reader, item, f"{path}.bases[{i}]")
        if base.cuda in bases:
            line = f"CUDA {base.cuda}" if base.cuda else "the CPU line (cuda: null)"
            raise reader.fail(f"{path}.bases[{i}].cuda", f"{line} already has a base")
        bases[base.cuda] = base
    if not bases:
        raise reader.fail(f"{path}.bases", "needs at least one base image")
    return BuildSettings(
        python=python,
        bases=tuple(bases.values()),
        platforms=tuple(platforms),
        torch_index=torch_index,
    )


def read_base(reader: Reader, value: Any, path: str) -> BuildBase:
    """One ``build.bases`` entry: a CUDA line (or null) and its base image."""
    raw = reader.mapping(value, path, ("cuda", "image"), ("image",))
    if "cuda" not in raw:
        raise reader.fail(path, "needs the field 'cuda' (a CUDA line like \"13.0\", or null)")
    cuda = raw["cuda"]
    if isinstance(cuda, int | float) and not isinstance(cuda, bool):
        cuda = str(cuda)  # YAML reads 13.0 as a float
    if cuda is not None:
        cuda = reader.string(
            cuda, f"{path}.cuda", pattern=_CUDA_LINE, hint='a CUDA line like "13.0", or null'
        )
    image = reader.string(raw["image"], f"{path}.image")
    repository, tag, _digest = split_reference(image)
    where = f"{path}.image"
    if any(ch.isspace() for ch in image) or not repository:
        raise reader.fail(where, "must be an image reference without spaces")
    if cuda is None:
        if repository.rsplit("/", 1)[-1] != "ubuntu" or not UBUNTU_TAG.match(tag or ""):
            raise reader.fail(
                where,
                f"{image!r} is not allowed: the CPU line builds on an Ubuntu image like "
                "ubuntu:24.04 (the Dockerfile uses apt)",
            )
        return BuildBase(cuda=None, image=image)
    match = CUDA_BASE_TAG.match(tag or "")
    if match is None:
        raise reader.fail(
            where,
            f"{image!r} is not allowed: use an Ubuntu-based nvidia/cuda tag with the full "
            "release, like nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04",
        )
    if not match.group("release").startswith(f"{cuda}."):
        raise reader.fail(where, f"{image!r} is CUDA {match.group('release')}, not the line {cuda}")
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
