"""The catalog's field rules are its JSON Schema; this module says its errors as the loader does.

``catalog.schema.json`` is the one statement of what each field may hold: editors read it, and
the loader checks every catalog with it through ``jsonschema``. Each schema error becomes one
:class:`~gpu_devbox.catalog.fields.CatalogError` line, ``file:line: field.path: what is
allowed``: the field is the error's path in the document, the line is the loader's record of
where that field stands, and what is allowed comes from the schema itself: its
``errorMessage`` (the annotation VS Code's JSON support also shows; ``{value!r}`` stands for the
value found), else a sentence made from the keyword that failed. Sizes and CPU amounts are
checked by the ``kubernetes-size`` and ``kubernetes-cpu`` formats, which are the unit
conversions of :mod:`gpu_devbox.catalog.units`: their message is the conversion's own.

What a schema cannot say (names unique across the catalog, images a profile names that exist,
a guarantee not above its limit, a base for each built image) stays in the loader.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator, Mapping
from importlib import resources
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError

from gpu_devbox.catalog.durations import parse_duration
from gpu_devbox.catalog.fields import CatalogError, line_of
from gpu_devbox.catalog.units import parse_cpu, parse_size

#: Keywords whose failure the schema node's ``errorMessage`` explains. The others
#: (``required``, ``additionalProperties``, ``uniqueItems``, ``format``) say what is wrong
#: better in general terms, or carry their own message.
_EXPLAINED = frozenset(
    {
        "type",
        "pattern",
        "enum",
        "const",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "not",
        "oneOf",
        "anyOf",
    }
)
#: Keywords that say something about a value but check nothing.
_ANNOTATIONS = frozenset({"title", "description", "default", "examples", "$comment"})
_NOUNS = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def _size(value: object) -> bool:
    if isinstance(value, str):
        parse_size(value)
    return True


def _cpu(value: object) -> bool:
    if isinstance(value, str):
        parse_cpu(value)
    return True


def _duration(value: object) -> bool:
    if isinstance(value, str):
        parse_duration(value)
    return True


def formats() -> Any:
    """The catalog's own formats (a jsonschema FormatChecker): Kubernetes quantities as the
    catalog reads them, whose conversion errors are the messages."""
    checker = jsonschema.FormatChecker(formats=())
    checker.checks("kubernetes-size", raises=ValueError)(_size)
    checker.checks("kubernetes-cpu", raises=ValueError)(_cpu)
    checker.checks("duration", raises=ValueError)(_duration)
    return checker


def schema() -> dict[str, Any]:
    """The catalog's JSON Schema (draft 2020-12), as a fresh dict."""
    text = resources.files(__package__).joinpath("catalog.schema.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


@functools.lru_cache(maxsize=1)
def _validator() -> Any:
    """The schema's validator, made once per process, with its ``$defs`` written in place."""
    document = schema()
    jsonschema.Draft202012Validator.check_schema(document)
    return jsonschema.Draft202012Validator(_inline(document, document), format_checker=formats())


def _inline(node: Any, root: Mapping[str, Any], within: tuple[str, ...] = ()) -> Any:
    """``node`` with each local ``$ref`` replaced by a copy of what it names.

    The same rules, checked faster: jsonschema looks each ``$ref`` up again for every value it
    checks, a quarter of the time on a catalog of thousands of entries. A ``$ref`` stays where
    it names a schema it is inside of (recursion) or where a keyword beside it, other than an
    annotation, is one the named schema has too (merging would drop one); it resolves against
    the ``$defs`` kept in the document.
    """
    if isinstance(node, list):
        return [_inline(item, root, within) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and ref not in within:
        target = root["$defs"][ref.removeprefix("#/$defs/")]
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        if not (siblings.keys() & target.keys()) - _ANNOTATIONS:
            return {**_inline(target, root, (*within, ref)), **siblings}
    return {key: _inline(value, root, within) for key, value in node.items()}


def check(data: Any, source: str, lines: Mapping[str, int]) -> None:
    """Raise the first schema error of ``data``, in document order, as a located CatalogError.

    Raises:
        CatalogError: the catalog breaks a rule of ``catalog.schema.json``.
    """
    validator = _validator()
    errors = list(validator.iter_errors(data))
    if not errors:
        return
    order = _document_order(data)
    found = [_explain(error, validator.schema) for error in errors]
    path, problem = min(found, key=lambda f: (order.get(f[0], len(order)), f[0].count(".")))
    raise CatalogError(source, path, problem, line_of(path, lines))


# ----------------------------------------------------------------------------------------------
# one error -> (field path, what is allowed)
# ----------------------------------------------------------------------------------------------
def _explain(
    error: ValidationError, root: Mapping[str, Any], outer: str | None = None
) -> tuple[str, str]:
    """The field an error is about and the sentence that says what is allowed there.

    ``outer`` is the errorMessage of the ``oneOf`` this error was found in, for a branch that
    has none of its own.
    """
    schema, value, keyword = error.schema, error.instance, str(error.validator)
    message = schema.get("errorMessage", outer)
    if keyword in ("oneOf", "anyOf"):
        inner = _branch_error(error, root)
        if inner is not None:
            return _explain(inner, root, message)
    path = _dotted(error.absolute_path)
    if keyword == "format" and error.cause is not None:
        return path, str(error.cause)
    if keyword == "required":
        missing = next(k for k in error.validator_value if k not in value)
        if path:
            return path, f"needs the field {missing!r}"
        wanted = schema.get("properties", {}).get(missing, {})
        return missing, "is missing" + (
            "; it needs at least one entry" * (wanted.get("minItems") == 1)
        )
    if keyword == "additionalProperties":
        allowed = ", ".join(schema.get("properties", {}))
        extra = next(k for k in value if k not in schema.get("properties", {}))
        return _join(path, extra), f"is not a known field; allowed here: {allowed}"
    if keyword == "uniqueItems":
        index, item = _first_repeat(value)
        return f"{path}[{index}]", f"{item!r} is listed twice"
    if keyword == "not":
        present = [k for k in _required_in(error.validator_value) if k in value]
        if isinstance(value, dict) and present:
            path = _join(path, present[0])
    if keyword in _EXPLAINED and message is not None:
        return path, _with_value(str(message), value)
    return path, _generic(keyword, error.validator_value, value, schema)


def _branch_error(error: ValidationError, root: Mapping[str, Any]) -> ValidationError | None:
    """The error inside the one branch of a ``oneOf`` the value was meant for, if one is.

    A branch is meant when it alone accepts the value's JSON type, or when, among branches
    that all accept it, it alone has its ``required`` keys present (a discriminator).
    """
    value = error.instance
    branches: list[Mapping[str, Any]] = list(error.validator_value)
    kind = _json_type(value)
    typed = [i for i, b in enumerate(branches) if kind in _types(b, root)]
    if len(typed) > 1 and isinstance(value, dict):
        keyed = [i for i in typed if set(branches[i].get("required", ())) <= value.keys()]
        typed = keyed if len(keyed) == 1 else typed
    if len(typed) != 1:
        return None
    inner = [e for e in error.context or () if e.relative_schema_path[0] == typed[0]]
    if not inner:
        return None
    # a format error carries the conversion's own message: prefer it to the pattern's
    return min(inner, key=lambda e: (e.validator != "format", len(e.absolute_path) * -1))


def _types(schema: Mapping[str, Any], root: Mapping[str, Any]) -> set[str]:
    """The JSON types a schema can accept, following ``$ref`` and ``oneOf``/``anyOf``."""
    if "$ref" in schema:
        target: Any = root
        for part in str(schema["$ref"]).removeprefix("#/").split("/"):
            target = target[part]
        return _types(target, root)
    if "type" in schema:
        declared = schema["type"]
        found = set(declared if isinstance(declared, list) else [declared])
        return found | {"integer"} if "number" in found else found
    for keyword in ("oneOf", "anyOf"):
        if keyword in schema:
            return set().union(*(_types(b, root) for b in schema[keyword]))
    if "const" in schema:
        return {_json_type(schema["const"])}
    return set(_NOUNS)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _generic(keyword: str, expected: Any, value: Any, schema: Mapping[str, Any]) -> str:
    """What is allowed, said from the keyword alone (where the schema has no errorMessage)."""
    if keyword == "type":
        kinds = expected if isinstance(expected, list) else [expected]
        nouns = [_NOUNS[k] for k in kinds if k != "null"] or ["null"]
        if "object" in kinds and schema.get("properties"):
            nouns[0] += f" with keys {', '.join(schema['properties'])}"
        return _with_value(f"must be {' or '.join(nouns)}", value)
    if keyword == "minItems":
        return "needs at least one entry" if expected == 1 else f"needs {expected} entries or more"
    if keyword == "maxItems":
        return f"may have at most {expected} entries"
    if keyword == "enum":
        return _with_value(f"must be one of {', '.join(map(str, expected))}", value)
    if keyword == "const":
        return _with_value(f"must be {json.dumps(expected)}", value)
    if keyword == "minLength":
        return "must be a non-empty string"
    words = {
        "minimum": f"must be at least {expected}",
        "maximum": f"must be at most {expected}",
        "exclusiveMinimum": f"must be more than {expected}",
        "exclusiveMaximum": f"must be less than {expected}",
        "maxLength": f"must be at most {expected} characters",
        "pattern": f"{value!r} is not allowed here",
    }
    return _with_value(words.get(keyword, "is not allowed here"), value)


def _with_value(message: str, value: Any) -> str:
    """Name the value found: in place of ``{value!r}``, else after the message (scalars)."""
    if "{value!r}" in message:
        return message.replace("{value!r}", repr(value))
    if isinstance(value, dict | list) or repr(value) in message:
        return message
    return f"{message}, not {value!r}"


def _required_in(schema: Any) -> list[str]:
    """The keys a ``not`` forbids: its own ``required``, or those of an ``anyOf`` of them."""
    if not isinstance(schema, dict):
        return []
    keys = list(schema.get("required", ()))
    for branch in schema.get("anyOf", ()):
        keys.extend(_required_in(branch))
    return keys


def _first_repeat(items: list[Any]) -> tuple[int, Any]:
    seen: list[Any] = []
    for index, item in enumerate(items):
        if item in seen:
            return index, item
        seen.append(item)
    return 0, None  # pragma: no cover - jsonschema reported a repeat


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _dotted(parts: Iterable[Any]) -> str:
    """``profiles[2].gpu.count`` from the path jsonschema gives (keys and indexes)."""
    out = ""
    for part in parts:
        out = f"{out}[{part}]" if isinstance(part, int) else _join(out, part)
    return out


def _document_order(data: Any) -> dict[str, int]:
    """Every field path of ``data`` numbered in the order a reader of the file meets it."""
    order: dict[str, int] = {"": 0}
    for path in _walk(data, ""):
        order.setdefault(path, len(order))
    return order


def _walk(value: Any, path: str) -> Iterator[str]:
    stack = [(value, path)]
    while stack:
        node, where = stack.pop()
        yield where
        if isinstance(node, dict):
            children = [(v, _join(where, k)) for k, v in node.items()]
        elif isinstance(node, list):
            children = [(v, f"{where}[{i}]") for i, v in enumerate(node)]
        else:
            continue
        stack.extend(reversed(children))
