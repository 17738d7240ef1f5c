"""What every route shares: the service's state on the app, JSON responses, reading a JSON body, authentication."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from flask import Response, current_app, request

from cds_service.assess import Assessor
from cds_service.config import Settings
from cds_service.errors import PayloadTooLarge, UnsupportedMediaType
from cds_service.protocol.auth import JwtVerifier
from cds_service.protocol.jsonbody import parse_json_body
from cds_service.protocol.store import Store

JSON_TYPES = ("application/json", "application/fhir+json")
EXTENSION = "opioid_cds"


@dataclass
class ServiceState:
    settings: Settings
    store: Store
    verifier: JwtVerifier | None
    assessor: Assessor


def state() -> ServiceState:
    """The running service's settings, store, verifier and assessor (set by the factory)."""
    found: ServiceState = current_app.extensions[EXTENSION]
    return found


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")), status=status, headers=headers, mimetype="application/json"
    )


def read_json() -> Any:
    """The request body as JSON: 415 for another media type or charset, 413 over the limit, 400 when malformed."""
    settings = state().settings
    mimetype = (request.mimetype or "").lower()
    if mimetype not in JSON_TYPES:
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, not {request.content_type or 'missing'}.",
            "header.Content-Type",
        )
    charset = request.mimetype_params.get("charset")
    if charset and charset.lower().replace("-", "") != "utf8":
        raise UnsupportedMediaType("JSON bodies must be UTF-8.", "header.Content-Type")
    if request.content_length is not None and request.content_length > settings.max_body_bytes:
        raise PayloadTooLarge(f"The body is larger than {settings.max_body_bytes} bytes.", "$")
    # A chunked body has no Content-Length: the stream is cut one byte past the limit, so over-long shows.
    raw = request.get_data(cache=False)
    if len(raw) > settings.max_body_bytes:
        raise PayloadTooLarge(f"The body is larger than {settings.max_body_bytes} bytes.", "$")
    return parse_json_body(raw, settings.max_json_depth)


def authenticate() -> None:
    """Verify the bearer JWT when authentication is on (raises Unauthorized)."""
    current = state()
    if current.verifier is None:
        return
    base = current.settings.public_base_url
    assert base is not None  # load_settings refuses auth without it
    current.verifier.verify(request.headers.get("Authorization"), base + request.path)
