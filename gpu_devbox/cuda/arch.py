"""GPU architectures: does a build carry code for this GPU, and which builds would.

Rules (``architectures`` table, after the CUDA C++ Programming Guide):

* SASS for ``sm_XY`` runs on compute capability X.Z with Z >= Y (same major only);
  arch-specific targets (``sm_90a``) only on exactly X.Y.
* PTX for ``compute_XY`` is JIT-compiled for any compute capability >= X.Y, but only by a
  driver that natively supports the CUDA that produced it (not under minor-version
  compatibility).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any

from gpu_devbox.cuda import tables
from gpu_devbox.cuda.versions import Version, fmt, parse_cuda

_ENTRY = re.compile(r"^(sm|compute)_(\d+)([a-z]?)$")
_CC = re.compile(r"^(\d+)\.(\d+)$")
TORCH_INDEX = "https://download.pytorch.org/whl/{variant}"


def parse_cc(text: str | None) -> tuple[int, int] | None:
    """``"8.9"`` -> ``(8, 9)``."""
    match = _CC.match(text or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def cc_text(cc: tuple[int, int]) -> str:
    """``(8, 9)`` -> ``"8.9"``."""
    return f"{cc[0]}.{cc[1]}"


def sm_name(cc: tuple[int, int]) -> str:
    """``(12, 0)`` -> ``"sm_120"``."""
    return f"sm_{cc[0]}{cc[1]}"


def parse_entry(entry: str) -> tuple[str, tuple[int, int], str] | None:
    """Split an architecture entry; ``None`` when it is not one.

    ``"sm_90a"`` -> ``("sm", (9, 0), "a")``; ``"compute_120"`` -> ``("compute", (12, 0), "")``.
    """
    match = _ENTRY.match(entry.strip().lower())
    if match is None or len(match.group(2)) < 2:
        return None
    digits = match.group(2)
    return match.group(1), (int(digits[:-1]), int(digits[-1])), match.group(3)


@dataclasses.dataclass(frozen=True)
class Coverage:
    """How a build's architecture list covers one GPU."""

    #: ``sass`` (exact), ``sass_compatible`` (lower minor, same major), ``ptx``, or ``none``.
    kind: str
    #: The entry that covers it (``sm_86``), or ``None``.
    entry: str | None


def coverage(arch_list: Iterable[str], cc: tuple[int, int]) -> Coverage:
    """The best way ``arch_list`` runs on a GPU of compute capability ``cc``."""
    sass_compatible: tuple[tuple[int, int], str] | None = None
    ptx: tuple[tuple[int, int], str] | None = None
    for raw in arch_list:
        parsed = parse_entry(raw)
        if parsed is None:
            continue
        kind, target, suffix = parsed
        if kind == "sm":
            if target == cc:
                return Coverage("sass", raw)
            same_family = suffix != "a" and target[0] == cc[0] and target[1] < cc[1]
            if same_family and (sass_compatible is None or target > sass_compatible[0]):
                sass_compatible = (target, raw)
        elif target <= cc and (ptx is None or target > ptx[0]):
            ptx = (target, raw)
    if sass_compatible is not None:
        return Coverage("sass_compatible", sass_compatible[1])
    if ptx is not None:
        return Coverage("ptx", ptx[1])
    return Coverage("none", None)


def arch_row(cc: tuple[int, int]) -> Mapping[str, Any] | None:
    """The ``architectures`` row of this compute capability."""
    for row in tables.load("architectures").rows:
        if parse_cc(row["cc"]) == cc:
            return row
    return None


def _within(cuda: Version, bound: Version) -> bool:
    """``cuda`` <= ``bound`` where a one-part bound covers its whole major line."""
    return cuda[:1] <= bound if len(bound) == 1 else cuda[:2] <= bound[:2]


def toolkit_supports(cuda_version: str, cc: tuple[int, int]) -> tuple[bool | None, str, str]:
    """Whether CUDA ``cuda_version`` builds for and ships libraries for compute capability ``cc``.

    Returns ``(supported or None when unknown, a sentence, the row's citation)``.
    """
    cuda = parse_cuda(cuda_version)
    row = arch_row(cc)
    if cuda is None or len(cuda) < 2 or row is None:
        return None, f"The tables do not know compute capability {cc_text(cc)}.", ""
    table = tables.load("architectures")
    cite = table.cite(row)
    name = f"{row['arch']} ({sm_name(cc)})"
    first = parse_cuda(row["first_cuda"]) if row.get("first_cuda") else None
    last = parse_cuda(row["last_cuda"]) if row.get("last_cuda") else None
    if first is not None and cuda[:2] < first[:2]:
        return False, f"CUDA {fmt(cuda[:2])} predates {name}: it needs CUDA {fmt(first)}+.", cite
    if last is not None and not _within(cuda, last):
        return (
            False,
            (
                f"CUDA {fmt(cuda[:2])} no longer supports {name}: the last CUDA for it is "
                f"{fmt(last)}{'.x' if len(last) == 1 else ''}."
            ),
            cite,
        )
    return True, f"CUDA {fmt(cuda[:2])} supports {name}.", cite


def torch_variants_for(cc: tuple[int, int]) -> list[tuple[str, str, str]]:
    """PyTorch wheels whose compiled architectures cover ``cc``: ``(torch, variant, cite)``.

    Only the newest torch release group in the table with an exact architecture list is used.
    """
    table = tables.load("pytorch_wheels")
    exact = [row for row in table.rows if row.get("arch_list")]
    if not exact:
        return []
    newest = exact[0]["torch"]
    return [
        (str(row["torch"]), str(row["variant"]), table.cite(row))
        for row in exact
        if row["torch"] == newest and coverage(row["arch_list"], cc).kind != "none"
    ]


def torch_variant_hint(cc: tuple[int, int]) -> str:
    """``"use the cu126 wheels (torch 2.12-2.14): pip install torch --index-url ..."``."""
    variants = torch_variants_for(cc)
    if not variants:
        return f"No PyTorch wheel in the tables carries code for {sm_name(cc)}."
    names = " or ".join(v for _, v, _ in variants)
    torch_range = variants[0][0]
    index = TORCH_INDEX.format(variant=variants[0][1])
    return (
        f"PyTorch {torch_range} wheels for {names} carry code for {sm_name(cc)}: "
        f"pip install torch --index-url {index}"
    )


def gpu_class(name: str) -> str | None:
    """``datacenter``, ``workstation`` or ``consumer`` from the NVML name; ``None``: unknown."""
    for row in tables.load("gpu_classes").rows:
        for word in row["words"]:
            if re.search(
                rf"(?<![A-Za-z0-9]){re.escape(word)}(?![A-Za-z0-9])", name, flags=re.IGNORECASE
            ):
                return str(row["class"])
    return None
