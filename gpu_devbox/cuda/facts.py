"""Gathering the facts the CUDA checks decide from.

Three sources, three costs:

* **NVML** (driver, the driver's CUDA version, GPUs): never read here directly. The server
  builds it from its running sampler (:func:`nvml_facts`); the CLI opens a sampler once
  (:func:`read_nvml`). The NVML adapter stays the only code that touches pynvml.
* **The container** (environment variables, libcudart, nvcc, cuda-compat directories): file
  system reads and two short subprocesses (``ldconfig -p``, ``nvcc --version``);
  :func:`gather_container` blocks, so the server runs it in an executor.
* **Python environments** (the server's interpreter and every Python kernelspec): one probe
  subprocess each (:mod:`gpu_devbox.cuda.probe_script`), run with asyncio and a timeout, so
  importing torch never happens in the server process or on its event loop.

Only the environment variables in :data:`ENV_NAMES` are recorded: a facts dump can be shared
without leaking secrets from the environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import functools
import glob
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
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

PROBE_MARKER = "GPU_DEVBOX_PROBE "
_CMD_TIMEOUT = 10.0
_LD_LINE = re.compile(r"^\s*(\S+)\s+\(([^)]*)\)\s+=>\s+(\S+)\s*$")
_CUDA_DIR = re.compile(r"cuda-(\d+\.\d+)")
_NVCC_RELEASE = re.compile(r"release\s+(\d+\.\d+)(?:,\s*V(\d+\.\d+\.\d+))?")
_PYTHON_NAME = re.compile(r"^python(\d+(\.\d+)?)?$")

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
# Python environments
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class KernelSpec:
    """The parts of a kernelspec the probe needs."""

    name: str
    display_name: str | None
    argv: tuple[str, ...]
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_spec(cls, name: str, spec: Mapping[str, Any]) -> KernelSpec:
        """From a ``kernel.json`` document."""
        env = spec.get("env") or {}
        return cls(
            name=name,
            display_name=spec.get("display_name"),
            argv=tuple(str(a) for a in spec.get("argv") or ()),
            env={str(k): str(v) for k, v in env.items()} if isinstance(env, dict) else {},
        )


def find_kernelspecs() -> list[KernelSpec]:
    """Every kernelspec on Jupyter's data path (first one of each name wins, as in Jupyter)."""
    from jupyter_core.paths import jupyter_path

    specs: dict[str, KernelSpec] = {}
    for folder in jupyter_path("kernels"):
        for path in sorted(glob.glob(os.path.join(folder, "*", "kernel.json"))):
            name = os.path.basename(os.path.dirname(path)).lower()
            if name in specs:
                continue
            try:
                with open(path, encoding="utf-8") as handle:
                    document = json.load(handle)
            except (OSError, ValueError):
                continue
            if isinstance(document, dict):
                specs[name] = KernelSpec.from_spec(name, document)
    return [specs[name] for name in sorted(specs)]


def kernel_python(argv0: str, env: Mapping[str, str], server_python: str) -> tuple[str | None, str]:
    """The interpreter a kernelspec's argv[0] names, and ``ok``, ``not_python`` or ``not_found``.

    Like jupyter_client, ``python``, ``python3`` and ``python3.X`` mean the server's own
    interpreter.
    """
    name = os.path.basename(argv0)
    if not _PYTHON_NAME.match(name):
        return None, "not_python"
    major, minor = sys.version_info[:2]
    if argv0 in ("python", f"python{major}", f"python{major}.{minor}"):
        return server_python, "ok"
    path = argv0 if os.path.isabs(argv0) else shutil.which(argv0, path=env.get("PATH"))
    if not path or not os.access(path, os.X_OK) or os.path.isdir(path):
        return None, "not_found"
    return path, "ok"


@functools.cache
def probe_source() -> str:
    """The probe script run in each environment (:mod:`gpu_devbox.cuda.probe_script`)."""
    return tables.package_text("probe_script.py")


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:400] if lines else ""


async def probe_python(python: str, *, env: Mapping[str, str], timeout: float) -> dict[str, Any]:
    """Run the probe with ``python``: its answer plus ``status``, ``error`` and ``duration``."""
    started = time.monotonic()
    result: dict[str, Any] = {"status": "error", "error": None}
    probe_env = {
        **env,
        "PYTHONIOENCODING": "utf-8",
        "XLA_PYTHON_CLIENT_PREALLOCATE": "false",  # jax must not grab GPU memory to answer
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    with tempfile.TemporaryDirectory(prefix="gpu-devbox-probe-") as cwd:
        try:
            proc = await asyncio.create_subprocess_exec(
                python,
                "-c",
                probe_source(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=probe_env,
                cwd=cwd,
                start_new_session=True,  # so a timeout can kill whatever it started
            )
        except OSError as exc:
            result.update(status="not_found", error=f"cannot run {python}: {exc.strerror or exc}")
            result["duration"] = round(time.monotonic() - started, 3)
            return result
        _RUNNING.add(proc.pid)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except asyncio.TimeoutError:
            _kill_group(proc.pid)
            await proc.wait()
            result.update(status="timeout", error=f"the probe did not finish in {timeout:g} s")
            result["duration"] = round(time.monotonic() - started, 3)
            return result
        except asyncio.CancelledError:
            _kill_group(proc.pid)  # the server is stopping: leave no probe behind
            raise
        finally:
            _RUNNING.discard(proc.pid)
    result["duration"] = round(time.monotonic() - started, 3)
    stdout = out.decode("utf-8", "replace")
    answer = None
    for line in stdout.splitlines():
        if line.startswith(PROBE_MARKER):
            answer = line[len(PROBE_MARKER) :]
    if answer is None:
        why = _last_line(err.decode("utf-8", "replace")) or f"exit status {proc.returncode}"
        result["error"] = f"the probe failed: {why}"
        return result
    try:
        data = json.loads(answer)
    except ValueError as exc:
        result["error"] = f"the probe's answer is not JSON: {exc}"
        return result
    result.update(status="ok", error=None)
    for key in ("python_version", "torch", "cupy", "jax", "tensorflow", "cuda_runtime_wheels"):
        result[key] = data.get(key)
    return result


#: Process ids (and process groups) of the probes running now.
_RUNNING: set[int] = set()


def kill_running_probes() -> None:
    """Kill every probe still running (called when the server stops)."""
    for pid in list(_RUNNING):
        _kill_group(pid)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def gather_environments(
    kernelspecs: Sequence[KernelSpec] | None,
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    server_python: str = sys.executable,
    parallel: int = 2,
) -> list[dict[str, Any]]:
    """Probe the server's interpreter and each kernelspec's (``None``: kernelspecs skipped).

    Environments with the same interpreter and environment overrides share one probe.
    """
    base_env = dict(os.environ if env is None else env)
    limit = asyncio.Semaphore(max(1, parallel))
    probes: dict[tuple[str, tuple[tuple[str, str], ...]], asyncio.Task[dict[str, Any]]] = {}

    async def limited(python: str, probe_env: dict[str, str]) -> dict[str, Any]:
        async with limit:
            return await probe_python(python, env=probe_env, timeout=timeout)

    def schedule(python: str, overrides: Mapping[str, str]) -> asyncio.Task[dict[str, Any]]:
        key = (python, tuple(sorted(overrides.items())))
        if key not in probes:
            probes[key] = asyncio.ensure_future(limited(python, {**base_env, **overrides}))
        return probes[key]

    rows: list[tuple[dict[str, Any], asyncio.Task[dict[str, Any]] | None]] = [
        (
            {"name": "server", "kind": "server", "display_name": None, "python": server_python},
            schedule(server_python, {}),
        )
    ]
    for spec in kernelspecs or ():
        head: dict[str, Any] = {"name": f"kernel:{spec.name}", "kind": "kernelspec"}
        head.update(display_name=spec.display_name, python=spec.argv[0] if spec.argv else None)
        if not spec.argv:
            rows.append(({**head, "status": "not_python", "error": "empty argv"}, None))
            continue
        python, status = kernel_python(spec.argv[0], {**base_env, **spec.env}, server_python)
        if python is None:
            why = "argv[0] is not a Python interpreter" if status == "not_python" else "not found"
            rows.append(({**head, "status": status, "error": f"{spec.argv[0]}: {why}"}, None))
            continue
        rows.append(({**head, "python": python}, schedule(python, spec.env)))
    if kernelspecs is None:
        rows.append(
            (
                {
                    "name": "kernel:*",
                    "kind": "kernelspec",
                    "display_name": None,
                    "python": None,
                    "status": "skipped",
                    "error": "probing kernelspecs is turned off",
                },
                None,
            )
        )
    await asyncio.gather(*probes.values())
    out = []
    for head, task in rows:
        out.append({**head, **task.result()} if task is not None else head)
    return out


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
