"""The closed vocabulary of facts rules may test, and how each request's facts are computed.

One summary fact per request and one fact per current order; flat, primitive and finite, because the rules
engine is strict about facts (see shared notes). Every total, count and flag is computed here, in Python;
rules only compare.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any


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


# --- computing the facts of one request ----------------------------------------------------------------------
REPEAT_INFO_URL = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-MedicationRepeatInformation"
REPEAT_COURSES = {"continuous", "continuous-repeating-dispensing"}
REPEAT_INTENTS = {"plan", "original-order", "instance-order", "reflex-order"}
HISTORY = {"completed", "stopped", "cancelled", "entered-in-error"}
INACTIVE_CONDITION = {"inactive", "remission", "resolved"}
UNCONFIRMED = {"refuted", "entered-in-error"}
SEDATIVE_CLASSES = ("gabapentinoid", "benzodiazepine", "z-drug")


@dataclass(frozen=True)
class ClinicalCodes:
    """SNOMED CT code sets the context needs (loaded once from cds_service/clinical/knowledge/data by the caller)."""

    medication_review: frozenset[str]
    cancer: frozenset[str]
    palliative: frozenset[str]
    pregnancy: frozenset[str]
    opioid_dependence: frozenset[str]
    copd: frozenset[str]
    substance_misuse: frozenset[str]


@dataclass
class RequestFacts:
    """The facts for the engine, and what the cards need to say about them."""

    summary: dict[str, Any]
    orders: list[dict[str, Any]]
    values: dict[str, str] = field(default_factory=dict)  # card placeholders
    risk_factors: list[str] = field(default_factory=list)
    order_refs: dict[int, Any] = field(default_factory=dict)  # fact ref -> OrderOme


def parse_date(value: Any) -> date | None:
    if not isinstance(value, str) or len(value) < 4:
        return None
    try:
        if len(value) == 4:
            return date(int(value), 7, 1)
        if len(value) == 7:
            return date(int(value[:4]), int(value[5:7]), 15)
        return (
            datetime.fromisoformat(value.replace("Z", "+00:00")[:25]).date()
            if "T" in value
            else date.fromisoformat(value[:10])
        )
    except ValueError:
        return None


def months_between(earlier: date, later: date) -> int:
    months = (later.year - earlier.year) * 12 + later.month - earlier.month
    return months - (1 if later.day < earlier.day else 0)


def working_days_between(start: date, end: date) -> int:
    """Weekdays after ``start`` up to and including ``end`` (0 when end is not after start)."""
    days, current = 0, start
    while current < end:
        current += timedelta(days=1)
        days += current.weekday() < 5
    return days


def _codes(concept: Any) -> set[str]:
    if not isinstance(concept, dict):
        return set()
    return {str(c.get("code")) for c in concept.get("coding") or [] if isinstance(c, dict) and c.get("code")}


def _status_code(concept: Any) -> str | None:
    codes = _codes(concept)
    return next(iter(codes)) if codes else None


def _condition_current(resource: dict[str, Any]) -> bool:
    if _status_code(resource.get("verificationStatus")) in UNCONFIRMED:
        return False
    return _status_code(resource.get("clinicalStatus")) not in INACTIVE_CONDITION


def _recorded(resource: dict[str, Any]) -> bool:
    return _status_code(resource.get("verificationStatus")) not in UNCONFIRMED and resource.get("status") not in (
        "entered-in-error",
        "cancelled",
        "not-done",
    )


def _event_date(resource: dict[str, Any]) -> date | None:
    for key in ("performedDateTime", "effectiveDateTime", "issued", "recordedDate", "onsetDateTime"):
        if (found := parse_date(resource.get(key))) is not None:
            return found
    for key in ("performedPeriod", "effectivePeriod"):
        period = resource.get(key)
        if isinstance(period, dict) and (found := parse_date(period.get("start"))) is not None:
            return found
    return None


def is_repeat(resource: dict[str, Any]) -> bool:
    """A repeat by UK Core courseOfTherapyType, its repeat extension, EPS intent, basedOn or repeats allowed."""
    course = _codes(resource.get("courseOfTherapyType"))
    if course & REPEAT_COURSES:
        return True
    if "acute" in course:
        return False
    if any(isinstance(e, dict) and e.get("url") == REPEAT_INFO_URL for e in resource.get("extension") or []):
        return True
    if resource.get("intent") in REPEAT_INTENTS or resource.get("basedOn"):
        return True
    dispense = resource.get("dispenseRequest")
    repeats = dispense.get("numberOfRepeatsAllowed") if isinstance(dispense, dict) else None
    return isinstance(repeats, int) and not isinstance(repeats, bool) and repeats > 0


def _expiry(resource: dict[str, Any]) -> date | None:
    for extension in resource.get("extension") or []:
        if isinstance(extension, dict) and extension.get("url") == REPEAT_INFO_URL:
            for part in extension.get("extension") or []:
                if isinstance(part, dict) and part.get("url") == "authorisationExpiryDate":
                    return parse_date(part.get("valueDateTime"))
    return None


def _issued_on(resource: dict[str, Any]) -> date | None:
    dispense = resource.get("dispenseRequest")
    period = dispense.get("validityPeriod") if isinstance(dispense, dict) else None
    return parse_date(resource.get("authoredOn")) or (
        parse_date(period.get("start")) if isinstance(period, dict) else None
    )


def _supply_days(order: Any) -> Decimal | None:
    """Days a supply lasts: expectedSupplyDuration, else quantity / units per day."""
    dispense = order.resource.get("dispenseRequest")
    if not isinstance(dispense, dict):
        return None
    duration = dispense.get("expectedSupplyDuration")
    if isinstance(duration, dict) and isinstance(duration.get("value"), int | float):
        unit = str(duration.get("code") or duration.get("unit") or "d").lower()
        per = {"d": 1, "day": 1, "days": 1, "wk": 7, "week": 7, "weeks": 7, "mo": 30, "month": 30}.get(unit)
        if per:
            return Decimal(str(duration["value"])) * per
    quantity = dispense.get("quantity")
    if isinstance(quantity, dict) and isinstance(quantity.get("value"), int | float) and order.units_per_day_max:
        return Decimal(str(quantity["value"])) / order.units_per_day_max
    return None


def _product_key(order: Any) -> str | None:
    product = order.product
    if product is None:
        return None
    return f"{product.ingredient}|{product.strength_mg}|{product.release}|{product.route}"


def _join(names: list[str], width: int) -> str:
    text = ", ".join(names)
    return text if len(text) <= width else text[: width - 1].rstrip(", ") + "…"


def build_facts(
    hook: str,
    record: Any,
    ome: Any,
    ome_before: Any | None,
    codes: ClinicalCodes,
    settings: dict[str, Any],
    today: date,
) -> RequestFacts:
    """Facts of one request. ``record``: PatientRecord; ``ome``: OmeResult over its orders (same order);
    ``ome_before``: OmeResult without the drafts (None when nothing is drafted); ``settings``: name -> value."""
    orders = ome.orders
    current = [o for o in orders if o.status not in HISTORY and not o.same_supply_as]
    classes_of = [o.product.classes if o.product else frozenset() for o in current]
    opioids = [o for o in current if o.is_opioid]
    strong = sorted({o.product.ingredient for o in opioids if "strong-opioid" in o.product.classes})
    weak = sorted({o.product.ingredient for o in opioids if "weak-opioid" in o.product.classes})
    regular_strong = {
        o.product.ingredient for o in opioids if "strong-opioid" in o.product.classes and (o.regular or not o.counted)
    }
    mr_counts: dict[str, int] = defaultdict(int)
    for order in opioids:
        if order.product.release == "modified" and not order.product.is_patch:
            mr_counts[order.product.ingredient] += 1
    sedatives = [c for c in SEDATIVE_CLASSES if any(c in k for k in classes_of)]

    # Clinical context from Conditions, and Observations / Procedures carrying the same codes.
    conditions = [c for c in record.conditions if _condition_current(c)]
    events = [r for r in record.observations + record.procedures if _recorded(r)]
    coded = set().union(*(_codes(c.get("code")) for c in conditions)) if conditions else set()
    event_codes = set().union(*(_codes(e.get("code")) for e in events)) if events else set()
    history_codes = set().union(*(_codes(c.get("code")) for c in record.conditions if _recorded(c))) | event_codes
    palliative = bool(coded & (codes.cancer | codes.palliative) or event_codes & codes.palliative)
    pregnant = bool(coded & codes.pregnancy) or any(
        _codes(e.get("code")) & codes.pregnancy and (d := _event_date(e)) and (today - d).days <= 280 for e in events
    )
    dependence = bool(history_codes & codes.opioid_dependence)
    birth = parse_date(record.patient.get("birthDate")) if isinstance(record.patient, dict) else None
    age = (today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))) if birth else -1
    risk_factors = []
    if coded & codes.copd:
        risk_factors.append("COPD")
    if age >= settings["older_adult_age_years"]:
        risk_factors.append(f"age {age}")
    if "benzodiazepine" in sedatives:
        risk_factors.append("benzodiazepine use")
    if history_codes & codes.substance_misuse:
        risk_factors.append("history of substance misuse")

    # Repeats.
    reviews = [d for e in events if _codes(e.get("code")) & codes.medication_review and (d := _event_date(e))]
    last_review = max(reviews) if reviews else None
    months_since_review = months_between(last_review, today) if last_review else 999
    by_product: dict[str, list[Any]] = defaultdict(list)
    for order in orders:
        if (key := _product_key(order)) is not None:
            by_product[key].append(order)
    months_on_repeat, not_issued, early = 0, 0, 0
    repeat_names, unissued_names, early_names = [], [], []
    reauthorised, past_expiry = False, False
    existing_repeats = {_product_key(o) for o in current if o.origin == "existing" and is_repeat(o.resource)}
    for order in opioids:
        if not is_repeat(order.resource):
            continue
        family = by_product.get(_product_key(order) or "", [order])
        dates = [d for o in family if is_repeat(o.resource) and (d := _issued_on(o.resource))]
        if dates:
            months = months_between(min(dates), today)
            if months > months_on_repeat:
                months_on_repeat = months
            repeat_names.append(order.display)
            issued = [d for o in family if o.intent != "plan" and (d := _issued_on(o.resource))]
            if order.origin == "existing" and issued:  # without any issue on record, "not issued" is unknown
                gap = months_between(max(issued), today)
                if gap >= not_issued:
                    not_issued = gap
                    unissued_names.append(order.display)
        if order.origin == "draft":
            linked = bool(order.resource.get("basedOn") or order.resource.get("priorPrescription"))
            if linked or _product_key(order) in existing_repeats:
                reauthorised = True
                expiries = [d for o in family if (d := _expiry(o.resource))]
                if expiries and max(expiries) < today:
                    past_expiry = True
            issued_now = _issued_on(order.resource) or today
            for previous in family:
                if previous is order or previous.origin == "draft":
                    continue
                start, days = _issued_on(previous.resource), _supply_days(previous)
                if start and days and start <= issued_now:
                    runs_out = start + timedelta(days=float(days))
                    ahead = working_days_between(issued_now, runs_out)
                    if ahead > early:
                        early = ahead
                        early_names = [order.display]

    total = ome.total_max
    before = ome_before.total_max if ome_before is not None else total
    draft_ome = sum((o.ome_max for o in current if o.origin == "draft" and o.counted and o.ome_max), Decimal(0))
    summary = {
        "kind": "summary",
        "hook": hook,
        "total_ome_mg_per_day": float(total),
        "total_ome_mg_per_day_min": float(ome.total_min),
        "ome_complete": ome.complete,
        "ome_before_drafts": float(before),
        "draft_ome_mg_per_day": float(draft_ome),
        "has_draft_opioid": any(o.origin == "draft" for o in opioids),
        "has_opioid": bool(opioids),
        "has_strong_opioid": bool(strong),
        "has_weak_opioid": bool(weak),
        "regular_strong_opioid_count": len(regular_strong),
        "max_mr_orders_per_ingredient": max(mr_counts.values(), default=0),
        "has_ir_fentanyl": any("immediate-release-fentanyl" in k for k in classes_of),
        "has_gabapentinoid": "gabapentinoid" in sedatives,
        "has_benzodiazepine": "benzodiazepine" in sedatives,
        "has_z_drug": "z-drug" in sedatives,
        "sedative_class_count": len(sedatives),
        "has_opioid_substitution": any("opioid-substitution" in k for k in classes_of),
        "has_palliative_context": palliative,
        "palliative_suppression": palliative and bool(settings["suppress_in_palliative_care"]),
        "is_pregnant": pregnant,
        "has_opioid_dependence": dependence,
        "risk_factor_count": len(risk_factors),
        "age_years": age,
        "months_on_repeat_opioid": months_on_repeat,
        "opioid_repeat_being_reauthorised": reauthorised,
        "months_since_medication_review": months_since_review,
        "opioid_repeat_past_expiry": past_expiry,
        "early_request_working_days": early,
        "repeat_opioid_not_issued_months": not_issued,
    }
    order_facts, refs = [], {}
    for ref, order in enumerate(current):
        product = order.product
        refs[ref] = order
        order_facts.append(
            {
                "kind": "order",
                "ref": ref,
                "ingredient": product.ingredient if product else "",
                "is_draft": order.origin == "draft",
                "is_opioid": order.is_opioid,
                "is_repeat": is_repeat(order.resource),
                "is_prn": order.prn and not order.regular,
                "is_ir_fentanyl": bool(product and "immediate-release-fentanyl" in product.classes),
                "release": product.release if product else "",
                "route": product.route if product else "",
            }
        )
    sedative_names = {"gabapentinoid": "a gabapentinoid", "benzodiazepine": "a benzodiazepine", "z-drug": "a Z-drug"}
    duplicate = max(mr_counts, key=lambda k: mr_counts[k]) if mr_counts else ""
    values = {
        "total_ome": f"{total:.0f}",
        "total_ome_min": f"{ome.total_min:.0f}",
        "before": f"{before:.0f}",
        "ingredients": _join(strong + [w for w in weak if w not in strong], 40),
        "classes": _join([sedative_names[c] for c in sedatives], 48),
        "sedative_drugs": _join(
            sorted({o.product.ingredient for o in current if o.product and o.product.classes & set(SEDATIVE_CLASSES)}),
            30,
        ),
        "months": str(min(months_on_repeat, 999)),
        "review_age": "the last 999+ months" if not last_review else f"{months_since_review} months",
        "last_review": last_review.isoformat() if last_review else "none coded",
        "days_early": str(min(early, 999)),
        "not_issued_months": str(min(not_issued, 999)),
        "repeat_orders": _join(sorted(set(repeat_names)), 48) or "An opioid",
        "early_orders": _join(early_names, 48) or "An opioid",
        "unissued_orders": _join(sorted(set(unissued_names)), 48) or "An opioid",
        "duplicate_ingredient": duplicate[:20],
    }
    if not last_review:
        values["review_age"] = "the record"
    return RequestFacts(summary, order_facts, values, risk_factors, refs)
