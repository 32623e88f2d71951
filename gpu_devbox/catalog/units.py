"""Sizes and CPU amounts as admins write them in a catalog (Kubernetes quantity style)."""

from __future__ import annotations

import re

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(Ki|Mi|Gi|Ti|K|M|G|T)?B?\s*$")
_FACTORS = {
    None: 1,
    "K": 1000,
    "M": 1000**2,
    "G": 1000**3,
    "T": 1000**4,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
}
_MILLI = re.compile(r"^\s*(\d+)m\s*$")


def parse_size(value: object) -> int:
    """Bytes from ``16Gi``, ``512Mi``, ``40GiB``, ``2G`` or a plain integer.

    Raises:
        ValueError: the value is not a non-negative size.
    """
    if isinstance(value, bool):
        raise ValueError("must be a size like 16Gi or 512Mi")
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str):
        match = _SIZE.match(value)
        if match:
            return int(float(match.group(1)) * _FACTORS[match.group(2)])
    raise ValueError("must be a size like 16Gi or 512Mi")


def parse_cpu(value: object) -> float:
    """CPU cores from ``2``, ``0.5`` or ``500m``.

    Raises:
        ValueError: the value is not a positive amount of CPU.
    """
    if isinstance(value, bool):
        raise ValueError("must be a number of cores like 2, 0.5 or 500m")
    cores: float | None = None
    if isinstance(value, int | float):
        cores = float(value)
    elif isinstance(value, str):
        match = _MILLI.match(value)
        if match:
            cores = int(match.group(1)) / 1000
        else:
            try:
                cores = float(value)
            except ValueError:
                cores = None
    if cores is None or cores != cores or cores in (float("inf"), float("-inf")):
        raise ValueError("must be a number of cores like 2, 0.5 or 500m")
    if cores <= 0:
        raise ValueError("must be more than 0 cores")
    return cores


def format_size(size: int | None) -> str:
    """``16Gi``-style text for a byte count (Kubernetes binary suffixes)."""
    if size is None:
        return "-"
    for suffix, factor in (("Ti", 1024**4), ("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{suffix}"
    for suffix, factor in (("Ti", 1024**4), ("Gi", 1024**3), ("Mi", 1024**2)):
        if size >= factor:
            return f"{size / factor:.1f}{suffix}"
    return str(size)
