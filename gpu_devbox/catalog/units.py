"""Sizes and CPU amounts as admins write them in a catalog: Kubernetes quantities.

The grammar is :mod:`gpu_devbox.quantity`'s (Kubernetes' own); this module adds what a size and
an amount of CPU may be: whole bytes, not negative; more than 0 cores.
"""

from __future__ import annotations

from fractions import Fraction

from gpu_devbox.quantity import QuantityError, parse_quantity

_SIZE = "must be a size like 16Gi or 512Mi"
_CORES = "must be a number of cores like 2, 0.5 or 500m"


def parse_size(value: object) -> int:
    """Bytes from a Kubernetes quantity (``16Gi``, ``512Mi``, ``2G``, ``1k``) or an integer.

    Raises:
        ValueError: the value is not a whole, non-negative number of bytes.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(_SIZE)
    try:
        amount = Fraction(value) if isinstance(value, int) else parse_quantity(value)
    except QuantityError as exc:
        raise ValueError(f"{_SIZE}; {exc}") from None
    if amount < 0:
        raise ValueError(f"{_SIZE}, not negative")
    if amount.denominator != 1:
        raise _not_whole_bytes(value, amount)
    return int(amount)


def _not_whole_bytes(value: object, amount: Fraction) -> ValueError:
    hint = ""
    if isinstance(value, str) and value.endswith("m"):
        hint = f" (m is a thousandth: did you mean {value[:-1]}Mi?)"
    return ValueError(f"{_SIZE}: {value} is {float(amount):g} bytes, not a whole number{hint}")


def parse_cpu(value: object) -> float:
    """CPU cores from a number or a Kubernetes quantity: ``2``, ``0.5`` or ``500m``.

    Raises:
        ValueError: the value is not a positive amount of CPU.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(_CORES)
    if isinstance(value, str):
        try:
            cores = float(parse_quantity(value))
        except QuantityError as exc:
            raise ValueError(f"{_CORES}; {exc}") from None
    else:
        cores = float(value)
    if cores != cores or cores in (float("inf"), float("-inf")):
        raise ValueError(_CORES)
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
