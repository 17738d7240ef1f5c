"""Every rule's fixtures through the live HTTP service (gunicorn): fires where it should, silent where it must be.

Each fhir_fixtures/<rule-id>/expected.yaml says, per request, whether that rule's card appears and a fragment of
its summary worked out by hand. Every card returned is checked against the CDS Hooks card schema, and every
suggestion's FHIR resource is validated with fhir.resources R4B.
"""

from __future__ import annotations

import json

import pytest
import requests
import yaml
from fhir.resources.R4B.careplan import CarePlan
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.servicerequest import ServiceRequest

from cds_service.ruleset.loader import load_rules
from tests.helpers import FIXTURES, ROOT, gunicorn_server
from tests.openapi_check import errors

pytestmark = pytest.mark.integration
SERVICES = {
    "order-sign": "opioid-order-sign",
    "order-select": "opioid-order-select",
    "patient-view": "opioid-patient-view",
}
CASES = [
    ("/".join(path.parent.relative_to(FIXTURES).parts), name, expected)
    for path in sorted(FIXTURES.glob("*/*/expected.yaml"))
    for name, expected in yaml.safe_load(path.read_text()).items()
]
MODELS = {"MedicationRequest": MedicationRequest, "ServiceRequest": ServiceRequest, "CarePlan": CarePlan}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {"OPIOID_CDS_AUTH": "off", "OPIOID_CDS_TODAY": "2026-11-23"}
    with gunicorn_server(tmp_path_factory.mktemp("corpus"), env) as live:
        yield live


def test_every_active_rule_has_firing_and_silent_fixtures():
    rules = {r.id for r in load_rules(ROOT / "rules").rules}
    assert {rule for rule, _, e in CASES if e["fires"]} == rules
    assert {rule for rule, _, e in CASES if not e["fires"]} == rules
    for rule, name, _ in CASES:
        assert (FIXTURES / rule / name).is_file()


@pytest.mark.parametrize(("rule", "name", "expected"), CASES, ids=[f"{r}/{n}" for r, n, _ in CASES])
def test_fixture(server, rule, name, expected):
    body = json.loads((FIXTURES / rule / name).read_text())
    response = requests.post(f"{server.url}/cds-services/{SERVICES[body['hook']]}", json=body, timeout=10)
    assert response.status_code == 200, response.text
    assert errors("CdsResponse", response.json()) == []
    cards = response.json()["cards"]
    mine = [c for c in cards if c["source"]["topic"]["code"] == rule]
    assert len(mine) == (1 if expected["fires"] else 0), [c["summary"] for c in cards]
    if expected.get("summary_contains"):
        assert expected["summary_contains"] in mine[0]["summary"]
    for card in cards:
        assert len(card["summary"]) <= 139
        assert card["source"]["topic"]["system"] == "urn:opioid-cds:rule"
        for suggestion in card.get("suggestions", []):
            for action in suggestion["actions"]:
                resource = action["resource"]
                MODELS[resource["resourceType"]].model_validate(resource)
    order = [{"critical": 0, "warning": 1, "info": 2}[c["indicator"]] for c in cards]
    assert order == sorted(order)
