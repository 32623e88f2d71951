"""Durations as admins write them in a catalog: ``90s``, ``15m``, ``2h``, ``1d``, ``1h30m``.

A duration is one or more amounts, each a whole number followed by its unit (``d`` days, ``h``
hours, ``m`` minutes, ``s`` seconds), largest unit first; a bare whole number is seconds.
"""

from __future__ import annotations

import re

_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"(\d{1,9})([dhms])")
_DURATION = re.compile(r"^(?:\d{1,9}[dhms])+$")
_MESSAGE = "must be a duration like 90s, 15m, 2h, 1d or 1h30m"


def parse_duration(value: object) -> int:
    """Seconds from ``"2h"``, ``"1h30m"``, ``"90s"`` or a whole number of seconds.

    Raises:
        ValueError: the value is not a duration (the message says what is allowed).
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(_MESSAGE)
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{_MESSAGE}, not negative")
        return value
    text = value.strip()
    if text.isdigit():
        return int(text)
    if not _DURATION.match(text):
        raise ValueError(f"{_MESSAGE}, not {value!r}")
    parts = _PART.findall(text)
    units = [unit for _, unit in parts]
    order = list(_UNITS)
    if len(set(units)) != len(units) or units != sorted(units, key=order.index):
        raise ValueError(f"{_MESSAGE}: give each unit once, largest first, not {value!r}")
    return sum(int(amount) * _UNITS[unit] for amount, unit in parts)


def format_duration(seconds: float) -> str:
    """The catalog's spelling of a whole number of seconds: ``7200`` -> ``2h``, ``90`` ->
    ``1m30s``, ``0`` -> ``0s``."""
    rest = max(0, round(seconds))
    if rest == 0:
        return "0s"
    out = []
    for unit, size in _UNITS.items():
        amount, rest = divmod(rest, size)
        if amount:
            out.append(f"{amount}{unit}")
    return "".join(out)
