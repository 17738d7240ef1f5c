"""Units the clinical core reads: masses to milligrams, and periods to days (UCUM codes and their words).

One table each, shared by dosage text and structured doses, product names and identification, and supply lengths.
Sources: UCUM (https://ucum.org/ucum) for the codes, FHIR R4 ``UnitsOfTime`` (s | min | h | d | wk | mo | a);
a month is counted as 30 days and a year as 365, as dm+d pack sizes and UK 28/30-day supplies assume.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

# A mass unit (as written in dm+d names, FHIR Quantity units and free text) -> milligrams.
MASS_TO_MG: dict[str, Decimal] = {
    "mg": Decimal(1),
    "milligram": Decimal(1),
    "milligrams": Decimal(1),
    "g": Decimal(1000),
    "gram": Decimal(1000),
    "grams": Decimal(1000),
    "microgram": Decimal("0.001"),
    "micrograms": Decimal("0.001"),
    "mcg": Decimal("0.001"),
    "µg": Decimal("0.001"),
    "ug": Decimal("0.001"),
    "nanogram": Decimal("0.000001"),
    "nanograms": Decimal("0.000001"),
}

# FHIR UnitsOfTime (UCUM) -> days.
DAYS_PER: dict[str, Decimal] = {
    "s": Decimal(1) / Decimal(86400),
    "min": Decimal(1) / Decimal(1440),
    "h": Decimal(1) / Decimal(24),
    "d": Decimal(1),
    "wk": Decimal(7),
    "mo": Decimal(30),
    "a": Decimal(365),
}

# Words for a period, as Duration.unit and free text carry them -> the UCUM code.
PERIOD_WORDS: dict[str, str] = {
    "second": "s",
    "seconds": "s",
    "minute": "min",
    "minutes": "min",
    "hour": "h",
    "hours": "h",
    "hr": "h",
    "day": "d",
    "days": "d",
    "week": "wk",
    "weeks": "wk",
    "month": "mo",
    "months": "mo",
    "year": "a",
    "years": "a",
}


def non_negative_decimal(value: object, below: Decimal | None = None) -> Decimal | None:
    """A number or numeric text as a finite, non-negative Decimal (below ``below`` when given); None otherwise.
    A bool is never a number here."""
    if value is None or isinstance(value, bool):
        return None
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        return None
    if not result.is_finite() or result < 0 or (below is not None and result >= below):
        return None
    return result


def quantity_value(value: object) -> Decimal | None:
    """A FHIR Quantity.value as a finite, non-negative Decimal; None for anything else (a bool, a string, NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = Decimal(str(value))
    return number if number.is_finite() and number >= 0 else None


def days_per(unit: object) -> Decimal | None:
    """Days in one ``unit`` (a UCUM code or its word, any case); None when it is not a period."""
    if not isinstance(unit, str):
        return None
    code = unit.strip().lower()
    return DAYS_PER.get(PERIOD_WORDS.get(code, code))
