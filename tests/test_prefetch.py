"""Prefetch resolution against a loopback FHIR server (the EHR's FHIR server cannot run here)."""

from __future__ import annotations

import json
import time
from urllib.parse import unquote

import pytest
import requests

from cds_service.app import create_app
from cds_service.config import load_settings
from cds_service.protocol.prefetch import Unobtainable, fhir_server_refusal, render_template
from tests.conftest import dev_settings
from tests.helpers import BASE_URL, claims_for, fhir_server, load_request, write_trust

TOKEN = "opaque-fhir-access-token"


def _bundle(*resources, next_url=None):
    bundle = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources]}
    if next_url:
        bundle["link"] = [{"relation": "next", "url": next_url}]
    return bundle


def _request(base_url, drop=(), authorization=True):
    body = load_request("patient-view.json")
    body["fhirServer"] = base_url
    if authorization:
        body["fhirAuthorization"] = {
            "access_token": TOKEN,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "user/*.read",
            "subject": "opioid-cds",
        }
    for key in drop:
        del body["prefetch"][key]
    return body


def _med(mr_id):
    return {
        "resourceType": "MedicationRequest",
        "id": mr_id,
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/pat-1"},
        "medicationCodeableConcept": {"text": "Morphine"},
    }


@pytest.fixture
def client(tmp_path):
    return create_app(dev_settings(tmp_path, fhir_timeout_seconds=1.0, fhir_max_pages=3)).test_client()


def test_absent_key_is_fetched_with_the_bearer_token(client):
    with fhir_server() as fhir:
        fhir.routes["/fhir/MedicationRequest"] = lambda _r: (200, _bundle(_med("m1")), 0.0)
        response = client.post("/cds-services/opioid-patient-view", json=_request(fhir.base_url, drop=["medications"]))
        assert response.status_code == 200, response.get_json()
        (call,) = fhir.requests
        assert call.headers["Authorization"] == f"Bearer {TOKEN}"
        query = unquote(call.query)
        assert "patient=pat-1" in query and "status=active" in query
        assert "_include=MedicationRequest:medication" in query


def test_all_absent_keys_are_fetched(client):
    with fhir_server() as fhir:
        for path in ("Patient/pat-1", "MedicationRequest", "Condition", "Procedure", "Observation"):
            body = {"resourceType": "Patient", "id": "pat-1"} if path.startswith("Patient") else _bundle()
            fhir.routes[f"/fhir/{path}"] = lambda _r, b=body: (200, b, 0.0)
        body = _request(fhir.base_url)
        body.pop("prefetch")
        assert client.post("/cds-services/opioid-patient-view", json=body).status_code == 200
        assert sorted(r.path for r in fhir.requests) == sorted(
            [
                "/fhir/Patient/pat-1",
                "/fhir/MedicationRequest",
                "/fhir/Condition",
                "/fhir/Procedure",
                "/fhir/Observation",
                # the optional issue history keys, fetched too when nothing was prefetched (issue #10 item 7);
                # the dispense search is answered 404 here, which for an optional key is no data, not a 412
                "/fhir/MedicationRequest",
                "/fhir/MedicationDispense",
            ]
        )


def test_no_authorization_means_no_authorization_header(client):
    with fhir_server() as fhir:
        fhir.routes["/fhir/Condition"] = lambda _r: (200, _bundle(), 0.0)
        body = _request(fhir.base_url, drop=["conditions"], authorization=False)
        assert client.post("/cds-services/opioid-patient-view", json=body).status_code == 200
        assert "Authorization" not in fhir.requests[0].headers


def test_prefetched_bundle_next_pages_are_followed(client, monkeypatch):
    import cds_service.protocol.routes as pipeline

    seen = {}
    real = pipeline.build_record

    def spy(request, prefetch):
        record = real(request, prefetch)
        seen["orders"] = [o.resource["id"] for o in record.orders]
        return record

    monkeypatch.setattr(pipeline, "build_record", spy)
    with fhir_server() as fhir:
        fhir.routes["/fhir/MedicationRequest"] = lambda r: (
            (200, _bundle(_med("m2"), next_url=f"{fhir.base_url}/MedicationRequest?page=3"), 0.0)
            if r.args.get("page") == "2"
            else (200, _bundle(_med("m3")), 0.0)
        )
        body = _request(fhir.base_url)
        body["prefetch"]["medications"] = _bundle(_med("m1"), next_url=f"{fhir.base_url}/MedicationRequest?page=2")
        assert client.post("/cds-services/opioid-patient-view", json=body).status_code == 200
        assert seen["orders"] == ["m1", "m2", "m3"]
        assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in fhir.requests)


def test_next_link_outside_fhir_server_is_not_followed(client):
    with fhir_server() as fhir:
        body = _request(fhir.base_url)
        body["prefetch"]["medications"] = _bundle(_med("m1"), next_url="https://attacker.example/steal?page=2")
        response = client.post("/cds-services/opioid-patient-view", json=body)
        assert response.status_code == 412
        assert response.get_json()["issue"][0]["expression"] == ["prefetch.medications"]
        assert fhir.requests == []


def test_too_many_pages_is_412(client):
    with fhir_server() as fhir:
        fhir.routes["/fhir/MedicationRequest"] = lambda _r: (
            200,
            _bundle(_med("mx"), next_url=f"{fhir.base_url}/MedicationRequest?again=1"),
            0.0,
        )
        body = _request(fhir.base_url)
        body["prefetch"]["medications"] = _bundle(_med("m1"), next_url=f"{fhir.base_url}/MedicationRequest?again=1")
        response = client.post("/cds-services/opioid-patient-view", json=body)
        assert response.status_code == 412
        assert "more than 3 pages" in response.get_json()["issue"][0]["diagnostics"]


def test_fhir_server_error_is_412_naming_the_key(client):
    with fhir_server() as fhir:
        fhir.routes["/fhir/Condition"] = lambda _r: (500, {"resourceType": "OperationOutcome", "issue": []}, 0.0)
        response = client.post("/cds-services/opioid-patient-view", json=_request(fhir.base_url, drop=["conditions"]))
        assert response.status_code == 412
        issue = response.get_json()["issue"][0]
        assert issue["expression"] == ["prefetch.conditions"] and "HTTP 500" in issue["diagnostics"]


def test_slow_fhir_server_hits_the_total_deadline(client):
    with fhir_server() as fhir:
        fhir.routes["/fhir/Condition"] = lambda _r: (200, _bundle(), 3.0)
        fhir.routes["/fhir/MedicationRequest"] = lambda _r: (200, _bundle(), 3.0)
        started = time.monotonic()
        body = _request(fhir.base_url, drop=["conditions", "medications"])
        response = client.post("/cds-services/opioid-patient-view", json=body)
        elapsed = time.monotonic() - started
        assert response.status_code == 412
        assert {e for i in response.get_json()["issue"] for e in i["expression"]} == {
            "prefetch.conditions",
            "prefetch.medications",
        }
        assert elapsed < 2.5  # deadline 1 s for all fetching together, not per fetch


def test_unreachable_fhir_server_is_412(client):
    body = _request("http://127.0.0.1:9", drop=["conditions"])  # nothing listens on the discard port
    response = client.post("/cds-services/opioid-patient-view", json=body)
    assert response.status_code == 412


def test_operation_outcome_in_prefetch_is_fetched_instead(client):
    with fhir_server() as fhir:
        fhir.routes["/fhir/Condition"] = lambda _r: (200, _bundle(), 0.0)
        body = _request(fhir.base_url)
        body["prefetch"]["conditions"] = {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "timeout", "diagnostics": "EHR could not prefetch"}],
        }
        assert client.post("/cds-services/opioid-patient-view", json=body).status_code == 200
        assert [r.path for r in fhir.requests] == ["/fhir/Condition"]


def test_non_json_answer_is_412(client):
    with fhir_server() as fhir:
        fhir.routes["/fhir/Condition"] = lambda _r: (200, "<html>login</html>", 0.0)
        response = client.post("/cds-services/opioid-patient-view", json=_request(fhir.base_url, drop=["conditions"]))
        assert response.status_code == 412


def test_render_template_encodes_context_values():
    assert render_template("Patient/{{context.patientId}}", {"patientId": "a b/c"}) == "Patient/a%20b%2Fc"


def test_render_template_user_tokens():
    template = "PractitionerRole?practitioner={{userPractitionerId}}"
    assert render_template(template, {"userId": "Practitioner/gp-1"}) == "PractitionerRole?practitioner=gp-1"
    with pytest.raises(Unobtainable):
        render_template(template, {"userId": "PractitionerRole/r-1"})


def test_render_template_missing_context_value_is_unobtainable():
    with pytest.raises(Unobtainable, match=r"context\.encounterId"):
        render_template("Encounter/{{context.encounterId}}", {"patientId": "p"})


def test_fetched_medications_of_another_patient_are_refused(client):
    with fhir_server() as fhir:
        other = _med("m9")
        other["subject"] = {"reference": "Patient/someone-else"}
        fhir.routes["/fhir/MedicationRequest"] = lambda _r: (200, _bundle(_med("m1"), other), 0.0)
        response = client.post("/cds-services/opioid-patient-view", json=_request(fhir.base_url, drop=["medications"]))
        assert response.status_code == 412
        issue = response.get_json()["issue"][0]
        assert issue["expression"] == ["prefetch.medications"]
        assert "prefetch.medications.entry[1].resource.subject.reference" in issue["diagnostics"]


def test_fetched_bundle_with_a_broken_entry_is_412(client):
    with fhir_server() as fhir:
        fhir.routes["/fhir/Condition"] = lambda _r: (200, {"resourceType": "Bundle", "entry": [{"search": {}}]}, 0.0)
        response = client.post("/cds-services/opioid-patient-view", json=_request(fhir.base_url, drop=["conditions"]))
        assert response.status_code == 412


# --- issue #13 item 2: fhirServer allow-list ------------------------------------------------------------------------

PATIENT_VIEW = "/cds-services/opioid-patient-view"


def _secure(tmp_path, es384_key, env=None, **issuer):
    settings = load_settings(
        {
            "OPIOID_CDS_PUBLIC_BASE_URL": BASE_URL,
            "OPIOID_CDS_TRUSTED_ISSUERS": str(write_trust(tmp_path, [es384_key], **issuer)),
            "OPIOID_CDS_DATABASE_URL": f"sqlite:///{tmp_path}/t.sqlite3",
            **(env or {}),
        }
    )
    client = create_app(settings).test_client()

    def post(body):
        token = es384_key.sign(claims_for(PATIENT_VIEW))
        return client.post(PATIENT_VIEW, json=body, headers={"Authorization": f"Bearer {token}"})

    return post


def _serving(fhir):
    fhir.routes["/fhir/MedicationRequest"] = lambda _r: (200, _bundle(_med("m1")), 0.0)


def test_fhir_server_off_the_issuer_allow_list_is_412_without_any_call(tmp_path, es384_key):
    with fhir_server() as fhir:
        _serving(fhir)
        post = _secure(tmp_path, es384_key, fhir_servers=["https://ehr.allowed.example/fhir"])
        response = post(_request(fhir.base_url, drop=["medications"]))
        assert response.status_code == 412
        assert "allow-list" in json.dumps(response.get_json())
        assert fhir.requests == []  # the client's token went nowhere


def test_fhir_server_with_no_allow_list_configured_is_412_without_any_call(tmp_path, es384_key):
    # auth required and no list at all: no fhirServer may be called (a fuzzer cannot point us at outside hosts)
    with fhir_server() as fhir:
        _serving(fhir)
        response = _secure(tmp_path, es384_key)(_request(fhir.base_url, drop=["medications"]))
        assert response.status_code == 412
        assert fhir.requests == []


def test_fhir_server_on_the_issuer_allow_list_is_called(tmp_path, es384_key):
    with fhir_server() as fhir:
        _serving(fhir)
        post = _secure(tmp_path, es384_key, fhir_servers=[fhir.base_url + "/"])  # a trailing slash is the same base
        assert post(_request(fhir.base_url, drop=["medications"])).status_code == 200
        assert len(fhir.requests) == 1


def test_global_fhir_server_allow_list_applies_when_the_issuer_has_none(tmp_path, es384_key):
    with fhir_server() as fhir:
        _serving(fhir)
        post = _secure(tmp_path, es384_key, env={"OPIOID_CDS_FHIR_SERVERS": f"https://x.example/fhir,{fhir.base_url}"})
        assert post(_request(fhir.base_url, drop=["medications"])).status_code == 200
        assert len(fhir.requests) == 1


def test_issuer_fhir_server_list_wins_over_the_global_list(tmp_path, es384_key):
    with fhir_server() as fhir:
        _serving(fhir)
        post = _secure(
            tmp_path,
            es384_key,
            env={"OPIOID_CDS_FHIR_SERVERS": fhir.base_url},
            fhir_servers=["https://ehr.allowed.example/fhir"],
        )
        assert post(_request(fhir.base_url, drop=["medications"])).status_code == 412
        assert fhir.requests == []


def test_dev_mode_with_a_list_refuses_a_loopback_fhir_server_off_it_without_any_call(tmp_path):
    client = create_app(dev_settings(tmp_path, fhir_servers=("https://ehr.allowed.example/fhir",))).test_client()
    with fhir_server() as fhir:
        _serving(fhir)
        response = client.post(PATIENT_VIEW, json=_request(fhir.base_url, drop=["medications"]))
        assert response.status_code == 412
        assert fhir.requests == []


def test_dev_mode_without_a_list_refuses_an_outside_host_without_any_call(client, monkeypatch):
    calls = []
    monkeypatch.setattr(requests, "get", lambda *a, **k: calls.append(a) or pytest.fail("network call"))
    response = client.post(PATIENT_VIEW, json=_request("https://fuzzer.example/fhir", drop=["medications"]))
    assert response.status_code == 412
    assert calls == []


@pytest.mark.parametrize(
    "url",
    [
        "https://ehr.allowed.example/fhirx",  # a prefix of the name, not of the path
        "https://ehr.allowed.example.evil.test/fhir",
        "https://ehr.allowed.example/fhir@evil.test",
        "https://user@ehr.allowed.example/fhir",
        "https://ehr.allowed.example/fhir/../admin",
        "https://ehr.allowed.example/fhir?x=1",
        "http://ehr.allowed.example/fhir",
    ],
)
def test_fhir_server_lookalikes_of_an_allowed_base_are_refused(url):
    settings = dev_settings(None, fhir_servers=("https://ehr.allowed.example/fhir",))
    assert fhir_server_refusal(url, settings, None) is not None


@pytest.mark.parametrize("url", ["https://ehr.allowed.example/fhir", "https://ehr.allowed.example/fhir/r4"])
def test_fhir_server_under_an_allowed_base_is_allowed(url):
    settings = dev_settings(None, fhir_servers=("https://ehr.allowed.example/fhir",))
    assert fhir_server_refusal(url, settings, None) is None


def test_fully_prefetched_request_from_an_unlisted_fhir_server_needs_no_call(tmp_path, es384_key):
    # nothing needs fetching, so the fhirServer is never called and the request is answered
    with fhir_server() as fhir:
        post = _secure(tmp_path, es384_key, fhir_servers=["https://ehr.allowed.example/fhir"])
        assert post(_request(fhir.base_url)).status_code == 200
        assert fhir.requests == []
