"""Each framework found in a probed environment, as one :class:`Build` the checks judge."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from gpu_devbox.cuda.model import Environment
from gpu_devbox.cuda.versions import cuda_from_int, fmt

_JAX_PLUGIN = re.compile(r"^jax-cuda(\d+)-plugin$", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class Build:
    """One framework installed in one environment."""

    framework: str
    environment: str
    label: str
    kind: str  # "cuda", "cpu", "rocm" or "broken"
    cuda: str | None = None
    arch_list: tuple[str, ...] | None = None
    error: str | None = None
    sees: int | None = None  # GPUs the framework reports
    warnings: tuple[str, ...] = ()


def environment_builds(env: Environment) -> list[Build]:
    """The framework builds one environment holds, each as the probe saw it."""
    found = (
        (env.torch, _torch_build),
        (env.cupy, _cupy_build),
        (env.jax, _jax_build),
        (env.tensorflow, _tensorflow_build),
    )
    return [read(probe, env.label) for probe, read in found if probe is not None]


def _label(name: str, probe: Mapping[str, Any]) -> str:
    return f"{name} {probe.get('version') or '(unknown version)'}"


def _torch_build(torch: Mapping[str, Any], where: str) -> Build:
    label = _label("torch", torch)
    if torch.get("error") and torch.get("version") is None:
        return Build("torch", where, label, "broken", error=torch["error"])
    if torch.get("hip"):
        return Build("torch", where, label, "rocm")
    available = torch.get("is_available")
    sees = (torch.get("device_count") or 0) if available else (0 if available is False else None)
    return Build(
        "torch",
        where,
        label,
        "cuda" if torch.get("cuda") else "cpu",
        cuda=torch.get("cuda"),
        arch_list=tuple(torch["arch_list"]) if torch.get("arch_list") else None,
        sees=sees,
        warnings=tuple(torch.get("warnings") or ()),
        error=torch.get("error"),
    )


def _cupy_build(cupy: Mapping[str, Any], where: str) -> Build:
    label = _label("cupy", cupy)
    runtime = cuda_from_int(cupy.get("runtime_version"))
    if runtime is None:
        return Build("cupy", where, label, "broken", error=cupy.get("error") or "no CUDA runtime")
    return Build(
        "cupy",
        where,
        label,
        "cuda",
        cuda=fmt(runtime),
        sees=cupy.get("device_count") or 0,
        error=cupy.get("error"),
    )


def _jax_build(jax: Mapping[str, Any], where: str) -> Build:
    label = _label("jax", jax)
    plugin = _JAX_PLUGIN.match(jax.get("cuda_plugin") or "")
    if jax.get("error") and jax.get("version") is None:
        return Build("jax", where, label, "broken", error=jax["error"])
    if plugin is None:
        return Build("jax", where, label, "cpu", sees=jax.get("gpu_count") or 0)
    return Build(
        "jax",
        where,
        f"{label} ({jax['cuda_plugin']})",
        "cuda",
        cuda=plugin.group(1),
        sees=jax.get("gpu_count") or 0,
        error=jax.get("error"),
    )


def _tensorflow_build(tf: Mapping[str, Any], where: str) -> Build:
    label = _label("tensorflow", tf)
    if tf.get("error") and tf.get("version") is None:
        return Build("tensorflow", where, label, "broken", error=tf["error"])
    ccs = tf.get("compute_capabilities")
    return Build(
        "tensorflow",
        where,
        label,
        "cuda" if tf.get("cuda") else "cpu",
        cuda=tf.get("cuda"),
        arch_list=tuple(ccs) if ccs else None,
        sees=tf.get("gpu_count") or 0,
        error=tf.get("error"),
    )
