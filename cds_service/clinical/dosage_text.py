"""UK free-text dosage -> dose groups that account for every number in the text.

A reader for the dose text EMIS, SystmOne and EPS send ("ONE or TWO FOUR times a day", "1 tab om 2 tab on",
"5ml to 10ml every 4 hours when required max 30ml in 24 hours"). The text is cut into tokens (a dose, a
frequency, a time of day, a maximum); doses pair with the frequencies and times of day that follow them, and the
pairs add up ("one in the morning and two at night" is 3 a day). Steps joined by "then" are alternatives over time:
the highest counts. Every number the reader did not use makes the reading *uncertain* (the highest plausible
reading is counted and the reason is kept), so a dose is never silently under-counted.

Conventions: NHS dm+d dose forms and the NHS Digital "Dose syntax" implementation guidance (UK abbreviations od,
om, on, bd, tds, qds, mane, nocte, prn, stat; a 5 ml spoonful). Pure: regular expressions and Decimal arithmetic.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from cds_service.errors import DosageError

_NUM = r"(\d+(?:\.\d+)?)"
_UNIT = (
    r"(?:(tablet\(s\)|tablets?|tabs?|caplets?|capsule\(s\)|capsules?|caps?|patch(?:es)?|mls?|millilit(?:re|er)s?|mg|"
    r"milligrams?|micrograms?|mcg|ug|g|grams?|sachets?|suppositor(?:y|ies)|lozenges?|puffs?|sprays?|doses?|films?|"
    r"drops?|units?|lollipops?|pastilles?|vials?|ampoules?|amps?|sticks?)\b)"
)
# What a bare number must not be followed by to be a dose (it is a frequency, an interval or a time).
_NOT_DOSE = r"(?![\d.])(?!\s*(?:times|hours?\b|hrs?\b|hourly|hrly|h\b|days?\b|weeks?\b|months?\b|am\b|pm\b|:|/\d))"

_WORDS = {
    "one": "1",
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
    "thirty": "30",
    "forty": "40",
    "fifty": "50",
    "sixty": "60",
}

_PRN = re.compile(
    r"\b(when required|when needed|as required|as needed|if required|if needed|when necessary|if necessary|"
    r"when req(?:uire)?d?|as req(?:uire)?d?|prn|p\.r\.n\.?|for breakthrough|if pain|when in pain|if in pain|"
    r"for breakthrough pain|as and when)\b",
    re.IGNORECASE,
)
_ROUTE_SEGMENT = re.compile(
    r"\s-\s*(?:oral|by mouth|sublingual|buccal|transdermal|subcutaneous|intramuscular|rectal|cutaneous|"
    r"inhalation|topical)(?: route| use)?\s*(?:-\s+|$)"
)
_AS_DIRECTED = re.compile(r"\bas directed\b|\bas advised\b|\bas per\b|\bsee (?:label|instructions)\b|\bas instructed\b")


@dataclass
class Group:
    """One dose with the frequencies that apply to it."""

    dose_low: Decimal | None = None
    dose_high: Decimal | None = None
    unit: str = "unit"
    general: list[tuple[Decimal, Decimal]] = field(default_factory=list)  # times a day (low, high)
    slots: list[str] = field(default_factory=list)  # times of day, one dose each
    up_to: bool = False  # "up to N times a day": the least is none
    prn: bool = False
    stat: bool = False
    start: int = 0  # where the group begins in the text
    borrow: bool = False  # no timing of its own: takes the timing of the dose after it
    notes: list[str] = field(default_factory=list)

    def key(self) -> tuple[object, ...]:
        return (self.dose_low, self.dose_high, self.unit, tuple(self.general), tuple(self.slots), self.stat)


@dataclass
class Reading:
    """What a text says: groups added up (after caps), and every doubt."""

    low: Decimal
    high: Decimal
    unit: str
    prn: bool
    groups: list[Group]
    doubts: list[str] = field(default_factory=list)
    cap: Decimal | None = None
    notes: list[str] = field(default_factory=list)


# --- normalising -----------------------------------------------------------------------------------------------
_EXTRA_SLOT = r"(?:\s+(?:at |in the |each |every )?(?:night|bedtime|morning|evening|nocte|mane)\b)"
_EXTRA_AFTER = (
    r"(?:\s+(?:after|in|within)\s+(?:at least\s+)?\d+(?:\.\d+)?(?:\s*-\s*\d+(?:\.\d+)?)?\s*"
    r"(?:hours?|hrs?|h|minutes?|mins?)\b)?"
)
_EXTRA_PRN = r"(?:\s*,?\s*(?:if|when|as)\s+(?:needed|necessary|required)\b)?"
_EXTRA_PHRASES = (
    # "double dose at night", "with a double dose", "may double the dose"
    r"\b(?:with |and |plus |but )?(?:a |the )?double(?:\s+(?:the\s+|a\s+)?dose)?",
    # "may repeat once", "repeat after 2 hours", "repeat dose after 4 hours if needed"
    r"\b(?:(?:may|can|to)\s+(?:be\s+)?)?repeat(?:ed)?(?:\s+(?:the\s+)?dose)?(?:\s+(?:once|1)\b)?"
    r"(?:\s+(?:after|in|within)\s+\d+(?:\.\d+)?(?:\s*-\s*\d+(?:\.\d+)?)?\s*(?:hours?|hrs?|h|minutes?|mins?)\b)?"
    r"(?:\s+(?:once|1)\b)?",
    # "may take another", "may take a further tablet", "a further dose", "another dose"
    r"\b(?:(?:may|can)\s+(?:take|have|give)\s+)(?:another|a further|an extra|an additional|1 more|1 further|1 extra)"
    r"(?:\s+(?:dose|tablet|tab|capsule|cap|sachet|patch|spoonful|5\s*ml)s?\b)?",
    r"\b(?:a |1 )?further dose\b|\banother dose\b",
    # "may take again after 2 hours", "can take a second dose after 4 hours"
    r"\b(?:(?:may|can)\s+(?:take|have|give|use)\s+)?(?:(?:it|this|them|the dose)\s+)?again\b",
    r"\b(?:(?:may|can)\s+(?:take|have|give)\s+)?(?:a\s+)?(?:second|2nd)\s+dose\b",
)


def _extra_doses(text: str, notes: list[str]) -> str:
    """ "Repeat", "double dose", "a further dose", "may take another": an extra dose, marked for the reader.

    ``extraone``: one further dose a day (a stated time, or "once"); ``extraeach``: each dose may be repeated.
    """

    def mark(m: re.Match[str]) -> str:
        once = bool(m["slot"]) or bool(re.search(r"\b(?:once|1)\b", m[0].split("after")[0][-8:]))
        return f" extra{'one' if once else 'each'} "

    # "do not take a double dose", "do not repeat": a warning, not a dose
    text, n = re.subn(
        r"\b(?:do not|don't|dont|never|not to)\s+(?:take\s+|give\s+)?(?:a\s+)?(?:double|repeat|take again)\w*"
        r"(?:\s+(?:the\s+)?dose)?",
        " ",
        text,
    )
    if n:
        notes.append("a warning not to double or repeat a dose is not a dose")
    # "one four times a day, two if severe": a higher dose at the same times, marked for the reader
    text = re.sub(
        r"(?:\b(?:can|may)\s+(?:take|have|increase to)\s+)?\b(\d+(?:\.\d+)?)\s*(?:tablets?|tabs?|capsules?|caps?)?\s*"
        r"(?:if|when)\s+(?:the\s+)?(?:pain\s+(?:is\s+)?)?(?:severe|bad|worse)\b",
        lambda m: f" altdose{m[1]} ",
        text,
    )
    for phrase in _EXTRA_PHRASES:
        text = re.sub(rf"(?:{phrase}){_EXTRA_AFTER}(?P<slot>{_EXTRA_SLOT})?{_EXTRA_PRN}", mark, text)
    return text


def _normalise(text: str, notes: list[str]) -> str:
    text = text.lower().replace("½", " 1/2 ").replace("¼", " 1/4 ").replace("–", "-").replace("—", "-")
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    # A strength ("10mg/5ml", "2mg/ml", "10 mg in 5 ml") names the product, not a dose.
    text, n = re.subn(
        r"\b\d+(?:\.\d+)?\s*(?:mg|micrograms?|mcg)\s*(?:/|in|per)\s*(?:\d+(?:\.\d+)?\s*)?(?:ml|millilitres?)\b",
        " ",
        text,
    )
    if n:
        notes.append("a strength in the text was read as the product's, not a dose")
    # Combination strengths (co-codamol 8/500, 15/500, 30/500; co-dydramol 10/500, 20/500, 30/500) and dates.
    text, n = re.subn(r"\b(?:8|10|15|20|30)/500\b", " ", text)
    if n:
        notes.append("a combination strength in the text was read as the product's, not a dose")
    text, n = re.subn(r"\b\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})\b", " ", text)
    if n:
        notes.append("a date in the text is not a dose")
    text = re.sub(r"\b(\d+)\s+and\s+(?:a\s+)?half\b", lambda m: str(int(m[1])) + ".5", text)
    for word, digit in _WORDS.items():
        text = re.sub(rf"\b{word}\s+and\s+(?:a\s+|one\s+)?half\b", f"{digit}.5", text)
    text = re.sub(r"\b(?:a\s+|one\s+)?half(?:\s+(?:of\s+)?an?)?\b(?!\s+(?:hour|an hour))", " 0.5 ", text)
    text = re.sub(r"\b(?:a\s+|one\s+)?quarter(?:\s+(?:of\s+)?an?)?\b", " 0.25 ", text)
    text = re.sub(r"\b(\d+)\s+1/2\b", lambda m: str(int(m[1])) + ".5", text)
    text = re.sub(r"(?<![\d/])\b1/2\b(?!/)", "0.5", text)
    text = re.sub(r"(?<![\d/])\b1/4\b(?!/)", "0.25", text)
    text = re.sub(r"(?<![\d/])\b3/4\b(?!/)", "0.75", text)
    for word, digit in _WORDS.items():
        text = re.sub(rf"\b{word}\b", digit, text)
    text = _extra_doses(text, notes)
    # Roman numerals as doses ("ii tds", "i nocte"): only before a unit or a UK frequency abbreviation.
    after = r"(?=\s*(?:tabs?\b|tablets?\b|caps?\b|capsules?\b|od\b|om\b|on\b|bd\b|tds\b|qds\b|mane\b|nocte\b|prn\b))"
    text = re.sub(rf"\biii\b{after}", "3", text)
    text = re.sub(rf"\bii\b{after}", "2", text)
    text = re.sub(rf"\bi\b{after}", "1", text)
    # "total 120mg daily in 2 divided doses", "120mg daily in divided doses": the total is the day's dose.
    text, n = re.subn(r"\bin\s+(?:\d+\s+)?divided\s+doses\b", " ", text)
    if n:
        text = re.sub(r"\b(?:a\s+)?total(?:\s+of)?\s+(?=\d)", " ", text)
        notes.append("a daily total in divided doses was read as the day's dose")
    text = re.sub(r"=\s*(?=\d)", " total ", text)  # "60mg bd = 120mg/day": a stated total
    # A daily total restated in brackets ("2 every 12 hours (4 a day)") is compared with the reading, not added.
    text = re.sub(
        r"\(\s*(?:=\s*|i\.e\.?\s*|total(?:\s+of)?\s*)?(\d+(?:\.\d+)?)\s*"
        r"((?:tablets?|tabs?|capsules?|caps?|mg|mls?)\s*)?(?:a day|per day|daily|in 24 hours|/day|a 24 hours?)\s*\)",
        lambda m: f" total {m[1]} {m[2] or ''} a day ",
        text,
    )
    # "a tablet", "a further tablet", "an extra capsule": one
    text = re.sub(
        r"\b(?:a|an|another|a further|an extra|an additional|one more|1 more|1 further|1 extra)\s+"
        r"(?=(?:extra\s+|further\s+|additional\s+)?(?:tablet|tab|capsule|cap|dose|patch|sachet|puff|lozenge|film|"
        r"suppositor|pastille|lollipop))",
        "1 ",
        text,
    )
    text = re.sub(r"\b(?:a single|single)\b(?=\s*(?:\d|tablet|capsule|dose|patch))", "1", text)
    # Durations are not doses: "for 5 days", "x 7 days", "for 2/52", "7/7".
    text, n = re.subn(
        r"\b(?:for|x|over|during)\s*(?:the\s*)?(?:next\s*|first\s*|up to\s*)?\d+(?:\.\d+)?\s*"
        r"(?:days?|weeks?|months?|/7|/52|/12)\b|\b\d+/(?:7|52|12)\b",
        " ",
        text,
    )
    if n:
        notes.append("a duration in the text is not a dose")
    # A dose restated in brackets ("1 capsule (20 mg total)") is the same dose.
    text, n = re.subn(rf"\(\s*(?:=\s*|i\.e\.?\s*|total\s*)?{_NUM}\s*{_UNIT}\s*(?:total|in total|dose)?\s*\)", " ", text)
    if n:
        notes.append("a dose restated in brackets was read as the same dose")
    return re.sub(r"\s+", " ", text.replace("(", " ").replace(")", " ")).strip()


# --- tokens ----------------------------------------------------------------------------------------------------
@dataclass
class Token:
    kind: str  # dose | freq | slot | stat | cap | count_cap | multiplier | then | doubt
    start: int
    low: Decimal = Decimal(0)
    high: Decimal = Decimal(0)
    unit: str = "unit"
    label: str = ""
    up_to: bool = False


def _d(value: str) -> Decimal:
    return Decimal(value)


_HOURS = r"(?:hours?|hrs?|h)\b"
_DAY = (
    r"(?:a\s+day|per\s+day|each\s+day|every\s+day|daily|a\s+24\s*hours?|in\s+24\s*(?:hours?|hrs?|h)|"
    r"/\s*24\s*hrs?|/day|/d\b|day\b|in\s+a\s+day)"
)
_DAY_OPT = rf"(?:\s*{_DAY})?"
_PERIOD = (
    r"(?:in|per|a|/|every|each|in any|within|over)?\s*(?:24\s*(?:hours?|hrs?|h)\b|24hrs?\b|day\b|days\b|daily\b|d\b|"
    r"(?<=/)24\b)"
)

Maker = Callable[[re.Match[str]], Token]
_TOKENS: list[tuple[re.Pattern[str], Maker]] = []


def _token(pattern: str) -> Callable[[Maker], Maker]:
    def register(maker: Maker) -> Maker:
        _TOKENS.append((re.compile(pattern), maker))
        return maker

    return register


@_token(r"\b(?:then|followed by|reducing to|reduce to|increasing to|increase to|increased to|reduced to)\b")
def _then(m: re.Match[str]) -> Token:
    return Token("then", m.start())


@_token(
    r"\b(?:increas|reduc|decreas|titrat)(?:e|es|ing|ed)\s+(?:the dose\s+)?(?:by|in steps of)\s*\d+(?:\.\d+)?\s*"
    r"(?:mg|ml|tablets?|capsules?|micrograms?|mcg)?(?:\s*(?:every|each|a|per)?\s*(?:\d+\s*)?"
    r"(?:weekly|daily|fortnightly|days?|weeks?))?"
)
def _titration(m: re.Match[str]) -> Token:
    if m[0].startswith(("reduc", "decreas")):  # the first step is the highest
        return Token("note", m.start(), label=f'"{m[0]}": a reducing dose; the first (highest) step was counted')
    return Token("titrate_up", m.start(), label=f'"{m[0]}": a dose that keeps rising with no stated ceiling')


@_token(rf"\bup to\s*{_NUM}\s*(?:-|to|or)?\s*(?:\d+)?\s*times\b{_DAY_OPT}")
def _up_to_times(m: re.Match[str]) -> Token:
    count = _d(re.findall(r"\d+(?:\.\d+)?", m[0])[-1])
    return Token("freq", m.start(), count, count, up_to=True)


@_token(
    r"\b(?:max(?:imum)?\.?|not more than|no more than|do not (?:take )?more than|do not exceed|not to exceed)\s*"
    rf"(?:of\s*)?{_NUM}\s*(?:doses?|times|administrations?)\s*{_PERIOD}"
)
def _count_cap(m: re.Match[str]) -> Token:
    return Token("count_cap", m.start(), _d(m[1]), _d(m[1]))


@_token(
    r"\b(?:max(?:imum)?\.?|not more than|no more than|do not (?:take )?more than|do not exceed|not to exceed|"
    rf"up to a max(?:imum)? of|up to)\s*(?:of\s*)?(?:dose\s*)?{_NUM}\s*{_UNIT}?\s*{_PERIOD}"
)
def _cap(m: re.Match[str]) -> Token:
    value, unit = _mass(_d(m[1]), _unit(m[2] or ""))
    return Token("cap", m.start(), value, value, unit, label="" if m[2] else "bare", up_to=m[0].startswith("up to"))


@_token(
    r"\b(?:max(?:imum)?\.?|not more than|no more than)\s*(?:of\s*)?(qds|q\.d\.s\.?|qid|tds|t\.d\.s\.?|tid|bd|b\.d\.?|"
    r"four times|three times|twice)\b(?:\s*(?:a day|daily))?"
)
def _count_cap_word(m: re.Match[str]) -> Token:
    count = {"q": 4, "f": 4, "t": 3, "b": 2}.get(m[1][0], 2)
    count = 3 if m[1].startswith("three") else 2 if m[1].startswith("twice") else count
    return Token("count_cap", m.start(), Decimal(count), Decimal(count))


@_token(rf"\b(?:max(?:imum)?\.?|not more than|no more than)\s*(?:of\s*)?{_NUM}\b(?:\s*{_UNIT})?")
def _cap_without_period(m: re.Match[str]) -> Token:
    return Token("doubt", m.start(), label=f'a maximum with no period ("{m[0]}") was not applied')


@_token(
    rf"\b(?:every|each|q)\s*{_NUM}\s*(?:-|to|or)\s*{_NUM}\s*{_HOURS}|\b{_NUM}\s*(?:-|to|or)\s*{_NUM}\s*(?:hourly|hrly)\b"
)
def _every_hours_range(m: re.Match[str]) -> Token:
    first, second = (_d(v) for v in m.groups() if v is not None)
    if first == 0 or second == 0:
        return Token("doubt", m.start(), label=f'"{m[0]}" is not a frequency')
    return Token("freq", m.start(), Decimal(24) / max(first, second), Decimal(24) / min(first, second))


@_token(rf"\b(?:every|each|q)\s*{_NUM}\s*{_HOURS}|\b{_NUM}\s*(?:hourly|hrly|-hourly)\b")
def _every_hours(m: re.Match[str]) -> Token:
    hours = _d(m[1] or m[2])
    if hours == 0:
        return Token("doubt", m.start(), label=f'"{m[0]}" is not a frequency')
    return Token("freq", m.start(), Decimal(24) / hours, Decimal(24) / hours)


@_token(r"\b(?:qqh|q\.q\.h\.?)\b")
def _qqh(m: re.Match[str]) -> Token:
    return Token("freq", m.start(), Decimal(6), Decimal(6))  # quarta quaque hora: every 4 hours


@_token(r"\b(?:every|each)\s*hour\b|\bhourly\b")
def _hourly(m: re.Match[str]) -> Token:
    return Token("freq", m.start(), Decimal(24), Decimal(24))


@_token(rf"\b(?:every|each)\s*{_NUM}\s*days?\b")
def _every_days(m: re.Match[str]) -> Token:
    per_day = 1 / _d(m[1]) if _d(m[1]) else Decimal(0)
    return Token("freq", m.start(), per_day, per_day)


@_token(rf"\b(?:every|each)\s*{_NUM}\s*weeks?\b")
def _every_weeks(m: re.Match[str]) -> Token:
    per_day = 1 / (7 * _d(m[1])) if _d(m[1]) else Decimal(0)
    return Token("freq", m.start(), per_day, per_day)


@_token(r"\b(?:once a week|once weekly|every week|weekly|each week)\b")
def _weekly(m: re.Match[str]) -> Token:
    return Token("freq", m.start(), Decimal(1) / 7, Decimal(1) / 7)


@_token(r"\b(?:twice a week|twice weekly)\b")
def _twice_weekly(m: re.Match[str]) -> Token:
    return Token("freq", m.start(), Decimal(2) / 7, Decimal(2) / 7)


@_token(r"\b(?:every other day|alternate days|on alternate days|every second day)\b")
def _alternate(m: re.Match[str]) -> Token:
    return Token("freq", m.start(), Decimal("0.5"), Decimal("0.5"))


@_token(r"\b(?:fortnightly|every fortnight)\b")
def _fortnightly(m: re.Match[str]) -> Token:
    return Token("freq", m.start(), Decimal(1) / 14, Decimal(1) / 14)


@_token(rf"\b{_NUM}\s*(?:-|to|or)\s*{_NUM}\s*(?:x\s*)?times\b(?:\s*{_DAY})?")
def _times_range(m: re.Match[str]) -> Token:
    return Token("freq", m.start(), min(_d(m[1]), _d(m[2])), max(_d(m[1]), _d(m[2])))


@_token(rf"\b{_NUM}\s*(?:x\s*)?times\b(?:\s*{_DAY})?|\bx\s*{_NUM}\s*{_DAY}|\b{_NUM}\s*x\s*{_DAY}")
def _times(m: re.Match[str]) -> Token:
    count = _d(m[1] or m[2] or m[3])
    return Token("freq", m.start(), count, count)


@_token(rf"\b(?:once|twice|thrice)\s*(?:or|-|to)\s*(?:twice|thrice|\d+\s*times)\b(?:\s*{_DAY})?")
def _word_times_range(m: re.Match[str]) -> Token:
    counts = [{"once": 1, "twice": 2, "thrice": 3}.get(w, 0) for w in re.findall(r"once|twice|thrice", m[0])]
    counts += [int(n) for n in re.findall(r"\d+", m[0])]
    return Token("freq", m.start(), Decimal(min(counts)), Decimal(max(counts)))


_WORD_FREQUENCIES = (
    (r"q\.?d\.?s\.?|q\.?i\.?d\.?|four times", 4),
    (r"t\.?d\.?s\.?|t\.?i\.?d\.?|three times|thrice", 3),
    (r"twice|b\.?d\.?|b\.?i\.?d\.?|2ce", 2),
    (r"once|o\.?d\.?|daily|every day|each day|a day|per day|in 24 hours|once only", 1),
)


@_token(r"\b(?:" + "|".join(p for p, _ in _WORD_FREQUENCIES) + rf")(?![a-z]){_DAY_OPT}")
def _word_frequency(m: re.Match[str]) -> Token:
    word = m[0]
    if word.startswith("once only"):
        return Token("stat", m.start(), Decimal(1), Decimal(1))
    for pattern, count in _WORD_FREQUENCIES:
        if re.match(rf"(?:{pattern})(?![a-z])", word):
            return Token("freq", m.start(), Decimal(count), Decimal(count))
    return Token("freq", m.start(), Decimal(1), Decimal(1))  # pragma: no cover - the patterns are the same


# "om" and "on" are times of day only where a dose text can end or go on ("1 om 2 on", "1 on prn"), not "on food".
_AFTER_OM_ON = r"(?=\s*(?:$|[,.;+&]|\d|and\b|when|prn|if|as|with|then|max|plus))"
_SLOTS = {
    "morning": rf"(?:in the |each |every |at |in |)(?:morning|mornings|am\b|a\.m\.)|mane|o\.?m\.?{_AFTER_OM_ON}|"
    r"breakfast(?:time)?",
    "midday": r"(?:at |each |every |)(?:lunch(?:time)?|midday|mid-day|midi|noon|dinner(?:time)?|afternoon)",
    "teatime": r"(?:at |each |every |)(?:tea(?:time)?|evening meal|supper)(?![a-z])",
    "evening": r"(?:in the |each |every |at |in |)(?:evenings?|pm\b|p\.m\.)",
    "night": rf"(?:at |each |every |)(?:night(?:time|ly|s)?|bed(?:time)?|before bed)|nocte|o\.?n\.?{_AFTER_OM_ON}|"
    r"on retiring",
}


@_token(r"\b\d{1,2}(?::\d\d)?\s*(?:am|pm|a\.m\.|p\.m\.)|\b\d{1,2}:\d\d\b|\b\d{4}\s*(?:hrs|h)\b")
def _clock(m: re.Match[str]) -> Token:
    return Token("slot", m.start(), label=m[0].strip())


@_token(rf"\bat\s*(\d{{1,2}}(?:\.\d\d)?)\b(?![:.]?\d)(?!\s*(?:{_UNIT}|x\b|times|hours?|hrs?|hourly))")
def _bare_clock(m: re.Match[str]) -> Token:
    return Token("slot", m.start(), label=f"?at {m[1]}")


@_token(r"\b(?:" + "|".join(f"(?P<{name}>{pattern})" for name, pattern in _SLOTS.items()) + r")")
def _slot(m: re.Match[str]) -> Token:
    return Token("slot", m.start(), label=next(name for name, value in m.groupdict().items() if value))


@_token(r"\baltdose(\d+(?:\.\d+)?)\b")
def _alternative_dose(m: re.Match[str]) -> Token:
    return Token("alternative", m.start(), _d(m[1]), _d(m[1]))


@_token(r"\bextra(one|each)\b")
def _extra(m: re.Match[str]) -> Token:
    return Token("extra", m.start(), label=m[1])


@_token(r"\b(?:stat|statim|immediately|at once|straight away|now)\b")
def _stat(m: re.Match[str]) -> Token:
    return Token("stat", m.start(), Decimal(1), Decimal(1))


@_token(rf"\b{_NUM}\s*(?:x\s*)?(?:(?P<ml>\d+(?:\.\d+)?)\s*ml\s*)?(?:tea)?spoon(?:ful)?s?\b")
def _spoonfuls(m: re.Match[str]) -> Token:
    size = _d(m["ml"]) if m["ml"] else Decimal(5)
    return Token("dose", m.start(), _d(m[1]) * size, _d(m[1]) * size, "ml")


@_token(rf"\b{_NUM}\s*(?:-|to|or)\s*{_NUM}\s*(?:x\s*)?(?:(?P<ml>\d+(?:\.\d+)?)\s*ml\s*)?(?:tea)?spoon(?:ful)?s?\b")
def _spoonfuls_range(m: re.Match[str]) -> Token:
    size = _d(m["ml"]) if m["ml"] else Decimal(5)
    return Token("dose", m.start(), _d(m[1]) * size, _d(m[2]) * size, "ml")


@_token(r"\ban?\s*(?:(?P<ml>\d+(?:\.\d+)?)\s*ml\s*)?(?:tea)?spoon(?:ful)?\b")
def _a_spoonful(m: re.Match[str]) -> Token:
    size = _d(m["ml"]) if m["ml"] else Decimal(5)
    return Token("dose", m.start(), size, size, "ml")


@_token(rf"\b(?:total(?:\s+of)?|in total|totalling|making)\s*{_NUM}\s*{_UNIT}?\s*{_PERIOD}")
def _stated_total(m: re.Match[str]) -> Token:
    value, unit = _mass(_d(m[1]), _unit(m[2] or ""))
    return Token("total", m.start(), value, value, unit)


@_token(rf"\b{_NUM}\s*(?:micrograms?|mcg|ug|µg)\s*(?:/|per|an|a)\s*(?:hours?|hrs?|h)\b")
def _patch_rate(m: re.Match[str]) -> Token:
    return Token("dose", m.start(), _d(m[1]), _d(m[1]), "mcg/h")


@_token(rf"\b{_NUM}\s*x\s*{_NUM}\s*{_UNIT}")
def _multiplied(m: re.Match[str]) -> Token:
    value, unit = _mass(_d(m[1]) * _d(m[2]), _unit(m[3]))
    return Token("dose", m.start(), value, value, unit)


@_token(rf"\b{_NUM}\s*{_UNIT}?\s*(?:-|to|or)\s*{_NUM}{_NOT_DOSE}\s*{_UNIT}?")
def _dose_range(m: re.Match[str]) -> Token:
    first, second = _unit(m[2] or ""), _unit(m[4] or "")
    label = ""
    if m[2] and m[4] and first != second:
        label = f'"{m[0]}" mixes units'
    unit = first if m[2] else second
    low, unit = _mass(_d(m[1]), unit)
    high, unit = _mass(_d(m[3]), unit if m[2] else second)
    if low > high:
        low, high = high, low
        label = label or f'"{m[0]}" is a range written high to low'
    return Token("dose", m.start(), low, high, unit, label=label)


@_token(rf"\b{_NUM}{_NOT_DOSE}\s*{_UNIT}?")
def _dose(m: re.Match[str]) -> Token:
    value, unit = _mass(_d(m[1]), _unit(m[2] or ""))
    return Token("dose", m.start(), value, value, unit)


@_token(r"\bx\s*(\d+(?:\.\d+)?)\b(?!\s*(?:days?|weeks?|months?))")
def _multiplier(m: re.Match[str]) -> Token:
    return Token("multiplier", m.start(), _d(m[1]), _d(m[1]))


def _unit(raw: str) -> str:
    from cds_service.clinical.dosage import normalise_unit

    word = raw.lower()
    word = {
        "mls": "ml",
        "millilitre": "ml",
        "millilitres": "ml",
        "milliliter": "ml",
        "milliliters": "ml",
        "milligram": "mg",
        "milligrams": "mg",
        "micrograms": "microgram",
        "grams": "g",
        "gram": "g",
    }.get(word, word)
    return normalise_unit(word)


def _tokens(text: str) -> tuple[list[Token], list[str]]:
    tokens: list[Token] = []
    stray: list[str] = []
    position = 0
    while position < len(text):
        if not text[position].isalnum() and text[position] not in "½":
            position += 1
            continue
        for pattern, maker in _TOKENS:
            match = pattern.match(text, position)
            if match and match.end() > position:
                tokens.append(maker(match))
                position = match.end()
                break
        else:
            word = re.compile(r"[a-z]+|\d+(?:\.\d+)?|.").match(text, position)
            assert word is not None
            if any(c.isdigit() for c in word[0]):
                stray.append(word[0])
            position = word.end()
    return tokens, stray


# --- groups ----------------------------------------------------------------------------------------------------
def _assemble(tokens: list[Token], doubts: list[str], prn_at: list[int]) -> list[Group]:
    """Doses with the frequencies after them ("1 mane 2 nocte"), or before them ("morning 1, night 2")."""
    groups = _dose_first(tokens, doubts)
    if tokens and tokens[0].kind in ("freq", "slot") and any(g.dose_high is not None and _bare(g) for g in groups):
        trial: list[str] = []
        alternative = _frequency_first(tokens, trial)
        if not any(g.dose_high is not None and _bare(g) for g in alternative):
            groups = alternative
            doubts += trial
        else:
            doubts += []
    # a when-required phrase belongs to the dose it follows (or the first dose when it comes before any)
    for at in prn_at if groups else []:
        owner = groups[0]
        for group in groups:
            if group.start <= at:
                owner = group
        owner.prn = True
    return groups


def _bare(group: Group) -> bool:
    return not group.general and not group.slots and not group.stat


def _dose_first(tokens: list[Token], doubts: list[str]) -> list[Group]:
    groups: list[Group] = []
    current: Group | None = None
    for token in tokens:
        if token.kind == "dose":
            if token.label:
                doubts.append(token.label)
            if current is not None and current.dose_high is None:
                current.dose_low, current.dose_high, current.unit = token.low, token.high, token.unit
                continue
            if current is not None and _bare(current):
                if token.unit != current.unit:
                    _restatement(current, token, doubts)
                    continue
                # "1 mane, 1 xyz, 1 nocte": a dose whose timing was not understood takes the next dose's timing
                doubts.append("a dose with no frequency of its own was counted at the frequency of the dose after it")
                current.borrow = True
            current = Group(token.low, token.high, token.unit, start=token.start)
            groups.append(current)
        elif token.kind in ("freq", "slot", "stat"):
            if current is None:
                current = Group(start=token.start)
                groups.append(current)
            _add_timing(current, token)
        elif token.kind == "multiplier":
            _multiply(current, token, doubts, groups)
            if current is None and groups:
                current = groups[-1]
    for index, group in enumerate(groups):
        if group.borrow and _bare(group):
            after = next((g for g in groups[index + 1 :] if not _bare(g)), None)
            if after is not None:
                group.general, group.slots, group.stat = list(after.general), list(after.slots), after.stat
                group.up_to = after.up_to
    return groups


def _frequency_first(tokens: list[Token], doubts: list[str]) -> list[Group]:
    groups: list[Group] = []
    current: Group | None = None
    for token in tokens:
        if token.kind in ("freq", "slot", "stat"):
            if current is None or current.dose_high is not None:
                current = Group(start=token.start)
                groups.append(current)
            _add_timing(current, token)
        elif token.kind == "dose":
            if current is None:
                current = Group(start=token.start)
                groups.append(current)
            if current.dose_high is not None:
                _restatement(current, token, doubts)
                continue
            current.dose_low, current.dose_high, current.unit = token.low, token.high, token.unit
        elif token.kind == "multiplier":
            _multiply(current, token, doubts, groups)
    return groups


def _add_timing(group: Group, token: Token) -> None:
    if token.kind == "freq":
        group.general.append((token.low, token.high))
        group.up_to = group.up_to or token.up_to
    elif token.kind == "slot":
        group.slots.append(token.label)
    else:
        group.stat = True


def _restatement(current: Group, token: Token, doubts: list[str]) -> None:
    """Two doses with no frequency between them: a strength and a count ("Zomorph 10mg one twice a day"),
    a dose said twice ("1 tablet 10mg"), or a missing frequency."""
    assert current.dose_high is not None
    if token.unit == current.unit:
        if token.high == current.dose_high:
            doubts.append("the same dose twice with no frequency between them: counted once")
        else:
            doubts.append("two doses with no frequency between them: the higher was counted")
            if token.high > current.dose_high:
                current.dose_low, current.dose_high = token.low, token.high
        return
    if "unit" in (token.unit, current.unit):
        # a mass next to a count of tablets or capsules is the product's strength: the count is the dose
        if token.unit == "unit":
            current.dose_low, current.dose_high, current.unit = token.low, token.high, token.unit
        current.notes.append("a strength beside a count of units: the count was read as the dose")
        return
    doubts.append(
        f"a dose in {current.unit} and one in {token.unit} with no frequency between them: the first was counted"
    )


def _multiply(current: Group | None, token: Token, doubts: list[str], groups: list[Group]) -> None:
    if current is not None and current.dose_high is not None:
        assert current.dose_low is not None
        current.dose_low *= token.low
        current.dose_high *= token.high
        doubts.append(f'"x{_plain(token.low)}" was read as {_plain(token.low)} times the dose')
    elif current is not None:
        current.dose_low = current.dose_high = token.low  # "x2 at night": two at night
    else:
        groups.append(Group(token.low, token.high, start=token.start))


def _plain(value: Decimal) -> str:
    return f"{value.normalize():f}"


def _per_day(group: Group, doubts: list[str]) -> tuple[Decimal, Decimal] | None:
    slots = Decimal(len(group.slots))
    if group.general:
        low = max(g[0] for g in group.general)
        high = max(g[1] for g in group.general)
        if len(set(group.general)) > 1:
            doubts.append("two different frequencies for one dose: the higher was counted")
        if slots > high:
            doubts.append("more times of day than the frequency: the times of day were counted")
            low = high = slots
        return low, high
    if slots:
        return slots, slots
    if group.stat:
        return Decimal(1), Decimal(1)
    return None


PerDay = tuple[Decimal, Decimal]


def read_dose_text(text: str, default_per_day: PerDay | None = None) -> Reading:
    """Every group of a text added up; DosageError when it names no dose or no frequency.

    ``default_per_day``: the structured timing beside the text, for a text that gives a dose only.
    """
    original = " ".join(str(text).split())
    if not original:
        raise DosageError("no dosage text")
    route = _ROUTE_SEGMENT.search(original.lower())
    if route and route.end() < len(original):
        return _restated(original, route, default_per_day)
    notes: list[str] = []
    lowered = _normalise(original, notes)
    if re.search(r"\d{10,}", lowered):
        raise DosageError(f'a number in "{original}" is too large to be a dose')
    phases = [
        p for p in re.split(r"\bthen\b|\bfollowed by\b|\b(?:reducing|increasing|reduce|increase)d? to\b", lowered)
    ]
    phases = [p for p in phases if p.strip()]
    if len(phases) > 1:
        readings = []
        for phase in phases:
            try:
                readings.append(_read_phase(phase, original, default_per_day))
            except DosageError as exc:
                if not re.search(r"\d", phase):
                    continue
                raise DosageError(f'a step of "{original}" cannot be read ({exc})') from exc
        if not readings:
            raise DosageError(f'no dose in "{original}"')
        # "2 stat then 1 every 4 hours": the first day has the stat dose and the regimen after it.
        merged: list[Reading] = []
        for reading in readings:
            if merged and merged[-1].groups and all(g.stat and not g.general for g in merged[-1].groups):
                stat = merged.pop()
                reading.high += stat.high
                reading.notes.append("the stat dose is counted with the first day of what follows")
            merged.append(reading)
        readings = merged
        units = {r.unit for r in readings}
        if len(units) > 1:
            raise DosageError(f'the steps of "{original}" are in different units')
        top = max(readings, key=lambda r: r.high)
        result = Reading(
            min(r.low for r in readings),
            top.high,
            top.unit,
            all(r.prn for r in readings),
            [g for r in readings for g in r.groups],
            [d for r in readings for d in r.doubts],
            None,
            [*notes, "the dose changes over time: the highest step is counted"],
        )
        return result
    reading = _read_phase(lowered, original, default_per_day)
    reading.notes[:0] = notes
    return reading


def _restated(original: str, route: re.Match[str], default_per_day: PerDay | None) -> Reading:
    """EPS text "1 tablet - 3 times a day - Oral route - One tablet three times daily": one regimen said twice."""
    first, second = original[: route.start()], original[route.end() :]
    readings: list[Reading] = []
    for part in (first, second):
        try:
            readings.append(read_dose_text(part, default_per_day))
        except DosageError:
            continue  # one half may carry only the timing or only the route
    if not readings:
        # the dose may be in one half and the frequency in the other
        return read_dose_text(f"{second} {first}", default_per_day)
    if len(readings) == 2 and readings[0].unit != readings[1].unit:
        return readings[0] if readings[0].unit != "unit" or not readings[1].groups else readings[1]
    top = max(readings, key=lambda r: r.high)
    if len(readings) == 2 and readings[0].high != readings[1].high:
        top.doubts.append(f'the two halves of "{original}" disagree: the higher was counted')
    elif len(readings) == 2:  # the same dose: the patient's words may add "when required"
        top.low = min(r.low for r in readings)
        top.prn = any(r.prn for r in readings)
    return top


def _read_phase(lowered: str, original: str, default_per_day: PerDay | None = None) -> Reading:
    doubts: list[str] = []
    notes: list[str] = []
    tokens, stray = _tokens(lowered)
    for word in stray:
        doubts.append(f'"{word}" in the text was not understood')
    caps = [t for t in tokens if t.kind == "cap"]
    count_caps = [t for t in tokens if t.kind == "count_cap"]
    doubts += [t.label for t in tokens if t.kind == "doubt"]
    notes += [t.label for t in tokens if t.kind == "note"]
    for token in tokens:
        if token.kind == "titrate_up":
            raise DosageError(f'{token.label} in "{original}"')
    prn_at = [m.start() for m in _PRN.finditer(lowered)]
    doubts += [f'"{t.label[1:]}" was read as a time of day' for t in tokens if t.kind == "slot" and t.label[:1] == "?"]
    timing = [t for t in tokens if t.kind in ("dose", "freq", "slot", "stat", "multiplier")]
    groups = _dedupe(_assemble(timing, doubts, prn_at), original)
    for group in groups:
        notes += group.notes
    if groups and all(g.dose_high is None for g in groups) and all(g.stat and not g.general for g in groups):
        groups[0].dose_low = groups[0].dose_high = Decimal(1)  # "stat": one dose, that day
        notes.append("stat with no dose: one dose counted")
    dosed = [g for g in groups if g.dose_high is not None]
    if not dosed:
        if _AS_DIRECTED.search(lowered):
            raise DosageError(f'dose "{original}" cannot be quantified')  # "as directed" with no dose
        if caps and caps[0].label != "bare":
            cap = caps[0]
            return Reading(Decimal(0), cap.high, cap.unit, True, [], [*doubts, "only a maximum is given"], cap.high)
        raise DosageError(f'no dose in "{original}"')
    for group in groups:
        if group.dose_high is None and (group.general or group.slots):
            doubts.append("a frequency with no dose of its own was not used")
    # "Take ONE capsule TWICE daily - Pregabalin 75mg": a mass with no frequency beside timed doses in units
    timed_units = {g.unit for g in dosed if _per_day(g, []) is not None}
    for group in list(dosed):
        if _per_day(group, []) is None and group.unit not in timed_units and timed_units == {"unit"}:
            dosed.remove(group)
            doubts.append(
                f"{_plain(group.dose_high or Decimal(0))} {group.unit} with no frequency was read as a strength"
            )
    units = {g.unit for g in dosed}
    if len(units) > 1:
        raise DosageError(f'"{original}" has doses in different units ({", ".join(sorted(units))})')
    unit = units.pop()
    # "two if severe": the dose before it may be this higher dose, at its own times
    for alternative in (t for t in tokens if t.kind == "alternative"):
        owner = next((g for g in reversed(dosed) if g.start <= alternative.start), dosed[0])
        if owner.dose_high is not None and alternative.high > owner.dose_high:
            owner.dose_high = alternative.high
            doubts.append(
                f"a higher dose ({_plain(alternative.high)}) if the pain is severe was counted at the same times"
            )
    low = high = regular = Decimal(0)
    per_days: list[PerDay | None] = []
    for group in dosed:
        per_day = _per_day(group, doubts)
        if per_day is None and default_per_day is not None and len(dosed) == 1:
            per_day = default_per_day
        per_days.append(per_day)
        if per_day is None:
            continue
        assert group.dose_low is not None and group.dose_high is not None
        low += Decimal(0) if (group.prn or group.up_to) else group.dose_low * per_day[0]
        high += group.dose_high * per_day[1]
        if not (group.prn or group.up_to) and group.dose_low == group.dose_high and per_day[0] == per_day[1]:
            regular += group.dose_high * per_day[1]  # a fixed regular dose: no maximum lowers it
    # "repeat", "double dose at night", "may take another": one further dose (each time, unless stated once)
    for extra in (t for t in tokens if t.kind == "extra"):
        owner = next((g for g in reversed(dosed) if g.start <= extra.start), dosed[0])
        owner_per_day = per_days[dosed.index(owner)]
        if owner_per_day is None or owner.dose_high is None:
            continue
        times = Decimal(1) if extra.label == "one" else max(owner_per_day[1], Decimal(1))
        high += owner.dose_high * times
        doubts.append(
            f"a repeat or extra dose was counted as {_plain(times)} further dose(s) of {_plain(owner.dose_high)} a day "
            "(the highest plausible reading)"
        )
    all_prn = all(g.prn or g.up_to for g in dosed)
    top_dose = max(g.dose_high for g in dosed if g.dose_high is not None)
    # A maximum: in the dose's unit, or (a bare number on a dose in mg or ml, or "doses") a number of doses.
    cap_value: Decimal | None = None
    for cap in caps:
        if cap.label == "bare" and unit != "unit":
            count_caps.append(Token("count_cap", cap.start, cap.low, cap.high))
            doubts.append(f"a maximum of {_plain(cap.high)} with no unit was read as {_plain(cap.high)} doses")
            continue
        if cap.unit != unit:
            doubts.append(f"a maximum in {cap.unit} was not applied to a dose in {unit}")
            continue
        cap_value = cap.high if cap_value is None else min(cap_value, cap.high)
    if count_caps:
        by_count = min(c.high for c in count_caps) * top_dose
        cap_value = by_count if cap_value is None else min(cap_value, by_count)
    open_ended = False  # an as-needed dose with no frequency: the maximum, when stated, is its top
    if any(p is None for p in per_days):
        if len(dosed) == 1 and cap_value is not None:
            return Reading(Decimal(0), cap_value, unit, True, groups, doubts, cap_value, notes)
        untimed = [g for g, p in zip(dosed, per_days, strict=True) if p is None]
        if len(untimed) == len(dosed) or not all(g.prn for g in untimed):
            raise DosageError(f'no frequency in "{original}"')
        # "1 bd and 1 prn", "1 tds + 1 prn": the regular part, plus one as-needed dose a day (or the maximum)
        open_ended = True
        for group in untimed:
            high += group.dose_high or Decimal(0)
        if cap_value is None:
            doubts.append(
                "an as-needed dose with no frequency or maximum: one such dose a day was counted with the regular dose"
            )
    if any(cap.up_to for cap in caps):
        regular = Decimal(0)  # "every 2 hours up to a maximum of 10 a day": the doses are "up to" the maximum
    if cap_value is not None:
        high, low = _apply_cap(cap_value, low, high, regular, open_ended, doubts, notes)
    for total in (t for t in tokens if t.kind == "total"):
        if total.unit != unit or total.high != high:
            doubts.append(f"the stated total ({_plain(total.high)} {total.unit} a day) differs: the higher was counted")
            if total.unit == unit and total.high > high:
                high = total.high
    return Reading(low, high, unit, all_prn, groups, doubts, cap_value, notes)


def _apply_cap(
    cap: Decimal, low: Decimal, high: Decimal, regular: Decimal, open_ended: bool, doubts: list[str], notes: list[str]
) -> tuple[Decimal, Decimal]:
    """(high, low) after a stated maximum. A maximum limits only what is as needed, "up to" or a range: never a
    fixed regular dose (a maximum below it contradicts it, and the higher counts, flagged); above a fixed regular
    dose it reads as "up to" the maximum (the maximum counts, flagged)."""
    if regular == high and not open_ended:  # every dose is fixed and regular
        if cap < high:
            doubts.append(
                f"the stated maximum ({_plain(cap)} a day) is below the regular dose ({_plain(high)} a day): "
                "the regular dose was counted"
            )
            return high, min(low, cap)
        if cap > high:
            doubts.append(
                f'a maximum of {_plain(cap)} a day above the regular dose ({_plain(high)} a day) was read as "up to" '
                "the maximum"
            )
            return cap, low
        return high, low
    if cap < regular:
        doubts.append(
            f"the stated maximum ({_plain(cap)} a day) is below the regular dose ({_plain(regular)} a day): "
            "the regular dose was counted"
        )
    top = max(regular, cap) if open_ended else max(regular, min(high, cap))
    if top < high:
        notes.append("the stated maximum limits the daily dose")
    return top, min(low, top)


def _mass(value: Decimal, unit: str) -> tuple[Decimal, str]:
    from cds_service.clinical.units import MASS_TO_MG

    if unit in MASS_TO_MG:
        return value * MASS_TO_MG[unit], "mg"
    return value, unit


def _dedupe(groups: list[Group], original: str) -> list[Group]:
    """ "1 patch - every 72 hours - One every 72 hours": the same regimen said twice across a dash counts once."""
    if " - " not in original or len(groups) < 2 or len(groups) % 2:
        return groups
    half = len(groups) // 2
    first, second = groups[:half], groups[half:]
    if [g.key() for g in first] == [g.key() for g in second] and any(g.general for g in first):
        return first
    return groups


def has_number(text: str) -> bool:
    """Whether a text names a number (digits, or a number word: "TWO tablets")."""
    return bool(re.search(r"\d", _normalise(str(text), [])))


def frequency_of(text: str) -> PerDay | None:
    """Administrations per day of a timing text alone ("twice a day", "q4h", "morning and night"), or None."""
    group = Group()
    for token in _tokens(_normalise(str(text), []))[0]:
        if token.kind == "freq":
            group.general.append((token.low, token.high))
        elif token.kind == "slot":
            group.slots.append(token.label)
        elif token.kind == "stat":
            group.stat = True
    return _per_day(group, [])


__all__ = ["Group", "Reading", "frequency_of", "has_number", "read_dose_text"]
