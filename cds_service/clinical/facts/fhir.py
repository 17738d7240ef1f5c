"""Reading what the facts need from raw FHIR resources: dates, codes, statuses, repeats and supplies."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from cds_service.clinical.dosage import DosageError, daily_dosage
from cds_service.clinical.ome import OrderOme
from cds_service.clinical.units import days_per, quantity_value

REPEAT_INFO_URL = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-MedicationRepeatInformation"
REPEAT_COURSES = {"continuous", "continuous-repeating-dispensing"}
REPEAT_INTENTS = {"plan", "original-order", "instance-order", "reflex-order"}
INACTIVE_CONDITION = {"inactive", "remission", "resolved"}
UNCONFIRMED = {"refuted", "entered-in-error"}
NOT_RECORDED = {"entered-in-error", "cancelled", "not-done"}
EVENT_DATES = ("performedDateTime", "effectiveDateTime", "issued", "recordedDate", "onsetDateTime")
EVENT_PERIODS = ("performedPeriod", "effectivePeriod")


def parse_date(value: Any) -> date | None:
    """A FHIR date or dateTime as a date (a year alone: 1 July; a year and month: the 15th), else None."""
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
    """Whole calendar months from ``earlier`` to ``later``."""
    months = (later.year - earlier.year) * 12 + later.month - earlier.month
    return months - (1 if later.day < earlier.day else 0)


def working_days_between(start: date, end: date) -> int:
    """Weekdays after ``start`` up to and including ``end`` (0 when end is not after start)."""
    if end <= start:
        return 0
    weeks, rest = divmod((end - start).days, 7)
    return weeks * 5 + sum((start + timedelta(days=i)).weekday() < 5 for i in range(1, rest + 1))


def codes(concept: Any) -> frozenset[str]:
    """The codes of a CodeableConcept (any system)."""
    if not isinstance(concept, dict):
        return frozenset()
    return frozenset(str(c.get("code")) for c in concept.get("coding") or [] if isinstance(c, dict) and c.get("code"))


def _status_code(concept: Any) -> str | None:
    found = codes(concept)
    return next(iter(found)) if found else None


def condition_current(resource: dict[str, Any]) -> bool:
    """A Condition that is confirmed (not refuted, not in error) and not inactive, in remission or resolved."""
    if _status_code(resource.get("verificationStatus")) in UNCONFIRMED:
        return False
    return _status_code(resource.get("clinicalStatus")) not in INACTIVE_CONDITION


def recorded(resource: dict[str, Any]) -> bool:
    """A resource that records something that happened (not refuted, in error, cancelled or not done)."""
    return (
        _status_code(resource.get("verificationStatus")) not in UNCONFIRMED
        and resource.get("status") not in NOT_RECORDED
    )


def event_date(resource: dict[str, Any]) -> date | None:
    """When an Observation, Procedure or Condition happened (the first date it carries)."""
    for key in EVENT_DATES:
        if (found := parse_date(resource.get(key))) is not None:
            return found
    for key in EVENT_PERIODS:
        period = resource.get(key)
        if isinstance(period, dict) and (found := parse_date(period.get("start"))) is not None:
            return found
    return None


def _has_repeat_extension(resource: dict[str, Any]) -> bool:
    return any(isinstance(e, dict) and e.get("url") == REPEAT_INFO_URL for e in resource.get("extension") or [])


def _repeats_allowed(resource: dict[str, Any]) -> bool:
    dispense = resource.get("dispenseRequest")
    repeats = dispense.get("numberOfRepeatsAllowed") if isinstance(dispense, dict) else None
    return isinstance(repeats, int) and not isinstance(repeats, bool) and repeats > 0


def is_repeat(resource: dict[str, Any]) -> bool:
    """A repeat by UK Core courseOfTherapyType, its repeat extension, EPS intent, basedOn or repeats allowed."""
    course = codes(resource.get("courseOfTherapyType"))
    if course & REPEAT_COURSES:
        return True
    if "acute" in course:
        return False
    if _has_repeat_extension(resource) or resource.get("intent") in REPEAT_INTENTS or resource.get("basedOn"):
        return True
    return _repeats_allowed(resource)


def expiry(resource: dict[str, Any]) -> date | None:
    """The authorisation expiry date of a UK Core repeat, if it has one."""
    for extension in resource.get("extension") or []:
        if isinstance(extension, dict) and extension.get("url") == REPEAT_INFO_URL:
            for part in extension.get("extension") or []:
                if isinstance(part, dict) and part.get("url") == "authorisationExpiryDate":
                    return parse_date(part.get("valueDateTime"))
    return None


def issued_on(resource: dict[str, Any]) -> date | None:
    """When an order was issued: authoredOn, else the start of its validity period."""
    dispense = resource.get("dispenseRequest")
    period = dispense.get("validityPeriod") if isinstance(dispense, dict) else None
    return parse_date(resource.get("authoredOn")) or (
        parse_date(period.get("start")) if isinstance(period, dict) else None
    )


def own_units_per_day(order: OrderOme) -> Decimal | None:
    """Units (tablets, ml, patches…) a day by the order's own dosage, highest reading; None when it cannot be read.

    For an issue that was never quantified (history): its dose lines, in the product's units. A dose only estimated
    from the quantity supplied is no use here (it would measure the supply by itself).
    """
    if order.units_per_day_max:
        return order.units_per_day_max
    product = order.product
    if product is None:
        return None
    try:
        dosage = daily_dosage(order.resource)
    except DosageError:
        return None
    if dosage.basis == "dispense quantity":
        return None
    total = Decimal(0)
    for line in dosage.lines:
        amount = line.daily
        if amount.unit in ("unit", "ml"):
            total += amount.high
        elif amount.unit == "mg" and (per_unit := product.mg_per("ml" if product.per_unit == "ml" else "unit")):
            total += amount.high / per_unit
        else:
            return None
    return total or None


def supply_days(order: OrderOme, units_per_day: Decimal | None = None) -> Decimal | None:
    """Days a supply lasts: expectedSupplyDuration (or a dispense's daysSupply), else quantity / units per day.

    Units per day: ``units_per_day`` when given (the current order of the same product), else the order's own.
    """
    dispense = order.resource.get("dispenseRequest")
    if not isinstance(dispense, dict):
        return None
    duration = dispense.get("expectedSupplyDuration")
    if isinstance(duration, dict) and (length := quantity_value(duration.get("value"))) is not None:
        per = days_per(duration.get("code") or duration.get("unit") or "d")
        if per:
            return length * per
    quantity = dispense.get("quantity")
    supplied = quantity_value(quantity.get("value")) if isinstance(quantity, dict) else None
    per_day = units_per_day or own_units_per_day(order)
    if supplied is not None and per_day:
        return supplied / per_day
    return None


def product_key(order: OrderOme) -> str | None:
    """Orders with the same key are the same product: ingredient, strength, release and route."""
    product = order.product
    if product is None:
        return None
    return f"{product.ingredient}|{product.strength_mg}|{product.release}|{product.route}"
