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


def format_bytes(value: float | None, unit: str = "") -> str:
    """``12.3 GiB``-style text; ``-`` for unknown."""
    if value is None:
        return "-"
    size = float(value)
    for prefix in ("", "Ki", "Mi", "Gi", "Ti"):
        if abs(size) < 1024 or prefix == "Ti":
            return f"{size:.0f} {prefix}B{unit}" if not prefix else f"{size:.1f} {prefix}B{unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


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
