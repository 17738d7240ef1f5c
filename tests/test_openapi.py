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


@pytest.mark.parametrize(
    ("card", "problem"),
    [
        ({"summary": "x" * 140, "indicator": "info", "source": {"label": "s"}}, "too long"),
        ({"summary": "s", "indicator": "urgent", "source": {"label": "s"}}, "is not one of"),
        ({"summary": "s", "indicator": "info"}, "'source' is a required property"),
        (
            {"summary": "s", "indicator": "info", "source": {"label": "s"}, "suggestions": [{"label": "x"}]},
            "selectionBehavior",
        ),
        (
            {
                "summary": "s",
                "indicator": "info",
                "source": {"label": "s"},
                "overrideReasons": [{"code": "c", "system": "s"}],
            },
            "'display' is a required property",
        ),
        (
            {
                "summary": "s",
                "indicator": "info",
                "source": {"label": "s"},
                "links": [{"label": "l", "url": "https://x.example", "type": "absolute", "appContext": "{}"}],
            },
            "should not",
        ),
    ],
)
def test_card_schema_rejects_what_the_spec_forbids(card, problem):
    found = errors("Card", card)
    assert any(problem in e for e in found), found


def test_service_id_enum_is_the_discovery_list():
    from cds_service.services import SERVICES

    enum = openapi()["components"]["parameters"]["ServiceId"]["schema"]["enum"]
    assert enum == [s.id for s in SERVICES]
