"""Card values: the text of each card ``{placeholder}``, registered with its widest text.

The registered width is both what the rule checker assumes (``PLACEHOLDER_WIDTH``) and what the value is cut to.
"""

from __future__ import annotations

from decimal import Decimal

from cds_service.clinical.facts.inputs import SEDATIVE_CLASSES, FactInputs
from cds_service.clinical.facts.registry import (
    CardValue,
    card_value,
    fit_count,
    fit_names,
    fit_text,
    register_card_value,
)
from cds_service.clinical.facts.repeat import (
    early_request_working_days,
    months_on_repeat_opioid,
    months_since_medication_review,
    repeat_opioid_not_issued_months,
)

SEDATIVE_NAMES = {"gabapentinoid": "a gabapentinoid", "benzodiazepine": "a benzodiazepine", "z-drug": "a Z-drug"}
ORDER_WIDTH = 48  # a list of order names
NUMBER_WIDTH = 6  # mg/day OME: up to 999999
MONTHS_WIDTH = 3  # months or days: up to 999
UNKNOWN_ORDER = "An opioid"
NO_MEDICATION_NAME = "an order with no medication"  # never an internal id ("request-123", "order-2")

# Filled when the card is rendered: the orders the rule fired on.
ORDERS = register_card_value(
    CardValue("orders", ORDER_WIDTH, fit_names, "the orders the rule fired on (the card says 'The order' if none)")
)


@card_value("total_ome", NUMBER_WIDTH, fit_count, "total daily OME, mg")
def total_ome(i: FactInputs) -> Decimal:
    return i.ome.total_max


@card_value("total_ome_min", NUMBER_WIDTH, fit_count, "total daily OME of regular doses, mg")
def total_ome_min(i: FactInputs) -> Decimal:
    return i.ome.total_min


@card_value("not_counted_orders", ORDER_WIDTH, fit_names, "the orders not counted in the total", empty=UNKNOWN_ORDER)
def not_counted_orders(i: FactInputs) -> list[str]:
    return list(dict.fromkeys(o.display or NO_MEDICATION_NAME for o in i.ome.not_counted))


@card_value("before", NUMBER_WIDTH, fit_count, "total daily OME before the orders being prescribed now, mg")
def before(i: FactInputs) -> Decimal:
    return i.total_before_drafts


@card_value("ingredients", 40, fit_names, "the current opioids: strong, then weak")
def ingredients(i: FactInputs) -> list[str]:
    return i.meds.strong + [w for w in i.meds.weak if w not in i.meds.strong]


@card_value("classes", 48, fit_names, "the current sedative classes ('a gabapentinoid, a Z-drug')")
def classes(i: FactInputs) -> list[str]:
    return [SEDATIVE_NAMES[c] for c in i.meds.sedatives]


@card_value("sedative_drugs", 30, fit_names, "the current sedatives' ingredients")
def sedative_drugs(i: FactInputs) -> list[str]:
    sedative = set(SEDATIVE_CLASSES)
    return sorted({o.ingredient for o in i.meds.current if o.order.product and o.classes & sedative})


@card_value("months", MONTHS_WIDTH, fit_count, "months_on_repeat_opioid")
def months(i: FactInputs) -> int:
    return months_on_repeat_opioid(i)


@card_value("review_age", 20, fit_text, "how long since the last medication review ('14 months', 'the record')")
def review_age(i: FactInputs) -> str:
    return f"{months_since_medication_review(i)} months" if i.last_review else "the record"


@card_value("last_review", 40, fit_text, "the date of the last medication review ('none coded')")
def last_review(i: FactInputs) -> str:
    return i.last_review.isoformat() if i.last_review else "none coded"


@card_value("days_early", MONTHS_WIDTH, fit_count, "early_request_working_days")
def days_early(i: FactInputs) -> int:
    return early_request_working_days(i)


@card_value("not_issued_months", MONTHS_WIDTH, fit_count, "repeat_opioid_not_issued_months")
def not_issued_months(i: FactInputs) -> int:
    return repeat_opioid_not_issued_months(i)


@card_value("repeat_orders", ORDER_WIDTH, fit_names, "the opioids on repeat", empty=UNKNOWN_ORDER)
def repeat_orders(i: FactInputs) -> list[str]:
    return sorted({r.info.order.display for r in i.repeats if r.months_on_repeat is not None})


@card_value("early_orders", ORDER_WIDTH, fit_names, "the opioid repeat issued earliest", empty=UNKNOWN_ORDER)
def early_orders(i: FactInputs) -> list[str]:
    most = early_request_working_days(i)
    first = next((r for r in i.repeats if most and r.working_days_early == most), None)
    return [first.info.order.display] if first else []


@card_value("unissued_orders", ORDER_WIDTH, fit_names, "the opioid repeats not issued", empty=UNKNOWN_ORDER)
def unissued_orders(i: FactInputs) -> list[str]:
    # Each repeat not issued for at least as long as every one before it (in order) is named.
    longest, names = 0, set()
    for r in i.repeats:
        if r.months_not_issued is not None and r.months_not_issued >= longest:
            longest = r.months_not_issued
            names.add(r.info.order.display)
    return sorted(names)


@card_value("duplicate_ingredient", 20, fit_text, "the opioid with the most modified-release orders")
def duplicate_ingredient(i: FactInputs) -> str:
    counts = i.meds.mr_counts
    return max(counts, key=lambda k: counts[k]) if counts else ""
