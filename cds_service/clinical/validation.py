"""R4B validation of the MedicationRequests that matter (fhir.resources): problems become data-quality notes.

Kept apart from ``record.py`` so that reading a record, and the rule layer that imports the fact vocabulary, do not
load the FHIR models.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.medicationrequest import MedicationRequest
from pydantic import ValidationError

from cds_service.clinical.record import PatientRecord


def warm_up() -> None:
    """Build the R4B validators once at start-up, so the first request does not pay for it."""
    validation_problems(
        {
            "resourceType": "MedicationRequest",
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/warm-up"},
            "medicationCodeableConcept": {"text": "warm-up"},
        }
    )


def validation_problems(resource: dict[str, Any]) -> list[str]:
    """R4B validation errors of one MedicationRequest, as short readable strings (empty when valid)."""
    try:
        MedicationRequest.model_validate(resource)
    except ValidationError as exc:
        return [
            f"{'.'.join(str(p) for p in err['loc']) or 'MedicationRequest'}: {err['msg']}" for err in exc.errors()[:5]
        ]
    return []


def validate_orders(record: PatientRecord, relevant: set[int]) -> None:
    """Validate (R4B) the current orders at ``relevant`` indexes; problems become data-quality notes."""
    for index, order in enumerate(record.orders):
        if index in relevant and not order.is_history:
            order.problems = validation_problems(order.resource)
            record.data_quality += [f"{order.path}: {p}" for p in order.problems]
