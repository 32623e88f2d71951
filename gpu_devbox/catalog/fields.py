"""Reading catalog fields one at a time, with errors that name the file, line and field."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from gpu_devbox.catalog.model import NAME_PATTERN

_CUDA_VERSION = r"^\d{1,2}\.\d{1,2}(\.\d{1,3})?$"

T = TypeVar("T")


class CatalogError(ValueError):
    """A catalog that cannot be used: where, which field, and what is allowed."""

    def __init__(self, source: str, path: str, problem: str, line: int | None = None) -> None:
        self.source = source
        self.path = path
        self.problem = problem
        self.line = line
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {path}: {problem}" if path else f"{where}: {problem}")


class FieldReader:
    """Reads one field at a time, failing with the field's path, line and what is allowed."""

    def __init__(self, source: str, lines: Mapping[str, int]) -> None:
        self.source = source
        self.lines = lines

    # -- errors -------------------------------------------------------------------------------

    def fail(self, path: str, problem: str) -> CatalogError:
        line = None
        probe = path
        while probe:
            if probe in self.lines:
                line = self.lines[probe]
                break
            cut = max(probe.rfind("."), probe.rfind("["))
            probe = probe[:cut] if cut > 0 else ""
        return CatalogError(self.source, path, problem, line)

    # -- primitives ---------------------------------------------------------------------------

    def mapping(
        self, value: Any, path: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"must be a mapping with keys {', '.join(allowed)}")
        for key in value:
            if key not in allowed:
                where = f"{path}.{key}" if path else str(key)
                raise self.fail(where, f"is not a known field; allowed here: {', '.join(allowed)}")
        for key in required:
            if value.get(key) is None:
                raise self.fail(path or key, f"needs the field {key!r}")
        return value

    def sequence(self, value: Any, path: str, what: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(path, f"must be a list of {what}")
        return value

    def string(self, value: Any, path: str, *, pattern: str | None = None, hint: str = "") -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(path, f"must be a non-empty string{hint and ' ' + hint}")
        if pattern is not None and not re.match(pattern, value):
            raise self.fail(path, f"{value!r} is not allowed: {hint or 'bad format'}")
        return value

    def name(self, value: Any, path: str) -> str:
        text = self.string(value, path, hint="(lower-case letters, digits and dashes)")
        if not NAME_PATTERN.match(text) or len(text) > 63:
            raise self.fail(
                path,
                f"{text!r} is not allowed: use lower-case letters, digits and dashes "
                "(at most 63, starting and ending with a letter or digit)",
            )
        return text

    def integer(self, value: Any, path: str, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(path, f"must be an integer from {low} to {high}, not {value!r}")
        return value

    def boolean(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(path, f"must be true or false, not {value!r}")
        return value

    def convert(self, value: Any, path: str, parse: Callable[[Any], T]) -> T:
        try:
            return parse(value)
        except ValueError as exc:
            problem = str(exc)
            if repr(value) not in problem:
                problem += f", not {value!r}"
            raise self.fail(path, problem) from None

    def cuda(self, value: Any, path: str) -> str | None:
        if value is None:
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)  # YAML reads 12.9 as a float
        return self.string(
            value, path, pattern=_CUDA_VERSION, hint='a CUDA version like "12.9" or null'
        )

    def optional_text(self, raw: Mapping[str, Any], key: str, path: str) -> str:
        value = raw.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self.fail(f"{path}.{key}", "must be a string")
        return value.strip()
