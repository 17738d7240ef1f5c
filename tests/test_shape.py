"""Wrong-typed FHIR elements: never a 500, never a silent under-count (issue #10 items 5 and 6).

fhir_fixtures/requests/order-sign.json: a draft morphine 60 mg MR one tablet twice a day (60 x 2 = 120 mg/day,
factor 1) and an existing fentanyl 50 micrograms/hour patch (50 x 24 / 1000 = 1.2 mg/day x 100 = 120 mg/day):
240 mg/day in all, which fires dose/high-ome and combination/multiple-strong-opioids.
"""

from __future__ import annotations

import copy
import logging
import re
from decimal import Decimal
from typing import Any

import pytest

from cds_service.app import create_app
from cds_service.clinical.knowledge.loader import load_knowledge
from cds_service.clinical.record import record_from_document
from cds_service.clinical.shape import MEDICATION_REQUEST, checked, checked_ome
from cds_service.protocol.privacy import pseudonymise
from tests.conftest import dev_settings
from tests.helpers import load_request

SIGN = "/cds-services/opioid-order-sign"
BASE_TOPICS = {"dose/high-ome", "combination/multiple-strong-opioids"}
DRAFT_PATH = "context.draftOrders.entry[0].resource"


def _sign_with(change) -> dict[str, Any]:
    body = load_request("order-sign.json")
    change(body["context"]["draftOrders"]["entry"][0]["resource"])
    return body


def _cards(client, body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    response = client.post(SIGN, json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    return {c["source"]["topic"]["code"]: c for c in response.get_json()["cards"]}


def _set(resource: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        resource = resource[key]
    resource[path[-1]] = value


# --- the crashes named in issue #10 item 6: each answered 500 before the shape check ---------------------------
def test_dosage_instruction_a_number_is_not_counted_and_named(client):
    cards = _cards(client, _sign_with(lambda r: r.update(dosageInstruction=7)))
    incomplete = cards["dose/ome-incomplete"]
    assert "dosageInstruction: expected a list, got a number" in incomplete["detail"]
    assert "Morphine 60mg modified-release tablets" in incomplete["summary"]
    # without the dosage the quantity supplied (56 over 28 days = 2 a day = 120 mg) would be read: not used.
    # The total is the fentanyl alone: 120 mg/day, still at the high-ome threshold (120).
    assert "**120 mg/day**" in cards["dose/high-ome"]["detail"]


def test_dose_and_rate_a_number_is_not_counted_and_named(client):
    cards = _cards(client, _sign_with(lambda r: _set(r, ("dosageInstruction", 0, "doseAndRate"), 7)))
    # the text "ONE tablet TWICE a day" alone would read 120 mg/day; a malformed structured dose is not guessed at
    assert "dosageInstruction[0].doseAndRate: expected a list, got a number" in cards["dose/ome-incomplete"]["detail"]


def test_period_unit_a_list_is_not_counted_and_named(client):
    path = ("dosageInstruction", 0, "timing", "repeat", "periodUnit")
    cards = _cards(client, _sign_with(lambda r: _set(r, path, ["d"])))
    detail = cards["dose/ome-incomplete"]["detail"]
    assert "dosageInstruction[0].timing.repeat.periodUnit: expected a string, got a list" in detail


def test_coding_a_number_is_read_from_the_text_instead(client):
    cards = _cards(client, _sign_with(lambda r: _set(r, ("medicationCodeableConcept", "coding"), 7)))
    # identified by its text "Morphine 60mg modified-release tablets": still 240 mg/day, every order counted
    assert set(cards) == BASE_TOPICS
    assert "**240 mg/day**" in cards["dose/high-ome"]["detail"]


@pytest.mark.parametrize("intent", [["order"], {"a": 1}], ids=["intent-a-list", "intent-an-object"])
def test_intent_a_list_or_an_object_is_dropped_and_the_rest_assessed(client, intent):
    cards = _cards(client, _sign_with(lambda r: r.update(intent=intent)))
    assert set(cards) == BASE_TOPICS  # intent only says whether an order is a repeat; 240 mg/day as before


def test_medication_a_number_is_not_ignored_as_an_empty_draft(client):
    cards = _cards(client, _sign_with(lambda r: r.update(medicationCodeableConcept=7)))
    detail = cards["dose/ome-incomplete"]["detail"]
    assert "an order with no medication: " in detail
    assert "medicationCodeableConcept: expected an object, got a number" in detail


# --- the shape check itself ------------------------------------------------------------------------------------
def test_a_wrong_typed_element_is_removed_from_a_copy_and_the_raw_resource_is_untouched():
    raw = {
        "resourceType": "MedicationRequest",
        "intent": ["order"],
        "dosageInstruction": [{"timing": {"repeat": {"frequency": 2, "periodUnit": ["d"]}}, "text": "bd"}],
    }
    before = copy.deepcopy(raw)
    cleaned, problems = checked(raw, MEDICATION_REQUEST)
    assert raw == before
    assert "intent" not in cleaned
    assert cleaned["dosageInstruction"][0]["timing"]["repeat"] == {"frequency": 2}
    assert [p.message for p in problems] == [
        "intent: expected a string, got a list",
        "dosageInstruction[0].timing.repeat.periodUnit: expected a string, got a list",
    ]
    assert [p.category for p in problems] == [None, "dose"]


def test_a_resource_of_the_right_shape_is_returned_as_it_is():
    resource = load_request("order-sign.json")["context"]["draftOrders"]["entry"][0]["resource"]
    cleaned, problems = checked(resource, MEDICATION_REQUEST)
    assert cleaned is resource and problems == []


def test_numeric_text_nulls_and_empty_strings_are_kept_but_a_boolean_number_is_not():
    raw = {"dispenseRequest": {"quantity": {"value": "56", "unit": ""}, "numberOfRepeatsAllowed": True}, "status": None}
    cleaned, problems = checked(raw, MEDICATION_REQUEST)
    assert cleaned["dispenseRequest"]["quantity"] == {"value": "56", "unit": ""}
    assert cleaned["status"] is None
    assert [p.message for p in problems] == ["dispenseRequest.numberOfRepeatsAllowed: expected a number, got a boolean"]


def test_the_data_quality_note_names_the_element_by_its_full_path():
    body = _sign_with(lambda r: _set(r, ("dosageInstruction", 0, "timing", "repeat", "periodUnit"), ["d"]))
    record = record_from_document(body)
    checked_ome(record, load_knowledge())
    assert record.data_quality == [
        f"{DRAFT_PATH}.dosageInstruction[0].timing.repeat.periodUnit: expected a string, got a list"
    ]


def _draft_ome(body: dict[str, Any], knowledge) -> Any:
    ome = checked_ome(record_from_document(body), knowledge)
    return next(o for o in ome.orders if o.origin == "draft")


def test_a_malformed_max_dose_per_period_is_dropped_and_the_dose_counts_uncapped(knowledge):
    def change(resource: dict[str, Any]) -> None:
        dosage = resource["dosageInstruction"][0]
        dosage["timing"]["repeat"]["frequency"] = 4  # four times a day
        dosage["maxDosePerPeriod"] = {"numerator": {"value": [2]}, "denominator": {"value": 1, "unit": "d"}}

    order = _draft_ome(_sign_with(change), knowledge)
    # 1 tablet x 4 a day x 60 mg = 240 mg/day; the cap (2 a day, 120 mg) is malformed, so not applied: the
    # highest reading rises, it never falls
    assert order.counted and order.ome_max == Decimal(240)


def test_a_well_formed_max_dose_per_period_still_caps(knowledge):
    def change(resource: dict[str, Any]) -> None:
        dosage = resource["dosageInstruction"][0]
        dosage["timing"]["repeat"]["frequency"] = 4
        # as needed: a maximum limits an as-needed dose; below a fixed regular dose (1 x 4 = 4 a day) it would
        # contradict the dose and the higher 4 would count, flagged (review rv10: a cap silently lowering a regular
        # dose was an under-count), so the good cap is tested where it applies
        dosage["asNeededBoolean"] = True
        dosage["maxDosePerPeriod"] = {"numerator": {"value": 2}, "denominator": {"value": 1, "unit": "d"}}

    # the same, capped at 2 tablets a day: 2 x 60 = 120 mg/day (the check does not touch a good cap)
    assert _draft_ome(_sign_with(change), knowledge).ome_max == Decimal(120)


def test_a_prn_line_read_from_its_malformed_cap_is_not_estimated_from_the_supply(knowledge):
    def change(resource: dict[str, Any]) -> None:
        resource["dosageInstruction"] = [
            {
                "asNeededBoolean": True,
                "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}],
                "maxDosePerPeriod": {"numerator": {"value": {"x": 4}}, "denominator": {"value": 1, "unit": "d"}},
            }
        ]

    order = _draft_ome(_sign_with(change), knowledge)
    # with no frequency and no readable maximum, 56 tablets over 28 days (2 a day, 120 mg) would be a guess
    # that may be too low (the maximum was meant to be read): not counted, the maximum named
    assert not order.counted
    assert "maxDosePerPeriod.numerator.value: expected a number, got an object" in (order.reason or "")


# --- never a silent zero (issue #10 item 5) --------------------------------------------------------------------
def test_use_as_directed_alone_answers_an_incomplete_total_card_not_an_empty_list(client):
    body = _sign_with(lambda r: r.update(dosageInstruction=[{"text": "Use as directed"}], dispenseRequest={}))
    body["prefetch"]["medications"]["entry"] = []
    cards = _cards(client, body)
    assert set(cards) == {"dose/ome-incomplete"}
    card = cards["dose/ome-incomplete"]
    assert card["indicator"] == "info"
    assert "Not counted in the opioid total: Morphine 60mg modified-release tablets" in card["summary"]
    assert '- Morphine 60mg modified-release tablets: dose "Use as directed" cannot be quantified' in card["detail"]
    assert "(0 mg/day) is incomplete" in card["detail"]


def test_a_draft_naming_no_medication_is_ignored_quietly_and_never_by_its_id(client):
    def change(resource: dict[str, Any]) -> None:
        del resource["medicationCodeableConcept"]
        resource["id"] = "request-123"

    response = client.post(SIGN, json=_sign_with(change))
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "request-123" not in text and "order-" not in text
    # the fentanyl alone: 120 mg/day, every named opioid counted
    assert {c["source"]["topic"]["code"] for c in response.get_json()["cards"]} == {"dose/high-ome"}


# --- any unexpected error: the could-not-assess card, a support reference, a log line without the patient ---------
def test_an_unexpected_error_is_a_could_not_assess_card_with_a_reference_logged_with_the_pseudonym_only(
    tmp_path, monkeypatch, caplog
):
    settings = dev_settings(tmp_path)
    client = create_app(settings).test_client()

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a message quoting pat-1 and Bearer secret-token")

    monkeypatch.setattr("cds_service.assess.build_facts", broken)
    with caplog.at_level(logging.ERROR, logger="cds_service.assess"):
        response = client.post(SIGN, json=load_request("order-sign.json"), headers={"Authorization": "Bearer x.y.z"})
    assert response.status_code == 200
    [card] = response.get_json()["cards"]
    assert card["source"]["topic"]["code"] == "engine/could-not-assess"
    reference = re.search(r"support reference ([0-9a-f]{8})", card["detail"])
    assert reference
    [line] = [r.getMessage() for r in caplog.records if "could not assess" in r.getMessage()]
    assert f"reference={reference[1]}" in line
    assert f"patient={pseudonymise(settings.pseudonym_key, 'pat-1')}" in line
    assert "RuntimeError" in line
    for secret in ("pat-1", "secret-token", "x.y.z", "Bearer"):
        assert secret not in line


def test_an_error_building_the_record_is_a_could_not_assess_card(client, monkeypatch):
    def broken(*args: Any, **kwargs: Any) -> None:
        raise KeyError("entry")

    monkeypatch.setattr("cds_service.protocol.routes.build_record", broken)
    response = client.post(SIGN, json=load_request("order-sign.json"))
    assert response.status_code == 200
    assert [c["source"]["topic"]["code"] for c in response.get_json()["cards"]] == ["engine/could-not-assess"]


def test_a_hundred_random_type_mutations_of_order_sign_answer_no_5xx(capsys):
    from bench.mutations import main

    assert main(["--n", "100", "--seed", "3", "--show", "0"]) == 0
    assert "0 answered 5xx, 0 answered only 'could not assess'" in capsys.readouterr().out


def test_malformed_conditions_observations_and_birth_date_are_dropped_and_the_rest_assessed(client):
    body = load_request("order-sign.json")
    body["prefetch"]["patient"]["birthDate"] = ["1960-05-01"]
    condition = {
        "resourceType": "Condition",
        "id": "c1",
        "subject": {"reference": "Patient/pat-1"},
        "status": ["active"],  # not a Condition element, but read for every event: a list crashed the check
        "code": {"coding": 7},
        "clinicalStatus": {"coding": [{"code": ["active"]}]},
        "onsetDateTime": {"year": 2020},
    }
    body["prefetch"]["conditions"]["entry"] = [{"resource": condition}]
    observation = {
        "resourceType": "Observation",
        "id": "o1",
        "status": {"final": True},
        "subject": {"reference": "Patient/pat-1"},
        "code": "182836005",
    }
    body["prefetch"]["medicationReviewObservations"]["entry"] = [{"resource": observation}]
    assert set(_cards(client, body)) == BASE_TOPICS  # 240 mg/day as before; no context read from the bad elements


# --- a malformed medication is read as far as it can be, never "an order with no medication" -----------------------
MORPHINE_MR_30 = "36127311000001102"  # Morphine 30mg modified-release tablets (dm+d)
MR_30_NAME = "Morphine 30mg modified-release tablets"


def _existing_mr_30(concept: Any, id: str = "ex-1") -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": id,
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": concept,
        "dosageInstruction": [{"text": "ONE tablet TWICE a day"}],
    }


def _ome_of(*located: tuple[str, dict[str, Any]]) -> Any:
    from cds_service.clinical.record import record_from_resources

    resources = [(origin, f"$[{i}]", resource) for i, (origin, resource) in enumerate(located)]
    return checked_ome(record_from_resources("p1", resources), load_knowledge())


def _concept(code: Any = MORPHINE_MR_30) -> dict[str, Any]:
    return {"coding": [{"system": "https://dmd.nhs.uk", "code": code, "display": MR_30_NAME}]}


@pytest.mark.parametrize(
    "concept",
    [
        [_concept()],  # a list of CodeableConcepts: the first object is read
        ["not a concept", _concept()],
        {"coding": [MORPHINE_MR_30]},  # a coding that is a bare dm+d code (a SNOMED CT identifier)
        {"coding": [MR_30_NAME]},  # a coding that is a bare name
        {"coding": ["junk", {"system": "https://dmd.nhs.uk", "code": MORPHINE_MR_30}]},  # the object member kept
        {"coding": {"system": "https://dmd.nhs.uk", "code": MORPHINE_MR_30}},  # one coding, not a list
        MR_30_NAME,  # the concept sent as its text
    ],
    ids=[
        "concept-list",
        "concept-list-junk-first",
        "coding-code-string",
        "coding-name-string",
        "coding-mixed",
        "coding-object",
        "concept-string",
    ],
)
def test_existing_morphine_mr_with_a_malformed_medication_is_identified_counted_and_flagged(concept):
    # "ONE tablet TWICE a day" of morphine 30 mg MR: 2 x 30 = 60 mg x 1 (oral morphine) = 60 mg/day
    # (before: "an order with no medication", not counted, the incomplete card naming no drug)
    order = _ome_of(("existing", _existing_mr_30(concept))).orders[0]
    assert order.product is not None and order.product.ingredient == "morphine"
    assert order.counted and order.ome_max == Decimal(60)
    assert any(f.startswith("malformed: medicationCodeableConcept") for f in order.flags)


def test_draft_morphine_mr_with_its_medication_concept_in_a_list_is_counted_not_incomplete(client):
    cards = _cards(client, _sign_with(lambda r: r.update(medicationCodeableConcept=[r["medicationCodeableConcept"]])))
    # the draft is still read as morphine 60 mg MR bd = 120, + the fentanyl 50 patch 120 = 240 mg/day
    assert set(cards) == BASE_TOPICS
    assert "**240 mg/day**" in cards["dose/high-ome"]["detail"]


def test_a_bare_number_string_that_is_no_snomed_identifier_is_read_as_text_not_as_a_code():
    order = _ome_of(("existing", _existing_mr_30({"coding": ["36127311000001103"]}))).orders[0]  # check digit off
    assert order.product is None and not order.counted and order.display == "36127311000001103"


def test_existing_morphine_mr_with_a_numeric_code_is_the_same_supply_as_the_identical_draft():
    # the same product and dose (2 x 30 = 60 mg/day), the existing one's code a JSON number: one supply, 60
    # (before: the code was dropped, the two no longer matched, and 60 + 60 = 120 was counted)
    draft = {**_existing_mr_30(_concept(), id="d1"), "status": "draft"}
    existing = _existing_mr_30(_concept(int(MORPHINE_MR_30)))
    result = _ome_of(("draft", draft), ("existing", existing))
    assert result.total_max == Decimal(60)
    assert result.orders[1].same_supply_as == "d1"
