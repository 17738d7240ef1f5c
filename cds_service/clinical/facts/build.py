"""The facts of one request: the registered facts and card values, composed over one FactInputs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from cds_service.clinical.facts.inputs import ClinicalCodes, FactInputs, fact_inputs
from cds_service.clinical.facts.registry import CARD_VALUES, ORDER_FACTS, SUMMARY_FACTS, Primitive
from cds_service.clinical.ome import OmeResult, OrderOme
from cds_service.clinical.record import PatientRecord


@dataclass
class RequestFacts:
    """The facts for the engine, and what the cards need to say about them."""

    summary: dict[str, Primitive]
    orders: list[dict[str, Primitive]]
    values: dict[str, str] = field(default_factory=dict)  # card placeholders
    risk_factors: list[str] = field(default_factory=list)
    order_refs: dict[int, OrderOme] = field(default_factory=dict)  # fact ref -> order


def summary_facts(inputs: FactInputs) -> dict[str, Primitive]:
    return {"kind": "summary"} | {name: fact.compute(inputs) for name, fact in SUMMARY_FACTS.items()}


def order_facts(inputs: FactInputs) -> list[dict[str, Primitive]]:
    facts: list[dict[str, Primitive]] = []
    for ref, info in enumerate(inputs.meds.current):
        fact: dict[str, Primitive] = {"kind": "order", "ref": ref}
        fact.update((order_fact.spec.key, order_fact.compute(info)) for order_fact in ORDER_FACTS.values())
        facts.append(fact)
    return facts


def card_values(inputs: FactInputs) -> dict[str, str]:
    return {name: value.text(value.compute(inputs)) for name, value in CARD_VALUES.items() if value.compute}


def build_facts(
    hook: str,
    record: PatientRecord,
    ome: OmeResult,
    ome_before: OmeResult | None,
    codes: ClinicalCodes,
    settings: Mapping[str, Any],
    today: date,
) -> RequestFacts:
    """Facts of one request. ``ome``: the OmeResult over the record's orders; ``ome_before``: the same without
    the drafts (None when nothing is drafted); ``settings``: rule setting name -> value."""
    inputs = fact_inputs(hook, record, ome, ome_before, codes, settings, today)
    return RequestFacts(
        summary=summary_facts(inputs),
        orders=order_facts(inputs),
        values=card_values(inputs),
        risk_factors=list(inputs.risk_factors),
        order_refs={ref: info.order for ref, info in enumerate(inputs.meds.current)},
    )
