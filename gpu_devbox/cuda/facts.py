"""Gathering the facts the CUDA checks decide from.

Three sources, three costs:

* **NVML** (driver, the driver's CUDA version, GPUs): never read here directly. The server
  builds it from its running sampler (:func:`nvml_facts`); the CLI opens a sampler once
  (:func:`read_nvml`). The NVML adapter stays the only code that touches pynvml.
* **The container** (environment variables, libcudart, nvcc, cuda-compat directories): file
  system reads and two short subprocesses (``ldconfig -p``, ``nvcc --version``);
  :func:`gather_container` blocks, so the server runs it in an executor.
* **Python environments** (the server's interpreter and every Python kernelspec): one probe
  subprocess each, in :mod:`gpu_devbox.cuda.environments`.

Only the environment variables in :data:`ENV_NAMES` are recorded: a facts dump can be shared
without leaking secrets from the environment.
"""

from __future__ import annotations

import datetime
import glob
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from gpu_devbox._version import __version__
from gpu_devbox.cuda import tables
from gpu_devbox.cuda.model import SCHEMA_VERSION
from gpu_devbox.cuda.versions import fmt, parse_cuda

#: The environment variables recorded in ``container.env``.
ENV_NAMES = (
    "CUDA_VERSION",
    "NVIDIA_REQUIRE_CUDA",
    "NVIDIA_CUDA_END_OF_LIFE",
    "NVIDIA_VISIBLE_DEVICES",
    "NVIDIA_DRIVER_CAPABILITIES",
    "NVIDIA_DISABLE_REQUIRE",
    "CUDA_VISIBLE_DEVICES",
    "LD_LIBRARY_PATH",
    "GPU_DEVBOX_BASE_IMAGE",
    "GPU_DEVBOX_REQUESTED_GPUS",
)
#: Set by gpu-devbox images: the image reference they were built ``FROM``.
BASE_IMAGE_ENV = "GPU_DEVBOX_BASE_IMAGE"
#: Set by the gpu-devbox spawner: how many GPUs the server's profile requested (0: CPU).
REQUESTED_GPUS_ENV = "GPU_DEVBOX_REQUESTED_GPUS"
#: Where cuda-compat directories are looked for.
COMPAT_GLOB = "/usr/local/cuda*/compat"

_CMD_TIMEOUT = 10.0
_LD_LINE = re.compile(r"^\s*(\S+)\s+\(([^)]*)\)\s+=>\s+(\S+)\s*$")
_CUDA_DIR = re.compile(r"cuda-(\d+\.\d+)")
_NVCC_RELEASE = re.compile(r"release\s+(\d+\.\d+)(?:,\s*V(\d+\.\d+\.\d+))?")

Runner = Callable[[Sequence[str]], str | None]


def run_command(argv: Sequence[str]) -> str | None:
    """Run a short command; its stdout, or ``None`` when it cannot run or fails."""
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=_CMD_TIMEOUT, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


# ----------------------------------------------------------------------------------------------
# NVML (from the sampler)
# ----------------------------------------------------------------------------------------------
def nvml_facts(status: Mapping[str, Any], gpus: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The ``nvml`` facts from a sampler's ``status()`` and its snapshot's GPUs."""
    nv = status["nvml"]
    return {
        "available": bool(nv["available"]),
        "reason_code": nv.get("reason_code"),
        "reason": nv.get("reason"),
        "nvml_error": nv.get("nvml_error"),
        "driver_version": nv.get("driver_version"),
        "cuda_driver_version": nv.get("cuda_driver_version"),
        "nvml_version": nv.get("nvml_version"),
        "simulated": bool(status.get("simulated", False)),
        "gpu_count": status.get("gpu_count"),
        "gpus": [
            {
                "index": gpu.get("index"),
                "uuid": gpu.get("uuid"),
                "name": gpu.get("name") or "unknown NVIDIA GPU",
                "compute_capability": gpu.get("compute_capability"),
                "mig_enabled": (gpu.get("mig") or {}).get("enabled"),
            }
            for gpu in gpus
        ],
    }


def read_nvml(backend: str = "nvml", *, simulated_gpus: int = 2) -> dict[str, Any]:
    """Open NVML once through a sampler (CLI use) and return the ``nvml`` facts."""
    from gpu_devbox.gpus import Sampler, SamplerConfig
    from gpu_devbox.gpus.backends import BackendSpec

    spec = BackendSpec(name=backend, simulated_gpus=simulated_gpus)
    sampler = Sampler(
        spec.make_adapter(),
        simulated=spec.simulated,
        config=SamplerConfig(interval=1.0, slow_interval=1.0, history_seconds=1.0),
        version=__version__,
    )
    try:
        snapshot = sampler.tick()
        return nvml_facts(sampler.status(), snapshot.gpus)
    finally:
        sampler.stop()


# ----------------------------------------------------------------------------------------------
# the container
# ----------------------------------------------------------------------------------------------
def _ld_cache(run: Runner) -> list[tuple[str, str]]:
    """``(soname, path)`` pairs of the ld.so cache (empty when ldconfig is unavailable)."""
    ldconfig = shutil.which("ldconfig") or next(
        (p for p in ("/sbin/ldconfig", "/usr/sbin/ldconfig") if os.path.exists(p)), None
    )
    if ldconfig is None:
        return []
    out = run([ldconfig, "-p"]) or ""
    pairs = []
    for line in out.splitlines():
        match = _LD_LINE.match(line)
        if match is not None:
            pairs.append((match.group(1), match.group(3)))
    return pairs


def _lib_dirs(env: Mapping[str, str]) -> list[str]:
    return [p for p in env.get("LD_LIBRARY_PATH", "").split(":") if p]


def _real(path: str) -> str:
    return os.path.realpath(path)


def cudart_version(path: str) -> str | None:
    """The CUDA version of a libcudart: from its file name, else its toolkit directory."""
    name = os.path.basename(_real(path))
    suffix = name.partition(".so.")[2]
    version = parse_cuda(suffix) if suffix else None
    if version is not None and len(version) >= 2:
        return fmt(version[:2])
    folder = _CUDA_DIR.search(_real(path))
    if folder is not None:
        return folder.group(1)
    return fmt(version) if version is not None else None


def _cudart(env: Mapping[str, str], cache: list[tuple[str, str]]) -> list[dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    candidates = [
        (path, "ld_cache") for soname, path in cache if soname.startswith("libcudart.so.")
    ]
    for folder in _lib_dirs(env):
        candidates.extend(
            (path, "ld_library_path")
            for path in sorted(glob.glob(os.path.join(folder, "libcudart.so.*")))
        )
    for path, source in candidates:
        key = _real(path)
        if key not in found and os.path.exists(path):
            found[key] = {"path": path, "version": cudart_version(path), "source": source}
    return list(found.values())


def _libcuda(
    env: Mapping[str, str], cache: list[tuple[str, str]], compat_dirs: set[str]
) -> list[dict[str, Any]]:
    """The driver's libcuda.so.1 on the loader path (compat copies excluded)."""
    found: dict[str, dict[str, Any]] = {}
    candidates = [path for soname, path in cache if soname == "libcuda.so.1"]
    candidates += [os.path.join(folder, "libcuda.so.1") for folder in _lib_dirs(env)]
    for path in candidates:
        key = _real(path)
        if key in found or not os.path.exists(path) or _real(os.path.dirname(path)) in compat_dirs:
            continue
        suffix = os.path.basename(key).partition(".so.")[2]
        found[key] = {"path": path, "version": suffix if suffix.count(".") >= 1 else None}
    return list(found.values())


def _nvcc(env: Mapping[str, str], run: Runner) -> dict[str, Any] | None:
    path = shutil.which("nvcc", path=env.get("PATH")) or next(
        (p for p in ("/usr/local/cuda/bin/nvcc",) if os.access(p, os.X_OK)), None
    )
    if path is None:
        return None
    match = _NVCC_RELEASE.search(run([path, "--version"]) or "")
    version = None
    if match is not None:
        version = match.group(2) or match.group(1)
    return {"path": path, "version": version}


def _compat(
    env: Mapping[str, str], cache: list[tuple[str, str]], pattern: str
) -> list[dict[str, Any]]:
    on_path = {_real(p) for p in _lib_dirs(env)}
    on_path.update(
        _real(os.path.dirname(path)) for soname, path in cache if soname == "libcuda.so.1"
    )
    found: dict[str, dict[str, Any]] = {}
    for folder in sorted(glob.glob(pattern), key=lambda p: (_CUDA_DIR.search(p) is None, p)):
        if not os.path.isdir(folder):
            continue
        key = _real(folder)
        if key in found:
            continue
        libs = sorted(glob.glob(os.path.join(folder, "libcuda.so.*")), key=lambda p: p.count("."))
        version = _CUDA_DIR.search(key) or _CUDA_DIR.search(folder)
        found[key] = {
            "path": folder,
            "cuda_version": version.group(1) if version else None,
            "libcuda": os.path.basename(libs[-1]) if libs else None,
            "on_loader_path": key in on_path,
        }
    return list(found.values())


def gather_container(
    env: Mapping[str, str] | None = None,
    *,
    run: Runner = run_command,
    ld_cache: list[tuple[str, str]] | None = None,
    compat_glob: str = COMPAT_GLOB,
) -> dict[str, Any]:
    """The ``container`` facts. Blocking (file system, ``ldconfig -p``, ``nvcc --version``)."""
    env = os.environ if env is None else env
    cache = _ld_cache(run) if ld_cache is None else ld_cache
    requested = env.get(REQUESTED_GPUS_ENV, "").strip()
    compat = _compat(env, cache, compat_glob)
    return {
        "env": {name: env.get(name) for name in ENV_NAMES},
        "base_image": env.get(BASE_IMAGE_ENV) or None,
        "requested_gpus": int(requested) if requested.isdigit() else None,
        "cudart": _cudart(env, cache),
        "libcuda": _libcuda(env, cache, {_real(c["path"]) for c in compat}),
        "nvcc": _nvcc(env, run),
        "compat": compat,
    }


# ----------------------------------------------------------------------------------------------
# the document
# ----------------------------------------------------------------------------------------------
def utc_now() -> str:
    """Now, as the facts' ``gathered_at`` writes it."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    return now.isoformat().replace("+00:00", "Z")


def assemble(
    nvml: Mapping[str, Any],
    container: Mapping[str, Any],
    environments: Sequence[Mapping[str, Any]],
    *,
    gathered_at: str | None = None,
) -> dict[str, Any]:
    """The facts document (schema version :data:`~gpu_devbox.cuda.model.SCHEMA_VERSION`)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "gathered_at": gathered_at or utc_now(),
        "gpu_devbox_version": __version__,
        "tables_as_of": tables.as_of(),
        "host": {
            "system": platform.system() or None,
            "machine": platform.machine() or None,
            "hostname": platform.node() or None,
        },
        "nvml": dict(nvml),
        "container": dict(container),
        "environments": [dict(e) for e in environments],
    }
