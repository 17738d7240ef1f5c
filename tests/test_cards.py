"""Cards: the patient's figures, context (pregnancy, dependence, risk factors, palliative care), suggestions."""

from __future__ import annotations

import copy
import json
from datetime import date

import pytest
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.servicerequest import ServiceRequest

from cds_service.assess import Assessor
from cds_service.clinical.knowledge.loader import load_knowledge
from cds_service.clinical.record import record_from_document
from cds_service.ruleset.loader import load_rules
from tests.helpers import FIXTURES, ROOT

TODAY = date(2026, 11, 23)
SNOMED = "http://snomed.info/sct"


@pytest.fixture(scope="module")
def assessor():
    return Assessor.from_paths(load_knowledge())


def _fixture(rule: str, name: str) -> dict:
    return json.loads((FIXTURES / rule / name).read_text())


def _cards(assessor, body, today=TODAY):
    evaluation = assessor.assess(body["hook"], record_from_document(body), today)
    return {c["source"]["topic"]["code"]: c for c in evaluation.body["cards"]}


def _condition(code, display):
    return {
        "resource": {
            "resourceType": "Condition",
            "subject": {"reference": "Patient/pat-fx"},
            "code": {"coding": [{"system": SNOMED, "code": code, "display": display}]},
        }
    }


def test_high_ome_card_shows_each_order_its_ome_and_the_guidance(assessor):
    card = _cards(assessor, _fixture("dose/high-ome", "fires-180.json"))["dose/high-ome"]
    assert card["summary"] == "Opioids total 180 mg/day oral morphine equivalent: consider a gradual taper"
    assert "| Morphine 60mg modified-release tablets | 3 tablet/day | 180 | 1 (BNF) |" in card["detail"]
    assert "Reduce by 10% of the total daily dose every 1-2 weeks" in card["detail"]
    assert card["indicator"] == "warning"
    assert card["source"]["topic"] == {
        "system": "urn:opioid-cds:rule",
        "code": "dose/high-ome",
        "display": "High total daily opioid dose",
    }
    assert {link["type"] for link in card["links"]} == {"absolute"}
    assert [r["code"] for r in card["overrideReasons"]] == [
        "palliative-care",
        "taper-agreed",
        "specialist-plan",
        "patient-declined",
        "other",
    ]
    assert all(r["display"] for r in card["overrideReasons"])


def test_pregnancy_adds_the_withdrawal_warning(assessor):
    body = _fixture("dose/high-ome", "fires-180.json")
    body["prefetch"]["conditions"]["entry"].append(_condition("47200007", "High risk pregnancy"))
    detail = _cards(assessor, body)["dose/high-ome"]["detail"]
    assert "withdrawal is associated with premature labour" in detail


def test_coded_opioid_dependence_replaces_taper_advice_with_referral(assessor):
    body = _fixture("dose/high-ome", "fires-180.json")
    body["prefetch"]["conditions"]["entry"].append(_condition("5602001", "Opioid abuse"))
    detail = _cards(assessor, body)["dose/high-ome"]["detail"]
    assert "refer to local drug and alcohol services" in detail
    assert "Reduce by 10%" not in detail


def test_risk_factors_are_listed(assessor):
    body = _fixture("co-prescribing/opioid-benzodiazepine", "fires.json")
    body["prefetch"]["patient"]["birthDate"] = "1950-01-01"
    body["prefetch"]["conditions"]["entry"] += [
        _condition("13645005", "Chronic obstructive lung disease"),
        _condition("1047881000000106", "Opioid analgesic dependence"),
    ]
    detail = _cards(assessor, body)["co-prescribing/opioid-benzodiazepine"]["detail"]
    assert "**Risk factors**: COPD, age 76, benzodiazepine use, history of substance misuse." in detail


def test_palliative_suppression_is_a_setting(tmp_path):
    practice = tmp_path / "practice.yaml"
    practice.write_text("suppress_in_palliative_care:\n  value: false\n  source: practice policy (test)\n")
    assessor = Assessor(load_knowledge(), load_rules(ROOT / "rules", practice))
    body = _fixture("dose/high-ome", "silent-palliative.json")
    assert "dose/high-ome" in _cards(assessor, body)


def test_orders_not_counted_are_shown_with_their_reason(assessor):
    body = _fixture("dose/high-ome", "fires-180.json")
    unreadable = copy.deepcopy(body["context"]["draftOrders"]["entry"][0])
    unreadable["resource"]["id"] = "draft-2"
    unreadable["resource"]["dosageInstruction"] = [{"text": "as directed"}]
    body["context"]["draftOrders"]["entry"].append(unreadable)
    detail = _cards(assessor, body)["dose/high-ome"]["detail"]
    assert "**Not counted** (the total may be higher)" in detail
    assert 'dose "as directed" cannot be quantified' in detail


def test_one_card_per_rule_even_when_several_orders_match(assessor):
    body = _fixture("repeat/codeine-on-repeat", "fires.json")
    second = copy.deepcopy(body["prefetch"]["medications"]["entry"][0])
    second["resource"]["id"] = "rx-2"
    second["resource"]["dosageInstruction"] = [{"text": "ONE tablet at night"}]
    body["prefetch"]["medications"]["entry"].append(second)
    evaluation = assessor.assess("patient-view", record_from_document(body), TODAY)
    codes = [c["source"]["topic"]["code"] for c in evaluation.body["cards"]]
    assert codes.count("repeat/codeine-on-repeat") == 1


def test_change_to_acute_updates_the_whole_order(assessor):
    card = _cards(assessor, _fixture("repeat/codeine-on-repeat", "fires.json"))["repeat/codeine-on-repeat"]
    (suggestion,) = card["suggestions"]
    assert card["selectionBehavior"] == "at-most-one" and suggestion["uuid"]
    (action,) = suggestion["actions"]
    original = _fixture("repeat/codeine-on-repeat", "fires.json")["prefetch"]["medications"]["entry"][0]["resource"]
    updated = action["resource"]
    assert action["type"] == "update"
    assert updated["courseOfTherapyType"]["coding"][0]["code"] == "acute"
    assert {k: v for k, v in updated.items() if k != "courseOfTherapyType"} == {
        k: v for k, v in original.items() if k != "courseOfTherapyType"
    }
    MedicationRequest.model_validate(updated)


def test_remove_from_repeat_stops_the_authorisation(assessor):
    card = _cards(assessor, _fixture("repeat/not-issued", "fires-3-months.json"))["repeat/not-issued"]
    resources = [a["resource"] for s in card["suggestions"] for a in s["actions"]]
    assert resources and all(r["status"] == "stopped" for r in resources)
    assert "Your opioid painkiller has been taken off your repeat list" in card["detail"]
    for resource in resources:
        MedicationRequest.model_validate(resource)


def test_review_and_referral_suggestions_are_valid_service_requests(assessor):
    card = _cards(assessor, _fixture("dose/very-high-ome", "fires-540.json"))["dose/very-high-ome"]
    requests = [
        a["resource"]
        for s in card["suggestions"]
        for a in s["actions"]
        if a["resource"]["resourceType"] == "ServiceRequest"
    ]
    assert [r["code"].get("text") for r in requests] == [
        "Referral to specialist pain service",
        "Opioid medication review",
    ]
    for request in requests:
        ServiceRequest.model_validate(request)
        assert request["subject"] == {"reference": "Patient/pat-fx"}
    assert requests[1]["code"]["coding"][0]["code"] == "182836005"  # MEDRVW_COD "Review of medication"


def test_cards_come_most_urgent_first(assessor):
    body = _fixture("co-prescribing/opioid-multiple-sedatives", "fires.json")
    body["context"]["draftOrders"]["entry"][0]["resource"]["dosageInstruction"] = [{"text": "TWO tablets TWICE a day"}]
    body["prefetch"]["medications"]["entry"][0]["resource"]["dosageInstruction"] = [
        {"text": "FIVE tablets TWICE a day"}
    ]  # morphine 30 MR: 300 mg/day
    evaluation = assessor.assess("order-sign", record_from_document(body), TODAY)
    indicators = [c["indicator"] for c in evaluation.body["cards"]]
    assert indicators == sorted(indicators, key=["critical", "warning", "info"].index)
    assert indicators[0] == "critical"


def test_high_ome_card_suggests_a_taper_with_a_care_plan(assessor):
    from fhir.resources.R4B.careplan import CarePlan

    evaluation = assessor.assess(
        "order-sign",
        record_from_document(_fixture("dose/high-ome", "fires-180.json")),
        TODAY,
        base_url="https://cds.example.nhs.uk",
    )
    card = next(c for c in evaluation.body["cards"] if c["source"]["topic"]["code"] == "dose/high-ome")
    taper = card["suggestions"][0]
    assert taper["label"].startswith("Start a taper (step 1: morphine modified-release tablets 50 mg three times")
    assert taper["isRecommended"] is True
    update, create = taper["actions"]
    assert update["resource"]["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 50.0
    MedicationRequest.model_validate(update["resource"])
    plan = CarePlan.model_validate(create["resource"])
    assert plan.activity and plan.activity[-1].detail.description.endswith("stop")
    assert "**Suggested taper** (mr-first, standard pace" in card["detail"]
    assert card["links"][0]["url"].startswith("https://cds.example.nhs.uk/taper?o=36127711000001103%3A60%3A3%3A0")


def test_copd_or_long_use_gives_the_slow_plan_and_says_why(assessor):
    body = _fixture("dose/high-ome", "fires-180.json")
    body["prefetch"]["conditions"]["entry"].append(_condition("13645005", "Chronic obstructive lung disease"))
    detail = _cards(assessor, body)["dose/high-ome"]["detail"]
    assert "(mr-first, slow pace" in detail and "Slower pace because: COPD (cardio-respiratory disease)." in detail


def test_no_taper_suggestion_when_dependence_is_coded(assessor):
    body = _fixture("dose/high-ome", "fires-180.json")
    body["prefetch"]["conditions"]["entry"].append(_condition("5602001", "Opioid abuse"))
    card = _cards(assessor, body)["dose/high-ome"]
    assert not any(s["label"].startswith("Start a taper") for s in card.get("suggestions", []))


def test_a_patient_id_sent_as_a_reference_gives_well_formed_subjects(client):
    body = _fixture("dose/very-high-ome", "fires-540.json")
    body["context"]["patientId"] = "Patient/pat-fx"
    cards = client.post("/cds-services/opioid-order-sign", json=body).get_json()["cards"]
    subjects = {
        a["resource"]["subject"]["reference"]
        for c in cards
        for s in c.get("suggestions", [])
        for a in s["actions"]
        if "subject" in a["resource"]
    }
    assert subjects == {"Patient/pat-fx"}
