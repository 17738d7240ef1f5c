"""Medication orders in other FHIR versions: DSTU2 MedicationOrder and STU3 MedicationRequest drafts are read into
the R4 shape and counted; what cannot be read is said, never dropped.

Factors: morphine oral 1 (cds_service/clinical/knowledge/data/ome_factors.csv, BNF).
"""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

from cds_service.clinical.dialects import as_r4_medication_request
from cds_service.clinical.knowledge.loader import load_knowledge
from cds_service.clinical.ome import record_ome
from cds_service.clinical.record import record_from_document

DMD = "https://dmd.nhs.uk"
MORPHINE_MR_60 = "36127711000001103"  # Morphine 60mg modified-release tablets
MORPHINE_10 = "322708003"  # Morphine 10mg tablets


def _existing_morphine_120() -> dict[str, Any]:
    """Morphine 60 mg MR, one tablet twice a day: 2 x 60 = 120 mg x 1 = 120 mg/day."""
    return {
        "resourceType": "MedicationRequest",
        "id": "rx-morphine-mr",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/pat-1"},
        "authoredOn": "2026-11-01",
        "medicationCodeableConcept": {"coding": [{"system": DMD, "code": MORPHINE_MR_60}]},
        "dosageInstruction": [{"text": "ONE tablet TWICE a day"}],
    }


def _dstu2_morphine_draft(patient: str = "Patient/pat-1") -> dict[str, Any]:
    """DSTU2 MedicationOrder: morphine 10 mg tablets, 2 tablets 6 times a day = 12 x 10 = 120 mg x 1 = 120 mg/day."""
    return {
        "resourceType": "MedicationOrder",
        "id": "draft-dstu2",
        "status": "draft",
        "patient": {"reference": patient},
        "dateWritten": "2026-11-20",
        "medicationCodeableConcept": {
            "coding": [{"system": DMD, "code": MORPHINE_10, "display": "Morphine 10mg tablets"}]
        },
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": 6, "period": 1, "periodUnits": "d"}},
                "asNeededBoolean": False,
                "doseQuantity": {"value": 2, "unit": "tablet"},
            }
        ],
        "dispenseRequest": {"quantity": {"value": 112, "unit": "tablet"}},
    }


def _request(draft: dict[str, Any]) -> dict[str, Any]:
    return {
        "hook": "order-sign",
        "hookInstance": "d1f6d1c4-6a4e-4b1a-9d65-0c8f0b4f5a10",
        "context": {
            "userId": "Practitioner/gp-1",
            "patientId": "pat-1",
            "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": draft}]},
        },
        "prefetch": {
            "patient": {"resourceType": "Patient", "id": "pat-1", "birthDate": "1960-01-01"},
            "medications": {"resourceType": "Bundle", "entry": [{"resource": _existing_morphine_120()}]},
            "conditions": None,
            "medicationReviewProcedures": None,
            "medicationReviewObservations": None,
        },
    }


def test_dstu2_medication_order_draft_on_top_of_120_gives_240_through_the_app(client):
    response = client.post("/cds-services/opioid-order-sign", json=_request(_dstu2_morphine_draft()))
    assert response.status_code == 200, response.get_data(as_text=True)
    summaries = [c["summary"] for c in response.get_json()["cards"]]
    # 120 existing + 120 drafted (12 x 10 mg x 1) = 240 mg/day: high (>= 120), not very high (< 300)
    assert any("240 mg/day" in s for s in summaries), summaries
    assert not any("120 mg/day" in s for s in summaries), summaries


def test_dstu2_medication_order_for_another_patient_is_refused(client):
    response = client.post("/cds-services/opioid-order-sign", json=_request(_dstu2_morphine_draft("Patient/other")))
    assert response.status_code == 400
    expressions = [e for i in response.get_json()["issue"] for e in i["expression"]]
    assert "context.draftOrders.entry[0].resource.patient.reference" in expressions


def test_dstu2_draft_is_converted_and_the_raw_kept():
    record = record_from_document(_request(_dstu2_morphine_draft()))
    draft = next(o for o in record.orders if o.origin == "draft")
    assert draft.resource["resourceType"] == "MedicationRequest" and draft.resource["intent"] == "order"
    assert draft.resource["subject"] == {"reference": "Patient/pat-1"} and draft.resource["authoredOn"] == "2026-11-20"
    assert draft.resource["dosageInstruction"][0]["timing"]["repeat"]["periodUnit"] == "d"
    assert draft.raw is not None and draft.raw["resourceType"] == "MedicationOrder"
    assert "periodUnits" in draft.raw["dosageInstruction"][0]["timing"]["repeat"]  # the raw is not changed


def test_dstu2_dose_range_as_needed_counts_the_highest():
    order = _dstu2_morphine_draft()
    order["dosageInstruction"] = [
        {
            "timing": {"repeat": {"frequency": 1, "period": 4, "periodUnits": "h"}},
            "asNeededBoolean": True,
            "doseRange": {"low": {"value": 1, "unit": "tablet"}, "high": {"value": 2, "unit": "tablet"}},
        }
    ]
    record = record_from_document(_request(order))
    result = record_ome(record, load_knowledge()).to_json()
    drafted = next(o for o in result["orders"] if o["id"] == "draft-dstu2")
    # every 4 hours = 6 a day; 1-2 tablets as needed: 0 to 12 tablets x 10 mg x 1 = 0 to 120 mg/day
    assert drafted["counted"] and drafted["ome_mg_per_day_max"] == 120.0 and drafted["ome_mg_per_day_min"] == 0.0
    assert result["total_ome_mg_per_day"] == 240.0  # 120 existing + 120 at most


def test_stu3_medication_request_context_and_single_category_are_read():
    stu3 = {
        "resourceType": "MedicationRequest",
        "id": "stu3",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/pat-1"},
        "context": {"reference": "Encounter/enc-1"},
        "category": {"text": "community"},
        "medicationCodeableConcept": {"coding": [{"system": DMD, "code": MORPHINE_10}]},
        "dosageInstruction": [
            {"timing": {"repeat": {"frequency": 4, "period": 1, "periodUnit": "d"}}, "doseQuantity": {"value": 1}}
        ],
    }
    raw = copy.deepcopy(stu3)
    converted, problem = as_r4_medication_request(stu3)
    assert problem is None and converted is not None
    assert converted["encounter"] == {"reference": "Encounter/enc-1"} and "context" not in converted
    assert converted["category"] == [{"text": "community"}] and stu3 == raw
    record = record_from_document({"context": {"patientId": "pat-1", "draftOrders": stu3}})
    result = record_ome(record, load_knowledge()).to_json()
    assert result["total_ome_mg_per_day"] == 40.0  # 4 x 1 tablet x 10 mg x 1


def test_an_r4_medication_request_is_not_copied():
    resource = _existing_morphine_120()
    converted, problem = as_r4_medication_request(resource)
    assert converted is resource and problem is None


def test_unreadable_order_gets_a_note_and_a_card_line(client):
    dstu1 = {"resourceType": "MedicationPrescription", "id": "old", "patient": {"reference": "Patient/pat-1"}}
    response = client.post("/cds-services/opioid-order-sign", json=_request(dstu1))
    assert response.status_code == 200, response.get_data(as_text=True)
    cards = response.get_json()["cards"]
    unchecked = [c for c in cards if c["source"]["topic"]["code"] == "input/order-not-checked"]
    assert len(unchecked) == 1 and "1 order could not be checked" in unchecked[0]["detail"]
    assert "MedicationPrescription" in unchecked[0]["detail"]
    high = [c for c in cards if c["source"]["topic"]["code"] == "dose/high-ome"]
    assert high and "1 order could not be checked" in high[0]["detail"]  # the existing 120 still fires
    record = record_from_document(_request(dstu1))
    assert record.unreadable and any("could not be checked" in n for n in record.data_quality)


def test_an_unreadable_order_makes_the_total_incomplete():
    from cds_service.assess import clinical_codes
    from cds_service.clinical.facts import build_facts

    dstu1 = {"resourceType": "MedicationPrescription", "id": "old", "patient": {"reference": "Patient/pat-1"}}
    record = record_from_document(_request(dstu1))
    ome = record_ome(record, load_knowledge())
    assert ome.complete  # every order read was counted (the existing 120) ...
    settings = {"older_adult_age_years": 65, "suppress_in_palliative_care": True}
    facts = build_facts("order-sign", record, ome, None, clinical_codes(), settings, date(2026, 11, 23))
    assert facts.summary["ome_complete"] is False  # ... but the order that could not be read may be an opioid
