"""The CI build matrix and the ``docker buildx bake`` file, generated from the build plan.

Both are plain JSON documents: the matrix is what a GitHub Actions job's
``strategy.matrix`` takes (``fromJSON``), the bake file is bake's JSON format (the same
schema as ``docker-bake.hcl``; ``docker buildx bake -f FILE --print`` resolves it).
"""

from __future__ import annotations

import datetime
from typing import Any

from gpu_devbox.images.plan import DOCKERFILE, ImageBuild, ImagesError, references

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


def build_args(
    build: ImageBuild,
    *,
    revision: str = "",
    version: str = "",
    created: str = "",
    source: str = SOURCE_URL,
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
    # Empty for the flavors without PyTorch: the Dockerfile then skips that step.
    args["TORCH_INDEX"] = build.torch_index or ""
    args["TORCH_VERSION"] = build.torch_version or ""
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
            ),
            "tags": references(build, whole, sha=sha, version=version),
        }
    return {"group": {"default": {"targets": list(targets)}}, "target": targets}
