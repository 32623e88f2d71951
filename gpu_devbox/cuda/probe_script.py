"""Probe one Python environment for its GPU frameworks. Run as a separate process, never imported.

gpu-devbox runs this file's text with ``<python> -c`` for the server's interpreter and for every
Python kernelspec, so it must work on any Python 3.8+ without gpu-devbox installed, and it only
uses the standard library. It imports torch, cupy, jax and tensorflow when they are installed
(seconds each, which is why this never runs inside the server), and prints one line::

    GPU_DEVBOX_PROBE {"python_version": ..., "torch": {...} | null, ...}

Anything the frameworks print goes to stderr or before that line. A framework that is not
installed is ``null``; one that fails to import or answer carries ``"error"``.
"""

from __future__ import annotations

import importlib.util
import json
import platform
import re
import sys
import warnings
from typing import Any

MARKER = "GPU_DEVBOX_PROBE "
_MAX_TEXT = 400


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line[:_MAX_TEXT]


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _distributions(pattern: str) -> list[dict[str, str]]:
    try:
        from importlib import metadata
    except ImportError:  # Python < 3.8
        return []
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = getattr(dist, "name", None)  # Python 3.10+
        if not name:
            try:
                name = dist.metadata["Name"]
            except KeyError:
                name = None
        name = (name or "").strip()
        if re.match(pattern, name.lower().replace("_", "-")):
            found[name] = dist.version
    return [{"name": name, "version": found[name]} for name in sorted(found)]


def probe_torch() -> dict[str, Any] | None:
    if not _installed("torch"):
        return None
    info: dict[str, Any] = {
        "version": None,
        "cuda": None,
        "hip": None,
        "is_available": None,
        "device_count": None,
        "arch_list": None,
        "arch_list_source": None,
        "cudnn": None,
        "devices": None,
        "warnings": [],
        "error": None,
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            import torch

            info["version"] = str(torch.__version__)
            info["cuda"] = getattr(torch.version, "cuda", None)
            info["hip"] = getattr(torch.version, "hip", None)
            info["is_available"] = bool(torch.cuda.is_available())
            info["device_count"] = int(torch.cuda.device_count())
            arch = list(torch.cuda.get_arch_list())
            if arch:
                info["arch_list"], info["arch_list_source"] = arch, "get_arch_list"
            else:
                # get_arch_list() is empty whenever CUDA is unavailable; the compiled-in flags
                # still say what the wheel carries.
                flags_fn = getattr(torch._C, "_cuda_getArchFlags", None)
                flags = flags_fn() if flags_fn is not None else None
                if flags:
                    info["arch_list"] = str(flags).split()
                    info["arch_list_source"] = "compiled_flags"
            try:
                cudnn = torch.backends.cudnn.version()
                info["cudnn"] = int(cudnn) if cudnn is not None else None
            except Exception:  # noqa: BLE001 - cuDNN absent or unloadable: just unknown
                info["cudnn"] = None
            if info["is_available"]:
                devices: list[dict[str, str]] = []
                for i in range(info["device_count"]):
                    major, minor = torch.cuda.get_device_capability(i)
                    name = torch.cuda.get_device_name(i)
                    devices.append({"name": name, "capability": f"{major}.{minor}"})
                info["devices"] = devices
        except Exception as exc:  # noqa: BLE001 - any failure is a fact to report
            info["error"] = _short(exc)
    seen: list[str] = []
    for warning in caught:
        text = str(warning.message).strip()[:_MAX_TEXT]
        if text and text not in seen:
            seen.append(text)
    info["warnings"] = seen[:10]
    return info


def probe_cupy() -> dict[str, Any] | None:
    if not _installed("cupy"):
        return None
    info: dict[str, Any] = {
        "version": None,
        "packages": [d["name"] for d in _distributions(r"^cupy(-|$)")],
        "runtime_version": None,
        "driver_version": None,
        "device_count": None,
        "error": None,
    }
    try:
        import cupy

        info["version"] = str(cupy.__version__)
        info["runtime_version"] = int(cupy.cuda.runtime.runtimeGetVersion())
        info["driver_version"] = int(cupy.cuda.runtime.driverGetVersion())
        info["device_count"] = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as exc:  # noqa: BLE001 - no driver / no device is a fact to report
        info["error"] = _short(exc)
    return info


def probe_jax() -> dict[str, Any] | None:
    if not _installed("jax"):
        return None
    plugins = _distributions(r"^jax-cuda\d+-plugin$")
    info: dict[str, Any] = {
        "version": None,
        "backend": None,
        "gpu_count": None,
        "cuda_plugin": plugins[0]["name"] if plugins else None,
        "cuda_plugin_version": plugins[0]["version"] if plugins else None,
        "error": None,
    }
    try:
        import jax

        info["version"] = str(jax.__version__)
        info["backend"] = str(jax.default_backend())
        try:
            info["gpu_count"] = len(jax.devices("gpu"))
        except RuntimeError:  # no GPU backend
            info["gpu_count"] = 0
    except Exception as exc:  # noqa: BLE001
        info["error"] = _short(exc)
    return info


def probe_tensorflow() -> dict[str, Any] | None:
    if not _installed("tensorflow"):
        return None
    info: dict[str, Any] = {
        "version": None,
        "cuda": None,
        "cudnn": None,
        "compute_capabilities": None,
        "gpu_count": None,
        "error": None,
    }
    try:
        import tensorflow as tf

        info["version"] = str(tf.__version__)
        build = dict(tf.sysconfig.get_build_info())
        info["cuda"] = build.get("cuda_version")
        info["cudnn"] = build.get("cudnn_version")
        ccs = build.get("cuda_compute_capabilities")
        info["compute_capabilities"] = [str(c) for c in ccs] if ccs else None
        info["gpu_count"] = len(tf.config.list_physical_devices("GPU"))
    except Exception as exc:  # noqa: BLE001
        info["error"] = _short(exc)
    return info


def main() -> None:
    real_stdout = sys.stdout
    sys.stdout = sys.stderr  # whatever the frameworks print must not corrupt the answer
    result = {
        "python_version": platform.python_version(),
        "torch": probe_torch(),
        "cupy": probe_cupy(),
        "jax": probe_jax(),
        "tensorflow": probe_tensorflow(),
        "cuda_runtime_wheels": _distributions(r"^nvidia-cuda-runtime(-cu\d+)?$"),
    }
    real_stdout.write(MARKER + json.dumps(result) + "\n")
    real_stdout.flush()


if __name__ == "__main__":
    main()
