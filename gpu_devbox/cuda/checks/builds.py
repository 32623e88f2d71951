"""Each framework found in a probed environment, as one :class:`Build` the checks judge."""

from __future__ import annotations

import dataclasses
import re

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
    out = []
    where = env.label
    torch = env.torch
    if torch is not None:
        label = f"torch {torch.get('version') or '(unknown version)'}"
        if torch.get("error") and torch.get("version") is None:
            out.append(Build("torch", where, label, "broken", error=torch["error"]))
        elif torch.get("hip"):
            out.append(Build("torch", where, label, "rocm"))
        else:
            available = torch.get("is_available")
            sees = (
                (torch.get("device_count") or 0)
                if available
                else (0 if available is False else None)
            )
            out.append(
                Build(
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
            )
    cupy = env.cupy
    if cupy is not None:
        label = f"cupy {cupy.get('version') or '(unknown version)'}"
        runtime = cuda_from_int(cupy.get("runtime_version"))
        if runtime is None:
            out.append(
                Build("cupy", where, label, "broken", error=cupy.get("error") or "no CUDA runtime")
            )
        else:
            count = cupy.get("device_count")
            out.append(
                Build(
                    "cupy",
                    where,
                    label,
                    "cuda",
                    cuda=fmt(runtime),
                    sees=count or 0,
                    error=cupy.get("error"),
                )
            )
    jax = env.jax
    if jax is not None:
        label = f"jax {jax.get('version') or '(unknown version)'}"
        plugin = _JAX_PLUGIN.match(jax.get("cuda_plugin") or "")
        if jax.get("error") and jax.get("version") is None:
            out.append(Build("jax", where, label, "broken", error=jax["error"]))
        elif plugin is None:
            out.append(Build("jax", where, label, "cpu", sees=jax.get("gpu_count") or 0))
        else:
            out.append(
                Build(
                    "jax",
                    where,
                    f"{label} ({jax['cuda_plugin']})",
                    "cuda",
                    cuda=plugin.group(1),
                    sees=jax.get("gpu_count") or 0,
                    error=jax.get("error"),
                )
            )
    tf = env.tensorflow
    if tf is not None:
        label = f"tensorflow {tf.get('version') or '(unknown version)'}"
        if tf.get("error") and tf.get("version") is None:
            out.append(Build("tensorflow", where, label, "broken", error=tf["error"]))
        else:
            ccs = tf.get("compute_capabilities")
            out.append(
                Build(
                    "tensorflow",
                    where,
                    label,
                    "cuda" if tf.get("cuda") else "cpu",
                    cuda=tf.get("cuda"),
                    arch_list=tuple(ccs) if ccs else None,
                    sees=tf.get("gpu_count") or 0,
                    error=tf.get("error"),
                )
            )
    return out
