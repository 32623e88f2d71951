"""Which images to build, on which base, in which repository: the build plan of a catalog.

Pure: a :class:`~gpu_devbox.catalog.Catalog` in, one :class:`ImageBuild` per ``build: true``
image out. The matrix, the tags, the bake file, the audit and the README table are all made
from this plan, so nothing repeats the catalog's CUDA lines by hand.

The tag scheme (one repository per flavor, one tag family per CUDA line):

``cuda-X.Y`` and ``cuda-X.Y-latest``
    The newest build of the CUDA X.Y line (moving).
``cuda-X.Y-<sha7>``
    The build of one commit (immutable).
``vV-cuda-X.Y``
    The build of release V (immutable).
``latest``
    The newest CUDA line of the repository (moving); a repository without CUDA images gives
    it to its CPU image.

The CPU image uses ``cpu`` in place of ``cuda-X.Y``: ``cpu``, ``cpu-latest``, ``cpu-<sha7>``,
``vV-cpu``; it never takes ``latest`` from a CUDA line.
"""

from __future__ import annotations

import dataclasses
import re

from gpu_devbox.catalog import Catalog, Image, cuda_key
from gpu_devbox.catalog.model import TORCH_INDEX_PACKAGES, BuildBase, split_reference

#: Where the Dockerfile lives, relative to the build context (the repository root).
DOCKERFILE = "images/Dockerfile"
#: Where each image's lock lives (``images/locks/<image>.txt``), relative to the context.
LOCKS = "images/locks"
#: Build options ``gpu-devbox images bake --option`` turns on: the Dockerfile argument each
#: sets, and the platforms and lines it is allowed for.
OPTIONS = {
    "zsh": "WITH_ZSH",  # zsh installed (and offered as the terminal's shell)
    "nsys": "WITH_NSYS",  # Nsight Systems CLI: CUDA images, linux/amd64 only
}
#: A registry/owner prefix given on the command line: ``ghcr.io/me``, ``localhost``.
_REGISTRY = re.compile(r"^[a-z0-9]([a-z0-9.:_-]*[a-z0-9])?(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)*$")
_SHA = re.compile(r"^[0-9a-f]{7,40}$")
_VERSION = re.compile(r"^[0-9][0-9A-Za-z._-]{0,60}$")


class ImagesError(ValueError):
    """The catalog or an argument cannot give a build plan; the message is one line."""


@dataclasses.dataclass(frozen=True)
class ImageBuild:
    """One image to build: the catalog entry, its base and where it is pushed."""

    image: Image
    base: BuildBase
    #: Python version installed in the image (``"3.12"``).
    python: str
    platforms: tuple[str, ...]
    #: Where its tags are pushed (``ghcr.io/gpu-devbox/pytorch-notebook``).
    repository: str
    #: The full wheel index for a pytorch image (``.../whl/cu130``), else ``None``.
    torch_index: str | None
    #: The torch version the catalog names (``"2.14"``), else ``None`` (the newest).
    torch_version: str | None
    #: The flavors this image stacks up, foundation first (``base``, ``pytorch``).
    flavors: tuple[str, ...] = ("base",)
    #: Pinned requirements per flavor (``{"base": ("numpy==2.5.*", ...)}``); the pytorch
    #: flavor's are the frameworks from PyTorch's index (``torch==2.14.*``).
    packages: tuple[tuple[str, tuple[str, ...]], ...] = ()
    #: OS packages of every flavor the image stacks up.
    apt: tuple[str, ...] = ()

    @property
    def lock(self) -> str:
        """The image's lock file, relative to the build context."""
        return f"{LOCKS}/{self.name}.txt"

    @property
    def torch_packages(self) -> tuple[str, ...]:
        """``torch==2.14.*``, ``torchvision==0.29.*``...: what comes from PyTorch's index."""
        return tuple(
            _pin(f.name, f.version) for f in self.image.frameworks if f.name in TORCH_INDEX_PACKAGES
        )

    @property
    def name(self) -> str:
        """The catalog image's name, also the bake target's."""
        return self.image.name

    @property
    def target(self) -> str:
        """The Dockerfile stage: the image's flavor."""
        return self.image.flavor

    @property
    def cuda(self) -> str | None:
        """The CUDA line (``"13.0"``), ``None`` for the CPU image."""
        return self.image.cuda

    @property
    def line_tag(self) -> str:
        """``cuda-13.0``, or ``cpu``."""
        return f"cuda-{self.cuda}" if self.cuda else "cpu"

    @property
    def reference(self) -> str:
        """What pods pull: the catalog reference, in this plan's repository."""
        tag = split_reference(self.image.reference)[1]
        return f"{self.repository}:{tag}"


def torch_wheel_index(base_url: str, cuda: str | None) -> str:
    """``(…/whl, "13.0")`` -> ``…/whl/cu130``; ``None`` -> ``…/whl/cpu``."""
    if cuda is None:
        return f"{base_url}/cpu"
    major, minor = cuda.split(".")[:2]
    return f"{base_url}/cu{major}{minor}"


def check_registry(registry: str) -> str:
    """A ``--registry`` prefix, without a trailing slash."""
    cleaned = registry.strip().rstrip("/")
    if not _REGISTRY.match(cleaned):
        raise ImagesError(
            f"--registry {registry!r} is not a registry prefix like ghcr.io/owner or localhost "
            "(lower-case letters, digits, '.', '-', '_' and '/')"
        )
    return cleaned


def check_sha(sha: str) -> str:
    """A git commit id (7 to 40 hex digits), lower-cased."""
    cleaned = sha.strip().lower()
    if not _SHA.match(cleaned):
        raise ImagesError(f"--sha {sha!r} is not a git commit id (7 to 40 hex digits)")
    return cleaned


def check_version(version: str) -> str:
    """A release version for tags: ``1.2.0`` (a leading ``v`` is dropped)."""
    cleaned = version.strip()
    cleaned = cleaned[1:] if cleaned[:1] in ("v", "V") else cleaned
    if not _VERSION.match(cleaned):
        raise ImagesError(
            f"--version {version!r} is not a release version like 1.2.0 "
            "(digits first, then letters, digits, '.', '-' or '_')"
        )
    return cleaned


def plan(
    catalog: Catalog, *, registry: str | None = None, cuda: str | None = None
) -> tuple[ImageBuild, ...]:
    """The builds of a catalog's ``build: true`` images, in catalog order.

    ``registry`` replaces everything before each repository's last path component
    (``ghcr.io/gpu-devbox/base-notebook`` -> ``<registry>/base-notebook``). ``cuda`` keeps only
    one CUDA line (``"13.0"``) or the CPU image (``"cpu"``).

    Raises:
        ImagesError: nothing to build, a reference outside the tag scheme, two images
            with the same tags, or an unknown ``cuda`` filter.
    """
    settings = catalog.build
    built = [image for image in catalog.images if image.build]
    if settings is None or not built:
        raise ImagesError(
            f"{catalog.source} builds no images: mark images with 'build: true' and give "
            "the top-level build section"
        )
    prefix = check_registry(registry) if registry is not None else None
    builds: list[ImageBuild] = []
    for image in built:
        base = settings.base_for(image.cuda)
        assert base is not None, image.name  # the loader checked it
        repository, tag, digest = split_reference(image.reference)
        if prefix is not None:
            repository = f"{prefix}/{repository.rsplit('/', 1)[-1]}"
        torch = next((f for f in image.frameworks if f.name == "torch"), None)
        lineage = settings.lineage(image.flavor)
        build = ImageBuild(
            image=image,
            base=settings.base_for(image.cuda, image.flavor) or base,
            python=settings.python,
            platforms=base.platforms or settings.platforms,
            repository=repository,
            torch_index=torch_wheel_index(settings.torch_index, torch.cuda)
            if image.flavor != "base" and torch is not None
            else None,
            torch_version=torch.version if torch is not None else None,
            flavors=tuple(f.name for f in lineage),
            packages=tuple((f.name, f.packages) for f in lineage),
            apt=tuple(dict.fromkeys(pkg for f in lineage for pkg in f.apt)),
        )
        if digest is not None or tag is None:
            raise ImagesError(
                f"{catalog.source}: image {image.name!r}: its reference {image.reference!r} "
                f"must name a tag the build pushes, like {repository}:{build.line_tag}"
            )
        for other in builds:
            if other.repository == repository and other.cuda == image.cuda:
                raise ImagesError(
                    f"{catalog.source}: images {other.name!r} and {image.name!r} would push the "
                    f"same tags ({repository}:{build.line_tag}); give them different repositories"
                )
        builds.append(build)
    for build in builds:
        tag = split_reference(build.image.reference)[1] or ""
        allowed = moving_tags(build, builds)
        if (
            tag not in allowed
            and not _is_release_tag(tag, build.line_tag)
            and not _is_commit_tag(tag, build.line_tag)
        ):
            raise ImagesError(
                f"{catalog.source}: image {build.name!r}: its reference tag {tag!r} is not one the "
                f"build pushes; use {' or '.join(allowed)} (or a pinned tag "
                f"{build.line_tag}-<sha7> or vV-{build.line_tag})"
            )
    if cuda is not None:
        wanted = None if cuda == "cpu" else cuda
        lines = sorted({b.cuda or "cpu" for b in builds}, key=_line_key)
        builds = [b for b in builds if b.cuda == wanted]
        if not builds:
            raise ImagesError(
                f"the catalog builds no images for {cuda!r}; its lines: {', '.join(lines)}"
            )
    return tuple(builds)


def _is_release_tag(tag: str, line_tag: str) -> bool:
    """Whether ``tag`` is ``vV-<line_tag>`` for some release version V."""
    suffix = f"-{line_tag}"
    return (
        tag.startswith("v") and tag.endswith(suffix) and bool(_VERSION.match(tag[1 : -len(suffix)]))
    )


def _is_commit_tag(tag: str, line_tag: str) -> bool:
    """Whether ``tag`` is ``<line_tag>-<sha7>``: the immutable build of one commit (a rollback
    pins the catalog to it)."""
    prefix = f"{line_tag}-"
    return tag.startswith(prefix) and re.fullmatch(r"[0-9a-f]{7}", tag[len(prefix) :]) is not None


def _line_key(line: str) -> tuple[int, ...]:
    return (-1,) if line == "cpu" else cuda_key(line)


def moving_tags(build: ImageBuild, builds: tuple[ImageBuild, ...] | list[ImageBuild]) -> list[str]:
    """The tags that follow the newest build: ``cuda-X.Y``, ``cuda-X.Y-latest``, ``latest``?"""
    tags = [build.line_tag, f"{build.line_tag}-latest"]
    same_repo = [b for b in builds if b.repository == build.repository]
    cuda_lines = [b.cuda for b in same_repo if b.cuda]
    if cuda_lines:
        newest = max(cuda_lines, key=cuda_key)
        if build.cuda == newest:
            tags.append("latest")
    elif build.cuda is None:
        tags.append("latest")
    return tags


def tags(
    build: ImageBuild,
    builds: tuple[ImageBuild, ...],
    *,
    sha: str | None = None,
    version: str | None = None,
) -> list[str]:
    """Every tag of one build (names only), moving tags first."""
    out = moving_tags(build, builds)
    if sha is not None:
        out.append(f"{build.line_tag}-{check_sha(sha)[:7]}")
    if version is not None:
        out.append(f"v{check_version(version)}-{build.line_tag}")
    return out


def references(
    build: ImageBuild,
    builds: tuple[ImageBuild, ...],
    *,
    sha: str | None = None,
    version: str | None = None,
) -> list[str]:
    """Every tag of one build as a full reference (``repository:tag``)."""
    return [f"{build.repository}:{tag}" for tag in tags(build, builds, sha=sha, version=version)]


def find(builds: tuple[ImageBuild, ...], name: str) -> ImageBuild:
    """The build of the image ``name``.

    Raises:
        ImagesError: the catalog does not build an image of that name.
    """
    for build in builds:
        if build.name == name:
            return build
    raise ImagesError(
        f"the catalog builds no image named {name!r}; it builds: "
        + ", ".join(b.name for b in builds)
    )


def _pin(name: str, version: str | None) -> str:
    """``("torch", "2.14")`` -> ``torch==2.14.*``; a full release pins exactly."""
    if not version:
        return name
    return f"{name}=={version}" if version.count(".") >= 2 else f"{name}=={version}.*"
