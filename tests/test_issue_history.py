"""Issue history: how long a supply lasts when only its quantity is known, from completed issues and
MedicationDispenses, and what the early-request and not-issued facts make of it.

Dates: TODAY is Monday 2026-11-23. Working days are weekdays after the day of the request up to and including
the day the supply runs out (facts.fhir.working_days_between).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from cds_service.app import create_app
from cds_service.clinical.facts import build_facts
from cds_service.clinical.ome import record_ome
from cds_service.clinical.record import PatientRecord, record_from_document
from cds_service.protocol.hooks import within_history_window
from tests.conftest import dev_settings

TODAY = date(2026, 11, 23)
SETTINGS = {"older_adult_age_years": 65, "suppress_in_palliative_care": True}
DMD = "https://dmd.nhs.uk"
MORPHINE_MR_30 = "Morphine 30mg modified-release tablets"
CONTINUOUS = {"coding": [{"code": "continuous"}]}


def _facts(record: PatientRecord, knowledge, codes):
    ome = record_ome(record, knowledge)
    before = record_ome(record, knowledge, drafts=False) if any(o.origin == "draft" for o in record.orders) else None
    return build_facts("order-sign", record, ome, before, codes, SETTINGS, TODAY)


def _medication() -> dict[str, Any]:
    return {
        "medicationCodeableConcept": {"coding": [{"system": DMD, "display": MORPHINE_MR_30}], "text": MORPHINE_MR_30}
    }


def _order(mr_id: str, dosage: str | None = "ONE tablet TWICE a day", **extra: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": mr_id,
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "courseOfTherapyType": CONTINUOUS,
        **_medication(),
    }
    if dosage is not None:
        resource["dosageInstruction"] = [{"text": dosage}]
    resource.update(extra)
    return resource


def _authorisation(dosage: str = "ONE tablet TWICE a day") -> dict[str, Any]:
    return _order("auth", dosage, intent="plan", authoredOn="2025-01-10")


def _draft_reissue(on: str) -> dict[str, Any]:
    return _order("draft", status="draft", intent="instance-order", authoredOn=on,
                  basedOn=[{"reference": "MedicationRequest/auth"}])  # fmt: skip


def _dispense(dispense_id: str, handed_over: str, quantity: int, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "MedicationDispense",
        "id": dispense_id,
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        **_medication(),
        "authorizingPrescription": [{"reference": "MedicationRequest/auth"}],
        "quantity": {"value": quantity, "unit": "tablet"},
        "whenHandedOver": handed_over,
        **extra,
    }


def _request(drafts: list[dict[str, Any]], medications: list[dict[str, Any]], **history: Any) -> dict[str, Any]:
    prefetch: dict[str, Any] = {
        "patient": {"resourceType": "Patient", "id": "p1", "birthDate": "1970-01-01"},
        "medications": {"resourceType": "Bundle", "entry": [{"resource": r} for r in medications]},
    }
    for key, resources in history.items():
        prefetch[key] = {"resourceType": "Bundle", "entry": [{"resource": r} for r in resources]}
    return {
        "hook": "order-sign",
        "context": {
            "patientId": "p1",
            "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": r} for r in drafts]},
        },
        "prefetch": prefetch,
    }


def test_completed_issue_quantity_over_the_current_daily_dose_gives_12_working_days_early(knowledge, codes):
    # 56 tablets issued Monday 2026-11-02 with no duration; the authorisation says one tablet twice a day = 2 a
    # day, so 56 / 2 = 28 days: runs out Monday 2026-11-30. Reissued Thursday 2026-11-12: Fri 13 (1), 16-20 (5),
    # 23-27 (5), Mon 30 (1) = 12 working days early.
    issue = _order(
        "issue",
        dosage=None,
        status="completed",
        intent="instance-order",
        authoredOn="2026-11-02",
        dispenseRequest={"quantity": {"value": 56}},
        basedOn=[{"reference": "MedicationRequest/auth"}],
    )
    record = record_from_document(_request([_draft_reissue("2026-11-12")], [_authorisation()], issueHistory=[issue]))
    assert _facts(record, knowledge, codes).summary["early_request_working_days"] == 12


def test_completed_issue_with_its_own_dosage_and_no_current_order_uses_its_own_dose(knowledge, codes):
    # No current order of the product; the issue itself says ONE tablet THREE times a day = 3 a day: 42 / 3 = 14
    # days from Monday 2026-11-02: runs out Monday 2026-11-16. A new draft (not linked) on Tuesday 2026-11-10:
    # Wed 11, Thu 12, Fri 13, Mon 16 = 4 working days early.
    issue = _order("issue", dosage="ONE tablet THREE times a day", status="completed", intent="instance-order",
                   authoredOn="2026-11-02", dispenseRequest={"quantity": {"value": 42}})  # fmt: skip
    draft = _order("draft", status="draft", intent="instance-order", authoredOn="2026-11-10")
    record = record_from_document(_request([draft], [], issueHistory=[issue]))
    assert _facts(record, knowledge, codes).summary["early_request_working_days"] == 4


def test_dispense_quantity_over_the_current_daily_dose_gives_12_working_days_early(knowledge, codes):
    # Dispensed (handed over) Monday 2026-11-02: 56 tablets, no daysSupply; authorisation 2 a day: 28 days, runs
    # out Monday 2026-11-30. Reissue requested Thursday 2026-11-12: 12 working days early (as above).
    record = record_from_document(
        _request(
            [_draft_reissue("2026-11-12")],
            [_authorisation()],
            dispenseHistory=[_dispense("d1", "2026-11-02T10:15:00+00:00", 56)],
        )
    )
    facts = _facts(record, knowledge, codes)
    assert facts.summary["early_request_working_days"] == 12
    dispensed = next(o for o in record.orders if o.raw is not None and o.raw["resourceType"] == "MedicationDispense")
    assert dispensed.resource["status"] == "completed" and dispensed.resource["authoredOn"].startswith("2026-11-02")


def test_dispense_days_supply_is_the_supply_length(knowledge, codes):
    # 60 tablets but daysSupply 10 days (the dispenser's figure is used before quantity / dose): from Monday
    # 2026-11-16 runs out Thursday 2026-11-26; reissue Monday 2026-11-23: Tue 24, Wed 25, Thu 26 = 3.
    dispense = _dispense("d1", "2026-11-16", 60, daysSupply={"value": 10, "unit": "day", "code": "d"})
    record = record_from_document(
        _request([_draft_reissue("2026-11-23")], [_authorisation()], dispenseHistory=[dispense])
    )
    assert _facts(record, knowledge, codes).summary["early_request_working_days"] == 3


def test_a_cancelled_dispense_is_no_supply(knowledge, codes):
    dispense = _dispense("d1", "2026-11-02", 56, status="cancelled")  # would be 12 days early if supplied
    record = record_from_document(
        _request([_draft_reissue("2026-11-12")], [_authorisation()], dispenseHistory=[dispense])
    )
    assert _facts(record, knowledge, codes).summary["early_request_working_days"] == 0


def test_repeat_not_issued_months_come_from_the_last_dispense(knowledge, codes):
    # The authorisation (2025-01-10) has no issue among the active orders; the last dispense was handed over
    # 2026-05-20: May to November = 6 months, and the 23rd is on or after the 20th, so 6 whole months.
    dispenses = [_dispense("d1", "2026-05-20", 56), _dispense("d0", "2026-04-20", 56)]
    body = _request([], [_authorisation()], dispenseHistory=dispenses)
    body["context"].pop("draftOrders")
    record = record_from_document(body)
    facts = _facts(record, knowledge, codes)
    assert facts.summary["repeat_opioid_not_issued_months"] == 6


def test_history_older_than_twelve_months_is_not_read():
    # today 2026-11-23: the window starts 2025-11-23 (365 days before); 2025-11-22 is outside, 2025-11-23 inside
    prefetch = {
        "dispenseHistory": {
            "resourceType": "Bundle",
            "entry": [
                {"resource": _dispense("old", "2025-11-22", 56)},
                {"resource": _dispense("edge", "2025-11-23", 56)},
                {"resource": _dispense("undated", "not a date", 56)},
            ],
        },
        "issueHistory": {"resourceType": "Bundle", "entry": [{"resource": _order("i-old", authoredOn="2024-01-01")}]},
        "medications": {"resourceType": "Bundle", "entry": [{"resource": _order("kept", authoredOn="2020-01-01")}]},
    }
    windowed = within_history_window(prefetch, TODAY)
    assert [e["resource"]["id"] for e in windowed["dispenseHistory"]["entry"]] == ["edge", "undated"]
    assert windowed["issueHistory"]["entry"] == []
    assert windowed["medications"] == prefetch["medications"]  # only the history keys are windowed
    assert len(prefetch["dispenseHistory"]["entry"]) == 3  # the prefetch itself is not changed


def test_dispense_history_through_the_app_gives_an_early_request(tmp_path):
    # as test_dispense_quantity_over_the_current_daily_dose_gives_12_working_days_early (the service's day pinned to
    # TODAY, so the dispense is inside the 12-month window): the reissue is dated 2026-11-12, the supply runs out
    # 2026-11-30: 12 working days early.
    client = create_app(dev_settings(tmp_path, today=TODAY)).test_client()
    body = _request(
        [_draft_reissue("2026-11-12")],
        [_authorisation()],
        dispenseHistory=[_dispense("d1", "2026-11-02", 56)],
    )
    body["hookInstance"] = "5b0f6a77-64a3-4f2b-9a0e-3f5a4c1f2d11"
    body["context"]["userId"] = "Practitioner/gp-1"
    body["prefetch"].update(conditions=None, medicationReviewProcedures=None, medicationReviewObservations=None)
    response = client.post("/cds-services/opioid-order-sign", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    early = [c for c in response.get_json()["cards"] if c["source"]["topic"]["code"] == "repeat/early-request"]
    assert early and "12" in early[0]["summary"] + early[0]["detail"]
