"""From a parsed name to a Product: which words are which ingredient, strength basis, route and classes.

Used at build time (scripts/build_catalogue.py) and at run time (identifying a product from text), so both
read names the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Protocol

from cds_service.clinical.knowledge.model import Product
from cds_service.clinical.knowledge.names import ParsedName, ParsedStrength

IR_FENTANYL_ROUTES = frozenset({"buccal", "sublingual", "nasal", "oromucosal"})


def plain(value: Decimal) -> Decimal:
    """``value`` without trailing zeros and never in exponent form (30, not 3E+1)."""
    normal = value.normalize()
    return normal.quantize(Decimal(1)) if normal == normal.to_integral_value() else normal


class Vocabulary(Protocol):
    """What reading a name needs of the knowledge (read-only, so a Knowledge's dicts satisfy the Mappings)."""

    @property
    def opioid_strength(self) -> Mapping[str, str]: ...

    @property
    def co_drugs(self) -> Mapping[str, list[str]]: ...

    @property
    def brands(self) -> Mapping[str, str]: ...

    @property
    def class_by_ingredient(self) -> Mapping[str, frozenset[str]]: ...

    def canonical_ingredient(self, words: str) -> str: ...

    def is_opioid(self, ingredient: str) -> bool: ...


def resolve_components(
    parsed: ParsedName, vocab: Vocabulary, brand_ingredient: str | None = None
) -> list[tuple[str, ParsedStrength]]:
    """(ingredient, strength) pairs: co-drugs expanded, salts dropped, brand words resolved."""
    pairs: list[tuple[str, ParsedStrength]] = []
    for component in parsed.components:
        words = component.base_words
        if words in vocab.co_drugs:
            names, strength = vocab.co_drugs[words], component.strengths[0]
            # "30mg/500mg/5ml" (a co-drug liquid): both strengths are per that volume, not per unit.
            volume = next((s for s in component.strengths[1:] if s.unit == "ml" and s.per_unit is None), None)
            per_value, per_unit = (volume.value, "ml") if volume else (Decimal(1), None)
            if strength.per_unit in ("mg", "microgram") and len(names) == 2:  # "30mg/500mg": opioid/other
                pairs.append((names[0], ParsedStrength(strength.value, strength.unit, per_value, per_unit)))
                pairs.append((names[1], ParsedStrength(strength.per_value, strength.per_unit, per_value, per_unit)))
            else:
                pairs.append((names[0], strength))
            continue
        ingredient = vocab.canonical_ingredient(words)
        if not vocab.is_opioid(ingredient) and len(parsed.components) == 1:
            ingredient = brand_ingredient or _brand(words, vocab) or ingredient
        pairs.extend((ingredient, strength) for strength in component.strengths)
    return pairs


def _brand(words: str, vocab: Vocabulary) -> str | None:
    """A brand by its words, or by its first words ("zomorph" in "zomorph sr")."""
    tokens = words.split()
    for size in range(len(tokens), 0, -1):
        if (found := vocab.brands.get(" ".join(tokens[:size]))) is not None:
            return found
    return None


def wear_hours(ingredient: str, rate_mcg_per_hour: Decimal) -> int | None:
    """Patch wear time (issue #3): fentanyl 72 h; buprenorphine 5-20 micrograms/hour 7 days, 35-70 96 h."""
    if ingredient == "fentanyl":
        return 72
    if ingredient == "buprenorphine":
        return 168 if rate_mcg_per_hour <= 20 else 96
    return None


def is_substitution(ingredient: str, parsed: ParsedName, strength_mg: Decimal | None, others: Iterable[str]) -> bool:
    """BNF 4.10: methadone oral solution, high-strength (2 mg and over) sublingual buprenorphine, bup/naloxone."""
    if ingredient == "methadone":
        return parsed.route == "oral" and bool(re.search(r"oral solution|mixture|concentrate", parsed.form.lower()))
    if ingredient != "buprenorphine":
        return False
    if "naloxone" in others:
        return True
    return parsed.route in ("sublingual", "oral") and strength_mg is not None and strength_mg >= 2


def product_from_parsed(
    parsed: ParsedName,
    vocab: Vocabulary,
    *,
    system: str = "",
    code: str = "",
    name: str | None = None,
    type: str = "text",
    source: str = "",
    brand_ingredient: str | None = None,
    list_classes: Iterable[str] = (),
) -> Product:
    """The Product a parsed name describes; the opioid ingredient is the basis of strength when there is one."""
    pairs = resolve_components(parsed, vocab, brand_ingredient)
    opioid_pairs = [(i, s) for i, s in pairs if vocab.is_opioid(i)]
    ingredient, strength = (opioid_pairs or pairs)[0]
    others = tuple(sorted({i for i, _ in pairs if i != ingredient}))
    classes = set(list_classes)
    status = "ok"
    strength_mg = strength.mg
    route = parsed.route or ""
    if vocab.is_opioid(ingredient):
        classes |= {"opioid", f"{vocab.opioid_strength[ingredient]}-opioid"}
        if ingredient == "fentanyl" and route in IR_FENTANYL_ROUTES:
            classes.add("immediate-release-fentanyl")
        if is_substitution(ingredient, parsed, strength_mg, others):
            classes.add("opioid-substitution")
    elif "opioid" in classes:
        classes -= {"opioid", "strong-opioid", "weak-opioid"}
        status = "listed as opioid but no opioid ingredient recognised"
    classes |= vocab.class_by_ingredient.get(ingredient, frozenset())
    patch_rate = wear = None
    per_value, per_unit = strength.per_value, strength.per_unit or "unit"
    if strength.per_unit == "hour" and strength_mg is not None:
        patch_rate = plain(strength_mg * 1000)
        wear = wear_hours(ingredient, patch_rate)
    elif strength.per_unit not in (None, "ml", "dose", "hour"):
        per_value, per_unit = Decimal(1), "unit"
    if strength_mg is None and status == "ok":
        status = "unparsed: strength unit unknown"
    return Product(
        system=system,
        code=code,
        name=name if name is not None else parsed.text,
        type=type,
        ingredient=ingredient,
        strength_mg=plain(strength_mg) if strength_mg is not None else None,
        per_value=plain(per_value),
        per_unit=per_unit,
        patch_mcg_per_hour=patch_rate,
        wear_hours=wear,
        other_ingredients=others,
        form=parsed.form,
        route=route,
        presentation=parsed.presentation or "",
        release=parsed.release,
        classes=frozenset(classes),
        status=status,
        source=source,
    )
