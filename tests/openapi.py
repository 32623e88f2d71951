"""Validate real responses against the shipped OpenAPI 3.1 document."""

from __future__ import annotations

import functools
from typing import Any

import jsonschema
from openapi_spec_validator import validate as validate_spec
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from gpu_devbox.server.gpus_handlers import load_openapi

DOCUMENT_URI = "urn:gpu-devbox:openapi"


@functools.cache
def _document() -> dict[str, Any]:
    document = load_openapi()
    validate_spec(document)  # the document itself is a valid OpenAPI 3.1 description
    return document


@functools.cache
def _registry() -> Registry:
    return Registry().with_resource(
        DOCUMENT_URI, Resource.from_contents(_document(), default_specification=DRAFT202012)
    )


def response_schema(path: str, method: str, status: int) -> dict[str, Any]:
    """The JSON Schema of one documented response (fails if it is not documented)."""
    responses = _document()["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {path} does not document {status}"
    schema: dict[str, Any] = responses[str(status)]["content"]["application/json"]["schema"]
    return schema


def validate_response(path: str, method: str, status: int, body: Any) -> None:
    """Raise if ``body`` does not match what the document promises for this response."""
    schema = response_schema(path, method, status)
    # Resolve the document's "#/components/..." references against the document itself.
    wrapped = {"$ref": DOCUMENT_URI + "#" + schema["$ref"][1:]} if "$ref" in schema else schema
    validator = jsonschema.Draft202012Validator(wrapped, registry=_registry())
    validator.validate(body)


def validate_component(name: str, body: Any) -> None:
    """Raise if ``body`` does not match ``#/components/schemas/<name>`` (e.g. a stream event)."""
    wrapped = {"$ref": f"{DOCUMENT_URI}#/components/schemas/{name}"}
    jsonschema.Draft202012Validator(wrapped, registry=_registry()).validate(body)
