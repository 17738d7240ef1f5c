"""Write the rule fixtures fhir_fixtures/<rule-id>/*.json from the readable table below.

Each case is a full CDS Hooks request (hook, context, prefetch) with real dm+d codes from the shared lists.
What each case must do is written by hand in fhir_fixtures/<rule-id>/expected.yaml, not generated here.
Run: python scripts/build_fixtures.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "fhir_fixtures"
DMD = "https://dmd.nhs.uk"
SNOMED = "http://snomed.info/sct"
COURSE = "http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy"
# dm+d codes, each copied from the shared dm+d lists (name as in the list).
MORPHINE_MR_60 = ("36127711000001103", "Morphine 60mg modified-release tablets")
MORPHINE_MR_30 = ("36127311000001102", "Morphine 30mg modified-release tablets")
MORPHINE_MR_10 = ("36126511000001106", "Morphine 10mg modified-release tablets")
MORPHINE_10 = ("322708003", "Morphine 10mg tablets")
OXYCODONE_MR_40 = ("322696002", "Oxycodone 40mg modified-release tablets")
OXYCODONE_5 = ("322691007", "Oxycodone 5mg capsules")
CO_CODAMOL = ("322341003", "Co-codamol 30mg/500mg tablets")
CODEINE_30 = ("322503009", "Codeine 30mg tablets")
FENTANYL_SL_100 = ("14951911000001104", "Fentanyl 100microgram sublingual tablets sugar free")
PREGABALIN_75 = ("415167006", "Pregabalin 75mg capsules")
DIAZEPAM_5 = ("321197008", "Diazepam 5mg tablets")
ZOPICLONE_75 = ("321175006", "Zopiclone 7.5mg tablets")
# SNOMED CT codes, each copied from the shared codelists.
BREAST_CANCER = ("254837009", "Malignant neoplasm of breast")
MEDICATION_REVIEW = ("182836005", "Review of medication")
PATIENT = "pat-fx"
BD, TDS = "ONE tablet TWICE a day", "ONE tablet THREE times a day"


def mr(product, dosage, id, *, status="active", intent="order", authored="2026-11-20", repeat=None, **extra):
    code, display = product
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": id,
        "status": status,
        "intent": intent,
        "medicationCodeableConcept": {"coding": [{"system": DMD, "code": code, "display": display}]},
        "subject": {"reference": f"Patient/{PATIENT}"},
        "authoredOn": authored,
        "dosageInstruction": [{"text": dosage}],
    }
    if repeat is not None:
        course = "continuous" if repeat else "acute"
        resource["courseOfTherapyType"] = {"coding": [{"system": COURSE, "code": course}]}
    resource.update(extra)
    return resource


def condition(code, id="cond-1"):
    return {
        "resourceType": "Condition",
        "id": id,
        "subject": {"reference": f"Patient/{PATIENT}"},
        "clinicalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
        },
        "code": {"coding": [{"system": SNOMED, "code": code[0], "display": code[1]}]},
    }


def review(on):
    return {
        "resourceType": "Procedure",
        "id": "review-1",
        "status": "completed",
        "subject": {"reference": f"Patient/{PATIENT}"},
        "performedDateTime": on,
        "code": {"coding": [{"system": SNOMED, "code": MEDICATION_REVIEW[0], "display": MEDICATION_REVIEW[1]}]},
    }


def bundle(*resources):
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources]}


def request(hook="order-sign", drafts=(), existing=(), conditions=(), procedures=(), birth="1960-05-01"):
    context: dict[str, Any] = {"userId": "Practitioner/gp-1", "patientId": PATIENT}
    if hook in ("order-sign", "order-select"):
        context["draftOrders"] = bundle(*drafts)
    if hook == "order-select":
        context["selections"] = [f"MedicationRequest/{d['id']}" for d in drafts]
    return {
        "hook": hook,
        "hookInstance": f"fixture-{hook}",
        "context": context,
        "prefetch": {
            "patient": {"resourceType": "Patient", "id": PATIENT, "birthDate": birth},
            "medications": bundle(*existing),
            "conditions": bundle(*conditions),
            "medicationReviewProcedures": bundle(*procedures),
            "medicationReviewObservations": bundle(),
        },
    }


def draft(product, dosage, id="draft-1", **extra):
    return mr(product, dosage, id, status="draft", **extra)


def plan(product, dosage, id="auth-1", authored="2025-01-10", **extra):
    return mr(product, dosage, id, intent="plan", authored=authored, repeat=True, **extra)


def issue(product, dosage, id, authored, status="completed", supply_days=28):
    return mr(
        product,
        dosage,
        id,
        status=status,
        intent="instance-order",
        authored=authored,
        repeat=True,
        basedOn=[{"reference": "MedicationRequest/auth-1"}],
        dispenseRequest={
            "quantity": {"value": 56, "unit": "tablet"},
            "expectedSupplyDuration": {
                "value": supply_days,
                "unit": "day",
                "code": "d",
                "system": "http://unitsofmeasure.org",
            },
        },
    )


CASES: dict[str, dict[str, dict[str, Any]]] = {
    "dose/high-ome": {
        "fires-180.json": request(drafts=[draft(MORPHINE_MR_60, TDS)]),
        "silent-60.json": request(drafts=[draft(MORPHINE_MR_30, BD)]),
        "silent-palliative.json": request(drafts=[draft(MORPHINE_MR_60, TDS)], conditions=[condition(BREAST_CANCER)]),
    },
    "dose/very-high-ome": {
        "fires-540.json": request(drafts=[draft(MORPHINE_MR_60, "THREE tablets THREE times a day")]),
        "silent-180.json": request(drafts=[draft(MORPHINE_MR_60, TDS)]),
    },
    "dose/ome-escalation": {
        "fires-60-to-180.json": request(drafts=[draft(MORPHINE_MR_60, BD)], existing=[mr(MORPHINE_MR_30, BD, "rx-1")]),
        "silent-already-over.json": request(
            drafts=[draft(MORPHINE_MR_30, BD)], existing=[mr(MORPHINE_MR_60, BD, "rx-1")]
        ),
    },
    "combination/strong-and-weak-opioid": {
        "fires.json": request(
            drafts=[draft(CO_CODAMOL, "TWO tablets FOUR times a day")], existing=[mr(MORPHINE_MR_30, BD, "rx-1")]
        ),
        "silent-strong-only.json": request(drafts=[draft(MORPHINE_MR_30, BD)]),
    },
    "combination/multiple-strong-opioids": {
        "fires.json": request(drafts=[draft(OXYCODONE_MR_40, BD)], existing=[mr(MORPHINE_MR_30, BD, "rx-1")]),
        "silent-mr-with-prn-of-same-drug.json": request(
            drafts=[draft(OXYCODONE_5, "ONE capsule up to four times a day when required")],
            existing=[mr(OXYCODONE_MR_40, BD, "rx-1")],
        ),
    },
    "combination/duplicate-modified-release": {
        "fires.json": request(drafts=[draft(MORPHINE_MR_10, BD)], existing=[mr(MORPHINE_MR_30, BD, "rx-1")]),
        "silent-mr-and-ir.json": request(
            drafts=[draft(MORPHINE_10, "ONE tablet up to four times a day when required")],
            existing=[mr(MORPHINE_MR_30, BD, "rx-1")],
        ),
    },
    "combination/immediate-release-fentanyl": {
        "fires.json": request(drafts=[draft(FENTANYL_SL_100, "ONE tablet up to four times a day when required")]),
        "silent-cancer.json": request(
            drafts=[draft(FENTANYL_SL_100, "ONE tablet up to four times a day when required")],
            conditions=[condition(BREAST_CANCER)],
        ),
    },
    "co-prescribing/opioid-gabapentinoid": {
        "fires.json": request(
            drafts=[draft(PREGABALIN_75, "ONE capsule TWICE a day")], existing=[mr(MORPHINE_MR_30, BD, "rx-1")]
        ),
        "silent-no-opioid.json": request(drafts=[draft(PREGABALIN_75, "ONE capsule TWICE a day")]),
    },
    "co-prescribing/opioid-benzodiazepine": {
        "fires.json": request(drafts=[draft(DIAZEPAM_5, BD)], existing=[mr(MORPHINE_MR_30, BD, "rx-1")]),
        "silent-no-opioid.json": request(drafts=[draft(DIAZEPAM_5, BD)]),
    },
    "co-prescribing/opioid-z-drug": {
        "fires.json": request(drafts=[draft(ZOPICLONE_75, "ONE at night")], existing=[mr(CODEINE_30, BD, "rx-1")]),
        "silent-no-opioid.json": request(drafts=[draft(ZOPICLONE_75, "ONE at night")]),
    },
    "co-prescribing/opioid-multiple-sedatives": {
        "fires.json": request(
            drafts=[draft(DIAZEPAM_5, BD)],
            existing=[mr(MORPHINE_MR_30, BD, "rx-1"), mr(PREGABALIN_75, "ONE capsule TWICE a day", "rx-2")],
        ),
        "silent-one-sedative.json": request(
            drafts=[draft(PREGABALIN_75, "ONE capsule TWICE a day")], existing=[mr(MORPHINE_MR_30, BD, "rx-1")]
        ),
    },
    "repeat/long-term-opioid": {
        "fires-22-months.json": request(hook="patient-view", existing=[plan(MORPHINE_MR_30, BD)]),
        "silent-new-repeat.json": request(
            hook="patient-view", existing=[plan(MORPHINE_MR_30, BD, authored="2026-10-01")]
        ),
    },
    "repeat/review-overdue": {
        "fires-no-review.json": request(
            drafts=[
                draft(
                    MORPHINE_MR_30,
                    BD,
                    intent="instance-order",
                    repeat=True,
                    basedOn=[{"reference": "MedicationRequest/auth-1"}],
                )
            ],
            existing=[plan(MORPHINE_MR_30, BD)],
        ),
        "silent-reviewed.json": request(
            drafts=[
                draft(
                    MORPHINE_MR_30,
                    BD,
                    intent="instance-order",
                    repeat=True,
                    basedOn=[{"reference": "MedicationRequest/auth-1"}],
                )
            ],
            existing=[plan(MORPHINE_MR_30, BD)],
            procedures=[review("2026-09-01")],
        ),
    },
    "repeat/codeine-on-repeat": {
        "fires.json": request(
            hook="patient-view", existing=[mr(CO_CODAMOL, "TWO tablets FOUR times a day", "rx-1", repeat=True)]
        ),
        "silent-acute.json": request(
            hook="patient-view", existing=[mr(CO_CODAMOL, "TWO tablets FOUR times a day", "rx-1", repeat=False)]
        ),
    },
    "repeat/early-request": {
        "fires-10-days-early.json": request(
            drafts=[
                draft(
                    MORPHINE_MR_30,
                    BD,
                    intent="instance-order",
                    repeat=True,
                    authored="2026-11-20",
                    basedOn=[{"reference": "MedicationRequest/auth-1"}],
                )
            ],
            existing=[plan(MORPHINE_MR_30, BD), issue(MORPHINE_MR_30, BD, "issue-1", "2026-11-06")],
            procedures=[review("2026-10-01")],
        ),
        "silent-on-time.json": request(
            drafts=[
                draft(
                    MORPHINE_MR_30,
                    BD,
                    intent="instance-order",
                    repeat=True,
                    authored="2026-11-20",
                    basedOn=[{"reference": "MedicationRequest/auth-1"}],
                )
            ],
            existing=[plan(MORPHINE_MR_30, BD), issue(MORPHINE_MR_30, BD, "issue-1", "2026-10-22")],
            procedures=[review("2026-10-01")],
        ),
    },
    "repeat/not-issued": {
        "fires-3-months.json": request(
            hook="patient-view", existing=[plan(MORPHINE_MR_30, BD), issue(MORPHINE_MR_30, BD, "issue-1", "2026-08-01")]
        ),
        "silent-issued-this-month.json": request(
            hook="patient-view", existing=[plan(MORPHINE_MR_30, BD), issue(MORPHINE_MR_30, BD, "issue-1", "2026-11-01")]
        ),
        "silent-order-sign.json": request(
            drafts=[draft(CODEINE_30, BD)],
            existing=[plan(MORPHINE_MR_30, BD), issue(MORPHINE_MR_30, BD, "issue-1", "2026-08-01")],
        ),
    },
}


def main() -> None:
    for rule_id, cases in CASES.items():
        directory = OUT / rule_id
        directory.mkdir(parents=True, exist_ok=True)
        for name, body in cases.items():
            (directory / name).write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    print(f"{sum(len(c) for c in CASES.values())} fixtures in {len(CASES)} rule folders")


if __name__ == "__main__":
    main()
