"""The CDS Hooks routes (a Blueprint): discovery, service calls, feedback, health and readiness."""

from __future__ import annotations

import logging
import time
from datetime import date
from typing import Any

from flask import Blueprint, Response, g, request

from cds_service.assess import Evaluation, unexpected_failure
from cds_service.clinical.record import PatientRecord
from cds_service.errors import InternalError, NotFound
from cds_service.protocol.feedback import parse_feedback
from cds_service.protocol.hooks import HookRequest, build_record, parse_hook_request, within_history_window
from cds_service.protocol.http import authenticate, json_response, read_json, state
from cds_service.protocol.prefetch import resolve_prefetch
from cds_service.protocol.privacy import pseudonymise
from cds_service.protocol.services import SERVICES_BY_ID, ServiceDefinition, discovery_document

log = logging.getLogger("cds_service")
bp = Blueprint("cds_hooks", __name__)


def _service(service_id: str) -> ServiceDefinition:
    service = SERVICES_BY_ID.get(service_id)
    if service is None:
        raise NotFound(f"No CDS service {service_id!r}; GET /cds-services lists them.", "url.id")
    return service


def evaluate(
    hook_request: HookRequest,
    prefetch: dict[str, dict[str, Any] | None],
    today: date,
    source_url: str | None = None,
    patient: str = "-",
) -> Evaluation:
    """The response body ``{"cards": [...]}`` of one checked request, with what it was built from.

    ``patient`` is the pseudonym a log line may carry. Never raises for the request's content: an unexpected
    error is a "could not assess" card (assess.py).
    """
    base_url = source_url.removesuffix("/about") if source_url else None
    try:
        record = build_record(hook_request, within_history_window(prefetch, today))
    except Exception as exc:
        empty = PatientRecord(hook_request.patient_id, None, [], {}, [], [], [])
        return unexpected_failure(exc, empty, patient, state().assessor.profile)
    return state().assessor.assess(hook_request.hook, record, today, source_url, base_url, patient)


@bp.get("/cds-services")
def discovery() -> Response:
    return json_response(discovery_document())


@bp.post("/cds-services/<service_id>")
def invoke(service_id: str) -> Response:
    service = _service(service_id)
    authenticate()
    settings = state().settings
    request_model = parse_hook_request(service, read_json())
    g.patient = pseudonymise(settings.pseudonym_key, request_model.patient_id)
    prefetch = resolve_prefetch(request_model, settings)
    about = (settings.public_base_url or request.host_url.rstrip("/")) + "/about"
    result = evaluate(request_model, prefetch, settings.today or date.today(), about, g.patient)
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
    return json_response(result.body)


@bp.post("/cds-services/<service_id>/feedback")
def feedback(service_id: str) -> Response:
    service = _service(service_id)
    authenticate()
    items = parse_feedback(read_json())
    stored, duplicates = state().store.save_feedback(service.id, items)
    log.info("feedback service=%s items=%d stored=%d duplicates=%d", service.id, len(items), stored, duplicates)
    return json_response({})


@bp.get("/health")
def health() -> Response:
    return json_response({"status": "ok"})


@bp.get("/ready")
def ready() -> Response:
    current = state()
    if not current.store.ping():
        return json_response(InternalError("The store is not reachable.", "store").operation_outcome(), 503)
    return json_response(
        {"status": "ready", "services": len(SERVICES_BY_ID), "rules": current.assessor.engine.rule_count}
    )
