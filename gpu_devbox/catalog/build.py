"""The catalog's ``build`` section: how gpu-devbox builds the images marked ``build: true``.

Read by the loader with the same located, one-line errors as every other field::

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
line, a flavor ``images/Dockerfile`` has a stage for, and (pytorch, finetune) a torch entry.
"""

from __future__ import annotations

from typing import Any, Protocol

from gpu_devbox.catalog.model import (
    BUILD_FLAVORS,
    CUDA_BASE_TAG,
    CUDA_VARIANTS,
    FLAVOR_PARENT,
    TORCH_INDEX_PACKAGES,
    UBUNTU_TAG,
    BuildBase,
    BuildSettings,
    Flavor,
    Image,
    split_reference,
)

_CUDA_LINE = r"^\d{1,2}\.\d{1,2}$"
_PYTHON_VERSION = r"^3\.\d{1,2}$"
PLATFORMS = ("linux/amd64", "linux/arm64")
#: A pinned requirement: a project name, optional extras, ``==`` and a version that may end in
#: ``.*`` (``numpy==2.4.*``, ``jupyterlab-git==0.55.0``). The lock fixes the exact release.
PINNED = (
    r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?(\[[A-Za-z0-9._,-]+\])?==\d[0-9A-Za-z.+!-]*(\.\*)?$"
)
#: A Debian/Ubuntu package name.
APT_PACKAGE = r"^[a-z0-9][a-z0-9+.-]+$"


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
        value, path, ("python", "platforms", "torch_index", "bases", "flavors"), ("python", "bases")
    )
    python = raw["python"]
    if isinstance(python, float):
        raise reader.fail(
            f"{path}.python", f'write the version in quotes, like "3.12" (not {python})'
        )
    python = reader.string(
        python, f"{path}.python", pattern=_PYTHON_VERSION, hint='a Python version like "3.12"'
    )
    platforms = read_platforms(reader, raw.get("platforms", ["linux/amd64"]), f"{path}.platforms")
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
        flavors=read_flavors(reader, raw.get("flavors"), f"{path}.flavors"),
    )


def read_flavors(reader: Reader, value: Any, path: str) -> dict[str, Flavor]:
    """``build.flavors``: per flavor, its pinned packages, apt packages and CUDA variant."""
    if value is None:
        return {}
    raw = reader.mapping(value, path, BUILD_FLAVORS)
    out: dict[str, Flavor] = {}
    seen: dict[str, str] = {}  # project name -> the flavor that pins it
    for name in BUILD_FLAVORS:  # parents first, so a repeated pin names the earlier flavor
        if name not in raw:
            continue
        where = f"{path}.{name}"
        item = reader.mapping(raw[name] or {}, where, ("packages", "apt", "cuda_variant"))
        packages: list[str] = []
        for i, spec in enumerate(
            reader.sequence(item.get("packages") or [], f"{where}.packages", "pinned packages")
        ):
            at = f"{where}.packages[{i}]"
            text = reader.string(
                spec, at, pattern=PINNED, hint="pin each package like numpy==2.4.* (== only)"
            )
            project = _project(text)
            if project in TORCH_INDEX_PACKAGES:
                raise reader.fail(
                    at,
                    f"{project} comes from PyTorch's wheel index: give it as a frameworks entry "
                    "of each image (name and version)",
                )
            if project in seen:
                raise reader.fail(at, f"{project} is already pinned by the {seen[project]} flavor")
            seen[project] = name
            packages.append(text)
        apt: list[str] = []
        for i, pkg in enumerate(
            reader.sequence(item.get("apt") or [], f"{where}.apt", "Debian package names")
        ):
            text = reader.string(
                pkg, f"{where}.apt[{i}]", pattern=APT_PACKAGE, hint="a package name"
            )
            if text in apt:
                raise reader.fail(f"{where}.apt[{i}]", f"{text!r} is listed twice")
            apt.append(text)
        variant = item.get("cuda_variant")
        if variant is not None and variant not in CUDA_VARIANTS:
            raise reader.fail(
                f"{where}.cuda_variant",
                f"{variant!r} is not an nvidia/cuda flavor; use one of {', '.join(CUDA_VARIANTS)}",
            )
        out[name] = Flavor(name, tuple(packages), tuple(apt), variant)
    return out


def _project(spec: str) -> str:
    """``Jupyterlab_Git[x]==0.55.*`` -> ``jupyterlab-git`` (PEP 503 normalised)."""
    name = spec.split("==", 1)[0].split("[", 1)[0]
    return "-".join(part for part in name.lower().replace("_", "-").replace(".", "-").split("-"))


def read_platforms(reader: Reader, value: Any, path: str) -> list[str]:
    """A non-empty list of distinct platforms (``linux/amd64``, ``linux/arm64``)."""
    platforms: list[str] = []
    for i, item in enumerate(reader.sequence(value, path, "platforms")):
        where = f"{path}[{i}]"
        if item not in PLATFORMS:
            raise reader.fail(where, f"{item!r} is not allowed; use {' or '.join(PLATFORMS)}")
        if item in platforms:
            raise reader.fail(where, f"{item!r} is listed twice")
        platforms.append(item)
    if not platforms:
        raise reader.fail(path, "needs at least one platform")
    return platforms


def read_base(reader: Reader, value: Any, path: str) -> BuildBase:
    """One ``build.bases`` entry: a CUDA line (or null), its base image and its platforms."""
    raw = reader.mapping(value, path, ("cuda", "image", "platforms"), ("image",))
    platforms = (
        None
        if raw.get("platforms") is None
        else tuple(read_platforms(reader, raw["platforms"], f"{path}.platforms"))
    )
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
        return BuildBase(cuda=None, image=image, platforms=platforms)
    match = CUDA_BASE_TAG.match(tag or "")
    if match is None:
        raise reader.fail(
            where,
            f"{image!r} is not allowed: use an Ubuntu-based nvidia/cuda tag with the full "
            "release, like nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04",
        )
    if not match.group("release").startswith(f"{cuda}."):
        raise reader.fail(where, f"{image!r} is CUDA {match.group('release')}, not the line {cuda}")
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
