"""The application factory: settings, knowledge, rules, store and verifier, the blueprints, and the one place
where errors become HTTP responses."""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from cds_service.assess import Assessor
from cds_service.clinical.knowledge.loader import load_knowledge
from cds_service.clinical.validation import warm_up
from cds_service.config import Settings, load_settings
from cds_service.errors import (
    BadRequest,
    CdsError,
    ConfigError,
    InternalError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RuleSetError,
)
from cds_service.pages.routes import bp as pages
from cds_service.protocol.auth import JwtVerifier, load_trusted_issuers
from cds_service.protocol.http import EXTENSION, ServiceState, json_response
from cds_service.protocol.routes import bp as cds_hooks
from cds_service.protocol.store import Store

log = logging.getLogger("cds_service")

CORS_HEADERS = "Authorization, Content-Type"
CORS_METHODS = "GET, POST, OPTIONS"


def create_app(
    settings: Settings | None = None, store: Store | None = None, verifier: JwtVerifier | None = None
) -> Flask:
    """Build the WSGI app. Configuration problems raise before the app exists (the service refuses to start)."""
    settings = settings or load_settings()
    warm_up()
    knowledge = load_knowledge()
    if settings.profile not in knowledge.profiles:
        raise ConfigError(
            f"OPIOID_CDS_PROFILE={settings.profile!r}: use one of {', '.join(sorted(knowledge.profiles))}"
        )
    try:
        assessor = Assessor.from_paths(knowledge, settings.rules_dir, settings.settings_file, settings.profile)
    except RuleSetError as exc:
        raise ConfigError(str(exc)) from None
    store = store or Store(settings.database_url)
    store.create_schema()
    if settings.auth_required and verifier is None:
        assert settings.trusted_issuers_file is not None
        verifier = JwtVerifier(settings, load_trusted_issuers(settings.trusted_issuers_file), store)
    if not settings.auth_required:
        log.warning(
            "DEVELOPMENT MODE: OPIOID_CDS_AUTH=off, requests are NOT authenticated. Never run like this "
            "with real patient data."
        )

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes + 1
    app.extensions[EXTENSION] = ServiceState(settings, store, verifier if settings.auth_required else None, assessor)
    app.register_blueprint(cds_hooks)
    app.register_blueprint(pages)
    _register_http_behaviour(app, settings)
    return app


def _register_http_behaviour(app: Flask, settings: Settings) -> None:
    """CORS and security headers on every response; every error as an OperationOutcome (the one mapping)."""

    @app.before_request
    def _start() -> Response | None:
        g.started = time.perf_counter()
        if request.method == "OPTIONS" and request.url_rule is not None:
            return Response(status=204)  # CORS preflight: no auth, headers added below
        return None

    @app.after_request
    def _cors(response: Response) -> Response:
        origins = settings.cors_origins
        origin = request.headers.get("Origin")
        if "*" in origins:
            response.headers["Access-Control-Allow-Origin"] = "*"
        elif origin and origin in origins:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers.add("Vary", "Origin")
        response.headers["Access-Control-Allow-Headers"] = CORS_HEADERS
        response.headers["Access-Control-Allow-Methods"] = CORS_METHODS
        response.headers["Access-Control-Max-Age"] = "600"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(CdsError)
    def _cds_error(exc: CdsError) -> Response:
        reason = getattr(exc, "reason", None)
        log.info("%s %s -> %d %s", request.method, request.path, exc.status, reason or exc)
        return json_response(exc.operation_outcome(), exc.status, exc.headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        mapped: CdsError
        if isinstance(exc, RequestEntityTooLarge):
            mapped = PayloadTooLarge(f"The body is larger than {settings.max_body_bytes} bytes.", "$")
        elif exc.code == 404:
            mapped = NotFound(f"No route {request.path}.", "url.path")
        elif exc.code == 405:
            mapped = MethodNotAllowed(f"{request.method} is not allowed on {request.path}.", "url.method")
        else:
            mapped = BadRequest(exc.description or "Bad request.", "$")
        return _cds_error(mapped)

    @app.errorhandler(Exception)
    def _bug(exc: Exception) -> Response:
        log.exception("internal error on %s %s", request.method, request.path)
        return _cds_error(InternalError())
