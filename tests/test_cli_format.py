"""The CLI writes memory with the Lab panel's rule: both read the same table of cases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gpu_devbox.cli.common import format_bytes, format_memory_pair

CASES: dict[str, Any] = json.loads(
    (Path(__file__).parent / "fixtures" / "memory_format_cases.json").read_text(encoding="utf-8")
)
MISSING = "-"


def _expected(text: str) -> str:
    return text.replace("{missing}", MISSING)


@pytest.mark.parametrize(("value", "text"), CASES["bytes"])
def test_bytes(value: float | None, text: str) -> None:
    assert format_bytes(value) == _expected(text)


@pytest.mark.parametrize(("value", "text"), CASES["rates"])
def test_rates(value: float | None, text: str) -> None:
    assert format_bytes(value, "/s") == _expected(text)


@pytest.mark.parametrize(("used", "total", "text"), CASES["memory_pairs"])
def test_memory_pairs(used: float | None, total: float | None, text: str) -> None:
    assert format_memory_pair(used, total) == _expected(text)


def test_the_table_has_the_cases_that_made_the_sides_drift() -> None:
    """Ties (Python's format rounds them to even, JavaScript's toFixed up) and unit carries."""
    values = dict(CASES["bytes"])
    assert values[1342177280] == "1.3 GiB"  # exactly 1.25 GiB
    assert values[2.5] == "3 B"
    assert values[1073217536] == "1.0 GiB"  # 1023.5 MiB carries into the next unit
    assert values[85520809984] == "79.6 GiB"  # an H100's 81559 MiB
