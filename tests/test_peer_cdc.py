"""Peer suite: the CDC opioid CDS tests for Rec 5 (MME >= 50) and Rec 11 (opioid + benzodiazepine).

Run under profile cdc-2016 with the high-OME threshold at 50 (a practice settings file), through the live
service. Our dose/high-ome must fire where their expected response has a card, with the same total (180), and
stay silent where it has none; likewise co-prescribing/opioid-benzodiazepine for Rec 11.

Adaptation (the CDC requests were written for their own service): their prefetch keys (item1..item13) are moved
under ours (patient, medications, conditions; the review keys sent as null), and fhirServer is dropped because no
FHIR server is reachable here. Each request is evaluated on its own dataDateRoller date.
"""

from __future__ import annotations

import json
import re

import pytest
import requests

from tests.helpers import FILES, gunicorn_server

pytestmark = pytest.mark.integration
CDC = FILES / "cdc-cds"
SERVICES = {
    "order-sign": "opioid-order-sign",
    "order-select": "opioid-order-select",
    "patient-view": "opioid-patient-view",
}
CASES = sorted(p.name for p in CDC.glob("request-example-rec-*.json"))


def _adapt(body: dict) -> dict:
    resources = []
    for value in (body.get("prefetch") or {}).values():
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            resources += [e["resource"] for e in value.get("entry") or [] if isinstance(e.get("resource"), dict)]
        elif isinstance(value, dict):
            resources.append(value)

    def bundle(kind):
        return {"resourceType": "Bundle", "entry": [{"resource": r} for r in resources if r["resourceType"] == kind]}

    patient = next((r for r in resources if r["resourceType"] == "Patient"), None)
    adapted = dict(body)
    adapted.pop("fhirServer", None)
    adapted.pop("fhirAuthorization", None)
    adapted["prefetch"] = {
        "patient": patient,
        "medications": bundle("MedicationRequest"),
        "conditions": bundle("Condition"),
        "medicationReviewProcedures": None,
        "medicationReviewObservations": None,
    }
    return adapted


def _expected_cards(name: str) -> list[dict]:
    response = json.loads((CDC / name.replace("request-", "response-")).read_text())
    return response.get("cards") or []


def _roll_date(body: dict) -> str:
    match = re.search(r'"dateLastUpdated",\s*"valueDateTime":\s*"(\d{4}-\d{2}-\d{2})', json.dumps(body))
    assert match, "every CDC fixture carries its dataDateRoller date"
    return match.group(1)


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """One live server per evaluation date the fixtures use."""
    tmp = tmp_path_factory.mktemp("peer")
    practice = tmp / "cdc-thresholds.yaml"
    practice.write_text("high_ome_mg_per_day:\n  value: 50\n  source: CDC 2016 Recommendation 5 (50 MME/day)\n")
    dates = sorted({_roll_date(json.loads((CDC / n).read_text())) for n in CASES})
    started, live = [], {}
    try:
        for day in dates:
            env = {
                "OPIOID_CDS_AUTH": "off",
                "OPIOID_CDS_PROFILE": "cdc-2016",
                "OPIOID_CDS_SETTINGS": str(practice),
                "OPIOID_CDS_TODAY": day,
            }
            context = gunicorn_server(tmp / day, env, workers=1)
            (tmp / day).mkdir(exist_ok=True)
            live[day] = context.__enter__()
            started.append(context)
        yield live
    finally:
        for context in started:
            context.__exit__(None, None, None)


@pytest.mark.parametrize("name", CASES)
def test_cdc_case(servers, name):
    body = json.loads((CDC / name).read_text())
    server = servers[_roll_date(body)]
    response = requests.post(f"{server.url}/cds-services/{SERVICES[body['hook']]}", json=_adapt(body), timeout=10)
    assert response.status_code == 200, response.text
    ours = {c["source"]["topic"]["code"]: c for c in response.json()["cards"]}
    rule = "dose/high-ome" if "rec-05" in name else "co-prescribing/opioid-benzodiazepine"
    expected = _expected_cards(name)
    assert (rule in ours) == bool(expected), (name, list(ours))
    if "rec-05" in name and expected:
        theirs = float(re.search(r"\(MME\) is ([\d.]+)", expected[0]["detail"]).group(1))  # 179.99999820
        mine = float(re.search(r"total ([\d.]+) mg/day", ours[rule]["summary"]).group(1))
        assert round(theirs) == mine == 180
