"""Medication facts: the OME totals, and which opioids and sedatives are current."""

from __future__ import annotations

from decimal import Decimal

from cds_service.clinical.facts.inputs import FactInputs
from cds_service.clinical.facts.registry import summary_fact

GROUP = "medication"


@summary_fact("total_ome_mg_per_day", "number", "total daily OME, regular + PRN at its permitted maximum", group=GROUP)
def total_ome_mg_per_day(i: FactInputs) -> float:
    return float(i.ome.total_max)


@summary_fact("total_ome_mg_per_day_min", "number", "total daily OME of regular doses only", group=GROUP)
def total_ome_mg_per_day_min(i: FactInputs) -> float:
    return float(i.ome.total_min)


@summary_fact("ome_complete", "bool", "every opioid order could be counted", group=GROUP)
def ome_complete(i: FactInputs) -> bool:
    return i.ome.complete and not i.unreadable  # an order that could not be read may be an opioid


@summary_fact("ome_before_drafts", "number", "total daily OME without the orders being prescribed now", group=GROUP)
def ome_before_drafts(i: FactInputs) -> float:
    return float(i.total_before_drafts)


@summary_fact("draft_ome_mg_per_day", "number", "daily OME of the orders being prescribed now", group=GROUP)
def draft_ome_mg_per_day(i: FactInputs) -> float:
    drafts = (o.order.ome_max for o in i.meds.current if o.is_draft and o.order.counted and o.order.ome_max)
    return float(sum(drafts, Decimal(0)))


@summary_fact("has_draft_opioid", "bool", "an opioid is being prescribed now", group=GROUP)
def has_draft_opioid(i: FactInputs) -> bool:
    return any(o.is_draft for o in i.meds.opioids)


@summary_fact("has_opioid", "bool", "any current opioid", group=GROUP)
def has_opioid(i: FactInputs) -> bool:
    return bool(i.meds.opioids)


@summary_fact("has_strong_opioid", "bool", "any current strong opioid", group=GROUP)
def has_strong_opioid(i: FactInputs) -> bool:
    return bool(i.meds.strong)


@summary_fact("has_weak_opioid", "bool", "any current weak opioid", group=GROUP)
def has_weak_opioid(i: FactInputs) -> bool:
    return bool(i.meds.weak)


@summary_fact(
    "regular_strong_opioid_count", "number", "different strong opioids with a regular (not PRN) dose", group=GROUP
)
def regular_strong_opioid_count(i: FactInputs) -> int:
    # An order whose dose could not be read counts as regular: it may well be.
    regular = (o for o in i.meds.opioids if "strong-opioid" in o.classes and (o.order.regular or not o.order.counted))
    return len({o.ingredient for o in regular})


@summary_fact(
    "max_mr_orders_per_ingredient", "number", "most modified-release orders of one opioid ingredient", group=GROUP
)
def max_mr_orders_per_ingredient(i: FactInputs) -> int:
    return max(i.meds.mr_counts.values(), default=0)


@summary_fact(
    "has_ir_fentanyl",
    "bool",
    "any current immediate-release (buccal, sublingual, nasal, lozenge) fentanyl",
    group=GROUP,
)
def has_ir_fentanyl(i: FactInputs) -> bool:
    return "immediate-release-fentanyl" in i.meds.classes


@summary_fact("has_gabapentinoid", "bool", "any current gabapentinoid", group=GROUP)
def has_gabapentinoid(i: FactInputs) -> bool:
    return "gabapentinoid" in i.meds.sedatives


@summary_fact("has_benzodiazepine", "bool", "any current benzodiazepine", group=GROUP)
def has_benzodiazepine(i: FactInputs) -> bool:
    return "benzodiazepine" in i.meds.sedatives


@summary_fact("has_z_drug", "bool", "any current Z-drug", group=GROUP)
def has_z_drug(i: FactInputs) -> bool:
    return "z-drug" in i.meds.sedatives


@summary_fact(
    "sedative_class_count", "number", "how many of gabapentinoid, benzodiazepine, Z-drug are current", group=GROUP
)
def sedative_class_count(i: FactInputs) -> int:
    return len(i.meds.sedatives)


@summary_fact("has_opioid_substitution", "bool", "opioid substitution treatment (BNF 4.10)", group=GROUP)
def has_opioid_substitution(i: FactInputs) -> bool:
    return "opioid-substitution" in i.meds.classes
