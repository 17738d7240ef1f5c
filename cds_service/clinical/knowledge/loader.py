"""Read the knowledge data files once and hand the pure core plain objects.

``product_strengths.csv`` (curated, each row with its source) gives the strength of dm+d products whose name
carries none or several; its rows replace the catalogue's reading of those names, by code and by exact name.

``opioid_strength.csv`` (the weak/strong map) can be replaced by a practice's own file through
``OPIOID_CDS_OPIOID_STRENGTH``; the catalogue's strong/weak classes are always recomputed from the map in force.
"""

from __future__ import annotations

import csv
import os
from collections import Counter, defaultdict
from dataclasses import replace
from decimal import Decimal
from functools import cache
from importlib import resources
from pathlib import Path

from cds_service.clinical.knowledge.model import FactorRow, Knowledge, Product, Profile, normalise_name
from cds_service.clinical.knowledge.names import parse_name
from cds_service.errors import ConfigError

DATA = "cds_service.clinical.knowledge.data"
DMD = "https://dmd.nhs.uk"
_PATCH_CLASSES = {"strong-opioid", "weak-opioid"}


def _rows(name: str) -> list[dict[str, str]]:
    text = resources.files(DATA).joinpath(name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


def _decimal(value: str) -> Decimal | None:
    return Decimal(value) if value not in ("", None) else None


def _strength_map(path: str | None) -> dict[str, str]:
    if path:
        try:
            rows = list(csv.DictReader(Path(path).read_text(encoding="utf-8").splitlines()))
        except OSError as exc:
            raise ConfigError(f"OPIOID_CDS_OPIOID_STRENGTH: cannot read {path}: {exc}") from None
    else:
        rows = _rows("opioid_strength.csv")
    strength = {}
    for number, row in enumerate(rows, start=2):
        if row.get("strength") not in ("weak", "strong") or not row.get("ingredient") or not row.get("source"):
            raise ConfigError(
                f"{path or 'opioid_strength.csv'} line {number}: need ingredient, strength (weak|strong) and source"
            )
        strength[row["ingredient"].strip().lower()] = row["strength"]
    return strength


def _product(row: dict[str, str], strength: dict[str, str]) -> Product:
    classes = set(row["classes"].split()) - _PATCH_CLASSES
    if row["ingredient"] in strength:
        classes |= {"opioid", f"{strength[row['ingredient']]}-opioid"}
    return Product(
        system=row["system"],
        code=row["code"],
        name=row["name"],
        type=row["type"],
        ingredient=row["ingredient"],
        strength_mg=_decimal(row["strength_mg"]),
        per_value=_decimal(row["per_value"]) or Decimal(1),
        per_unit=row["per_unit"] or "unit",
        patch_mcg_per_hour=_decimal(row["patch_mcg_per_hour"]),
        wear_hours=int(row["wear_hours"]) if row["wear_hours"] else None,
        other_ingredients=tuple(row["other_ingredients"].split()),
        form=row["form"],
        route=row["route"],
        presentation=row["presentation"],
        release=row["release"] or "immediate",
        classes=frozenset(classes),
        status=row["status"],
        source=row["source"],
    )


def _curated(row: dict[str, str], base: Product | None, strength: dict[str, str]) -> Product:
    """A product_strengths.csv row over the catalogue's product of the same code (its type and list classes kept)."""
    if base is None:
        base = Product(system=DMD, code=row["code"], name=row["name"], type="dm+d", ingredient=row["ingredient"])
    ingredient = row["ingredient"]
    classes = set(base.classes) - {"opioid"} - _PATCH_CLASSES
    if ingredient in strength:
        classes |= {"opioid", f"{strength[ingredient]}-opioid"}
    return replace(
        base,
        name=row["name"],
        ingredient=ingredient,
        strength_mg=Decimal(row["strength_mg"]),
        per_value=_decimal(row["per_value"]) or Decimal(1),
        per_unit=row["per_unit"] or "unit",
        patch_mcg_per_hour=None,
        wear_hours=None,
        other_ingredients=tuple(row["other_ingredients"].split()),
        form=row["form"],
        route=row["route"],
        presentation=row["presentation"],
        release="immediate",
        classes=frozenset(classes),
        status="ok",
        source=f"product_strengths.csv: {row['source']}",
    )


def _brands(products: list[Product], knowledge_words: set[str]) -> dict[str, str]:
    """Brand words (the words before the strength in a product name that are not an ingredient) -> ingredient."""
    votes: dict[str, Counter[str]] = defaultdict(Counter)
    for product in products:
        if not product.is_opioid or product.system != "https://dmd.nhs.uk":
            continue
        parsed = parse_name(product.name)
        if parsed and len(parsed.components) == 1:
            words = parsed.components[0].base_words
            if words and words not in knowledge_words and not words.startswith("co-"):
                votes[words][product.ingredient] += 1
    return {words: counter.most_common(1)[0][0] for words, counter in votes.items() if len(counter) == 1}


@cache
def load_knowledge(strength_file: str | None = None) -> Knowledge:
    """The knowledge base (cached per process). ``strength_file`` replaces the weak/strong map."""
    strength_file = strength_file or os.environ.get("OPIOID_CDS_OPIOID_STRENGTH") or None
    strength = _strength_map(strength_file)
    products = [_product(r, strength) for r in _rows("catalogue.csv")]
    by_code = {(p.system, p.code): p for p in products}
    by_name: dict[str, Product] = {}
    for product in products:
        by_name.setdefault(normalise_name(product.name), product)
    for row in _rows("product_strengths.csv"):  # curated strengths come before any reading of the name
        curated = _curated(row, by_code.get((DMD, row["code"])), strength)
        by_code[(DMD, row["code"])] = curated
        by_name[normalise_name(curated.name)] = curated
    synonyms = {r["name"]: r["ingredient"] for r in _rows("ingredient_names.csv")}
    co_drugs: dict[str, list[str]] = defaultdict(list)
    for row in sorted(_rows("co_drugs.csv"), key=lambda r: int(r["position"])):
        co_drugs[row["name"]].append(row["ingredient"])
    classes: dict[str, set[str]] = defaultdict(set)
    for product in products:
        for name in ("gabapentinoid", "benzodiazepine", "z-drug"):
            if name in product.classes and product.ingredient:
                classes[product.ingredient].add(name)
    profiles: dict[str, Profile] = {}
    for row in _rows("ome_factors.csv"):
        profiles.setdefault(row["profile"], Profile(row["profile"])).add(
            FactorRow(
                profile=row["profile"],
                ingredient=row["ingredient"],
                route=row["route"],
                presentation=row["presentation"],
                dose_min_mg=_decimal(row["dose_min_mg"]),
                dose_max_mg=_decimal(row["dose_max_mg"]),
                factor=Decimal(row["factor"]),
                basis=row["basis"],
                source=row["source"],
                source_url=row["source_url"],
                notes=row["notes"],
            )
        )
    known_words = set(strength) | set(synonyms) | set(classes)
    return Knowledge(
        products=by_code,
        by_name=by_name,
        opioid_strength=strength,
        synonyms=synonyms,
        co_drugs=dict(co_drugs),
        brands=_brands(products, known_words),
        class_by_ingredient={k: frozenset(v) for k, v in classes.items()},
        profiles=profiles,
    )
