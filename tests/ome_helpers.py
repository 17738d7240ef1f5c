"""Build MedicationRequests for OME tests."""

from __future__ import annotations

from typing import Any

from cds_service.clinical.knowledge.loader import load_knowledge
from cds_service.clinical.ome import OmeResult, compute_ome

DMD = "https://dmd.nhs.uk"


def mr(
    code: str | None = None,
    text: str | None = None,
    dosage: list[dict[str, Any]] | str | None = None,
    *,
    id: str = "mr1",
    status: str = "active",
    intent: str = "order",
    **extra: Any,
) -> dict[str, Any]:
    concept: dict[str, Any] = {}
    if code:
        concept["coding"] = [{"system": DMD, "code": code}]
    if text:
        concept["text"] = text
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": id,
        "status": status,
        "intent": intent,
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": concept,
    }
    if isinstance(dosage, str):
        resource["dosageInstruction"] = [{"text": dosage}]
    elif dosage is not None:
        resource["dosageInstruction"] = dosage
    resource.update(extra)
    return resource


def ome(*resources: dict[str, Any], profile: str = "uk", origin: str = "existing") -> OmeResult:
    return compute_ome([(r, origin) for r in resources], {}, load_knowledge(), profile)


def total(*resources: dict[str, Any], profile: str = "uk") -> float:
    return ome(*resources, profile=profile).to_json()["total_ome_mg_per_day"]
