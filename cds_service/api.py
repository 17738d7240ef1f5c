"""HTTP only: routes, JSON in and out, status codes, CORS and authentication. ``create_app`` is the factory."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from .about import about_page
from .auth import JwtVerifier, load_trusted_issuers
from .config import Settings, load_settings
from .errors import (
    BadRequest,
    CdsError,
    ConfigError,
    InternalError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from .feedback import parse_feedback
from .fhir_input import warm_up
from .hooks import parse_hook_request
from .jsonbody import parse_json_body
from .knowledge.loader import load_knowledge
from .pipeline import Assessor, evaluate
from .prefetch import resolve_prefetch
from .privacy import pseudonymise
from .rules import RuleSetError
from .services import SERVICES_BY_ID, ServiceDefinition, discovery_document
from .store import Store
from .taper import TaperError, plan_taper, regimens_from_params
from .taper_page import render_page

log = logging.getLogger("cds_service")

JSON_TYPES = ("application/json", "application/fhir+json")
CORS_HEADERS = "Authorization, Content-Type"
CORS_METHODS = "GET, POST, OPTIONS"


@dataclass
class ServiceState:
    settings: Settings
    store: Store
    verifier: JwtVerifier | None
    assessor: Assessor


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")), status=status, headers=headers, mimetype="application/json"
    )


def _state() -> ServiceState:
    from flask import current_app

    return current_app.extensions["opioid_cds"]


def _read_json() -> Any:
    settings = _state().settings
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


def _authenticate() -> None:
    state = _state()
    if state.verifier is None:
        return
    base = state.settings.public_base_url
    assert base is not None  # load_settings refuses auth without it
    state.verifier.verify(request.headers.get("Authorization"), base + request.path)


def _service(service_id: str) -> ServiceDefinition:
    service = SERVICES_BY_ID.get(service_id)
    if service is None:
        raise NotFound(f"No CDS service {service_id!r}; GET /cds-services lists them.", "url.id")
    return service


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
    app.extensions["opioid_cds"] = ServiceState(settings, store, verifier if settings.auth_required else None, assessor)

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
        return _json(exc.operation_outcome(), exc.status, exc.headers)

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

    @app.get("/cds-services")
    def discovery() -> Response:
        return _json(discovery_document())

    @app.post("/cds-services/<service_id>")
    def invoke(service_id: str) -> Response:
        service = _service(service_id)
        _authenticate()
        request_model = parse_hook_request(service, _read_json())
        g.patient = pseudonymise(settings.pseudonym_key, request_model.patient_id)
        prefetch = resolve_prefetch(request_model, settings)
        about = (settings.public_base_url or request.host_url.rstrip("/")) + "/about"
        result = evaluate(request_model, prefetch, _state().assessor, settings.today or date.today(), about)
        log.info(
            "hook=%s service=%s instance=%s patient=%s orders=%d ome=%s%s rules=%s data_quality=%d ms=%.1f",
            request_model.hook,
            service.id,
            request_model.hook_instance[:64],
            g.patient,
            len(result.record.orders),
            f"{result.ome.total_max:.0f}",
            "" if result.ome.complete else "+",
            ",".join(result.fired) or "-",
            len(result.record.data_quality),
            (time.perf_counter() - g.started) * 1000,
        )
        return _json(result.body)

    @app.post("/cds-services/<service_id>/feedback")
    def feedback(service_id: str) -> Response:
        service = _service(service_id)
        _authenticate()
        items = parse_feedback(_read_json())
        stored, duplicates = _state().store.save_feedback(service.id, items)
        log.info("feedback service=%s items=%d stored=%d duplicates=%d", service.id, len(items), stored, duplicates)
        return _json({})

    @app.get("/about")
    def about() -> Response:
        return Response(about_page(_state().assessor), mimetype="text/html")

    @app.get("/taper")
    def taper_page_route() -> Response:
        assessor = _state().assessor
        args = request.args
        try:
            start = date.fromisoformat(args.get("start") or date.today().isoformat())
        except ValueError:
            raise BadRequest("start must be a date (YYYY-MM-DD).", "url.start") from None
        try:
            regimens = regimens_from_params(args.getlist("o"), assessor.knowledge, assessor.profile)
            plan = plan_taper(regimens, start, args.get("strategy", "mr-first"), args.get("pace", "standard"))
        except TaperError as exc:
            raise BadRequest(str(exc), "url.o") from None
        return Response(render_page(plan), mimetype="text/html")

    @app.get("/health")
    def health() -> Response:
        return _json({"status": "ok"})

    @app.get("/ready")
    def ready() -> Response:
        if not _state().store.ping():
            return _json(InternalError("The store is not reachable.", "store").operation_outcome(), 503)
        return _json({"status": "ready", "services": len(SERVICES_BY_ID), "rules": _state().assessor.engine.rule_count})

    return app
