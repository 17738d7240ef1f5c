"""Data-quality facts: what the shape check (clinical/shape.py) left uncounted."""

from __future__ import annotations

from cds_service.clinical.facts.inputs import FactInputs
from cds_service.clinical.facts.registry import summary_fact
from cds_service.clinical.shape import MALFORMED

GROUP = "medication"


@summary_fact(
    "has_malformed_order",
    "bool",
    "an order is not counted because an element it needs is malformed (even when its medication cannot be read)",
    group=GROUP,
)
def has_malformed_order(i: FactInputs) -> bool:
    return any(flag.startswith(MALFORMED) for o in i.ome.not_counted for flag in o.flags)
