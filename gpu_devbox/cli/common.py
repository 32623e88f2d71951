"""Pieces the subcommands share: number arguments, byte formatting, JSON output."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from typing import Any


def bounded_float(minimum: float, maximum: float) -> Callable[[str], float]:
    """An argparse type: a finite number within [minimum, maximum]."""

    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{raw!r} is not a number") from None
        if not math.isfinite(value) or not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(
                f"{raw} is outside the allowed range {minimum:g} to {maximum:g}"
            )
        return value

    return parse


def bounded_int(minimum: int, maximum: int) -> Callable[[str], int]:
    """An argparse type: an integer within [minimum, maximum]."""

    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{raw!r} is not an integer") from None
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(
                f"{raw} is outside the allowed range {minimum} to {maximum}"
            )
        return value

    return parse


#: Binary units for memory and byte rates, as nvidia-smi's MiB.
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def _amount(value: float, unit: int) -> str:
    """``value`` bytes in units of 1024**unit as the rule writes it: ``79.6``, ``159``, ``17``.

    The rounding (ties up) is spelled out, not left to ``format``, whose ties go to even: the
    Lab panel does the same arithmetic, so both print the same digits for the same bytes.
    """
    scaled = abs(value) / 1024**unit
    sign = "-" if value < 0 else ""
    if unit > 0:
        tenths = math.floor(scaled * 10 + 0.5)
        if tenths < 1000:
            return f"{sign}{tenths // 10}.{tenths % 10}"
    return f"{sign}{math.floor(scaled + 0.5)}"


def _unit_of(value: float) -> int:
    """The unit for ``value`` bytes: the largest whose rounded number stays below 1024."""
    unit = 0
    while unit < len(_UNITS) - 1 and math.floor(abs(value) / 1024**unit + 0.5) >= 1024:
        unit += 1
    return unit


def format_bytes(value: float | None, unit: str = "") -> str:
    """``79.6 GiB``, ``480 MiB``, ``17 B`` (``unit`` is appended: ``/s``); ``-`` for unknown.

    The rule, shared with the Lab panel (``labextension/src/format.ts``; both tested on
    ``tests/fixtures/memory_format_cases.json``): binary units, the largest that keeps the number
    below 1024; whole bytes, else one decimal below 100 and whole numbers from 100 on. An H100
    reporting 81559 MiB has 79.6 GiB, two of them 159 GiB.
    """
    if value is None:
        return "-"
    scale = _unit_of(value)
    return f"{_amount(value, scale)} {_UNITS[scale]}{unit}"


def format_memory_pair(used: float | None, total: float | None) -> str:
    """``12.3/79.6 GiB``: used and total in one unit, the larger one's (as the Lab panel)."""
    if used is None or total is None:
        return f"{format_bytes(used)} / {format_bytes(total)}"
    scale = _unit_of(max(abs(used), abs(total)))
    return f"{_amount(used, scale)}/{_amount(total, scale)} {_UNITS[scale]}"


def print_json(payload: Any) -> None:
    """Print one JSON document on one line."""
    sys.stdout.write(json.dumps(payload, allow_nan=False) + "\n")
    sys.stdout.flush()


def add_backend_option(parser: argparse.ArgumentParser) -> None:
    """``--backend``: where GPU data comes from (read back with :func:`chosen_backend`)."""
    from gpu_devbox.gpus.backends import BACKENDS

    parser.add_argument(
        "--backend",
        choices=list(BACKENDS),
        help="where GPU data comes from (default: $GPU_DEVBOX_BACKEND, else nvml)",
    )


def chosen_backend(args: argparse.Namespace) -> str:
    """The ``--backend`` given, else ``$GPU_DEVBOX_BACKEND``, else nvml (one-line error if bad)."""
    from gpu_devbox.cli import CliError
    from gpu_devbox.gpus.backends import backend_from_env

    try:
        return str(args.backend or backend_from_env())
    except ValueError as exc:
        raise CliError(str(exc)) from None
