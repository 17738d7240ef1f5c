"""Identify the product of a MedicationRequest.

In order: a coding we know (dm+d through https://dmd.nhs.uk or http://snomed.info/sct; RxNorm); a contained or
referenced Medication (its code, else its ``ingredient[]`` strengths and ``form``); then the display or text,
first as an exact catalogue name (brand names included), then read with the dm+d / RxNorm naming grammar.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from cds_service.clinical.knowledge.classify import product_from_parsed
from cds_service.clinical.knowledge.model import Knowledge, Product, normalise_name
from cds_service.clinical.knowledge.names import (
    ParsedComponent,
    ParsedName,
    ParsedStrength,
    classify_form,
    parse_name,
)
from cds_service.clinical.units import MASS_TO_MG

DMD = "https://dmd.nhs.uk"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SYSTEM_ALIASES = {
    "https://dmd.nhs.uk": DMD,
    "http://snomed.info/sct": DMD,  # dm+d concepts are SNOMED CT concepts (EPS sends them so)
    "https://fhir.nhs.uk/id/dmd": DMD,
    "http://www.nlm.nih.gov/research/umls/rxnorm": RXNORM,
}


@dataclass(frozen=True)
class Identified:
    product: Product | None
    via: str  # "code" | "Medication.code" | "Medication.ingredient" | "name" | "text" | "none"
    display: str
    system: str | None = None
    code: str | None = None
    problem: str | None = None


def _concept_of(
    resource: dict[str, Any], medications: dict[str, dict[str, Any]]
) -> tuple[dict[str, Any] | None, dict[str, Any] | None, str | None]:
    """(CodeableConcept, Medication resource or None, problem) of a MedicationRequest."""
    concept = resource.get("medicationCodeableConcept")
    if isinstance(concept, dict):
        return concept, None, None
    reference = resource.get("medicationReference")
    if not isinstance(reference, dict):
        return None, None, "no medication given"
    ref = reference.get("reference")
    medication = None
    if isinstance(ref, str):
        if ref.startswith("#"):
            medication = next(
                (c for c in resource.get("contained") or [] if isinstance(c, dict) and c.get("id") == ref[1:]), None
            )
        else:
            tail = ref.split("/_history/")[0]
            medication = medications.get("Medication/" + tail.rsplit("/", 1)[-1]) if "Medication/" in tail else None
    if medication is None:
        display = reference.get("display")
        concept = {"text": display} if isinstance(display, str) else None
        return concept, None, f"medicationReference {ref!r} was not found"
    return medication.get("code") if isinstance(medication.get("code"), dict) else None, medication, None


def _codings(concept: Any) -> list[dict[str, Any]]:
    if not isinstance(concept, dict):
        return []
    return [c for c in concept.get("coding") or [] if isinstance(c, dict)]


def _texts(concept: Any, medication: dict[str, Any] | None) -> list[str]:
    texts = []
    if isinstance(concept, dict) and isinstance(concept.get("text"), str):
        texts.append(concept["text"])
    texts += [c["display"] for c in _codings(concept) if isinstance(c.get("display"), str)]
    return [t for t in texts if t.strip()]


def by_code(codings: list[dict[str, Any]], knowledge: Knowledge) -> tuple[Product | None, dict[str, Any] | None]:
    found: list[tuple[Product, dict[str, Any]]] = []
    for coding in codings:
        system = SYSTEM_ALIASES.get(str(coding.get("system", "")).lower().rstrip("/"))
        if system and isinstance(coding.get("code"), str):
            product = knowledge.products.get((system, coding["code"].strip()))
            if product is not None:
                found.append((product, coding))
    # Prefer a product with a strength over an ingredient-only code (RxNorm IN) or an unparsed name.
    found.sort(key=lambda pc: (pc[0].strength_mg is None, pc[0].status != "ok"))
    return found[0] if found else (None, None)


def by_text(text: str, knowledge: Knowledge) -> tuple[Product | None, str]:
    exact = knowledge.by_name.get(normalise_name(text))
    if exact is not None:
        return exact, "name"
    parsed = parse_name(text)
    if parsed is None:
        return None, "text"
    product = product_from_parsed(parsed, knowledge, name=text, type="text", source="read from the name")
    return product, "text"


def _quantity_mg(quantity: Any) -> tuple[Decimal, str] | None:
    if not isinstance(quantity, dict) or quantity.get("value") is None:
        return None
    try:
        value = Decimal(str(quantity["value"]))
    except InvalidOperation:
        return None
    unit = str(quantity.get("code") or quantity.get("unit") or "").strip().lower()
    return value, unit


def by_ingredients(medication: dict[str, Any], knowledge: Knowledge) -> Product | None:
    """A Medication described by ``ingredient[]`` (item + strength Ratio) and ``form``."""
    parts = []
    for ingredient in medication.get("ingredient") or []:
        if not isinstance(ingredient, dict):
            continue
        item = ingredient.get("itemCodeableConcept") or {}
        if isinstance(ingredient.get("itemReference"), dict):
            item = {"text": ingredient["itemReference"].get("display")}
        product, _ = by_code(_codings(item), knowledge)
        words = product.ingredient if product else " ".join(_texts(item, None)[:1]).lower()
        strength = ingredient.get("strength") or {}
        numerator = _quantity_mg(strength.get("numerator"))
        denominator = _quantity_mg(strength.get("denominator"))
        if not words or numerator is None:
            continue
        value, unit = numerator
        per_value, per_unit = denominator if denominator else (Decimal(1), "")
        per = {"ml": "ml", "h": "hour", "hour": "hour", "hr": "hour", "dose": "dose", "actuation": "dose"}
        unit_name = {"ug": "microgram", "mcg": "microgram", "microgram": "microgram", "mg": "mg", "g": "g"}.get(
            unit.split("/")[0], unit
        )
        if "/h" in unit:  # "ug/h" numerator over one patch
            per_unit = "h"
        parts.append((words, ParsedStrength(value, unit_name, per_value, per.get(per_unit))))
    if not parts or all(u.unit not in MASS_TO_MG for _, u in parts):
        return None
    form = medication.get("form") or {}
    form_text = " ".join(_texts(form, None))
    route, presentation = classify_form(form_text) if form_text else (None, None)
    parsed = ParsedName(
        text=" / ".join(w for w, _ in parts),
        components=tuple(ParsedComponent(w, (s,)) for w, s in parts),
        form=form_text,
        route=route or ("transdermal" if any(s.per_unit == "hour" for _, s in parts) else None),
        presentation=presentation or ("ml" if any(s.per_unit == "ml" for _, s in parts) else None),
        release="modified" if "modified" in form_text.lower() or "prolonged" in form_text.lower() else "immediate",
    )
    return product_from_parsed(
        parsed,
        knowledge,
        name=" ".join(_texts(medication.get("code"), None)[:1]) or parsed.text,
        type="Medication.ingredient",
        source="Medication.ingredient",
    )


def identify(resource: dict[str, Any], medications: dict[str, dict[str, Any]], knowledge: Knowledge) -> Identified:
    """Identify the product ordered by one MedicationRequest (raw dict)."""
    concept, medication, problem = _concept_of(resource, medications)
    texts = _texts(concept, medication)
    display = texts[0] if texts else ""
    product, coding = by_code(_codings(concept), knowledge)
    if product is not None and coding is not None:
        via = "Medication.code" if medication else "code"
        return Identified(product, via, display or product.name, product.system, product.code, problem)
    first = next(iter(_codings(concept)), {})
    system, code = first.get("system"), first.get("code")
    if medication is not None and (made := by_ingredients(medication, knowledge)) is not None:
        return Identified(made, "Medication.ingredient", display or made.name, system, code, problem)
    for text in texts:
        product, via = by_text(text, knowledge)
        if product is not None:
            return Identified(product, via, display, system, code, problem)
    return Identified(None, "none", display, system, code, problem or "product not recognised")
