"""Validate real responses against the shipped OpenAPI document."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

from gpu_devbox.server.gpus_handlers import load_openapi

DOCUMENT = load_openapi()


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator({**schema, "components": DOCUMENT["components"]})


def assert_schema(name: str, instance: Any) -> None:
    """``instance`` is valid against ``#/components/schemas/<name>``."""
    _validator({"$ref": f"#/components/schemas/{name}"}).validate(instance)


def assert_response(path: str, method: str, code: int, body: Any) -> None:
    """``body`` is what the document promises for ``method path`` answering ``code``."""
    responses = DOCUMENT["paths"][path][method.lower()]["responses"]
    assert str(code) in responses, f"{method} {path} may not answer {code}"
    schema = responses[str(code)]["content"]["application/json"]["schema"]
    _validator(schema).validate(body)
