"""Synthetic FHIR Bulk Data exports for tests and benchmarks (deterministic for a seed).

Real dm+d codes are taken from the catalogue by product name (never typed), conditions from the committed
codelists; UK dosage text and structured dosage; repeats as an authorisation with monthly issues; co-prescribing,
cancer, COPD and pregnancy at plausible rates.
"""

from __future__ import annotations

import json
import random
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from cds_service.clinical.knowledge.codelists import load_codelist
from cds_service.clinical.knowledge.loader import load_knowledge

DMD = "https://dmd.nhs.uk"
SNOMED = "http://snomed.info/sct"
COURSE = "http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy"
# (product name in the catalogue, dosage text, (dose, times a day) when structured is possible, PRN, weight)
OPIOIDS = [
    ("Co-codamol 30mg/500mg tablets", "TWO tablets FOUR times a day", (2, 4), False, 20),
    ("Co-codamol 30mg/500mg tablets", "ONE or TWO tablets up to four times a day when required", None, True, 10),
    ("Codeine 30mg tablets", "ONE tablet FOUR times a day", (1, 4), False, 8),
    ("Tramadol 50mg capsules", "ONE or TWO capsules up to four times a day when required", None, True, 12),
    ("Dihydrocodeine 30mg tablets", "ONE tablet every 4-6 hours when required", None, True, 4),
    ("Morphine 10mg modified-release tablets", "ONE tablet TWICE a day", (1, 2), False, 6),
    ("Morphine 30mg modified-release tablets", "ONE tablet TWICE a day", (1, 2), False, 6),
    ("Morphine 60mg modified-release tablets", "ONE tablet TWICE a day", (1, 2), False, 3),
    ("Morphine sulfate 10mg/5ml oral solution", "5ml every 4 hours when required, max 30ml in 24 hours", None, True, 5),
    ("Oxycodone 10mg modified-release tablets", "ONE tablet TWICE a day", (1, 2), False, 4),
    ("Oxycodone 5mg capsules", "ONE capsule up to four times a day when required", None, True, 3),
    ("Fentanyl 25micrograms/hour transdermal patches", "Apply ONE patch every 72 hours", None, False, 3),
    ("Buprenorphine 10micrograms/hour transdermal patches", "Apply ONE patch every 7 days", None, False, 4),
    ("Tapentadol 50mg tablets", "ONE tablet TWICE a day", (1, 2), False, 1),
    (
        "Fentanyl 100microgram sublingual tablets sugar free",
        "ONE tablet up to four times a day when required",
        None,
        True,
        0.3,
    ),
]
SEDATIVES = [
    ("Pregabalin 75mg capsules", "ONE capsule TWICE a day", (1, 2), 0.15),
    ("Gabapentin 300mg capsules", "ONE capsule THREE times a day", (1, 3), 0.08),
    ("Diazepam 5mg tablets", "ONE tablet at night", (1, 1), 0.07),
    ("Zopiclone 7.5mg tablets", "ONE tablet at night", (1, 1), 0.06),
]
OTHERS = [
    "Amlodipine 5mg tablets",
    "Atorvastatin 20mg tablets",
    "Omeprazole 20mg gastro-resistant capsules",
    "Metformin 500mg tablets",
    "Ramipril 5mg capsules",
    "Sertraline 50mg tablets",
]


def _codes(knowledge: Any, name: str) -> tuple[str, str]:
    matches = sorted(
        (p for p in knowledge.products.values() if p.system == DMD and p.name == name and p.type == "VMP"),
        key=lambda p: p.code,
    )
    if not matches:
        raise LookupError(f"{name} is not in the catalogue")
    return matches[0].code, matches[0].name


def _pick(rng: random.Random, codelist: str) -> tuple[str, str]:
    rows = load_codelist(codelist)
    row = rows[rng.randrange(len(rows))]
    return row.code, row.term


class Writer:
    def __init__(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.files = {
            t: (out / f"{t}.ndjson").open("w", encoding="utf-8")
            for t in ("Patient", "MedicationRequest", "Condition", "Procedure", "Observation")
        }

    def write(self, resource: dict[str, Any]) -> None:
        self.files[resource["resourceType"]].write(json.dumps(resource, separators=(",", ":")) + "\n")

    def close(self) -> None:
        for handle in self.files.values():
            handle.close()


def synthesise(patients: int, seed: int, out: Path, today: date = date(2026, 11, 23)) -> dict[str, int]:
    """Write ``patients`` patients to ``out`` as Bulk Data NDJSON files; returns resources written per type."""
    rng = random.Random(seed)  # noqa: S311 (synthetic data, not security)
    knowledge = load_knowledge()
    opioids = [(*_codes(knowledge, n), text, s, prn, w) for n, text, s, prn, w in OPIOIDS]
    sedatives = [(*_codes(knowledge, n), text, s, w) for n, text, s, w in SEDATIVES]
    writer = Writer(out)
    counts: dict[str, int] = {}

    def emit(resource: dict[str, Any]) -> None:
        writer.write(resource)
        counts[resource["resourceType"]] = counts.get(resource["resourceType"], 0) + 1

    try:
        for index in range(patients):
            pid = f"syn-{seed}-{index}"
            female = rng.random() < 0.55
            age = rng.randint(18, 95)
            birth = date(today.year - age, rng.randint(1, 12), rng.randint(1, 28))
            emit(
                {
                    "resourceType": "Patient",
                    "id": pid,
                    "gender": "female" if female else "male",
                    "birthDate": birth.isoformat(),
                }
            )
            orders = []
            if rng.random() < 0.35:
                weights = [o[5] for o in opioids]
                for _ in range(1 if rng.random() < 0.8 else 2):
                    orders.append(("opioid", rng.choices(opioids, weights)[0]))
            for sedative in sedatives:
                if rng.random() < sedative[4] * (2 if orders else 0.5):
                    orders.append(("sedative", sedative))
            for n, (kind, product) in enumerate(orders):
                code, name, text, structured = product[0], product[1], product[2], product[3]
                prn = product[4] if kind == "opioid" else False
                _emit_regimen(emit, rng, pid, f"{pid}-rx{n}", code, name, text, structured, prn, today)
            for m in range(rng.randint(0, 3)):
                other = OTHERS[rng.randrange(len(OTHERS))]
                emit(
                    _order(
                        f"{pid}-other{m}",
                        pid,
                        {"text": other},
                        [{"text": "ONE tablet daily"}],
                        "active",
                        "order",
                        today - timedelta(days=rng.randint(1, 300)),
                        repeat=True,
                    )
                )
            if rng.random() < 0.05:
                code, term = _pick(rng, "cancer_codes")
                emit(_condition(f"{pid}-ca", pid, code, term))
            if rng.random() < 0.06:
                code, term = _pick(rng, "copd_codes")
                emit(_condition(f"{pid}-copd", pid, code, term))
            if female and 18 <= age <= 44 and rng.random() < 0.03:
                code, term = _pick(rng, "pregnancy_codes")
                emit(_condition(f"{pid}-preg", pid, code, term))
            if orders and rng.random() < 0.4:
                when = today - timedelta(days=rng.randint(10, 500))
                emit(
                    {
                        "resourceType": "Procedure",
                        "id": f"{pid}-review",
                        "status": "completed",
                        "subject": {"reference": f"Patient/{pid}"},
                        "performedDateTime": when.isoformat(),
                        "code": {
                            "coding": [{"system": SNOMED, "code": "182836005", "display": "Review of medication"}]
                        },
                    }
                )
    finally:
        writer.close()
    return counts


def _order(id_, pid, concept, dosage, status, intent, authored, repeat=False, **extra):
    resource = {
        "resourceType": "MedicationRequest",
        "id": id_,
        "status": status,
        "intent": intent,
        "subject": {"reference": f"Patient/{pid}"},
        "medicationCodeableConcept": concept,
        "authoredOn": authored.isoformat(),
        "dosageInstruction": dosage,
    }
    if repeat:
        resource["courseOfTherapyType"] = {"coding": [{"system": COURSE, "code": "continuous"}]}
    resource.update(extra)
    return resource


def _emit_regimen(emit, rng, pid, id_, code, name, text, structured, prn, today):
    concept = {"coding": [{"system": DMD, "code": code, "display": name}]}
    if structured and rng.random() < 0.5:
        dose, times = structured
        dosage = [
            {
                "text": text,
                "timing": {"repeat": {"frequency": times, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": {"value": dose, "unit": "tablet"}}],
            }
        ]
    else:
        dosage = [{"text": text}]
    if prn and dosage[0].get("timing") is None:
        dosage[0]["asNeededBoolean"] = True
    started = today - timedelta(days=rng.randint(20, 1100))
    repeat = rng.random() < 0.75
    if not repeat:
        emit(
            _order(
                id_,
                pid,
                concept,
                dosage,
                "active",
                "order",
                started,
                courseOfTherapyType={"coding": [{"system": COURSE, "code": "acute"}]},
            )
        )
        return
    emit(_order(id_, pid, concept, dosage, "active", "plan", started, repeat=True))
    stop_gap = rng.random() < 0.1  # not issued recently
    last = today - timedelta(days=rng.randint(70, 200) if stop_gap else rng.randint(0, 27))
    # the last few issues (a record holds more; the rules need the recent ones)
    issue_day = max(started, last - timedelta(days=28 * 3))
    n = 0
    while issue_day <= last and n < 4:
        emit(
            _order(
                f"{id_}-issue{n}",
                pid,
                concept,
                dosage,
                "completed",
                "instance-order",
                issue_day,
                repeat=True,
                basedOn=[{"reference": f"MedicationRequest/{id_}"}],
                dispenseRequest={
                    "quantity": {"value": 56, "unit": "tablet"},
                    "expectedSupplyDuration": {
                        "value": 28,
                        "unit": "day",
                        "code": "d",
                        "system": "http://unitsofmeasure.org",
                    },
                },
            )
        )
        issue_day += timedelta(days=28)
        n += 1


def _condition(id_, pid, code, term):
    return {
        "resourceType": "Condition",
        "id": id_,
        "subject": {"reference": f"Patient/{pid}"},
        "clinicalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
        },
        "code": {"coding": [{"system": SNOMED, "code": code, "display": term}]},
    }
