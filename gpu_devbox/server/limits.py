"""How much a client may send: request bodies, JSON shapes and query arguments, in linear time.

Every route of the extension shares these limits, so that no request, whatever its size or
shape, can hold the event loop for long or make the server keep much memory for it:

* a request body of more than :data:`MAX_BODY_BYTES` is refused with 413 before it is read;
* a JSON body nested deeper than :data:`MAX_JSON_DEPTH`, or with an array or object of more
  than :data:`MAX_JSON_ITEMS` entries, is refused with 400;
* a query argument given twice, or longer than :data:`MAX_QUERY_VALUE`, is refused with 400.

The functions here are plain Python (no tornado): they raise :class:`LimitError`, which the
handlers turn into the HTTP status it carries. Messages quote what the client sent only through
:func:`~gpu_devbox.quote.brief`, so an error message never grows with the request.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from gpu_devbox.quote import brief

#: The largest request body any route accepts, in bytes. The biggest legitimate body (a
#: benchmark request) is well under 1 KiB.
MAX_BODY_BYTES = 64 * 1024
#: The deepest nesting a JSON body may have (a benchmark request needs 2).
MAX_JSON_DEPTH = 16
#: The most entries one JSON array or object may have.
MAX_JSON_ITEMS = 1024
#: The longest value one query argument may have, in characters.
MAX_QUERY_VALUE = 64

#: A number as JSON writes one (what the OpenAPI document's ``type: number`` means in a query):
#: no blanks, underscores, ``inf`` or ``nan``.
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


class LimitError(ValueError):
    """A request over one of the limits; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def check_content_length(raw: str | None, limit: int = MAX_BODY_BYTES) -> None:
    """Refuse a declared body size over ``limit`` (413) before anything is read."""
    if raw is None:
        return
    try:
        declared = int(raw.strip())
    except ValueError:
        return  # tornado answers a malformed Content-Length itself
    if declared > limit:
        raise LimitError(too_large(limit), status=413)


def too_large(limit: int = MAX_BODY_BYTES) -> str:
    """The message of a 413."""
    return f"the request body is larger than {limit} bytes ({limit // 1024} KiB), the most allowed"


def parse_json_body(body: bytes, limit: int = MAX_BODY_BYTES) -> Any:
    """Parse a request body as JSON within the limits (an empty body is ``None``).

    Raises:
        LimitError: too large (413), not JSON, nested too deeply or too wide (400).
    """
    if len(body) > limit:
        raise LimitError(too_large(limit), status=413)
    if not body.strip():
        return None
    try:
        value = json.loads(body)
    except RecursionError:
        raise LimitError(_too_deep()) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise LimitError(f"request body is not valid JSON: {brief(str(exc), 120)}") from None
    check_json_shape(value)
    return value


def _too_deep() -> str:
    return f"the request body is nested more than {MAX_JSON_DEPTH} levels deep"


def check_json_shape(value: Any) -> None:
    """Refuse JSON nested deeper than :data:`MAX_JSON_DEPTH` or wider than :data:`MAX_JSON_ITEMS`.

    Iterative (no recursion), one visit per value: linear in the size of the document.
    """
    stack: list[tuple[Any, int, str]] = [(value, 1, "the request body")]
    while stack:
        node, depth, where = stack.pop()
        if isinstance(node, dict):
            children = node.items()
        elif isinstance(node, list):
            children = enumerate(node)  # type: ignore[assignment]
        else:
            continue
        if depth > MAX_JSON_DEPTH:
            raise LimitError(_too_deep())
        if len(node) > MAX_JSON_ITEMS:
            raise LimitError(
                f"{where} has {len(node)} entries; at most {MAX_JSON_ITEMS} are allowed"
            )
        for key, child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1, _path(where, key)))


def _path(where: str, key: object) -> str:
    if where == "the request body":
        return str(key) if isinstance(key, str) else f"[{key}]"
    return f"{where}.{key}" if isinstance(key, str) else f"{where}[{key}]"


def single_query_value(values: list[str], name: str) -> str | None:
    """The one value of a query argument (``None`` when absent).

    Raises:
        LimitError: given more than once, or longer than :data:`MAX_QUERY_VALUE`.
    """
    if not values:
        return None
    if len(values) > 1:
        raise LimitError(f"{name} is given {len(values)} times; give it once")
    value = values[0]
    if len(value) > MAX_QUERY_VALUE:
        raise LimitError(f"{name} is {len(value)} characters long; at most {MAX_QUERY_VALUE}")
    return value


def parse_number(
    raw: str | None,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    default: float | None = None,
) -> float | None:
    """A numeric query argument, or a :class:`LimitError` that names it and says what is allowed.

    Absent (``None``) is ``default``; present but empty is an error like any other non-number.
    """
    if raw is None:
        return default
    value = _float(raw)
    if value is None:
        raise LimitError(f"{name} must be a number, not {brief(raw)}")
    if not math.isfinite(value):
        raise LimitError(f"{name} must be a finite number, not {brief(raw)}")
    if minimum is not None and value < minimum:
        raise LimitError(f"{name} must be at least {minimum:g}, not {raw}")
    if maximum is not None and value > maximum:
        raise LimitError(f"{name} must be at most {maximum:g}, not {raw}")
    return value


def _float(raw: str) -> float | None:
    if _NUMBER.fullmatch(raw):
        return float(raw)  # may overflow to inf: "1e400"
    if raw.strip().lower().lstrip("+-") in {"nan", "inf", "infinity"}:
        return math.nan  # not finite, whatever its sign
    return None


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def parse_flag(raw: str | None, name: str) -> bool:
    """A boolean query argument (``1``/``0``, ``true``/``false``, ...); absent is false.

    Raises:
        LimitError: any other value, the empty one included.
    """
    if raw is None:
        return False
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise LimitError(f"{name} must be 1 or 0 (or true/false), not {brief(raw)}")
