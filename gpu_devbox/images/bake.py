"""The CI build matrix and the ``docker buildx bake`` file, generated from the build plan.

Both are plain JSON documents: the matrix is what a GitHub Actions job's
``strategy.matrix`` takes (``fromJSON``), the bake file is bake's JSON format (the same
schema as ``docker-bake.hcl``; ``docker buildx bake -f FILE --print`` resolves it).
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from gpu_devbox.images.plan import DOCKERFILE, OPTIONS, ImageBuild, ImagesError, references

#: Where the images' OCI ``source`` label points.
SOURCE_URL = "https://github.com/gpu-devbox/gpu-devbox"


def check_created(text: str) -> str:
    """An RFC 3339 time for the OCI ``created`` label, normalised to UTC (``...Z``)."""
    try:
        moment = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ImagesError(f"--created {text!r} is not a time with a zone like 2026-11-22T10:00:00Z")
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def matrix(builds: tuple[ImageBuild, ...]) -> dict[str, Any]:
    """``{"include": [...]}``: one entry per image, for ``strategy.matrix``."""
    return {
        "include": [
            {
                "image": build.name,
                "target": build.target,
                "cuda": build.cuda or "cpu",
                "base_image": build.base.image,
                "repository": build.repository,
                "reference": build.reference,
                "platforms": ",".join(build.platforms),
            }
            for build in builds
        ]
    }


def check_options(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``--option`` values: known names, each once."""
    out: list[str] = []
    for name in names:
        if name not in OPTIONS:
            raise ImagesError(
                f"--option {name!r} is not a build option; options: {', '.join(OPTIONS)}"
            )
        if name not in out:
            out.append(name)
    return tuple(out)


def restrict(
    builds: tuple[ImageBuild, ...], platforms: list[str] | None, options: tuple[str, ...]
) -> tuple[ImageBuild, ...]:
    """The builds for ``--platform`` (a subset of each image's platforms), and a refusal of an
    option a platform cannot have: Nsight Systems is amd64 only.
    """
    out = []
    for build in builds:
        chosen = build.platforms
        if platforms:
            unknown = [p for p in platforms if p not in ("linux/amd64", "linux/arm64")]
            if unknown:
                raise ImagesError(f"--platform {unknown[0]!r} is not linux/amd64 or linux/arm64")
            chosen = tuple(p for p in build.platforms if p in platforms)
            if not chosen:
                continue  # this image is not built for the platforms asked
        if "nsys" in options and build.cuda and "linux/arm64" in chosen:
            raise ImagesError(
                f"--option nsys: the Nsight Systems CLI is amd64 only, and {build.name} is built "
                "for linux/arm64; add --platform linux/amd64"
            )
        out.append(dataclasses.replace(build, platforms=chosen))
    if not out:
        raise ImagesError(f"no image of the catalog is built for {', '.join(platforms or [])}")
    return tuple(out)


def build_args(
    build: ImageBuild,
    *,
    revision: str = "",
    version: str = "",
    created: str = "",
    source: str = SOURCE_URL,
    options: tuple[str, ...] = (),
) -> dict[str, str]:
    """The Dockerfile's ``ARG`` values for one image (every ARG it declares, no more)."""
    args = {
        "BASE_IMAGE": build.base.image,
        "CUDA_VERSION": build.base.release or "",
        "CUDNN_FLAVOR": build.base.variant or "",
        "UBUNTU_VERSION": build.base.ubuntu,
        "PYTHON_VERSION": build.python,
        # A CPU image asks the NVIDIA runtime for no GPUs even on a GPU node.
        "GPU_DEVICES": "all" if build.cuda else "void",
        "IMAGE_NAME": build.name,
        "IMAGE_DESCRIPTION": build.image.description or build.image.label,
        "IMAGE_SOURCE": source,
        "IMAGE_REVISION": revision,
        "IMAGE_VERSION": version,
        "IMAGE_CREATED": created,
    }
    # The flavors the image stacks up ("base pytorch"): the lock sections it installs.
    args["FLAVORS"] = " ".join(build.flavors)
    args["APT_PACKAGES"] = " ".join(build.apt)
    # Empty for the flavors without PyTorch.
    args["TORCH_INDEX"] = build.torch_index or ""
    args["WITH_ZSH"] = "1" if "zsh" in options else "0"
    # Nsight Systems is for CUDA images only (restrict() refuses it on arm64).
    args["WITH_NSYS"] = "1" if "nsys" in options and build.cuda else "0"
    return args


def bake(
    builds: tuple[ImageBuild, ...],
    everything: tuple[ImageBuild, ...] | None = None,
    *,
    sha: str | None = None,
    version: str | None = None,
    package_version: str = "",
    created: str | None = None,
    context: str = ".",
    options: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The bake file: a ``default`` group and one target per image (named like the image).

    ``everything`` is the whole plan when ``builds`` is a part of it (``latest`` goes to the
    newest CUDA line of the whole plan). ``version`` (a release) or else ``package_version``
    becomes the OCI version label; ``created`` defaults to now (UTC).
    """
    whole = everything if everything is not None else builds
    stamp = created or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    targets: dict[str, Any] = {}
    for build in builds:
        targets[build.name] = {
            "context": context,
            "dockerfile": DOCKERFILE,
            "target": build.target,
            "platforms": list(build.platforms),
            "args": build_args(
                build,
                revision=sha or "",
                version=version or package_version,
                created=stamp,
                options=options,
            ),
            "tags": references(build, whole, sha=sha, version=version),
        }
    return {"group": {"default": {"targets": list(targets)}}, "target": targets}
