"""Real responses of the app validate against openapi.yaml, and the document describes every route."""

from __future__ import annotations

import json

import pytest
import yaml
from openapi_spec_validator import validate

from tests.helpers import FILES, FIXTURES, ROOT, load_request
from tests.openapi_check import errors, openapi, response_schema

INVALID = yaml.safe_load((FIXTURES / "_invalid" / "expected.yaml").read_text())


def test_openapi_document_is_valid_openapi_3_1():
    assert openapi()["openapi"].startswith("3.1")
    validate(yaml.safe_load((ROOT / "openapi.yaml").read_text()))


def test_every_flask_route_is_documented(app):
    documented = {p.replace("{service_id}", "<service_id>") for p in openapi()["paths"]}
    routes = {r.rule for r in app.url_map.iter_rules() if r.endpoint != "static"}
    assert routes == documented


def _check(response, path: str, method: str) -> None:
    name = response_schema(path, method, response.status_code)
    assert response.mimetype == "application/json"
    if name:
        assert errors(name, response.get_json()) == []


def test_discovery_matches_the_schema(client):
    _check(client.get("/cds-services"), "/cds-services", "get")


@pytest.mark.parametrize(
    "name", ["order-sign.json", "order-select.json", "patient-view.json", "medication-prescribe.json"]
)
def test_hook_response_matches_the_schema(client, name):
    body = load_request(name)
    service = {
        "order-sign": "opioid-order-sign",
        "order-select": "opioid-order-select",
        "patient-view": "opioid-patient-view",
        "medication-prescribe": "opioid-medication-prescribe",
    }[body["hook"]]
    assert errors("HookRequest", body) == []
    _check(client.post(f"/cds-services/{service}", json=body), "/cds-services/{service_id}", "post")


@pytest.mark.parametrize("name", sorted(INVALID))
def test_error_responses_match_the_schema(client, name):
    case = INVALID[name]
    raw = (FIXTURES / "_invalid" / name).read_bytes()
    response = client.post(f"/cds-services/{case['service']}", data=raw, content_type=case["content_type"])
    _check(response, "/cds-services/{service_id}", "post")


def test_feedback_response_matches_the_schema(client):
    body = json.loads((FILES / "cds-hooks-examples" / "feedback-accepted.spec3.0-ballot.json").read_text())
    assert errors("FeedbackRequest", body) == []
    _check(
        client.post("/cds-services/opioid-order-sign/feedback", json=body),
        "/cds-services/{service_id}/feedback",
        "post",
    )


def test_health_and_ready_match_the_schema(client):
    _check(client.get("/health"), "/health", "get")
    _check(client.get("/ready"), "/ready", "get")


def test_spec_card_example_passes_our_card_schema():
    example = json.loads((FILES / "cds-hooks-examples" / "cards-response.spec2.0.json").read_text())
    assert errors("CdsResponse", example) == []


def _card(**members):
    card = {"summary": "s", "indicator": "info", "source": {"label": "s"}}
    card.update(members)
    return card


def _with_action(**action):
    return _card(selectionBehavior="any", suggestions=[{"label": "x", "actions": [action]}])


CARD_VIOLATIONS = [
    pytest.param(_card(summary="x" * 140), "too long", id="summary-140-chars"),
    pytest.param(_card(summary=None), "None is not of type 'string'", id="summary-missing"),
    pytest.param(_card(uuid=42), "is not of type 'string'", id="uuid-not-string"),
    pytest.param(_card(detail=["x"]), "is not of type 'string'", id="detail-not-string"),
    pytest.param(_card(indicator="urgent"), "is not one of", id="indicator-not-allowed"),
    pytest.param({"summary": "s", "indicator": "info"}, "'source' is a required property", id="source-missing"),
    pytest.param(_card(source={"url": "https://x.example"}), "'label' is a required property", id="source-label"),
    pytest.param(_card(source={"label": "s", "url": "/relative"}), "does not match", id="source-url-relative"),
    pytest.param(_card(source={"label": "s", "icon": "icon.png"}), "does not match", id="source-icon-relative"),
    pytest.param(_card(source={"label": "s", "topic": {"system": "x"}}), "'code' is a required", id="topic-code"),
    pytest.param(_card(source={"label": "s", "topic": {"code": "x"}}), "'system' is a required", id="topic-system"),
    pytest.param(_card(suggestions=[{"label": "x"}]), "selectionBehavior", id="suggestions-need-selection"),
    pytest.param(_card(selectionBehavior="all", suggestions=[{"label": "x"}]), "is not one of", id="selection-value"),
    pytest.param(
        _card(selectionBehavior="any", suggestions=[{"uuid": "u"}]), "'label' is a required", id="suggestion-label"
    ),
    pytest.param(
        _card(selectionBehavior="any", suggestions=[{"label": "x", "uuid": 1}]),
        "not of type 'string'",
        id="suggestion-uuid-not-string",
    ),
    pytest.param(
        _card(selectionBehavior="any", suggestions=[{"label": "x", "isRecommended": "yes"}]),
        "not of type 'boolean'",
        id="is-recommended-not-boolean",
    ),
    pytest.param(
        _card(selectionBehavior="any", suggestions=[{"label": "x", "actions": {}}]),
        "not of type 'array'",
        id="actions-not-array",
    ),
    pytest.param(_with_action(type="replace", description="d"), "is not one of", id="action-type"),
    pytest.param(_with_action(type="create"), "'description' is a required", id="action-description"),
    pytest.param(
        _with_action(type="create", description="d", resource={"id": "x"}),
        "'resourceType' is a required",
        id="action-resource-not-fhir",
    ),
    pytest.param(
        _with_action(type="delete", description="d", resource="MedicationRequest/1"),
        "not of type 'object'",
        id="delete-id-in-resource",
    ),
    pytest.param(
        _with_action(type="delete", description="d", resourceId=7), "not of type 'string'", id="resource-id-not-string"
    ),
    pytest.param(
        _card(overrideReasons=[{"code": "c", "system": "s"}]), "'display' is a required", id="override-reason-display"
    ),
    pytest.param(_card(overrideReasons={"code": "c"}), "not of type 'array'", id="override-reasons-not-array"),
    pytest.param(
        _card(links=[{"url": "https://x.example", "type": "absolute"}]), "'label' is a required", id="link-label"
    ),
    pytest.param(_card(links=[{"label": "l", "type": "absolute"}]), "'url' is a required", id="link-url"),
    pytest.param(
        _card(links=[{"label": "l", "url": "x", "type": "absolute"}]), "does not match", id="link-url-relative"
    ),
    pytest.param(_card(links=[{"label": "l", "url": "https://x.example"}]), "'type' is a required", id="link-type"),
    pytest.param(
        _card(links=[{"label": "l", "url": "https://x.example", "type": "iframe"}]),
        "is not one of",
        id="link-type-value",
    ),
    pytest.param(
        _card(links=[{"label": "l", "url": "https://x.example", "type": "smart", "appContext": {}}]),
        "not of type 'string'",
        id="app-context-not-string",
    ),
    pytest.param(
        _card(links=[{"label": "l", "url": "https://x.example", "type": "absolute", "appContext": "{}"}]),
        "should not",
        id="app-context-on-absolute",
    ),
    pytest.param(_card(links={"label": "l"}), "not of type 'array'", id="links-not-array"),
]


@pytest.mark.parametrize(("card", "problem"), CARD_VIOLATIONS)
def test_card_schema_rejects_what_the_spec_forbids(card, problem):
    found = errors("Card", card)
    assert any(problem in e for e in found), found


def test_service_id_enum_is_the_discovery_list():
    from cds_service.protocol.services import SERVICES

    enum = openapi()["components"]["parameters"]["ServiceId"]["schema"]["enum"]
    assert enum == [s.id for s in SERVICES]
