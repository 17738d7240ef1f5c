"""Validate JSON bodies against the schemas of openapi.yaml (JSON Schema 2020-12, as OpenAPI 3.1 uses)."""

from __future__ import annotations

from functools import cache
from typing import Any

import yaml
from jsonschema import Draft202012Validator, FormatChecker

from tests.helpers import ROOT


@cache
def openapi() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "openapi.yaml").read_text())


@cache
def validator(schema_name: str) -> Draft202012Validator:
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": openapi()["components"]}
    return Draft202012Validator(schema, format_checker=FormatChecker())


def errors(schema_name: str, body: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator(schema_name).iter_errors(body)]


def response_schema(path: str, method: str, status: int) -> str | None:
    """The schema name the document gives for this response (None when it declares no body schema)."""
    operation = openapi()["paths"][path][method]
    response = operation["responses"].get(str(status))
    assert response is not None, f"{method.upper()} {path} does not document {status}"
    if "$ref" in response:
        response = openapi()["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    schema = response["content"]["application/json"]["schema"]
    return schema["$ref"].rsplit("/", 1)[1] if "$ref" in schema else None
