"""Turn a resolved CDS Hooks request into the patient's record: medication orders, conditions, reviews.

The raw dicts stay the source of truth. Each MedicationRequest that matters (not history) is validated with
fhir.resources R4B; one that fails is kept, with a data-quality note, never dropped. STU3-style dosage
(``doseQuantity`` directly on the Dosage) is moved into R4 ``doseAndRate`` first, so both shapes read the same.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from cds_service.clinical.dialects import as_r4_medication_request, dispense_as_issue, is_medication_order

# MedicationRequest statuses that are history, not current treatment (FHIR R4 medicationrequest-status).
HISTORY_STATUSES = frozenset({"completed", "stopped", "cancelled", "entered-in-error"})
# A reference to a Patient: "Patient/123", an absolute URL, or a versioned "Patient/123/_history/2".
PATIENT_REFERENCE = re.compile(r"(?:^|/)Patient/([^/]+?)(?:/_history/[^/]+)?$")
_STU3_DOSE_KEYS = ("doseQuantity", "doseRange", "rateRatio", "rateRange", "rateQuantity")


@dataclass
class OrderRecord:
    """One MedicationRequest as received, with where it came from."""

    resource: dict[str, Any]
    origin: str  # "draft" (being ordered now) | "existing" (prefetched)
    path: str
    problems: list[str] = field(default_factory=list)
    raw: dict[str, Any] | None = None  # as received, when ``resource`` is a converted copy (clinical/dialects.py)

    @property
    def status(self) -> str:
        return str(self.resource.get("status") or "")

    @property
    def is_history(self) -> bool:
        return self.status in HISTORY_STATUSES


@dataclass
class PatientRecord:
    patient_id: str
    patient: dict[str, Any] | None
    orders: list[OrderRecord]
    medications: dict[str, dict[str, Any]]  # "Medication/<id>" -> Medication
    conditions: list[dict[str, Any]]
    procedures: list[dict[str, Any]]
    observations: list[dict[str, Any]]
    data_quality: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # "path: reason" of medication orders that cannot be read


def patient_id_of(reference: Any) -> str | None:
    """The Patient id a reference points at ("Patient/123", ".../Patient/123/_history/2" -> "123"), else None."""
    match = PATIENT_REFERENCE.search(reference) if isinstance(reference, str) else None
    return match.group(1) if match else None


def bare_patient_id(patient_id: str) -> str:
    """``context.patientId`` as an id: some clients send it as a reference ("Patient/123" -> "123")."""
    return patient_id.removeprefix("Patient/")


def normalise_dosage(resource: dict[str, Any]) -> dict[str, Any]:
    """Return ``resource`` with STU3-style dose members moved into ``doseAndRate`` (a copy only if needed)."""
    dosages = resource.get("dosageInstruction")
    if not isinstance(dosages, list) or not any(
        isinstance(d, dict) and any(k in d for k in _STU3_DOSE_KEYS) for d in dosages
    ):
        return resource
    resource = copy.deepcopy(resource)
    for dosage in resource["dosageInstruction"]:
        if not isinstance(dosage, dict) or not isinstance(dosage.get("doseAndRate", []), list):
            continue  # a malformed doseAndRate is left for the shape check (clinical/shape.py) to report
        moved = {k: dosage.pop(k) for k in _STU3_DOSE_KEYS if k in dosage}
        if moved:
            dosage.setdefault("doseAndRate", []).append(moved)
    return resource


def record_from_document(document: dict[str, Any]) -> PatientRecord:
    """A record from a CDS Hooks request, a FHIR Bundle or one resource, as read from a file (CLI, batch)."""
    located: list[tuple[str, str, dict[str, Any]]] = []
    patient_id = ""
    if isinstance(document.get("context"), dict):
        context = document["context"]
        patient_id = str(context.get("patientId") or "")
        for name in ("draftOrders", "medications"):
            located += [("draft", p, r) for p, r in _loose(f"context.{name}", context.get(name))]
        for key, value in (document.get("prefetch") or {}).items():
            located += [("existing", p, r) for p, r in _loose(f"prefetch.{key}", value)]
    else:
        located += [("existing", p, r) for p, r in _loose("$", document)]
    return record_from_resources(patient_id, located)


def _loose(path: str, value: Any) -> list[tuple[str, dict[str, Any]]]:
    """Like located_resources, for unchecked input: anything that is not a resource is skipped."""
    if isinstance(value, list):
        return [(f"{path}[{i}]", r) for i, r in enumerate(value) if isinstance(r, dict)]
    if not isinstance(value, dict):
        return []
    if value.get("resourceType") == "Bundle":
        entries = value["entry"] if isinstance(value.get("entry"), list) else []
        return [
            (f"{path}.entry[{i}].resource", e["resource"])
            for i, e in enumerate(entries)
            if isinstance(e, dict) and isinstance(e.get("resource"), dict)
        ]
    return [(path, value)]


def record_from_resources(patient_id: str, located: list[tuple[str, str, dict[str, Any]]]) -> PatientRecord:
    """Sort located resources (origin, path, resource) into a PatientRecord."""
    record = PatientRecord(patient_id, None, [], {}, [], [], [])
    seen_orders: set[str] = set()
    for origin, path, resource in located:
        kind = resource.get("resourceType")
        if kind == "MedicationDispense":  # issue history: a supply handed over
            record.orders.append(OrderRecord(dispense_as_issue(resource), origin, path, raw=resource))
        elif is_medication_order(resource):
            key = str(resource.get("id") or path)
            if origin == "existing" and key in seen_orders:
                continue  # the draft being signed may also be in the prefetched list: count it once
            seen_orders.add(key)
            converted, problem = as_r4_medication_request(resource)
            if converted is None:
                record.unreadable.append(f"{path}: {problem}")
                record.data_quality.append(f"{path}: could not be checked: {problem}")
                continue
            record.orders.append(
                OrderRecord(normalise_dosage(converted), origin, path, raw=None if converted is resource else resource)
            )
        elif kind == "Medication" and resource.get("id"):
            record.medications[f"Medication/{resource['id']}"] = resource
        elif kind == "Patient":
            record.patient = resource
        elif kind == "Condition":
            record.conditions.append(resource)
        elif kind == "Procedure":
            record.procedures.append(resource)
        elif kind == "Observation":
            record.observations.append(resource)
    return record
