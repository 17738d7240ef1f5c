"""Parse medicine names in the dm+d and RxNorm naming conventions (and the looser text EHRs send).

dm+d:   "Morphine 10mg modified-release tablets", "Oxycodone 10mg / Naloxone 5mg modified-release tablets",
        "Co-codamol 30mg/500mg tablets", "Morphine sulfate 10mg/5ml oral solution",
        "Fentanyl 25micrograms/hour transdermal patches", "Zomorph 30mg modified-release capsules" (brand).
RxNorm: "12 HR Oxycodone Hydrochloride 10 MG Extended Release Oral Tablet",
        "72 HR Fentanyl 0.075 MG/HR Transdermal System", "acetaminophen 300 MG / codeine phosphate 30 MG Oral Tablet".
Other:  "MORPHINE ER 20 MG CAPSULE,EXTENDED RELEASE PELLETS".

The parser knows grammar, not drugs: it returns ingredient words, strengths, form, route and release. Which
ingredient words mean which substance (salts, synonyms, brands, co-drugs) is data handed in by the caller.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal

from cds_service.clinical.units import MASS_TO_MG

_NUMBER = r"(\d+(?:\.\d+)?|\.\d+)"
_UNIT = r"(mg|g|micrograms?|mcg|µg|ug|nanograms?|ml|units?|gram|grams)"
_PER = r"(ml|hour|hr|h|dose|actuation|actuat|spray|mg|g|micrograms?|mcg|µg|24hours|24 hours)"
# A strength: "10mg", "10 MG", "10mg/5ml", "0.075 MG/HR", "25micrograms/hour", "30mg/500mg", "100micrograms/dose".
STRENGTH = re.compile(
    rf"(?<![\w.]){_NUMBER}\s*{_UNIT}(?:\s*/\s*(?:{_NUMBER}\s*)?{_PER})?(?![\w])",
    re.IGNORECASE,
)
_LEADING_DURATION = re.compile(r"^\s*(\d+)\s*HR\s+", re.IGNORECASE)  # RxNorm "12 HR ..." (modified release)
_LEADING_VOLUME = re.compile(r"^\s*\d+(?:\.\d+)?\s*ML\s+", re.IGNORECASE)  # RxNorm "0.27 ML ..." (pack volume)
_BRAND_SUFFIX = re.compile(r"\s*\[([^\]]+)\]\s*$")  # RxNorm "... [OxyContin]"
# RxNorm qualifiers and pack counts: "Abuse-Deterrent", "Matrix Delivery", "80 ACTUAT"
_LEADING_QUALIFIER = re.compile(r"^\s*(abuse-deterrent|generic|matrix delivery|\d+\s+actuat)\s+", re.IGNORECASE)
# RxNorm packs: "{1 (0.1 ML) (diazepam 100 MG/ML Nasal Spray) } Pack", "{2 (fentanyl ... Mucosal Spray) } Pack"
_PACK = re.compile(r"^\{\s*\d+\s*(?:\([^()]*ML\)\s*)?\((.+)\)\s*\}\s*pack", re.IGNORECASE)


# Release words (in a name or as the ingredient's suffix, e.g. "MORPHINE ER").
MODIFIED_RELEASE = re.compile(
    r"\b(modified[- ]release|prolonged[- ]release|extended[- ]release|controlled[- ]release|sustained[- ]release|"
    r"slow[- ]release|gastro-resistant prolonged|m/r|xl|sr|er|cr|mr|la|pr|retard|continus|24 hr|12 hr)\b",
    re.IGNORECASE,
)
_RELEASE_WORDS = {"er", "sr", "xl", "cr", "mr", "la", "pr", "ir", "retard", "continus"}

# Route by form words, most specific first (dm+d, RxNorm and common EHR text).
_ROUTES: tuple[tuple[str, str], ...] = (
    (r"transdermal|patch", "transdermal"),
    (r"sublingual", "sublingual"),
    (r"buccal", "buccal"),
    (r"lozenge|oromucosal|mucosal spray|oral spray|lollipop", "oromucosal"),
    (r"nasal", "nasal"),
    (r"suppositor|rectal|enema", "rectal"),
    # An oral liquid in unit-dose vials ("oral solution unit dose vials") is taken by mouth, not injected.
    (r"\boral (?:solution|suspension|liquid)", "oral"),
    (
        r"inject|infusion|ampoule|vial|syringe|cartridge|\biv\b|subcutaneous|intravenous|intramuscular|epidural",
        "injection",
    ),
    (r"inhal|cigarette|vapour|nebuli", "inhalation"),
    (
        r"oral|tablet|capsule|caplet|granule|sachet|linctus|elixir|mixture|syrup|solution|suspension|drops|"
        r"powder|liquid|film|lyophilisate",
        "oral",
    ),
)
# The unit one dose of the form is counted in.
_PRESENTATION: tuple[tuple[str, str], ...] = (
    (r"patch|transdermal system", "patch"),
    (r"suppositor", "suppository"),
    (r"lozenge|lollipop", "lozenge"),
    (r"film", "film"),
    (r"spray|actuat", "dose"),
    (r"sachet", "sachet"),
    (r"capsule", "capsule"),
    (r"tablet|caplet|lyophilisate", "tablet"),
)
_SALT_WORDS = frozenset(
    {
        *("sulfate", "sulphate", "hydrochloride", "phosphate", "tartrate", "bitartrate", "citrate", "acetate"),
        *("maleate", "pectinate", "napsylate", "hydrobromide", "mesilate", "mesylate", "dimesylate", "besilate"),
        *("sodium", "potassium", "dipotassium", "monohydrate", "anhydrous", "base", "hcl", "polistirex"),
        *("liposomal", "terephthalate"),
    }
)


@dataclass(frozen=True)
class ParsedStrength:
    """One strength as written: ``value`` ``unit`` per ``per_value`` ``per_unit`` (per_unit None = per unit)."""

    value: Decimal
    unit: str  # normalised: mg | microgram | ml | unit
    per_value: Decimal = Decimal(1)
    per_unit: str | None = None  # None (each tablet, capsule…) | ml | hour | dose | mg (a co-drug pair)

    @property
    def mg(self) -> Decimal | None:
        factor = MASS_TO_MG.get(self.unit)
        return None if factor is None else self.value * factor


@dataclass(frozen=True)
class ParsedComponent:
    words: str  # the ingredient words as written, normalised to lower case ("morphine sulfate", "co-codamol")
    strengths: tuple[ParsedStrength, ...]

    @property
    def base_words(self) -> str:
        """The words without salts and release markers ("oxycodone hydrochloride er" -> "oxycodone")."""
        kept = [w for w in self.words.split() if w not in _SALT_WORDS and w not in _RELEASE_WORDS]
        return " ".join(kept)


@dataclass(frozen=True)
class ParsedName:
    text: str
    components: tuple[ParsedComponent, ...]
    form: str  # the form words as written after the last strength ("modified-release tablets")
    route: str | None
    presentation: str | None  # tablet | capsule | patch | ml | dose | suppository | sachet | lozenge | film
    release: str  # immediate | modified
    brand: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


def _unit(raw: str) -> str:
    raw = raw.lower()
    if raw in ("mg",):
        return "mg"
    if raw in ("g", "gram", "grams"):
        return "g"
    if raw.startswith(("microgram", "mcg", "µg", "ug")):
        return "microgram"
    if raw.startswith("nanogram"):
        return "nanogram"
    if raw == "ml":
        return "ml"
    return "unit"


def _per_unit(raw: str | None) -> str | None:
    if raw is None:
        return None
    raw = raw.lower().replace(" ", "")
    if raw in ("hour", "hr", "h"):
        return "hour"
    if raw in ("24hours",):
        return "day"
    if raw in ("dose", "actuation", "actuat", "spray"):
        return "dose"
    if raw == "ml":
        return "ml"
    return _unit(raw)


def parse_strength(match: re.Match[str]) -> ParsedStrength:
    value, unit, per_value, per_unit = match.groups()
    return ParsedStrength(
        value=Decimal(value),
        unit=_unit(unit),
        per_value=Decimal(per_value) if per_value else Decimal(1),
        per_unit=_per_unit(per_unit),
    )


def classify_form(text: str) -> tuple[str | None, str | None]:
    lowered = text.lower()
    route = next((r for pattern, r in _ROUTES if re.search(pattern, lowered)), None)
    presentation = next((p for pattern, p in _PRESENTATION if re.search(pattern, lowered)), None)
    return route, presentation


def _unwrap(text: str) -> tuple[str, str | None, bool]:
    """The name without its RxNorm pack, qualifiers, brand suffix and leading duration or volume:
    (what is left, the brand, whether a duration such as "24 HR" says modified release)."""
    working, brand, release_hint = text, None, False
    if match := _PACK.match(working):
        working = match.group(1)
    working = _LEADING_QUALIFIER.sub("", working)
    if re.match(r"^\s*\d+\s*HR\s", working, re.IGNORECASE) is None and re.search(r"\b\d+\s*HR\b", working):
        release_hint = True  # "Matrix Delivery 24 HR tramadol ..." after the qualifier
    if match := _BRAND_SUFFIX.search(working):
        brand = match.group(1)
        working = working[: match.start()]
    if match := _LEADING_DURATION.match(working):
        release_hint = True
        working = working[match.end() :]
    elif match := _LEADING_VOLUME.match(working):
        working = working[match.end() :]
    return working, brand, release_hint


def _components(working: str, matches: list[re.Match[str]]) -> tuple[list[ParsedComponent], str, list[str]]:
    """Each ingredient's words and strengths, the form words after the last strength, and notes."""
    components: list[ParsedComponent] = []
    notes: list[str] = []
    start, end = 0, len(working)
    for i, match in enumerate(matches):
        segment = working[start : match.start()]
        if components and " / " in segment:
            segment = segment.rsplit(" / ", 1)[1]  # "300mg modified-release / Codeine 20mg": the words after " / "
        words = " ".join(segment.strip(" /,+-").lower().split())
        strength = parse_strength(match)
        if not words and components:  # "10mg/5ml / 5mg/5ml": another strength of the previous component
            previous = components.pop()
            components.append(ParsedComponent(previous.words, (*previous.strengths, strength)))
        else:
            components.append(ParsedComponent(words, (strength,)))
        start = match.end()
        if i + 1 < len(matches):
            between = working[match.end() : matches[i + 1].start()]
            separated = "/" in between or "+" in between or " and " in f" {between.lower()} "
            if not separated and re.search(r"[a-z]{4,}", between.lower()):
                # Form words, then another number ("... tablets 28 tablet pack"): the name ends at the form.
                notes.append("text after the form was ignored")
                end = matches[i + 1].start()
                break
    return components, working[start:end].strip(" ,/").strip(), notes


_LIQUID = re.compile(r"solution|suspension|linctus|elixir|mixture|syrup|liquid|drops")


def _route_and_presentation(
    form: str, original: str, components: list[ParsedComponent]
) -> tuple[str | None, str | None]:
    route, presentation = classify_form(form or original)
    if route is None and presentation is None:
        route, presentation = classify_form(original)
    strengths = [s for c in components for s in c.strengths]
    if route is None and any(s.per_unit == "hour" for s in strengths):
        route, presentation = "transdermal", "patch"  # "fentanyl 0.025 MG/HR": only patches are dosed per hour
    if presentation is None and route == "oral" and _LIQUID.search(form.lower()):
        presentation = "ml"
    if presentation is None and any(s.per_unit == "ml" for s in strengths):
        presentation = "ml"
    if route == "injection" and presentation is None:
        presentation = "ml"
    return route, presentation


def _is_modified_release(
    form: str, route: str | None, brand: str | None, release_hint: bool, components: list[ParsedComponent]
) -> bool:
    return (
        route == "transdermal"
        or release_hint
        or bool(MODIFIED_RELEASE.search(form))
        or any(w in _RELEASE_WORDS - {"ir"} for c in components for w in c.words.split())
        or (brand is not None and bool(MODIFIED_RELEASE.search(brand)))
    )


def parse_name(text: str) -> ParsedName | None:
    """Parse a medicine name; None when it holds no strength (e.g. "Methadone hydrochloride powder")."""
    original = " ".join(text.split())
    working, brand, release_hint = _unwrap(original)
    matches = list(STRENGTH.finditer(working))
    if not matches:
        return None
    components, form, notes = _components(working, matches)
    route, presentation = _route_and_presentation(form, original, components)
    modified = _is_modified_release(form, route, brand, release_hint, components)
    return ParsedName(
        text=original,
        components=tuple(components),
        form=form,
        route=route,
        presentation=presentation,
        release="modified" if modified else "immediate",
        brand=brand,
        notes=tuple(notes),
    )
