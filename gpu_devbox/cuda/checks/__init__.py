"""The CUDA checks: a pure function from a facts document to a list of checks.

Each check is ``{"id", "status", "title", "detail", "remedy", "environment"?, "source"?}`` with
``status`` one of ``pass``, ``warn``, ``fail``, ``skip``. The ids are a public contract:

``nvml``
    NVML is usable; on failure the reason and the fix.
``driver-capabilities``
    The container runtime gave this server ``compute`` and ``utility``; GPUs it can see though
    its profile requested none.
``driver-vs-image-cuda``
    The image's CUDA toolkit against the driver (native, minor-version or forward
    compatibility, or too old, with the driver it needs).
``base-image-lifecycle``
    The image's nvidia/cuda base under NVIDIA's container support policy.
``framework-cuda``
    Each framework's CUDA build against the driver (one per environment and framework).
``gpu-arch``
    Each GPU's compute capability against the image toolkit and each framework's compiled
    architectures.
``cuda-available``
    Each framework sees the GPUs NVML sees.

Nothing here does I/O: the same facts always give the same checks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from gpu_devbox.cuda import tables
from gpu_devbox.cuda.checks.base import CHECK_IDS, STATUSES, Check, Context
from gpu_devbox.cuda.checks.frameworks import framework_checks
from gpu_devbox.cuda.checks.system import (
    check_base_image,
    check_driver_capabilities,
    check_driver_vs_image,
    check_nvml,
)
from gpu_devbox.cuda.model import Facts, parse_facts

__all__ = [
    "CHECK_IDS",
    "STATUSES",
    "Check",
    "checks_document",
    "evaluate",
    "run_checks",
    "summarize",
]


def run_checks(facts: Facts) -> list[Check]:
    """Every check, in report order."""
    ctx = Context.build(facts)
    out = [
        check_nvml(ctx),
        check_driver_capabilities(ctx),
        check_driver_vs_image(ctx),
        check_base_image(ctx),
    ]
    out.extend(framework_checks(ctx))
    return out


def evaluate(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Validate a facts document and return its checks as JSON.

    Raises:
        FactsError: the document is invalid (the message names the field).
    """
    return [c.as_dict() for c in run_checks(parse_facts(document))]


def summarize(checks: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts per status and the overall status (``fail`` > ``warn`` > ``pass`` > ``skip``)."""
    counts = dict.fromkeys(STATUSES, 0)
    for check in checks:
        counts[check["status"]] += 1
    overall = next((s for s in STATUSES if counts[s]), "skip")
    return {"status": overall, "counts": counts}


def checks_document(document: Mapping[str, Any]) -> dict[str, Any]:
    """What ``GET checks`` and ``doctor --json`` return: checks, summary, the facts."""
    checks = evaluate(document)
    return {
        "gathered_at": document.get("gathered_at"),
        **summarize(checks),
        "checks": checks,
        "tables_as_of": tables.as_of(),
        "facts": dict(document),
    }
