"""Dosage -> amount per day (min and max), from structured FHIR Dosage or UK free text.

Each dosageInstruction is one line; lines add up (a regular line and a PRN line). A regular line counts from
its lowest to its highest reading (``doseRange``, ``frequencyMax``, ``periodMax``). A PRN line counts 0 at the
least and its permitted maximum at the most (``maxDosePerPeriod``, a stated maximum, or the frequency), so the
maximum total is the conservative figure used for alerts. Amounts keep their unit: "unit" (one tablet,
capsule, patch, dose…), "ml", "mg", or "mcg/h" (a patch rate). ``dispenseRequest.quantity`` divided by
``expectedSupplyDuration`` is the last resort. Pure: works on the raw dict, Decimal arithmetic.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from cds_service.clinical.units import DAYS_PER, MASS_TO_MG, days_per
from cds_service.errors import DosageError

# HL7 v3 GTSAbbreviation (FHIR timing-abbreviation) -> administrations per day.
TIMING_CODES = {
    "BID": Decimal(2),
    "TID": Decimal(3),
    "QID": Decimal(4),
    "QD": Decimal(1),
    "QOD": Decimal("0.5"),
    "AM": Decimal(1),
    "PM": Decimal(1),
    "BED": Decimal(1),
    "WK": Decimal(1) / 7,
    "MO": Decimal(1) / 30,
    "Q1H": Decimal(24),
    "Q2H": Decimal(12),
    "Q3H": Decimal(8),
    "Q4H": Decimal(6),
    "Q6H": Decimal(4),
    "Q8H": Decimal(3),
    "Q12H": Decimal(2),
    "Q24H": Decimal(1),
}
VOLUME_UNITS = {"ml": Decimal(1), "millilitre": Decimal(1), "milliliter": Decimal(1), "l": Decimal(1000)}
RATE_UNITS = {"ug/h", "mcg/h", "ug/hr", "mcg/hr", "microgram/hour", "micrograms/hour", "µg/h"}


@dataclass(frozen=True)
class Amount:
    """An amount per day of one unit: unit (presentation units), ml, mg, or mcg/h (patch rate worn)."""

    low: Decimal
    high: Decimal
    unit: str

    def __add__(self, other: Amount) -> Amount:
        assert self.unit == other.unit
        return Amount(self.low + other.low, self.high + other.high, self.unit)


@dataclass
class DoseLine:
    """One instruction: dose per administration, administrations per day, and whether it is as needed."""

    dose_low: Decimal
    dose_high: Decimal
    unit: str
    per_day_low: Decimal
    per_day_high: Decimal
    prn: bool
    cap_per_day: Decimal | None = None  # maxDosePerPeriod / "max N in 24 hours", in ``unit``
    basis: str = "structured"
    text: str = ""

    @property
    def daily(self) -> Amount:
        high = self.dose_high * self.per_day_high
        if self.cap_per_day is not None:
            high = min(high, self.cap_per_day) if self.per_day_high > 0 else self.cap_per_day
        low = Decimal(0) if self.prn else min(self.dose_low * self.per_day_low, high)
        return Amount(low, high, self.unit)


@dataclass
class DailyDosage:
    lines: list[DoseLine] = field(default_factory=list)
    basis: str = "structured"  # structured | text | dispense quantity
    notes: list[str] = field(default_factory=list)


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        return None
    return result if result.is_finite() and result >= 0 else None


def normalise_unit(raw: Any) -> str:
    """A dose unit as one of: unit | ml | mg | mcg/h (mass units are converted to mg by ``to_mg``)."""
    text = str(raw or "").strip().lower().strip("{}")
    text = re.sub(r"\s+", " ", text)
    if text in RATE_UNITS or re.fullmatch(r"(micrograms?|mcg|ug|µg)\s*/\s*(hour|hr|h)", text):
        return "mcg/h"
    if text in MASS_TO_MG:
        return text
    if text in VOLUME_UNITS or text in ("ml(s)", "mls"):
        return "ml"
    return "unit"  # tablet, capsule, patch, puff, spray, suppository, sachet, 1, "" …


def _quantity(quantity: Any) -> tuple[Decimal, str] | None:
    if not isinstance(quantity, dict):
        return None
    value = _decimal(quantity.get("value"))
    if value is None:
        return None
    return value, normalise_unit(quantity.get("code") or quantity.get("unit"))


def _mass_to_mg(value: Decimal, unit: str) -> tuple[Decimal, str]:
    if unit in MASS_TO_MG:
        return value * MASS_TO_MG[unit], "mg"
    return value, unit


def _dose(dosage: dict[str, Any]) -> tuple[Decimal, Decimal, str] | None:
    for dose_and_rate in dosage.get("doseAndRate") or []:
        if not isinstance(dose_and_rate, dict):
            continue
        if (found := _quantity(dose_and_rate.get("doseQuantity"))) is not None:
            value, unit = _mass_to_mg(*found)
            return value, value, unit
        dose_range = dose_and_rate.get("doseRange")
        if isinstance(dose_range, dict):
            low, high = _quantity(dose_range.get("low")), _quantity(dose_range.get("high"))
            if low and high:
                lo, lo_unit = _mass_to_mg(*low)
                hi, hi_unit = _mass_to_mg(*high)
                if lo_unit == hi_unit and lo <= hi:
                    return lo, hi, lo_unit
            if high and not low:
                hi, unit = _mass_to_mg(*high)
                return hi, hi, unit
    return None


def _per_day(timing: Any) -> tuple[Decimal, Decimal] | None:
    """(lowest, highest) administrations per day of a Timing."""
    if not isinstance(timing, dict):
        return None
    repeat = timing["repeat"] if isinstance(timing.get("repeat"), dict) else {}
    frequency = _decimal(repeat.get("frequency"))
    frequency_max = _decimal(repeat.get("frequencyMax"))
    period = _decimal(repeat.get("period"))
    period_max = _decimal(repeat.get("periodMax"))
    unit = repeat.get("periodUnit")
    if period is not None and period > 0 and unit in DAYS_PER:
        days = period * DAYS_PER[unit]
        days_max = period_max * DAYS_PER[unit] if period_max and period_max > 0 else days
        low_frequency = frequency if frequency is not None else Decimal(1)
        high_frequency = frequency_max if frequency_max is not None else low_frequency
        return low_frequency / days_max, high_frequency / days
    occasions = len(repeat.get("timeOfDay") or []) or len(repeat.get("when") or [])
    if occasions:
        return Decimal(occasions), Decimal(occasions)
    code = timing.get("code")
    if isinstance(code, dict):
        for coding in code.get("coding") or []:
            if isinstance(coding, dict) and str(coding.get("code", "")).upper() in TIMING_CODES:
                per_day = TIMING_CODES[str(coding["code"]).upper()]
                return per_day, per_day
        if isinstance(code.get("text"), str) and (parsed := frequency_from_text(code["text"])) is not None:
            return parsed[0], parsed[1]
    if frequency is not None and unit is None and period is None:
        return None  # a frequency with no period says nothing about a day
    return None


def _cap(dosage: dict[str, Any], unit: str) -> Decimal | None:
    ratio = dosage.get("maxDosePerPeriod")
    if isinstance(ratio, list):  # R5 / some clients send a list
        ratio = ratio[0] if ratio else None
    if not isinstance(ratio, dict):
        return None
    numerator = _quantity(ratio.get("numerator"))
    denominator = ratio["denominator"] if isinstance(ratio.get("denominator"), dict) else {}
    if numerator is None:
        return None
    amount, amount_unit = _mass_to_mg(*numerator)
    if amount_unit != unit:
        return None
    period = _decimal(denominator.get("value")) or Decimal(1)
    days = days_per(denominator.get("code") or denominator.get("unit") or "d")
    if days is None or period <= 0:
        return None
    return amount / (period * days)


def _as_needed(dosage: dict[str, Any]) -> bool:
    if dosage.get("asNeededBoolean") is True:
        return True
    return isinstance(dosage.get("asNeededCodeableConcept"), dict)


def structured_line(dosage: dict[str, Any]) -> DoseLine | None:
    """One structured Dosage, or None when it lacks a dose or a frequency."""
    dose = _dose(dosage)
    per_day = _per_day(dosage.get("timing"))
    prn = _as_needed(dosage)
    if dose is None:
        return None
    low, high, unit = dose
    cap = _cap(dosage, unit)
    if per_day is None:
        if prn and cap is not None:
            return DoseLine(low, high, unit, Decimal(0), Decimal(0), True, cap)
        return None
    return DoseLine(low, high, unit, per_day[0], per_day[1], prn, cap)


# --- Free text -------------------------------------------------------------------------------------------------
_WORD_NUMBERS = {
    "half": "0.5",
    "a half": "0.5",
    "one": "1",
    "a": "1",
    "an": "1",
    "single": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
    "eleven": "11",
    "twelve": "12",
    "fifteen": "15",
    "twenty": "20",
}
_NUM = r"(\d+(?:\.\d+)?)"
_DOSE_UNIT = (
    r"(tablets?|tabs?|caplets?|capsules?|caps?|patch(?:es)?|ml|mls|millilitres?|mg|milligrams?|"
    r"micrograms?|mcg|g|sachets?|suppositor(?:y|ies)|lozenges?|puffs?|sprays?|doses?|films?|drops?|"
    r"spoonfuls?|units?|lollipops?)"
)
_DOSE = re.compile(rf"{_NUM}(?:\s*(?:-|to|or)\s*{_NUM})?\s*(?:x\s*)?{_DOSE_UNIT}?", re.IGNORECASE)
_PRN = re.compile(
    r"\b(when required|when needed|as required|as needed|if required|if needed|when necessary|"
    r"prn|p\.r\.n\.?|if necessary|for pain|for breakthrough)\b",
    re.IGNORECASE,
)
_CAP = re.compile(
    rf"\b(?:max(?:imum)?\.?|no more than|not more than|not to exceed|up to)\s*(?:of\s*)?{_NUM}\s*{_DOSE_UNIT}?\s*"
    r"(?:in|per|a|each|every|in any)\s*(?:24\s*(?:hours?|hrs?|h)|day|days)\b",
    re.IGNORECASE,
)
_FREQUENCIES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], tuple[Decimal, Decimal]]], ...] = (
    (
        re.compile(r"\bevery\s+(\d+(?:\.\d+)?)\s*(?:-|to)\s*(\d+(?:\.\d+)?)\s*(?:hours?|hrs?|h)\b", re.I),
        lambda m: (Decimal(24) / Decimal(m[2]), Decimal(24) / Decimal(m[1])),
    ),
    (
        re.compile(r"\b(?:every|each)\s+(\d+(?:\.\d+)?)\s*(?:hours?|hrs?|h)\b|\bq(\d+)h\b", re.I),
        lambda m: (Decimal(24) / Decimal(m[1] or m[2]),) * 2,
    ),
    (re.compile(r"\b(?:every|each)\s+(\d+(?:\.\d+)?)\s*days?\b", re.I), lambda m: (1 / Decimal(m[1]),) * 2),
    (re.compile(r"\b(?:every|each)\s+(\d+(?:\.\d+)?)\s*weeks?\b", re.I), lambda m: (1 / (7 * Decimal(m[1])),) * 2),
    (re.compile(r"\b(?:once a week|once weekly|every week|weekly)\b", re.I), lambda m: (Decimal(1) / 7,) * 2),
    (re.compile(r"\b(?:every other day|alternate days|on alternate days)\b", re.I), lambda m: (Decimal("0.5"),) * 2),
    (
        re.compile(r"\b(\d+)\s*(?:-|to)\s*(\d+)\s*times\s*(?:a|per|each)?\s*(?:day|daily)\b", re.I),
        lambda m: (Decimal(m[1]), Decimal(m[2])),
    ),
    (re.compile(r"\b(\d+)\s*times\s*(?:a|per|each)?\s*(?:day|daily)\b", re.I), lambda m: (Decimal(m[1]),) * 2),
    (re.compile(r"\b(?:four times|qds|q\.d\.s\.?|qid)\b", re.I), lambda m: (Decimal(4),) * 2),
    (re.compile(r"\b(?:three times|tds|t\.d\.s\.?|tid)\b", re.I), lambda m: (Decimal(3),) * 2),
    (
        re.compile(r"\b(?:twice|bd|b\.d\.?|bid|morning and (?:night|evening)|night and morning)\b", re.I),
        lambda m: (Decimal(2),) * 2,
    ),
    (
        re.compile(
            r"\b(?:once|daily|od|o\.d\.?|each day|every day|a day|at night|at bedtime|nocte|mane|"
            r"in the morning|each morning|every morning|each night|every night|every evening|in the evening|"
            r"on)\b",
            re.I,
        ),
        lambda m: (Decimal(1),) * 2,
    ),
)


_NUMBER_WORDS = r"\b(" + "|".join(sorted(map(re.escape, _WORD_NUMBERS), key=len, reverse=True)) + r")\b"
# Only number words followed by a dose unit or a number are numbers ("a day" stays as it is).
_NUMBER_WORD_BEFORE_DOSE = re.compile(
    _NUMBER_WORDS + r"(?=\s*(?:-|to|or)?\s*(?:\d|one|two|three|four)?\s*" + _DOSE_UNIT + r"?\b)", re.IGNORECASE
)
_NUMBER_WORD_BEFORE_TIMES = re.compile(r"\b(one|two|three|four|five|six)\s*(?=times)", re.IGNORECASE)


def _words_to_numbers(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        word = match.group(0).lower()
        return match.group(0) if word in ("a", "an") else _WORD_NUMBERS[word]

    text = _NUMBER_WORD_BEFORE_DOSE.sub(replace, text)
    return _NUMBER_WORD_BEFORE_TIMES.sub(replace, text)


def frequency_from_text(text: str) -> tuple[Decimal, Decimal] | None:
    for pattern, per_day in _FREQUENCIES:
        if match := pattern.search(text):
            return per_day(match)
    return None


def text_line(text: str) -> DoseLine:
    """Read UK free-text dosage ("1-2 tablets up to four times a day when required"); DosageError if it cannot."""
    original = " ".join(text.split())
    if not original:
        raise DosageError("no dosage text")
    lowered = _words_to_numbers(original.lower())
    if re.search(r"\bas directed\b|\bas advised\b|\bas per\b|\bsee (?:label|instructions)\b", lowered) and not (
        re.search(r"\d", lowered)
    ):
        raise DosageError(f'dose "{original}" cannot be quantified')
    prn = bool(_PRN.search(lowered))
    cap_match = _CAP.search(lowered)
    cap_text_span = cap_match.span() if cap_match else None
    up_to = re.search(r"\bup to\s*(\d+)\s*times\b", lowered)
    if cap_match and not re.search(r"(hours?|hrs?|h|day|days)\b", cap_match.group(0)):
        cap_match = None
    body = lowered if cap_text_span is None else lowered[: cap_text_span[0]] + lowered[cap_text_span[1] :]
    body_for_dose = re.sub(
        r"\bevery\s+\d+(?:\.\d+)?\s*(?:-|to)?\s*\d*(?:\.\d+)?\s*(?:hours?|hrs?|h|days?|weeks?)\b", " ", body
    )
    body_for_dose = re.sub(r"\b\d+\s*(?:-|to)?\s*\d*\s*times\b", " ", body_for_dose)
    # Durations are not doses: "for 10 days", "x 5 days", "for 2 weeks".
    body_for_dose = re.sub(r"\b(?:for|x)\s*\d+(?:\.\d+)?\s*(?:days?|weeks?|months?)\b", " ", body_for_dose)
    body_for_dose = re.sub(r"\b(?:in|per|within)\s*24\s*(?:hours?|hrs?)\b", " ", body_for_dose)
    dose_match = _DOSE.search(body_for_dose)
    if dose_match is None:
        raise DosageError(f'no dose in "{original}"')
    dose_low = Decimal(dose_match.group(1))
    dose_high = Decimal(dose_match.group(2)) if dose_match.group(2) else dose_low
    unit = normalise_unit(_singular(dose_match.group(3) or ""))
    dose_low, _ = _mass_to_mg(dose_low, unit)
    dose_high, unit = _mass_to_mg(dose_high, unit)
    per_day: tuple[Decimal, Decimal] | None
    if up_to:
        per_day = (Decimal(up_to.group(1)), Decimal(up_to.group(1)))
        prn = True if not re.search(r"\bregular", lowered) else prn
    else:
        per_day = frequency_from_text(body)
    cap = None
    if cap_match:
        cap_value = Decimal(cap_match.group(1))
        cap_unit = normalise_unit(_singular(cap_match.group(2) or "")) if cap_match.group(2) else unit
        cap_value, cap_unit = _mass_to_mg(cap_value, cap_unit)
        if cap_unit == unit:  # a maximum in another unit than the dose is not applied
            cap = cap_value
    if per_day is None:
        if cap is not None:
            return DoseLine(dose_low, dose_high, unit, Decimal(0), Decimal(0), True, cap, "text", original)
        raise DosageError(f'no frequency in "{original}"')
    return DoseLine(dose_low, dose_high, unit, per_day[0], per_day[1], prn, cap, "text", original)


def _singular(unit: str) -> str:
    unit = unit.lower()
    return {
        "mls": "ml",
        "millilitre": "ml",
        "millilitres": "ml",
        "milligram": "mg",
        "milligrams": "mg",
        "micrograms": "microgram",
    }.get(unit, unit)


def dispense_line(resource: dict[str, Any]) -> DoseLine | None:
    """Quantity supplied / expected supply duration, when that is all there is."""
    dispense = resource.get("dispenseRequest")
    if not isinstance(dispense, dict):
        return None
    quantity = _quantity(dispense.get("quantity"))
    duration = dispense.get("expectedSupplyDuration")
    days_value = _decimal(duration.get("value")) if isinstance(duration, dict) else None
    if quantity is None or not days_value or not isinstance(duration, dict):  # a value implies a dict
        return None
    days = days_per(duration.get("code") or duration.get("unit") or "d")
    if days is None:
        return None
    amount, amount_unit = _mass_to_mg(*quantity)
    per_day = amount / (days_value * days)
    return DoseLine(per_day, per_day, amount_unit, Decimal(1), Decimal(1), False, None, "dispense quantity")


def daily_dosage(resource: dict[str, Any]) -> DailyDosage:
    """All dose lines of a MedicationRequest; DosageError when none can be read."""
    dosages = [d for d in resource.get("dosageInstruction") or [] if isinstance(d, dict)]
    result = DailyDosage()
    problems: list[str] = []
    for dosage in dosages:
        line = structured_line(dosage)
        if line is None and isinstance(dosage.get("text"), str) and dosage["text"].strip():
            try:
                line = text_line(dosage["text"])
                result.basis = "text"
            except DosageError as exc:
                problems.append(str(exc))
                continue
        elif line is None:
            problems.append("a dosage line has no dose and frequency")
            continue
        if line.prn is False and _as_needed(dosage):
            line.prn = True
        result.lines.append(line)
    if problems:
        if result.lines:
            raise DosageError("; ".join(problems) + " (other lines were read, but the total would be too low)")
        fallback = dispense_line(resource)
        if fallback is None:
            raise DosageError("; ".join(problems))
        result.lines = [fallback]
        result.basis = "dispense quantity"
        result.notes.append("; ".join(problems) + ": dose estimated from the quantity supplied")
    if not result.lines:
        fallback = dispense_line(resource)
        if fallback is None:
            raise DosageError("no dosage instructions")
        result.lines = [fallback]
        result.basis = "dispense quantity"
        result.notes.append("no dosage: estimated from the quantity supplied")
    return result
