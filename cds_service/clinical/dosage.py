"""Dosage -> amount per day (min and max), from structured FHIR Dosage or UK free text.

Each dosageInstruction is one line; lines add up (a regular line and a PRN line). A regular line counts from
its lowest to its highest reading (``doseRange``, ``frequencyMax``, ``periodMax``). A PRN line counts 0 at the
least and its permitted maximum at the most (``maxDosePerPeriod``, a stated maximum, or the frequency), so the
maximum total is the conservative figure used for alerts. Amounts keep their unit: "unit" (one tablet,
capsule, patch, dose…), "ml", "mg", or "mcg/h" (a patch rate). ``dispenseRequest.quantity`` divided by
``expectedSupplyDuration`` is the last resort. Pure: works on the raw dict, Decimal arithmetic.

Free text is read by ``clinical/dosage_text.py``, which accounts for every number: split doses add up, ranges
count their top. A stated maximum lowers the top of an as-needed, "up to" or range dose only: below a fixed regular
dose it contradicts the dose (the dose counts, flagged); above one, written as a maximum, it reads as "up to" the
maximum (flagged). "Repeat", "double dose" and "a further dose" add a dose. A line with a number or frequency it could
not account for is ``uncertain`` (with ``reasons``) and counts its highest plausible reading; those reasons are
added to ``DailyDosage.notes`` (shown with the order). When a Dosage has both a structured dose and a text that
reads differently, the higher counts, flagged the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from cds_service.clinical.units import DAYS_PER, MASS_TO_MG, days_per, non_negative_decimal
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
# No dose, frequency or quantity is this large; larger numbers are not read (the arithmetic and rounding after
# them would overflow Decimal's context). A format limit, not a clinical threshold.
TOO_LARGE = Decimal(10) ** 9
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
    uncertain: bool = False  # a number or frequency in the text was not accounted for: the highest reading counted
    reasons: list[str] = field(default_factory=list)  # why the line is uncertain
    total: tuple[Decimal, Decimal] | None = None  # (low, high) per day when read from text (split doses, caps)
    notes: list[str] = field(default_factory=list)  # how the text was read (not doubts)
    # The text beside a structured dose, read in another unit ("20mg bd" beside "1 tablet"): compared with the
    # product's strength by ``settle_units``; until then the line is uncertain with the ``pending`` reason.
    text_reading: DoseLine | None = None
    pending: str | None = None

    @property
    def daily(self) -> Amount:
        if self.total is not None:
            return Amount(Decimal(0) if self.prn else self.total[0], self.total[1], self.unit)
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

    @property
    def uncertain(self) -> bool:
        """Some line has a number or frequency that was not accounted for (its highest reading was counted)."""
        return any(line.uncertain for line in self.lines)


def _decimal(value: Any) -> Decimal | None:
    return non_negative_decimal(value, TOO_LARGE)


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
    line = DoseLine(low, high, unit, per_day[0], per_day[1], prn, cap)
    _times_of_day_agree(line, dosage.get("timing"))
    _cap_agrees(line)
    return line


def _cap_agrees(line: DoseLine) -> None:
    """A maximum limits only an as-needed or range dose. Below a fixed regular dose it contradicts the dose: the
    dose counts, flagged (never the lower, silently)."""
    cap = line.cap_per_day
    fixed = line.dose_low == line.dose_high and line.per_day_low == line.per_day_high
    if cap is None or line.prn or not fixed:
        return
    regular = line.dose_high * line.per_day_high
    if cap < regular:
        line.uncertain = True
        line.reasons.append(
            f"the maximum dose per period ({_plain(cap)} {line.unit} a day) is below the regular dose "
            f"({_plain(regular)} {line.unit} a day): the regular dose was counted"
        )
        line.cap_per_day = None


def _times_of_day_agree(line: DoseLine, timing: Any) -> None:
    """``when`` / ``timeOfDay`` naming more occasions a day than ``frequency`` says: the occasions count, flagged."""
    repeat = timing.get("repeat") if isinstance(timing, dict) else None
    if not isinstance(repeat, dict) or repeat.get("periodUnit") != "d" or _decimal(repeat.get("period")) != 1:
        return
    times, whens = repeat.get("timeOfDay"), repeat.get("when")
    occasions = Decimal(max(len(times) if isinstance(times, list) else 0, len(whens) if isinstance(whens, list) else 0))
    if occasions > line.per_day_high:
        line.uncertain = True
        line.reasons.append(
            f"timing names {occasions} times of day but a frequency of {_plain(line.per_day_high)}: "
            "the times of day were counted"
        )
        line.per_day_high = occasions
        line.per_day_low = max(line.per_day_low, occasions)


# --- Free text -------------------------------------------------------------------------------------------------
def frequency_from_text(text: str) -> tuple[Decimal, Decimal] | None:
    """Administrations per day a timing text ("twice a day", "every 4-6 hours", "tds") names, or None."""
    from cds_service.clinical.dosage_text import frequency_of

    return frequency_of(text)


def text_line(text: str, default_per_day: tuple[Decimal, Decimal] | None = None) -> DoseLine:
    """Read UK free-text dosage ("1-2 tablets up to four times a day when required"); DosageError if it cannot.

    Every number in the text must be accounted for; when one is not, the line is ``uncertain`` with the reasons,
    and the highest plausible reading is counted (see ``clinical/dosage_text.py``).
    """
    from cds_service.clinical.dosage_text import read_dose_text

    original = " ".join(str(text).split())
    reading = read_dose_text(original, default_per_day)
    dosed = [g for g in reading.groups if g.dose_high is not None]
    dose_low = min((g.dose_low for g in dosed if g.dose_low is not None), default=reading.low)
    dose_high = max((g.dose_high for g in dosed if g.dose_high is not None), default=reading.high)
    per_day_low = Decimal(0) if reading.high == 0 or dose_high == 0 else reading.low / dose_high
    per_day_high = Decimal(0) if dose_high == 0 else reading.high / dose_high
    return DoseLine(
        dose_low,
        dose_high,
        reading.unit,
        per_day_low,
        per_day_high,
        reading.prn,
        reading.cap,
        "text",
        original,
        uncertain=bool(reading.doubts),
        reasons=list(dict.fromkeys(reading.doubts)),
        total=(reading.low, reading.high),
        notes=list(dict.fromkeys(reading.notes)),
    )


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


def _agree(structured: DoseLine, text: str, result: DailyDosage) -> DoseLine:
    """Structured dose and its text: when both read and disagree, the higher counts, flagged uncertain.

    A text in another unit is kept for ``settle_units`` (the product's strength compares them); a text with a
    number that cannot be read flags the line (the structured dose counts, with the reason): never silently."""
    from cds_service.clinical.dosage_text import has_number

    try:
        from_text = text_line(text)
    except DosageError as exc:
        written = frequency_from_text(text)
        if written is not None and written[1] > structured.per_day_high and structured.total is None:
            # "three times a day" beside 1 tablet twice a day: the structured dose at the text's frequency
            structured.uncertain = True
            structured.reasons.append(
                f'the text "{text}" says {_plain(written[1])} times a day and the structured timing '
                f"{_plain(structured.per_day_high)}: the higher was counted"
            )
            structured.per_day_high = written[1]
            return structured
        restates_timing = written is not None and "no dose" in str(exc)
        if has_number(text) and not restates_timing:
            structured.uncertain = True
            structured.reasons.append(f'the text "{text}" could not be read ({exc}): the structured dose was counted')
        return structured  # a text with no dose ("2 times a day for 10 days") restates the timing only
    if from_text.unit != structured.unit:
        # "1 tablet" and "20mg": comparing needs the strength, known where the product is (``settle_units``)
        structured.text_reading = from_text
        structured.pending = (
            f'the text "{from_text.text}" reads {_plain(from_text.daily.high)} {from_text.unit} a day and the '
            f"structured dose {_plain(structured.daily.high)} {structured.unit}: not compared"
        )
        structured.uncertain = True
        structured.reasons = [*structured.reasons, structured.pending]
        return structured
    said, coded = from_text.daily.high, structured.daily.high
    if said == coded:
        return structured
    reason = (
        f'the text "{from_text.text}" reads {_plain(said)} {structured.unit} a day and the structured dose '
        f"{_plain(coded)}: the higher was counted"
    )
    chosen = from_text if said > coded else structured
    chosen.uncertain = True
    chosen.reasons = [*chosen.reasons, reason]
    return chosen


def _note(line: DoseLine, reason: str) -> str:
    return f"uncertain dose ({line.text or 'structured'}): {reason}"


def _mg(amount: Amount, mg_per: Callable[[str], Decimal | None]) -> Decimal | None:
    if amount.unit == "mg":
        return amount.high
    per_unit = mg_per(amount.unit)
    return None if per_unit is None else amount.high * per_unit


def settle_units(dosage: DailyDosage, mg_per: Callable[[str], Decimal | None]) -> None:
    """Structured doses whose text reads in another unit, compared in mg now the product's strength is known
    (``mg_per(unit)``: mg in one unit or ml): equal, the flag goes; different, the higher counts, flagged; not
    comparable (no strength), the structured dose counts and the flag stays."""
    for index, line in enumerate(dosage.lines):
        other, pending = line.text_reading, line.pending
        if other is None or pending is None:
            continue
        line.text_reading = line.pending = None
        structured_mg, text_mg = _mg(line.daily, mg_per), _mg(other.daily, mg_per)
        if structured_mg is None or text_mg is None:
            continue  # the pending reason stays: the line is uncertain
        line.reasons.remove(pending)
        if _note(line, pending) in dosage.notes:
            dosage.notes.remove(_note(line, pending))
        line.uncertain = bool(line.reasons)
        if text_mg == structured_mg:
            continue
        reason = (
            f'the text "{other.text}" reads {_plain(text_mg)} mg a day and the structured dose '
            f"{_plain(structured_mg)} mg: the higher was counted"
        )
        chosen = other if text_mg > structured_mg else line
        chosen.prn = chosen.prn or line.prn
        chosen.uncertain = True
        chosen.reasons = [*chosen.reasons, reason]
        dosage.notes += [_note(chosen, r) for r in chosen.reasons if _note(chosen, r) not in dosage.notes]
        dosage.lines[index] = chosen


def _plain(value: Decimal) -> str:
    try:
        rounded = value.quantize(Decimal("0.01")).normalize()
    except InvalidOperation:  # too many digits to round: say it as it is
        return f"{value:f}"
    return f"{rounded:f}"


def daily_dosage(resource: dict[str, Any]) -> DailyDosage:
    """All dose lines of a MedicationRequest; DosageError when none can be read."""
    dosages = [d for d in resource.get("dosageInstruction") or [] if isinstance(d, dict)]
    result = DailyDosage()
    problems: list[str] = []
    for dosage in dosages:
        line = structured_line(dosage)
        text = dosage["text"] if isinstance(dosage.get("text"), str) and dosage["text"].strip() else None
        if line is None and text is not None:
            try:
                line = text_line(text, _per_day(dosage.get("timing")))
                result.basis = "text"
            except DosageError as exc:
                problems.append(str(exc))
                continue
        elif line is None:
            problems.append("a dosage line has no dose and frequency")
            continue
        elif text is not None:
            line = _agree(line, text, result)
        if line.uncertain:
            result.notes += [f"uncertain dose ({line.text or 'structured'}): {reason}" for reason in line.reasons]
        if line.prn is False and _as_needed(dosage):
            line.prn = True
        if line.text_reading is not None and _as_needed(dosage):
            line.text_reading.prn = True
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
