"""Catalog errors: one line naming the file, the line, the field and what is allowed there."""

from __future__ import annotations

from collections.abc import Mapping


class CatalogError(ValueError):
    """A catalog that cannot be used: where, which field, and what is allowed."""

    def __init__(self, source: str, path: str, problem: str, line: int | None = None) -> None:
        self.source = source
        self.path = path
        self.problem = problem
        self.line = line
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {path}: {problem}" if path else f"{where}: {problem}")


def line_of(path: str, lines: Mapping[str, int]) -> int | None:
    """The line of a field (``profiles[2].gpu.count``), else of the nearest field holding it."""
    probe = path
    while probe:
        if probe in lines:
            return lines[probe]
        cut = max(probe.rfind("."), probe.rfind("["))
        probe = probe[:cut] if cut > 0 else ""
    return None


class FieldReader:
    """Fails with a field's path and line: for the rules that relate fields to each other."""

    def __init__(self, source: str, lines: Mapping[str, int]) -> None:
        self.source = source
        self.lines = lines

    def fail(self, path: str, problem: str) -> CatalogError:
        """The error for ``path``, located at its line."""
        return CatalogError(self.source, path, problem, line_of(path, self.lines))
