"""One evaluation: a checked request with its resolved prefetch in, a CDS Hooks response body out.

This is the seam between the protocol layer and the clinical core (knowledge, dosage, OME, rules, cards).
"""

from __future__ import annotations

from typing import Any

from .fhir_input import PatientRecord, build_record
from .hooks import HookRequest


def evaluate(request: HookRequest, prefetch: dict[str, dict[str, Any] | None]) -> tuple[dict[str, Any], PatientRecord]:
    """Return the response body ``{"cards": [...]}`` and the patient record it was built from."""
    record = build_record(request, prefetch)
    cards: list[dict[str, Any]] = []  # the rules arrive with the rules/cards issue
    return {"cards": cards}, record
