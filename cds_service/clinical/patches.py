"""A transdermal patch order -> how many patches are worn at once, and how often they are changed.

A patch supply means a patch worn continuously: its OME is its rate (micrograms/hour) x 24 / 1000 mg a day x the
factor, for every patch worn at once, whatever the change interval, the wording or the quantity supplied. So an
order is read for two things only: the number worn together (1 unless the dose says more: "apply TWO patches",
a dose of 2, "50 micrograms/hour" on a 25 patch) and the change interval (for display and for how long a supply
lasts; the product's wear time when the order does not say). A text that says half a patch, or a patch taken off
part of the day ("remove after 12 hours"), is flagged and counted at the full patch, never lower.
Pure: works on the raw dict, Decimal arithmetic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from cds_service.clinical.dosage import normalise_unit
from cds_service.clinical.units import DAYS_PER, MASS_TO_MG

HALF_FLAG = "a part patch? counted as one whole patch"
PART_TIME_FLAG = "patch worn part of the day? counted as worn all day"
MOST_WORN_TOGETHER = Decimal(4)  # a larger number before "patch" is its strength ("apply fentanyl 25 patch")

_WORDS = {"one": "1", "two": "2", "three": "3", "four": "4", "a": "1", "an": "1", "single": "1", "half a": "0.5"}
_WORD = re.compile(
    r"\b(half a|one|two|three|four|single|an?)\b(?=\s+(?:\d+(?:\.\d+)?\s*)?(?:new\s+)?(?:transdermal\s+)?"
    r"(?:patch|\d|micrograms?|mcg))",
    re.IGNORECASE,
)
_RATE = r"(?:micrograms?|mcg|ug|µg)\s*/\s*(?:hour|hr|h)\b"
_COUNT = re.compile(
    rf"(\d+(?:\.\d+)?)(?:\s*(?:-|to|or)\s*(\d+(?:\.\d+)?))?\s*(?:x\s*)?"
    rf"(?:(\d+(?:\.\d+)?)\s*(?:{_RATE}|micrograms?|mcg)?\s*)?(?:new\s+)?(?:transdermal\s+)?patch(?:es)?\b",
    re.IGNORECASE,
)
# "apply 1 every 7 days": a bare number after the verb is the number of patches.
_APPLY = re.compile(
    r"\b(?:apply|change|replace|use|put on|wear)\s+(\d+(?:\.\d+)?)(?:\s*(?:-|to|or)\s*(\d+(?:\.\d+)?))?\b"
    r"(?!\s*(?:micrograms?|mcg|ug|µg|hours?|hrs?|h\b|days?|weeks?|%|/))",
    re.IGNORECASE,
)
_STATED_RATE = re.compile(rf"(\d+(?:\.\d+)?)\s*{_RATE}", re.IGNORECASE)
_ORDINALS = {"second": 2, "other": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7}
_INTERVALS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b(?:every|each)\s+(\d+(?:\.\d+)?)\s*(?:hours?|hrs?|h)\b|\bq(\d+)h\b", re.I), "hours"),
    (re.compile(r"\b(?:every|each)\s+(\d+(?:\.\d+)?)\s*days?\b", re.I), "days"),
    (re.compile(r"\b(?:every|each)\s+(\d+(?:\.\d+)?)\s*weeks?\b", re.I), "weeks"),
    (re.compile(r"\b(?:every|each)\s+(second|other|third|fourth|fifth|sixth|seventh)\s+day\b", re.I), "ordinal"),
    (re.compile(r"\b(?:twice|two times)\s+(?:a\s+|per\s+|each\s+)?week(?:ly)?\b", re.I), "twice weekly"),
    (re.compile(r"\b(?:once a week|once weekly|every week|each week|weekly)\b", re.I), "weekly"),
    (re.compile(r"\b(?:daily|every day|each day|once a day|every 24 hours)\b", re.I), "daily"),
)
_PART = re.compile(r"\b(half|½|quarter|cut)\b|(?<!\d)0?\.5\s*(?:of\s+a\s+)?patch", re.IGNORECASE)
_PART_TIME = re.compile(
    r"\bremove\w*\b[^.;]*?\bafter\s+(\d+(?:\.\d+)?)\s*(?:hours?|hrs?|h)\b"
    r"|\b(?:wear|worn|leave|left)\s+(?:on\s+)?(?:it\s+)?for\s+(\d+(?:\.\d+)?)\s*(?:hours?|hrs?|h)\b"
    r"|\b(\d+(?:\.\d+)?)\s*(?:hours?|hrs?|h)\s+on\b|\bpatch[- ]free\b|\b(?:hours?|hrs?|h)\s+off\b",
    re.IGNORECASE,
)


@dataclass
class PatchDose:
    worn_low: Decimal
    worn_high: Decimal
    change_hours: Decimal | None  # as the order says, else the product's wear time, else None
    basis: str  # structured | text | one patch worn (no dose stated)
    flags: list[str] = field(default_factory=list)


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        return None
    return result if result.is_finite() and result >= 0 else None


def _structured_count(dosage: dict[str, Any], rate: Decimal, flags: list[str]) -> tuple[Decimal, Decimal] | None:
    entries = dosage.get("doseAndRate")
    for dose_and_rate in entries if isinstance(entries, list) else []:
        if not isinstance(dose_and_rate, dict):
            continue
        quantities = []
        if isinstance(dose_and_rate.get("doseQuantity"), dict):
            quantities = [dose_and_rate["doseQuantity"]] * 2
        elif isinstance(dose_and_rate.get("doseRange"), dict):
            low, high = dose_and_rate["doseRange"].get("low"), dose_and_rate["doseRange"].get("high")
            quantities = [low if isinstance(low, dict) else high, high if isinstance(high, dict) else low]
        counts = [_patches_in(q, rate, flags) for q in quantities if isinstance(q, dict)]
        found = [c for c in counts if c is not None]
        if found:
            return min(found), max(found)
    return None


def _patches_in(quantity: dict[str, Any], rate: Decimal, flags: list[str]) -> Decimal | None:
    value = _decimal(quantity.get("value"))
    if value is None:
        return None
    unit = normalise_unit(quantity.get("code") or quantity.get("unit"))
    if unit == "mcg/h":
        return value / rate
    if unit in MASS_TO_MG:  # "25 micrograms" as the dose of a 25 micrograms/hour patch: read as the rate
        flags.append(f"a dose of {value} {unit} read as {value * MASS_TO_MG[unit] * 1000:g} micrograms/hour")
        return value * MASS_TO_MG[unit] * 1000 / rate
    return value if unit == "unit" else None


def _text_count(text: str, rate: Decimal, flags: list[str]) -> tuple[Decimal, Decimal] | None:
    lowered = _WORD.sub(lambda m: _WORDS[m.group(1).lower()], text.lower())
    for match in _COUNT.finditer(lowered):
        low, high = Decimal(match.group(1)), Decimal(match.group(2) or match.group(1))
        if high > MOST_WORN_TOGETHER and match.group(3) is None:  # "fentanyl 25 patch": the strength, not a count
            if high != rate:
                flags.append(f'"{match.group(0)}" read as the patch strength, not {high:g} patches worn at once')
            continue
        return low, high
    for match in _APPLY.finditer(lowered):
        low, high = Decimal(match.group(1)), Decimal(match.group(2) or match.group(1))
        if high <= MOST_WORN_TOGETHER:
            return low, high
    if (stated := _STATED_RATE.search(lowered)) is not None:
        value = Decimal(stated.group(1))
        if value != rate:
            flags.append(f"{value:g} micrograms/hour on a {rate:g} micrograms/hour patch: counted as {value:g}")
        return value / rate, value / rate
    return None


def _interval_hours(text: str) -> Decimal | None:
    for pattern, kind in _INTERVALS:
        if (match := pattern.search(text)) is None:
            continue
        if kind == "hours":
            return Decimal(match.group(1) or match.group(2))
        if kind == "days":
            return Decimal(match.group(1)) * 24
        if kind == "weeks":
            return Decimal(match.group(1)) * 168
        if kind == "ordinal":
            return Decimal(_ORDINALS[match.group(1).lower()] * 24)
        return {"twice weekly": Decimal(84), "weekly": Decimal(168), "daily": Decimal(24)}[kind]
    return None


def _timing_hours(timing: Any) -> Decimal | None:
    if not isinstance(timing, dict) or not isinstance(timing.get("repeat"), dict):
        return None
    repeat = timing["repeat"]
    period, unit = _decimal(repeat.get("period")), repeat.get("periodUnit")
    frequency = _decimal(repeat.get("frequency")) or Decimal(1)
    if period is None or period <= 0 or unit not in DAYS_PER or frequency <= 0:
        return None
    return period * DAYS_PER[unit] * 24 / frequency


def patch_dose(resource: dict[str, Any], rate: Decimal, wear_hours: int | None) -> PatchDose:
    """Patches worn at once (lowest, highest) and the change interval of one patch order (raw dict)."""
    flags: list[str] = []
    counts: list[tuple[Decimal, Decimal]] = []
    hours: Decimal | None = None
    basis = "one patch worn (no dose stated)"
    texts: list[str] = []
    dosages = resource.get("dosageInstruction")
    for dosage in dosages if isinstance(dosages, list) else []:
        if not isinstance(dosage, dict):
            continue
        text = " ".join(str(dosage.get(k) or "") for k in ("text", "patientInstruction")).strip()
        texts.append(text)
        hours = hours or _timing_hours(dosage.get("timing")) or _interval_hours(text)
        if (found := _structured_count(dosage, rate, flags)) is not None:
            counts.append(found)
            basis = "structured"
        elif text and (found := _text_count(text, rate, flags)) is not None:
            counts.append(found)
            basis = "text"
    if len(counts) > 1:
        flags.append(f"{len(counts)} dose lines: the patches they name are added up")
    low = sum((c[0] for c in counts), Decimal(0)) or Decimal(1)
    high = sum((c[1] for c in counts), Decimal(0)) or Decimal(1)
    words = " ".join(texts)
    if low < 1 or high < 1 or _PART.search(words):
        flags.append(HALF_FLAG)
    if (part := _PART_TIME.search(words)) is not None:
        stated = next((Decimal(g) for g in part.groups() if g), None)
        if stated is None or stated < 24:
            flags.append(PART_TIME_FLAG)
    if not counts:
        said = " ".join(words.split())
        flags.append(f'dose "{said}": one patch worn at a time' if said else "no dose: one patch worn at a time")
    low, high = max(low, Decimal(1)), max(high, Decimal(1))
    return PatchDose(low, high, hours or (Decimal(wear_hours) if wear_hours else None), basis, flags)
