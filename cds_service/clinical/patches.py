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
from decimal import Decimal
from itertools import pairwise
from typing import Any

from cds_service.clinical.dosage import normalise_unit
from cds_service.clinical.units import DAYS_PER, MASS_TO_MG, non_negative_decimal

HALF_FLAG = "a part patch? counted as one whole patch"
PART_TIME_FLAG = "patch worn part of the day? counted as worn all day"
MOST_WORN_TOGETHER = Decimal(4)  # a larger number before "patch" is its strength ("apply fentanyl 25 patch")

_KIND = r"(?:(?:new|further|extra|additional|more|fresh)\s+)?(?:transdermal\s+)?"  # "one further patch"
_WORDS = {"one": "1", "two": "2", "three": "3", "four": "4", "a": "1", "an": "1", "single": "1", "half a": "0.5"}
_WORD = re.compile(
    rf"\b(half a|one|two|three|four|single|an?)\b(?=\s+(?:\d+(?:\.\d+)?\s*)?{_KIND}"
    r"(?:patch|\d|micrograms?|mcg))",
    re.IGNORECASE,
)
_RATE = r"(?:micrograms?|mcg|ug|µg)\s*/\s*(?:hour|hr|h)\b"
_COUNT = re.compile(
    rf"(\d+(?:\.\d+)?)(?:\s*(?:-|to|or)\s*(\d+(?:\.\d+)?))?\s*(?:x\s*)?"
    rf"(?:(\d+(?:\.\d+)?)\s*(?:{_RATE}|micrograms?|mcg)?\s*)?{_KIND}patch(?:es)?\b",
    re.IGNORECASE,
)
# "apply 1 every 7 days", "1 every 72 hours": a bare number after the verb or first is the number of patches.
_APPLY = re.compile(
    r"(?:\b(?:apply|change|replace|use|put on|wear)\s+|^\s*)(\d+(?:\.\d+)?)(?:\s*(?:-|to|or)\s*(\d+(?:\.\d+)?))?\b"
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
    extra_mcg_per_hour: Decimal = Decimal(0)  # other-strength patches the text adds ("and one 12 patch")


def _decimal(value: Any) -> Decimal | None:
    return non_negative_decimal(value)


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


@dataclass
class _Read:
    """What one text says: patches of this product worn at once (lowest, highest) and other-strength patches."""

    low: Decimal
    high: Decimal
    extra_mcg_per_hour: Decimal = Decimal(0)


_ROMAN = {"i": "1", "ii": "2", "iii": "3", "iv": "4"}
_ROMAN_COUNT = re.compile(rf"\b(iv|iii|ii|i)\b(?=\s+{_KIND}patch)", re.IGNORECASE)
_AFTER_VERB = re.compile(r"\b(apply|change|replace|use|put on|wear)\s+(one|two|three|four)\b", re.IGNORECASE)
_TIME_UNIT = r"\s*(?:hours?|hrs?|h\b|days?|d\b|weeks?|wks?|months?|mins?|minutes?|am\b|pm\b|%|mg|ml)"
# "2x" is "2"; "patch x 2", "apply x2" are 2 patches (see _normalised)
_TIMES_AFTER = re.compile(r"\b(\d+)\s*x\b(?!\s*\d)", re.IGNORECASE)
_ADDS = re.compile(r"\b(?:and|plus|with|also)\b|[+&]", re.IGNORECASE)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_NOT_A_COUNT = re.compile(
    rf"^(?:{_TIME_UNIT}|\s*(?:micrograms?|mcg|ug|µg|box(?:es)?|packs?|packets?))|^\s*[/:.]\d", re.IGNORECASE
)
# A dose line with no number that still puts a patch on: "apply one further patch", "apply another patch".
_ONE_MORE = re.compile(r"\b(?:another|further|extra|additional|second)\b", re.IGNORECASE)
_PUTS_ON = re.compile(r"\b(?:apply|put on|wear|stick|use)\b[^.;]*\bpatch", re.IGNORECASE)


def _normalised(text: str) -> str:
    lowered = _WORD.sub(lambda m: _WORDS[m.group(1).lower()], text.lower())
    lowered = _AFTER_VERB.sub(lambda m: f"{m.group(1)} {_WORDS[m.group(2)]}", lowered)
    lowered = _ROMAN_COUNT.sub(lambda m: _ROMAN[m.group(1)], lowered)
    lowered = _TIMES_AFTER.sub(lambda m: f"{m.group(1)} ", lowered)
    lowered = re.sub(r"\b(patch(?:es)?)\s*x\s*(\d+)\b", r"\2 \1", lowered)
    lowered = re.sub(r"\b(apply|change|replace|use|put on|wear)\s+x\s*(\d+)\b", r"\1 \2", lowered)
    return lowered


def _text_count(text: str, rate: Decimal, flags: list[str]) -> _Read | None:
    """Every patch count the text names: added where it adds them ("and", "plus"), else the highest, flagged."""
    lowered = _normalised(text)
    found: list[tuple[int, int, _Read]] = []  # (start, end, reading)
    read_spans: list[tuple[int, int]] = []
    for match in _COUNT.finditer(lowered):
        low, high = Decimal(match.group(1)), Decimal(match.group(2) or match.group(1))
        read_spans.append(match.span())
        if high > MOST_WORN_TOGETHER and match.group(3) is None:  # "fentanyl 25 patch": the strength, not a count
            if high != rate:
                flags.append(f'"{match.group(0)}" read as the patch strength, not {high:g} patches worn at once')
            continue
        strength = Decimal(match.group(3)) if match.group(3) else rate
        if strength != rate and strength > 0:  # "one 12 patch" in a 25 order: another strength, added by its rate
            flags.append(
                f'"{match.group(0)}": {high:g} patch(es) of {strength:g} micrograms/hour named in the dose, '
                f"counted with this order"
            )
            found.append((*match.span(), _Read(Decimal(0), Decimal(0), high * strength)))
        else:
            found.append((*match.span(), _Read(low, high)))
    for match in _APPLY.finditer(lowered):
        if any(s <= match.start(1) < e for s, e in read_spans):
            continue
        low, high = Decimal(match.group(1)), Decimal(match.group(2) or match.group(1))
        if high <= MOST_WORN_TOGETHER:  # "use 7": not a count, left to the unread numbers
            read_spans.append(match.span())
            found.append((*match.span(), _Read(low, high)))
    for stated in _STATED_RATE.finditer(lowered):
        read_spans.append(stated.span())
        if any(s <= stated.start() < e for s, e, _ in found):
            continue
        value = Decimal(stated.group(1))
        if value != rate and not any(r.high * rate == value for _, _, r in found):  # "2 patches (total 50mcg/hr)"
            flags.append(f"{value:g} micrograms/hour on a {rate:g} micrograms/hour patch: counted as {value:g}")
        found.append((*stated.span(), _Read(value / rate, value / rate)))
    for pattern, _kind in _INTERVALS:
        read_spans += [m.span() for m in pattern.finditer(lowered)]
    read_spans += [m.span() for m in _PART_TIME.finditer(lowered)]
    found.sort(key=lambda item: item[0])
    result = _combine(lowered, found, flags)
    return _unread_numbers(lowered, read_spans, result, flags)


def _combine(lowered: str, found: list[tuple[int, int, _Read]], flags: list[str]) -> _Read | None:
    if not found:
        return None
    total, added, either = found[0][2], False, False
    for (_, end, _read), (start, _, reading) in pairwise(found):
        if _ADDS.search(lowered[end:start]):  # "one 25 patch and one 12 patch": both worn
            added = True
            total = _Read(
                total.low + reading.low,
                total.high + reading.high,
                total.extra_mcg_per_hour + reading.extra_mcg_per_hour,
            )
        else:  # "1 patch every 72 hrs, 2 patches if pain": either, the highest counts
            either = either or (reading.low, reading.high) != (total.low, total.high)
            total = _Read(
                min(total.low, reading.low) if total.low and reading.low else max(total.low, reading.low),
                max(total.high, reading.high),
                max(total.extra_mcg_per_hour, reading.extra_mcg_per_hour),
            )
    said = " ".join(lowered.split())
    if added:
        flags.append(f'the dose "{said}" names patches worn together: added up')
    if either:
        flags.append(f'the dose "{said}" names several patch counts: counted at the highest')
    return total


def _unread_numbers(
    lowered: str, read_spans: list[tuple[int, int]], result: _Read | None, flags: list[str]
) -> _Read | None:
    """A number no reading accounted for is flagged; one that may be a count raises the highest reading to it."""
    for match in _NUMBER.finditer(lowered):
        if any(s <= match.start() < e for s, e in read_spans):
            continue
        before, after = lowered[max(0, match.start() - 1) : match.start()], lowered[match.end() :]
        value = Decimal(match.group(0))
        if _NOT_A_COUNT.match(after) or (before and before in "/:"):  # a time, a date, a rate: not a count
            continue
        plausible = 1 <= value <= MOST_WORN_TOGETHER
        flags.append(
            f'"{match.group(0)}" in the dose was not read: counted as up to {value:g} patch(es) worn'
            if plausible
            else f'"{match.group(0)}" in the dose was not read (not a number of patches worn at once)'
        )
        if plausible:
            result = result or _Read(Decimal(1), Decimal(1))
            result = _Read(result.low, max(result.high, value), result.extra_mcg_per_hour)
    return result


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


def _line_count(dosage: dict[str, Any], text: str, rate: Decimal, flags: list[str]) -> tuple[_Read, str] | None:
    """One dose line: the structured dose and the text both read; the higher counts, flagged when they differ."""
    structured = _structured_count(dosage, rate, flags)
    read = _text_count(text, rate, flags) if text else None
    if structured is None:
        if read is None and text and (_ONE_MORE.search(text) or _PUTS_ON.search(text)):
            flags.append(f'dose "{" ".join(text.split())}" names no number: counted as one patch worn')
            return _Read(Decimal(1), Decimal(1)), "text"
        return (read, "text") if read is not None else None
    if read is None:
        return _Read(*structured), "structured"
    said = (read.low, read.high, read.extra_mcg_per_hour)
    if said != (*structured, Decimal(0)) and (read.high or read.extra_mcg_per_hour):
        flags.append(
            f'the structured dose ({_span(*structured)}) and the text "{" ".join(text.split())}" '
            f"({_span(read.low, read.high)}) differ: the higher counted"
        )
    return _Read(max(structured[0], read.low), max(structured[1], read.high), read.extra_mcg_per_hour), "structured"


def _span(low: Decimal, high: Decimal) -> str:
    return f"{low:g} patch" if low == high == 1 else f"{low:g} patches" if low == high else f"{low:g}-{high:g} patches"


def patch_dose(resource: dict[str, Any], rate: Decimal, wear_hours: int | None) -> PatchDose:
    """Patches worn at once (lowest, highest) and the change interval of one patch order (raw dict)."""
    flags: list[str] = []
    steps: dict[Any, list[_Read]] = {}  # dose lines by sequence: the same step adds up, steps follow each other
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
        if (line := _line_count(dosage, text, rate, flags)) is not None:
            sequence = dosage.get("sequence")
            steps.setdefault(sequence if isinstance(sequence, int) else None, []).append(line[0])
            basis = "structured" if "structured" in (basis, line[1]) else line[1]
    counts = [line for step in steps.values() for line in step]
    if len(counts) > 1:
        flags.append(f"{len(counts)} dose lines: the patches they name are added up")
    if len(steps) > 1:
        flags.append(f"{len(steps)} dose steps one after another: the highest step counted")
    if None in steps and len(steps) > 1:  # lines without a sequence are worn with every step
        unsequenced = steps.pop(None)
        steps = {k: v + unsequenced for k, v in steps.items()}
    sums = [
        (
            sum((c.low for c in step), Decimal(0)),
            sum((c.high for c in step), Decimal(0)),
            sum((c.extra_mcg_per_hour for c in step), Decimal(0)),
        )
        for step in steps.values()
    ]
    low = max((s[0] for s in sums), default=Decimal(0)) or Decimal(1)
    high = max((s[1] for s in sums), default=Decimal(0)) or Decimal(1)
    extra = max((s[2] for s in sums), default=Decimal(0))
    if extra and not any(s[1] for s in sums):  # only another strength named ("2 x 12 patches" on a 25 order):
        extra = max(extra - rate, Decimal(0))  # the supplied patch or the text's rate, whichever is higher
        flags.append(f"the dose names only other patch strengths: counted at the higher of them and one {rate:g} patch")
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
    change = hours or (Decimal(wear_hours) if wear_hours else None)
    return PatchDose(low, high, change, basis, flags, extra)
