"""The catalog's data model: notebook images and the profiles users can start.

One catalog drives both sides of gpu-devbox: the spawner offers its profiles on the cluster's
GPU nodes, and the image builds are generated from its images. Everything here is plain,
immutable data; :mod:`gpu_devbox.catalog.loader` builds it from YAML and checks every field.
"""

from __future__ import annotations

import dataclasses
import enum
import fnmatch
import functools
import re
from collections.abc import Iterable, Mapping

#: ``sm_90`` (binary code for one architecture) or ``compute_90`` (PTX, JIT-compiled).
ARCH_PATTERN = re.compile(r"^(sm|compute)_(\d{2,3})([af]?)$")
#: What ``images/Dockerfile`` builds: its final stages, one per flavor, each on the one before.
BUILD_FLAVORS = ("base", "pytorch", "finetune")
#: The flavor each flavor's stage is built on (``None``: on the foundation).
FLAVOR_PARENT: Mapping[str, str | None] = {"base": None, "pytorch": "base", "finetune": "pytorch"}
#: Frameworks installed from PyTorch's wheel index of the image's CUDA line (a frameworks
#: entry names each with its version); everything else comes from the package index.
TORCH_INDEX_PACKAGES = ("torch", "torchvision", "torchaudio")
#: An Ubuntu-based nvidia/cuda tag: ``13.0.2-cudnn-runtime-ubuntu24.04``.
CUDA_BASE_TAG = re.compile(
    r"^(?P<release>\d{1,2}\.\d{1,2}\.\d{1,3})-(?P<variant>[a-z][a-z0-9-]*?)"
    r"-ubuntu(?P<ubuntu>\d{2}\.\d{2})$"
)
#: The tag of an Ubuntu image: ``24.04``.
UBUNTU_TAG = re.compile(r"^(?P<ubuntu>\d{2}\.\d{2})$")


class GPUKind(str, enum.Enum):
    """What a profile asks of the cluster's GPUs."""

    NONE = "none"  # CPU only
    WHOLE = "whole"  # whole GPUs (nvidia.com/gpu)
    MIG = "mig"  # one MIG slice of a given profile (nvidia.com/mig-<profile>)
    SHARED = "shared"  # a time-sliced or MPS share of a GPU (nvidia.com/gpu.shared)


@dataclasses.dataclass(frozen=True)
class Framework:
    """A framework installed in an image, and the CUDA version it was built against."""

    name: str
    version: str | None = None
    #: ``"12.6"``-style CUDA version of the framework's own build; ``None`` for a CPU build.
    cuda: str | None = None


@dataclasses.dataclass(frozen=True)
class Architecture:
    """One compiled GPU architecture: binary code (``sm_XY``) or PTX (``compute_XY``)."""

    kind: str  # "sm" or "compute"
    major: int
    minor: int
    #: ``""``, ``"a"`` (architecture-specific: this exact GPU only) or ``"f"`` (family-portable).
    variant: str = ""

    @classmethod
    def parse(cls, text: str) -> Architecture:
        """``sm_90`` → Architecture("sm", 9, 0); ``sm_100a`` → ("sm", 10, 0, "a")."""
        match = ARCH_PATTERN.match(text)
        if not match:
            raise ValueError(f"{text!r} is not an architecture like sm_90 or compute_90")
        digits = match.group(2)
        return cls(match.group(1), int(digits[:-1]), int(digits[-1]), match.group(3))

    def runs_on(self, compute: tuple[int, int], *, ptx_jit: bool = True) -> bool:
        """Whether this code runs on a GPU of compute capability ``compute``.

        CUDA's binary compatibility: SASS for ``X.y`` runs on ``X.z`` with ``z >= y`` (same
        major); architecture-specific ``a`` code only on exactly ``X.y``. PTX for ``X.y`` is
        JIT-compiled for any GPU of ``X.y`` or newer, but only when the driver can JIT this
        toolkit's PTX (not under minor-version compatibility).
        """
        major, minor = compute
        if self.kind == "compute":
            return ptx_jit and (major, minor) >= (self.major, self.minor)
        if self.variant == "a":
            return (major, minor) == (self.major, self.minor)
        return major == self.major and minor >= self.minor

    def __str__(self) -> str:
        return f"{self.kind}_{self.major}{self.minor}{self.variant}"


@dataclasses.dataclass(frozen=True)
class Image:
    """A notebook image users can start."""

    name: str
    reference: str
    display_name: str = ""
    description: str = ""
    #: ``"12.9"``-style CUDA version of the image's toolkit/runtime; ``None`` for a CPU image.
    cuda: str | None = None
    #: What is in it beyond the base: ``base``, ``pytorch``, ...
    flavor: str = "base"
    frameworks: tuple[Framework, ...] = ()
    #: Architectures its GPU code was compiled for; empty when unknown or not applicable.
    architectures: tuple[Architecture, ...] = ()
    #: Built by gpu-devbox from ``images/Dockerfile`` on the catalog's build base for its CUDA
    #: line (see :class:`BuildSettings`); ``False`` for images built elsewhere.
    build: bool = False
    #: The most bytes (uncompressed) the built image may take; the build checks it.
    size_budget: int | None = None
    #: What users find in it, as the form lists it (``transformers 5.23``).
    packages: tuple[str, ...] = ()
    #: Of no use without a GPU: no CPU-only profile offers it.
    gpu_required: bool = False
    #: Bytes of memory its work needs: the form warns when a profile gives less.
    memory_recommended: int | None = None

    @property
    def label(self) -> str:
        """The name people see."""
        return self.display_name or self.name

    def runs_on(self, compute: tuple[int, int] | None, *, ptx_jit: bool = True) -> bool:
        """Whether the image's GPU code covers a GPU of this compute capability.

        True when the image lists no architectures or the GPU's capability is unknown: only a
        declared mismatch rules a node out.
        """
        if not self.architectures or compute is None:
            return True
        return any(arch.runs_on(compute, ptx_jit=ptx_jit) for arch in self.architectures)

    @functools.cached_property
    def required_cuda(self) -> str | None:
        """The newest CUDA version anything in the image needs from the driver.

        A framework may bundle a newer CUDA runtime than the image's base (PyTorch wheels do),
        so the image needs whichever is newest.
        """
        versions = [v for v in (self.cuda, *(f.cuda for f in self.frameworks)) if v]
        if not versions:
            return None
        return max(versions, key=cuda_key)


def split_reference(reference: str) -> tuple[str, str | None, str | None]:
    """``ghcr.io/o/nb:cuda-13.0@sha256:...`` -> (``ghcr.io/o/nb``, ``cuda-13.0``, digest)."""
    rest, _, digest = reference.partition("@")
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        return rest[:colon], rest[colon + 1 :], digest or None
    return rest, None, digest or None


@dataclasses.dataclass(frozen=True)
class BuildBase:
    """The image one CUDA line's images are built on; ``cuda`` ``None`` is the CPU line."""

    #: ``"13.0"``-style CUDA line, ``None`` for the CPU images.
    cuda: str | None
    #: The base image reference: ``nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04`` for a CUDA
    #: line, ``ubuntu:24.04`` for the CPU line.
    image: str
    #: The platforms this line's images are built for; ``None``: ``build.platforms``.
    platforms: tuple[str, ...] | None = None

    @property
    def release(self) -> str | None:
        """The base's full CUDA release (``"13.0.2"``); ``None`` for the CPU line."""
        match = CUDA_BASE_TAG.match(split_reference(self.image)[1] or "")
        return match.group("release") if match and self.cuda else None

    @property
    def variant(self) -> str | None:
        """The nvidia/cuda flavor of the base (``"cudnn-runtime"``); ``None`` for the CPU line."""
        match = CUDA_BASE_TAG.match(split_reference(self.image)[1] or "")
        return match.group("variant") if match and self.cuda else None

    @property
    def ubuntu(self) -> str:
        """The Ubuntu release of the base (``"24.04"``)."""
        tag = split_reference(self.image)[1] or ""
        match = CUDA_BASE_TAG.match(tag) or UBUNTU_TAG.match(tag)
        return match.group("ubuntu") if match else ""

    def with_variant(self, variant: str | None) -> BuildBase:
        """The same CUDA release and Ubuntu in another nvidia/cuda flavor (``"base"``).

        ``None``, the CPU line, or a base already of that variant: this base unchanged. A digest
        pins one variant's bytes, so it is dropped with the variant it belonged to.
        """
        if variant is None or self.cuda is None or variant == self.variant:
            return self
        repository = split_reference(self.image)[0]
        return dataclasses.replace(
            self, image=f"{repository}:{self.release}-{variant}-ubuntu{self.ubuntu}"
        )


@dataclasses.dataclass(frozen=True)
class Flavor:
    """What one build flavor adds to the flavor it is built on (``FLAVOR_PARENT``)."""

    name: str
    #: Pinned Python requirements (``numpy==2.4.*``), locked per image (images/locks/).
    packages: tuple[str, ...] = ()
    #: OS packages (apt) the flavor adds.
    apt: tuple[str, ...] = ()
    #: The nvidia/cuda flavor its CUDA images build on (``"base"`` when its frameworks carry
    #: their own CUDA libraries); ``None``: the tag of the line's ``build.bases`` entry.
    cuda_variant: str | None = None


@dataclasses.dataclass(frozen=True)
class BuildSettings:
    """How gpu-devbox builds the catalog's ``build: true`` images from ``images/Dockerfile``."""

    #: The Python version installed in every image (``"3.12"``).
    python: str
    #: One base per CUDA line (and at most one for the CPU line).
    bases: tuple[BuildBase, ...]
    #: Platforms every image is built for (``linux/amd64``, ``linux/arm64``).
    platforms: tuple[str, ...] = ("linux/amd64",)
    #: PyTorch's wheel index; ``/cu126``, ``/cu130`` or ``/cpu`` is appended per image.
    torch_index: str = "https://download.pytorch.org/whl"
    #: What each flavor adds (``base``, ``pytorch``, ``finetune``); a flavor not given adds
    #: nothing of its own.
    flavors: Mapping[str, Flavor] = dataclasses.field(default_factory=dict)

    def base_for(self, cuda: str | None, flavor: str | None = None) -> BuildBase | None:
        """The base of a CUDA line (``None``: the CPU line), if the catalog has one; with
        ``flavor``, in the nvidia/cuda variant that flavor asks for."""
        base = next((b for b in self.bases if b.cuda == cuda), None)
        if base is None or flavor is None:
            return base
        return base.with_variant(self.flavor(flavor).cuda_variant)

    def flavor(self, name: str) -> Flavor:
        """One flavor's additions (empty when the catalog gives none)."""
        return self.flavors.get(name) or Flavor(name)

    def lineage(self, name: str) -> tuple[Flavor, ...]:
        """The flavors a ``name`` image stacks up, foundation first: finetune -> base, pytorch,
        finetune."""
        chain: list[Flavor] = []
        current: str | None = name
        while current is not None:
            chain.insert(0, self.flavor(current))
            current = FLAVOR_PARENT.get(current)
        return tuple(chain)


@dataclasses.dataclass(frozen=True)
class GPURequest:
    """What a profile asks for: nothing, whole GPUs, a MIG slice or a shared GPU."""

    kind: GPUKind = GPUKind.NONE
    #: Whole GPUs: the count preselected in the form. MIG and shared: always 1.
    count: int = 0
    #: Whole GPUs: the most a user may pick (``>= count``). MIG and shared: 1.
    max_count: int = 0
    #: MIG only: the profile, e.g. ``1g.10gb``.
    mig: str | None = None
    #: Product-name patterns the node's ``nvidia.com/gpu.product`` must match (``*`` and ``?``
    #: wildcards, case-insensitive); empty means any model.
    models: tuple[str, ...] = ()
    #: GPU families (``nvidia.com/gpu.family``: ``ampere``, ``hopper``...); empty means any.
    families: tuple[str, ...] = ()
    #: Minimum memory per GPU (or per MIG slice), in bytes.
    min_memory: int | None = None

    @property
    def wants_gpu(self) -> bool:
        """Whether the profile needs any GPU at all."""
        return self.kind is not GPUKind.NONE


@dataclasses.dataclass(frozen=True)
class Quantity:
    """A guarantee (request) and a limit; either may be unset."""

    guarantee: float | None = None
    limit: float | None = None


@dataclasses.dataclass(frozen=True)
class Volume:
    """A volume mounted into the notebook container.

    Exactly one of ``claim`` (an existing PersistentVolumeClaim, the notebooks volume) or
    ``scratch`` (an emptyDir of this many bytes that lives as long as the pod) is set.
    """

    name: str
    mount: str
    #: PersistentVolumeClaim name; KubeSpawner expands ``{username}``, ``{pvc_name}`` etc.
    claim: str | None = None
    #: emptyDir size limit in bytes.
    scratch: int | None = None
    read_only: bool = False
    #: With ``claim``: create the claim when it is missing, of this many bytes.
    size: int | None = None
    #: With ``size``: the claim's access mode (``ReadWriteMany`` for NFS, CephFS...).
    access_mode: str | None = None
    #: With ``size``: the StorageClass to create the claim with (``None``: the default one).
    storage_class: str | None = None
    #: Mount this folder of the volume (KubeSpawner expands ``{username}``...), not its root.
    sub_path: str | None = None


@dataclasses.dataclass(frozen=True)
class Toleration:
    """A Kubernetes toleration (pod spec field names)."""

    key: str
    operator: str = "Exists"  # "Exists" or "Equal"
    value: str | None = None
    effect: str | None = None  # None tolerates every effect

    def tolerates(self, key: str, value: str | None, effect: str) -> bool:
        """Whether this toleration covers a node taint."""
        if self.key and self.key != key:
            return False
        if self.effect and self.effect != effect:
            return False
        return self.operator == "Exists" or (self.value or "") == (value or "")

    def to_k8s(self) -> dict[str, str]:
        """The pod-spec form."""
        out = {"key": self.key, "operator": self.operator}
        if self.value is not None:
            out["value"] = self.value
        if self.effect is not None:
            out["effect"] = self.effect
        return out


@dataclasses.dataclass(frozen=True)
class Profile:
    """A kind of server users can start."""

    slug: str
    display_name: str
    images: tuple[str, ...]
    default_image: str
    description: str = ""
    gpu: GPURequest = GPURequest()
    #: CPU cores.
    cpu: Quantity = Quantity()
    #: Memory in bytes.
    memory: Quantity = Quantity()
    #: Size of the memory-backed ``/dev/shm`` (PyTorch data loaders need more than 64 MiB).
    shm: int | None = None
    volumes: tuple[Volume, ...] = ()
    #: Taints this profile's pods tolerate beyond ``nvidia.com/gpu`` (GPU profiles).
    tolerations: tuple[Toleration, ...] = ()
    #: Preselected in the form when nothing else is chosen.
    default: bool = False
    #: JupyterHub groups whose members may start it; ``None``: everyone.
    groups: tuple[str, ...] | None = None


@dataclasses.dataclass(frozen=True)
class GPUQuota:
    """The most GPUs a user may hold at once, per kind, each in its own unit; ``None``: no limit.

    Whole GPUs, MIG slices (of any MIG profile) and shares of a shared GPU are counted apart:
    a MIG slice is not a fraction of a whole GPU here.
    """

    whole: int | None = None
    mig: int | None = None
    shared: int | None = None

    def limit(self, kind: GPUKind) -> int | None:
        """The limit for one kind of GPU request (``None`` for CPU profiles: no limit)."""
        if kind is GPUKind.WHOLE:
            return self.whole
        if kind is GPUKind.MIG:
            return self.mig
        if kind is GPUKind.SHARED:
            return self.shared
        return None

    @classmethod
    def largest(cls, quotas: Iterable[GPUQuota]) -> GPUQuota:
        """Per kind the most generous of several limits (no limit beats any number)."""
        items = list(quotas)

        def most(values: list[int | None]) -> int | None:
            numbers = [v for v in values if v is not None]
            return None if len(numbers) < len(values) or not numbers else max(numbers)

        return cls(
            whole=most([q.whole for q in items]),
            mig=most([q.mig for q in items]),
            shared=most([q.shared for q in items]),
        )


@dataclasses.dataclass(frozen=True)
class Catalog:
    """Every image and profile, in the order the admin wrote them."""

    images: tuple[Image, ...]
    profiles: tuple[Profile, ...]
    #: Where it was read from, for messages.
    source: str = "<catalog>"
    #: How the ``build: true`` images are built; ``None`` when the catalog builds none.
    build: BuildSettings | None = None
    #: Each user's limit on the GPUs held at once (``None``: no limit).
    max_gpus: GPUQuota | None = None
    #: Per JupyterHub group, its members' limit (replacing ``max_gpus`` for them).
    group_quotas: Mapping[str, GPUQuota] = dataclasses.field(default_factory=dict)
    _images_by_name: Mapping[str, Image] = dataclasses.field(
        default_factory=dict, repr=False, compare=False
    )
    _profiles_by_slug: Mapping[str, Profile] = dataclasses.field(
        default_factory=dict, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "_images_by_name", {i.name: i for i in self.images})
        object.__setattr__(self, "_profiles_by_slug", {p.slug: p for p in self.profiles})

    def image(self, name: str) -> Image:
        """The image with this name (KeyError if none)."""
        return self._images_by_name[name]

    def profile(self, slug: str) -> Profile:
        """The profile with this slug (KeyError if none)."""
        return self._profiles_by_slug[slug]

    def has_profile(self, slug: str) -> bool:
        """Whether a profile has this slug."""
        return slug in self._profiles_by_slug

    @property
    def default_profile(self) -> Profile:
        """The profile marked ``default``, else the first."""
        return next((p for p in self.profiles if p.default), self.profiles[0])

    def profile_images(self, profile: Profile) -> tuple[Image, ...]:
        """A profile's eligible images, in its order."""
        return tuple(self._images_by_name[name] for name in profile.images)

    def packages_of(self, image: Image) -> tuple[str, ...]:
        """What the form lists as in the image: its ``packages``, else, for an image built
        here, its frameworks and its flavors' pinned packages (``transformers 5.23``)."""
        if image.packages:
            return image.packages
        out = [f"{f.name} {f.version}" if f.version else f.name for f in image.frameworks]
        if image.build and self.build is not None:
            for flavor in self.build.lineage(image.flavor):
                for spec in flavor.packages:
                    name, _, version = spec.partition("==")
                    name = name.split("[")[0]
                    out.append(f"{name} {version.removesuffix('.*')}".strip())
        return tuple(dict.fromkeys(out))

    def has_image(self, name: str) -> bool:
        """Whether an image has this name."""
        return name in self._images_by_name

    def quota_for(self, groups: Iterable[str]) -> GPUQuota | None:
        """The GPU limit of a user in these JupyterHub groups (``None``: no limit).

        A group the catalog names replaces the top-level ``max_gpus``; several such groups
        give, per kind, the largest of their limits.
        """
        named = [self.group_quotas[g] for g in groups if g in self.group_quotas]
        if named:
            return GPUQuota.largest(named)
        return self.max_gpus


def cuda_key(version: str) -> tuple[int, ...]:
    """Sort key of a ``"12.9"``/``"12.9.1"`` version string."""
    return tuple(int(part) for part in version.split("."))


def matches_model(product: str, patterns: tuple[str, ...]) -> bool:
    """Whether a GPU product name matches one of a profile's model patterns (case-insensitive).

    A pattern without wildcards matches anywhere in the name, so ``A100`` matches
    ``NVIDIA-A100-SXM4-80GB``.
    """
    name = product.lower()
    for pattern in patterns:
        p = pattern.lower()
        if not any(ch in p for ch in "*?["):
            p = f"*{p}*"
        if fnmatch.fnmatchcase(name, p):
            return True
    return False
