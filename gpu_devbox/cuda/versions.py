"""Parsing and formatting the version numbers CUDA checks compare.

Driver versions look like ``580.159.04`` or ``570.26``; CUDA versions like ``13.0``, ``12.8.1``
or just ``12``; NVML and the CUDA runtime encode CUDA versions as ``1000 * major + 10 * minor``.
Every parser returns ``None`` for text it cannot read, so callers can say "unknown" instead of
guessing.
"""

from __future__ import annotations

import datetime
import functools
import re

Version = tuple[int, ...]

_DRIVER = re.compile(r"^\s*(\d{2,4})(?:\.(\d{1,4}))?(?:\.(\d{1,4}))?\s*$")
_CUDA = re.compile(r"^\s*[vV]?(\d{1,2})(?:\.(\d{1,2}))?(?:\.(\d{1,4}))?(?:\.\d+)*\s*$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def parse_driver(text: object) -> Version | None:
    """``"580.159.04"`` -> ``(580, 159, 4)``; ``None`` when it is not a driver version."""
    if not isinstance(text, str):
        return None
    return _parse_driver(text)


# The checks compare the same few dozen version strings (the tables' rows, the facts) many
# times per judging: parsing each once keeps a judging at a fraction of a millisecond.
@functools.lru_cache(maxsize=4096)
def _parse_driver(text: str) -> Version | None:
    match = _DRIVER.match(text)
    if match is None:
        return None
    return tuple(int(part) for part in match.groups() if part is not None)


def parse_cuda(text: object) -> Version | None:
    """``"12.8.1"`` -> ``(12, 8, 1)``, ``"13.0"`` -> ``(13, 0)``, ``"12"`` -> ``(12,)``.

    Extra components (wheel build numbers such as ``12.8.90.1``) are dropped after the third.
    """
    if not isinstance(text, str):
        return None
    return _parse_cuda(text)


@functools.lru_cache(maxsize=4096)
def _parse_cuda(text: str) -> Version | None:
    match = _CUDA.match(text)
    if match is None:
        return None
    return tuple(int(part) for part in match.groups() if part is not None)


def cuda_from_int(encoded: object) -> Version | None:
    """NVML / CUDA runtime encoding ``12080`` -> ``(12, 8)``; ``None`` for 0, negatives, junk."""
    if isinstance(encoded, bool) or not isinstance(encoded, int) or encoded <= 0:
        return None
    return (encoded // 1000, (encoded % 1000) // 10)


def minor_of(version: Version) -> Version:
    """The ``(major, minor)`` prefix (or ``(major,)`` when no minor is known)."""
    return version[:2]


def fmt(version: Version | None) -> str:
    """``(12, 8, 1)`` -> ``"12.8.1"``; ``"unknown"`` for ``None``."""
    if version is None:
        return "unknown"
    return ".".join(str(part) for part in version)


def parse_date(text: object) -> datetime.date | None:
    """``"2026-06"`` (read as the month's first day) or ``"2025-02-01"``; ``None`` otherwise."""
    if not isinstance(text, str):
        return None
    return _parse_date(text)


@functools.lru_cache(maxsize=1024)
def _parse_date(text: str) -> datetime.date | None:
    month = _MONTH.match(text)
    if month is not None:
        return datetime.date(int(month.group(1)), int(month.group(2)), 1)
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        return None


def add_months(day: datetime.date, months: int) -> datetime.date:
    """``day`` moved by whole months (clamped to the first of the month)."""
    index = day.year * 12 + day.month - 1 + months
    return datetime.date(index // 12, index % 12 + 1, 1)
