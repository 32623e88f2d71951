"""Importing a compute library that may be missing, and the error that says so.

The backend modules import their library through :func:`import_optional`; the selection in
:mod:`gpu_devbox.bench.backends` catches :class:`BackendUnavailable` and tries the next one.
"""

from __future__ import annotations

import importlib
from typing import Any


class BackendUnavailable(Exception):
    """No usable backend; the message says what is missing and how to get it."""


def import_optional(name: str) -> Any:
    """Import a compute library by name, or raise :class:`BackendUnavailable` saying why not."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise BackendUnavailable(f"{name} is not importable ({exc})") from exc
    except Exception as exc:  # a broken install raises anything at import
        raise BackendUnavailable(f"importing {name} failed: {type(exc).__name__}: {exc}") from exc
