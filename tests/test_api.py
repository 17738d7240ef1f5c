"""HTTP behaviour of the app (Flask test client): status codes, OperationOutcomes, CORS, body limits."""

from __future__ import annotations

import json

import pytest
import yaml

from cds_service.app import create_app
from tests.conftest import dev_settings
from tests.helpers import FIXTURES, load_request

INVALID = yaml.safe_load((FIXTURES / "_invalid" / "expected.yaml").read_text())


def _assert_outcome(response, status: int, expression: str | None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"], body
    for issue in body["issue"]:
        assert issue["severity"] == "error" and issue["code"] and issue["diagnostics"]
        assert issue["expression"], issue
    if expression is not None:
        assert expression in [e for i in body["issue"] for e in i["expression"]], body
    return body


@pytest.mark.parametrize("name", sorted(INVALID))
def test_each_invalid_fixture_gets_its_4xx_naming_the_element(client, name):
    case = INVALID[name]
    raw = (FIXTURES / "_invalid" / name).read_bytes()
    response = client.post(f"/cds-services/{case['service']}", data=raw, content_type=case["content_type"])
    _assert_outcome(response, case["status"], case["expression"])


def test_every_invalid_fixture_is_listed_in_expected_yaml():
    on_disk = {p.name for p in (FIXTURES / "_invalid").glob("*.json")}
    assert on_disk == set(INVALID)


@pytest.mark.parametrize(
    ("name", "service"),
    [
        ("order-sign.json", "opioid-order-sign"),
        ("order-select.json", "opioid-order-select"),
        ("patient-view.json", "opioid-patient-view"),
        ("medication-prescribe.json", "opioid-medication-prescribe"),
        ("order-sign-stu3-dose-quantity.json", "opioid-order-sign"),
    ],
)
def test_valid_request_for_each_hook_answers_cards_array(client, name, service):
    response = client.post(f"/cds-services/{service}", json=load_request(name))
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"cards"} and isinstance(body["cards"], list)
    assert all(card["uuid"] and card["source"]["topic"]["system"] == "urn:opioid-cds:rule" for card in body["cards"])


def test_stu3_and_r4_dosage_give_the_same_cards(client):
    def topics(name):
        cards = client.post("/cds-services/opioid-order-sign", json=load_request(name)).get_json()["cards"]
        return [(c["source"]["topic"]["code"], c["summary"]) for c in cards]

    assert topics("order-sign-stu3-dose-quantity.json") == topics("order-sign.json")


def test_unknown_members_are_ignored(client):
    body = load_request("order-sign.json")
    body["somethingNew"] = {"x": 1}
    body["context"]["vendorExtra"] = [1, 2]
    body["prefetch"]["notOurs"] = {"resourceType": "Basic"}
    assert client.post("/cds-services/opioid-order-sign", json=body).status_code == 200


def test_bundle_type_is_not_required(client):
    body = load_request("order-sign.json")
    for bundle in [body["context"]["draftOrders"], *[v for v in body["prefetch"].values() if "entry" in v]]:
        bundle.pop("type", None)
    assert client.post("/cds-services/opioid-order-sign", json=body).status_code == 200


def test_prefetch_key_null_means_no_data_and_is_answered(client):
    body = load_request("patient-view.json")
    body["prefetch"] = {key: None for key in body["prefetch"]}
    body.pop("fhirServer")
    assert client.post("/cds-services/opioid-patient-view", json=body).get_json() == {"cards": []}


def test_missing_prefetch_without_fhir_server_is_412_naming_the_key(client):
    body = load_request("patient-view.json")
    del body["prefetch"]["conditions"]
    body.pop("fhirServer")
    _assert_outcome(client.post("/cds-services/opioid-patient-view", json=body), 412, "prefetch.conditions")


def test_several_problems_are_all_reported(client):
    body = load_request("order-sign.json")
    body["hook"] = "patient-view"
    del body["context"]["userId"]
    del body["context"]["draftOrders"]
    outcome = _assert_outcome(client.post("/cds-services/opioid-order-sign", json=body), 400, None)
    expressions = {e for i in outcome["issue"] for e in i["expression"]}
    assert {"hook", "context.userId", "context.draftOrders"} <= expressions


def test_unknown_service_is_404(client):
    _assert_outcome(client.post("/cds-services/no-such-service", json=load_request("order-sign.json")), 404, "url.id")


def test_unknown_route_is_404_operation_outcome(client):
    _assert_outcome(client.get("/not-here"), 404, "url.path")


def test_get_on_a_service_is_405_operation_outcome(client):
    _assert_outcome(client.get("/cds-services/opioid-order-sign"), 405, "url.method")


def test_body_over_the_limit_is_413(tmp_path):
    small = create_app(dev_settings(tmp_path, max_body_bytes=1000)).test_client()
    body = load_request("order-sign.json")
    body["context"]["padding"] = "x" * 2000
    _assert_outcome(small.post("/cds-services/opioid-order-sign", json=body), 413, "$")


def test_default_body_limit_is_5_mb(client):
    payload = b'{"hook": "order-sign", "pad": "' + b"x" * (5 * 1024 * 1024) + b'"}'
    _assert_outcome(
        client.post("/cds-services/opioid-order-sign", data=payload, content_type="application/json"), 413, "$"
    )


def test_fhir_json_content_type_is_accepted(client):
    response = client.post(
        "/cds-services/opioid-order-sign",
        data=json.dumps(load_request("order-sign.json")),
        content_type="application/fhir+json; charset=utf-8",
    )
    assert response.status_code == 200


def test_non_utf8_charset_is_415(client):
    response = client.post(
        "/cds-services/opioid-order-sign",
        data=json.dumps(load_request("order-sign.json")).encode("utf-16"),
        content_type="application/json; charset=utf-16",
    )
    _assert_outcome(response, 415, "header.Content-Type")


def test_invalid_utf8_is_400(client):
    _assert_outcome(
        client.post("/cds-services/opioid-order-sign", data=b'{"hook": "\xff"}', content_type="application/json"),
        400,
        "$",
    )


def test_empty_body_is_400(client):
    _assert_outcome(client.post("/cds-services/opioid-order-sign", data=b"", content_type="application/json"), 400, "$")


def test_extreme_nesting_beyond_the_parser_is_400_not_500(client):
    payload = b"[" * 100_000 + b"]" * 100_000
    _assert_outcome(
        client.post("/cds-services/opioid-order-sign", data=payload, content_type="application/json"), 400, "$"
    )


def test_cors_preflight_answers_without_auth(secure_client):
    response = secure_client.options(
        "/cds-services/opioid-order-sign",
        headers={
            "Origin": "https://sandbox.cds-hooks.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    allowed = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed
    assert "POST" in response.headers["Access-Control-Allow-Methods"]


@pytest.mark.parametrize("path", ["/cds-services", "/health", "/ready", "/not-here"])
def test_cors_headers_on_every_route(client, path):
    response = client.get(path, headers={"Origin": "https://sandbox.example"})
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_cors_errors_carry_cors_headers_too(client):
    response = client.post("/cds-services/opioid-order-sign", data=b"{", content_type="application/json")
    assert response.status_code == 400
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_cors_origin_allow_list_echoes_only_listed_origins(tmp_path):
    listed = create_app(dev_settings(tmp_path, cors_origins=("https://sandbox.example",))).test_client()
    allowed = listed.get("/cds-services", headers={"Origin": "https://sandbox.example"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://sandbox.example"
    assert "Origin" in allowed.headers.get("Vary", "")
    refused = listed.get("/cds-services", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in refused.headers


def test_health_and_ready(client):
    assert client.get("/health").get_json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.get_json()["status"] == "ready"


def test_ready_is_503_when_store_unreachable(tmp_path):
    app = create_app(dev_settings(tmp_path))
    from sqlalchemy import create_engine

    # A database file in a directory that does not exist cannot be opened: the store is unreachable.
    app.extensions["opioid_cds"].store.engine = create_engine(f"sqlite:///{tmp_path}/missing-dir/x/y.db")
    response = app.test_client().get("/ready")
    assert response.status_code == 503
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_internal_bug_is_500_operation_outcome_without_trace(client, monkeypatch):
    import cds_service.protocol.routes as api

    def broken(*_a, **_k):
        raise ZeroDivisionError("secret internals")

    monkeypatch.setattr(api, "evaluate", broken)
    response = client.post("/cds-services/opioid-order-sign", json=load_request("order-sign.json"))
    assert response.status_code == 500
    text = response.get_data(as_text=True)
    assert "secret internals" not in text and "Traceback" not in text
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_responses_never_contain_null_members(client):
    for response in (
        client.get("/cds-services"),
        client.post("/cds-services/opioid-order-sign", json=load_request("order-sign.json")),
        client.post("/cds-services/opioid-order-sign", data=b"{", content_type="application/json"),
    ):
        assert "null" not in response.get_data(as_text=True)


def test_selections_checked_against_broken_draft_orders_is_400_not_500(client):
    # Found by schemathesis: an entry without a resource while selections are checked.
    body = load_request("order-select.json")
    body["context"]["draftOrders"]["entry"].append({})
    _assert_outcome(
        client.post("/cds-services/opioid-order-select", json=body), 400, "context.draftOrders.entry[1].resource"
    )


def test_patient_id_sent_as_a_reference_is_compared_by_its_id(client):
    body = load_request("order-sign.json")
    body["context"]["patientId"] = "Patient/pat-1"
    assert client.post("/cds-services/opioid-order-sign", json=body).status_code == 200


def test_cards_link_their_source_to_the_about_page_which_lists_the_rules(client):
    body = load_request("order-sign.json")
    cards = client.post("/cds-services/opioid-order-sign", json=body).get_json()["cards"]
    assert cards and {c["source"]["url"] for c in cards} == {"http://localhost/about"}
    page = client.get("/about")
    assert page.status_code == 200 and page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    assert "dose/high-ome" in text and "high_ome_mg_per_day" in text
