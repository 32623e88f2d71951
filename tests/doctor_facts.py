"""Build facts documents for doctor tests: one keyword per fact a scenario varies.

The defaults describe the observed H100 host (cuda-facts §1.5): driver 580.159.04 reporting CUDA
13.0, one H100 80GB HBM3 (compute capability 9.0), MIG off, compute+utility capabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

H100 = ("NVIDIA H100 80GB HBM3", "9.0")
A100 = ("NVIDIA A100-SXM4-80GB", "8.0")
L4 = ("NVIDIA L4", "8.9")
T4 = ("Tesla T4", "7.5")
V100 = ("Tesla V100-SXM2-16GB", "7.0")
B200 = ("NVIDIA B200", "10.0")
GB10 = ("NVIDIA GB10", "12.1")
RTX4090 = ("NVIDIA GeForce RTX 4090", "8.9")
RTX5090 = ("NVIDIA GeForce RTX 5090", "12.0")

# torch.cuda.get_arch_list() of the wheels (cuda-facts §4.1, RELEASE.md / pytorch#182250).
CU126 = ["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"]
CU128_211 = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]
CU130 = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120"]

UNSET = object()


def torch(
    version: str = "2.12.0+cu130",
    cuda: str | None = "13.0",
    arch: Sequence[str] | None = tuple(CU130),
    *,
    available: bool | None = True,
    count: int = 1,
    error: str | None = None,
    hip: str | None = None,
    warnings: Sequence[str] = (),
) -> dict[str, Any]:
    """A probed torch."""
    return {
        "version": version,
        "cuda": cuda,
        "hip": hip,
        "is_available": available,
        "device_count": count if available else 0,
        "arch_list": list(arch) if arch is not None else None,
        "arch_list_source": "get_arch_list" if arch else None,
        "cudnn": 91002,
        "devices": None,
        "warnings": list(warnings),
        "error": error,
    }


def environment(name: str = "server", **frameworks: Any) -> dict[str, Any]:
    """One probed environment (``kernel:x`` names make kernelspec environments)."""
    kind = "server" if name == "server" else "kernelspec"
    env = {
        "name": name,
        "kind": kind,
        "display_name": None if kind == "server" else name.split(":", 1)[1],
        "python": "/opt/conda/bin/python",
        "status": frameworks.pop("status", "ok"),
        "error": frameworks.pop("error", None),
        "duration": 1.5,
        "python_version": "3.12.8",
        "torch": None,
        "cupy": None,
        "jax": None,
        "tensorflow": None,
        "cuda_runtime_wheels": [],
    }
    env.update(frameworks)
    return env


def make_facts(
    *,
    driver: str = "580.159.04",
    driver_cuda: str | None = "13.0",
    gpus: Sequence[tuple[str, str]] = (H100,),
    mig: bool = False,
    nvml_reason: str | None = None,
    nvml_error: int | None = None,
    simulated: bool = False,
    image_cuda: str | None = None,
    base_image: str | None = None,
    eol: str | None = None,
    caps: Any = "compute,utility",
    visible: Any = "all",
    requested: int | None = None,
    compat: Sequence[dict[str, Any]] = (),
    libcuda: bool = True,
    cuda_visible: str | None = None,
    environments: Sequence[dict[str, Any]] | None = None,
    gathered_at: str = "2026-11-22T12:00:00Z",
) -> dict[str, Any]:
    """A complete, valid facts document."""
    available = nvml_reason in (None, "no_visible_gpu")
    env = {
        "CUDA_VERSION": image_cuda,
        "NVIDIA_REQUIRE_CUDA": f"cuda>={image_cuda[:4]}" if image_cuda else None,
        "NVIDIA_CUDA_END_OF_LIFE": eol,
        "NVIDIA_VISIBLE_DEVICES": None if visible is UNSET else visible,
        "NVIDIA_DRIVER_CAPABILITIES": None if caps is UNSET else caps,
        "CUDA_VISIBLE_DEVICES": cuda_visible,
        "GPU_DEVBOX_BASE_IMAGE": base_image,
        "GPU_DEVBOX_REQUESTED_GPUS": None if requested is None else str(requested),
    }
    return {
        "schema_version": 1,
        "gathered_at": gathered_at,
        "gpu_devbox_version": "test",
        "host": {"system": "Linux", "machine": "x86_64", "hostname": "node-1"},
        "nvml": {
            "available": available,
            "reason_code": nvml_reason,
            "reason": f"reason {nvml_reason}" if nvml_reason else None,
            "nvml_error": nvml_error,
            "driver_version": driver if available else None,
            "cuda_driver_version": driver_cuda if available else None,
            "nvml_version": None,
            "simulated": simulated,
            "gpu_count": len(gpus) if available else 0,
            "gpus": [
                {
                    "index": i,
                    "uuid": f"GPU-{i:08d}",
                    "name": name,
                    "compute_capability": cc,
                    "mig_enabled": mig,
                }
                for i, (name, cc) in enumerate(gpus if available else ())
            ],
        },
        "container": {
            "env": env,
            "base_image": base_image,
            "requested_gpus": requested,
            "cudart": [],
            "libcuda": (
                [{"path": "/usr/lib/x86_64-linux-gnu/libcuda.so.1", "version": driver}]
                if libcuda and available
                else []
            ),
            "nvcc": None,
            "compat": list(compat),
        },
        "environments": list(environments) if environments is not None else [environment()],
    }


def compat_dir(cuda: str, libcuda_driver: str, *, on_path: bool = True) -> dict[str, Any]:
    """A ``/usr/local/cuda-X.Y/compat`` directory."""
    return {
        "path": f"/usr/local/cuda-{cuda}/compat",
        "cuda_version": cuda,
        "libcuda": f"libcuda.so.{libcuda_driver}",
        "on_loader_path": on_path,
    }
