"""The checks a node must pass for a profile, and whether its driver and GPU run an image.

Pure functions over parsed nodes (:mod:`gpu_devbox.placement.nodes`) and the catalog; the CUDA
driver rules are :func:`gpu_devbox.cuda.compat.driver_runs_cuda`'s.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterable

from gpu_devbox.catalog import GPUKind, Image, Profile, Toleration, matches_model
from gpu_devbox.cuda.compat import Mechanism, driver_runs_cuda
from gpu_devbox.placement.nodes import GPU, GPU_SHARED, GPU_TAINT, MIG_PREFIX, Node, Taint

#: Every GPU pod tolerates the de-facto GPU taint, whatever its value or effect.
GPU_TOLERATION = Toleration(key=GPU_TAINT, operator="Exists")
_BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")


class Stage(enum.IntEnum):
    """How far a node got through a profile's checks (the reason text follows the furthest)."""

    KIND = 0  # offers this kind of GPU at all
    FILTER = 1  # model, family, memory
    SCHEDULABLE = 2  # ready, not cordoned
    TAINTS = 3  # taints tolerated
    SIZE = 4  # CPU and memory fit
    IMAGES = 5  # the driver runs one of the images
    OK = 6


def node_resource(node: Node, profile: Profile) -> str | None:
    """The extended resource a GPU profile would request on this node, if it offers one."""
    gpu = profile.gpu
    info = node.gpu
    alloc = node.allocatable
    shares_gpu = info is not None and info.replicas > 1 and GPU_SHARED not in alloc
    if gpu.kind is GPUKind.WHOLE:
        whole = GPU in alloc and not shares_gpu and not (info and info.mig_single_profile)
        return GPU if whole else None
    if gpu.kind is GPUKind.MIG:
        if f"{MIG_PREFIX}{gpu.mig}" in alloc:
            return f"{MIG_PREFIX}{gpu.mig}"
        if info and info.mig_single_profile == gpu.mig and GPU in alloc:
            return GPU
        return None
    if gpu.kind is GPUKind.SHARED:
        if GPU_SHARED in alloc:
            return GPU_SHARED
        return GPU if shares_gpu and GPU in alloc else None
    return None


def _unit_memory_mib(node: Node, profile: Profile) -> int | None:
    info = node.gpu
    if info is None:
        return None
    if profile.gpu.kind is GPUKind.MIG and info.mig_strategy != "single":
        device = info.mig_devices.get(profile.gpu.mig or "")
        if device and device.memory_mib:
            return device.memory_mib
        digits = (profile.gpu.mig or "").split(".")[-1].removesuffix("gb").split("+")[0]
        return int(digits) * 1024 if digits.isdigit() else None
    return info.memory_mib


def matches_filter(node: Node, profile: Profile) -> bool:
    gpu = profile.gpu
    info = node.gpu
    if gpu.models and not (info and info.product and matches_model(info.product, gpu.models)):
        return False
    if gpu.families and not (info and info.family and info.family.lower() in gpu.families):
        return False
    if gpu.min_memory is not None:
        memory = _unit_memory_mib(node, profile)
        if memory is None or memory * 1024**2 < gpu.min_memory:
            return False
    return True


def is_tolerated(taint: Taint, tolerations: Iterable[Toleration]) -> bool:
    if taint.effect not in _BLOCKING_EFFECTS:
        return True
    return any(t.tolerates(taint.key, taint.value, taint.effect) for t in tolerations)


def fits(node: Node, profile: Profile) -> bool:
    cpu = profile.cpu.guarantee
    memory = profile.memory.guarantee
    if cpu is not None and node.cpu is not None and cpu > node.cpu:
        return False
    return not (memory is not None and node.memory is not None and memory > node.memory)


@functools.lru_cache(maxsize=4096)
def _verdict(driver: str, cuda: str, driver_cuda: str | None) -> tuple[Mechanism, bool, str]:
    verdict = driver_runs_cuda(driver, cuda, driver_cuda=driver_cuda)
    return verdict.mechanism, verdict.ptx_jit, verdict.detail


def image_runs(image: Image, node: Node) -> tuple[str, str]:
    """(mechanism, "") when the node's driver and GPU run the image, else ("", why not)."""
    required = image.required_cuda
    if required is None:
        return "no-cuda", ""
    info = node.gpu
    if info is None or not info.driver:
        return "", "the driver version is not labelled (is GPU Feature Discovery running?)"
    mechanism, ptx_jit, detail = _verdict(info.driver, required, info.cuda)
    if mechanism not in (Mechanism.NATIVE, Mechanism.MINOR_VERSION, Mechanism.FORWARD_COMPAT):
        if mechanism is Mechanism.UNKNOWN:
            return "", f"driver {info.driver} with CUDA {required}: {detail}"
        most = f" (it runs CUDA {info.cuda} at most)" if info.cuda else ""
        return "", f"driver {info.driver}{most} is too old for CUDA {required}"
    if not image.runs_on(info.compute, ptx_jit=ptx_jit):
        assert info.compute is not None
        major, minor = info.compute
        how = "" if ptx_jit else " (and its PTX cannot be JIT-compiled by this driver)"
        return "", (
            f"{image.label} has no code for compute capability {major}.{minor} ({info.model}){how}"
        )
    return mechanism.value, ""
