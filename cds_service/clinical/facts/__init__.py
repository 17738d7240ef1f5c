"""The closed vocabulary of facts rules may test, and how each request's facts are computed.

One summary fact per request and one fact per current order; flat, primitive and finite, because the rules
engine is strict about facts (see shared notes). Every total, count and flag is computed here, in Python;
rules only compare.

Each fact is a small registered function (``registry``), in the module of its group: ``medication``,
``context`` (with the request's hook), ``repeat``, ``order``; card placeholders are registered, with their
widths, in ``card_values``. All of them read one :class:`FactInputs`, built once per request (``inputs``).
``FACTS`` and ``PLACEHOLDER_WIDTH`` are derived from the registry.
"""

from __future__ import annotations

# The group modules register their facts when imported.
from cds_service.clinical.facts import card_values, context, medication, order, quality, repeat  # noqa: F401
from cds_service.clinical.facts.build import RequestFacts, build_facts
from cds_service.clinical.facts.fhir import is_repeat, months_between, parse_date, working_days_between
from cds_service.clinical.facts.inputs import ClinicalCodes, FactInputs, OrderInfo, fact_inputs
from cds_service.clinical.facts.registry import (
    CARD_VALUES,
    ORDER_FACTS,
    SUMMARY_FACTS,
    CardValue,
    FactSpec,
    card_text,
    fact_specs,
    order_fact,
    summary_fact,
)

FACTS: dict[str, FactSpec] = fact_specs()
PLACEHOLDER_WIDTH: dict[str, int] = {name: value.width for name, value in CARD_VALUES.items()}

__all__ = [
    "CARD_VALUES",
    "FACTS",
    "ORDER_FACTS",
    "PLACEHOLDER_WIDTH",
    "SUMMARY_FACTS",
    "CardValue",
    "ClinicalCodes",
    "FactInputs",
    "FactSpec",
    "OrderInfo",
    "RequestFacts",
    "build_facts",
    "card_text",
    "fact_inputs",
    "is_repeat",
    "months_between",
    "order_fact",
    "parse_date",
    "summary_fact",
    "working_days_between",
]
