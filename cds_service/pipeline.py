"""One evaluation: a checked request with its resolved prefetch in, a CDS Hooks response body out.

This is the seam between the protocol layer and the clinical core (knowledge, dosage, OME, rules, cards).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .fhir_input import PatientRecord, build_record, validate_orders
from .hooks import HookRequest
from .knowledge.model import Knowledge
from .ome import OmeResult, compute_ome

RELEVANT_CLASSES = frozenset({"opioid", "gabapentinoid", "benzodiazepine", "z-drug"})


@dataclass
class Evaluation:
    body: dict[str, Any]
    record: PatientRecord
    ome: OmeResult


def assess(record: PatientRecord, knowledge: Knowledge, profile: str) -> OmeResult:
    """OME of the record's orders; the orders that matter (or that we could not identify) are validated."""
    ome = compute_ome([(o.resource, o.origin) for o in record.orders], record.medications, knowledge, profile)
    relevant = {
        i for i, order in enumerate(ome.orders) if order.product is None or order.product.classes & RELEVANT_CLASSES
    }
    validate_orders(record, relevant)
    return ome


def evaluate(
    request: HookRequest, prefetch: dict[str, dict[str, Any] | None], knowledge: Knowledge, profile: str = "uk"
) -> Evaluation:
    """The response body ``{"cards": [...]}`` with the record and OME it was built from."""
    record = build_record(request, prefetch)
    ome = assess(record, knowledge, profile)
    cards: list[dict[str, Any]] = []  # the rules arrive with the rules/cards issue
    return Evaluation({"cards": cards}, record, ome)
