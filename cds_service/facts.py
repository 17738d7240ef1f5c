"""The closed vocabulary of facts rules may test, and how each request's facts are computed.

One summary fact per request and one fact per current order; flat, primitive and finite, because the rules
engine is strict about facts (see shared notes). Every total, count and flag is computed here, in Python;
rules only compare.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FactSpec:
    name: str
    kind: str  # summary | order
    type: str  # number | bool | string
    description: str


_SUMMARY = [
    ("hook", "string", "the CDS Hooks hook (order-select, order-sign, patient-view, medication-prescribe)"),
    ("total_ome_mg_per_day", "number", "total daily OME, regular + PRN at its permitted maximum"),
    ("total_ome_mg_per_day_min", "number", "total daily OME of regular doses only"),
    ("ome_complete", "bool", "every opioid order could be counted"),
    ("ome_before_drafts", "number", "total daily OME without the orders being prescribed now"),
    ("draft_ome_mg_per_day", "number", "daily OME of the orders being prescribed now"),
    ("has_draft_opioid", "bool", "an opioid is being prescribed now"),
    ("has_opioid", "bool", "any current opioid"),
    ("has_strong_opioid", "bool", "any current strong opioid"),
    ("has_weak_opioid", "bool", "any current weak opioid"),
    ("regular_strong_opioid_count", "number", "different strong opioids with a regular (not PRN) dose"),
    ("max_mr_orders_per_ingredient", "number", "most modified-release orders of one opioid ingredient"),
    ("has_ir_fentanyl", "bool", "any current immediate-release (buccal, sublingual, nasal, lozenge) fentanyl"),
    ("has_gabapentinoid", "bool", "any current gabapentinoid"),
    ("has_benzodiazepine", "bool", "any current benzodiazepine"),
    ("has_z_drug", "bool", "any current Z-drug"),
    ("sedative_class_count", "number", "how many of gabapentinoid, benzodiazepine, Z-drug are current"),
    ("has_opioid_substitution", "bool", "opioid substitution treatment (BNF 4.10)"),
    ("has_palliative_context", "bool", "active cancer, palliative care register or end-of-life condition"),
    ("palliative_suppression", "bool", "palliative context and the suppress_in_palliative_care setting"),
    ("is_pregnant", "bool", "an active pregnancy is coded"),
    ("has_opioid_dependence", "bool", "opioid dependence is coded"),
    ("risk_factor_count", "number", "COPD, age, benzodiazepine use, substance misuse history"),
    ("age_years", "number", "age in whole years (-1 when unknown)"),
    ("months_on_repeat_opioid", "number", "longest time an opioid has been on repeat, in months"),
    ("opioid_repeat_being_reauthorised", "bool", "an opioid repeat is being reauthorised or reissued now"),
    ("months_since_medication_review", "number", "months since the last coded medication review (999: none)"),
    ("opioid_repeat_past_expiry", "bool", "an opioid repeat being reauthorised is past its authorisation expiry"),
    ("early_request_working_days", "number", "most working days early of an opioid repeat issued now"),
    ("repeat_opioid_not_issued_months", "number", "longest time an opioid on repeat has not been issued, in months"),
]
_ORDER = [
    ("order.ingredient", "string", "the order's ingredient (basis of strength)"),
    ("order.is_draft", "bool", "the order is being prescribed now"),
    ("order.is_opioid", "bool", "the order is an opioid"),
    ("order.is_repeat", "bool", "the order is a repeat (UK Core courseOfTherapyType, EPS intent, basedOn)"),
    ("order.is_prn", "bool", "the order is as needed only"),
    ("order.is_ir_fentanyl", "bool", "immediate-release fentanyl"),
    ("order.release", "string", "immediate | modified"),
    ("order.route", "string", "route of the product"),
]
FACTS: dict[str, FactSpec] = {
    name: FactSpec(name, "order" if name.startswith("order.") else "summary", kind, description)
    for name, kind, description in _SUMMARY + _ORDER
}
