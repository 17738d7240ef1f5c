"""Plain objects of the medication knowledge: products, factor profiles, and the knowledge base holding them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal

CLASSES = (
    "opioid",
    "strong-opioid",
    "weak-opioid",
    "immediate-release-fentanyl",
    "gabapentinoid",
    "benzodiazepine",
    "z-drug",
    "opioid-substitution",
)
# Routes a profile may not list, and the route whose factor stands in (recorded in docs/decisions.md).
ROUTE_FALLBACK = {"sublingual": "oromucosal", "oromucosal": "buccal", "buccal": "oromucosal"}


def normalise_name(name: str) -> str:
    """A name as a lookup key: lower case, single spaces, "micrograms" spelt one way."""
    name = re.sub(r"\s+", " ", name.strip().lower())
    return re.sub(r"\b(mcg|µg|ug)\b", "microgram", name)


@dataclass(frozen=True)
class Product:
    system: str
    code: str
    name: str
    type: str
    ingredient: str
    strength_mg: Decimal | None = None  # of the ingredient, per ``per_value`` ``per_unit``
    per_value: Decimal = Decimal(1)
    per_unit: str = "unit"  # unit (one tablet, capsule, suppository…) | ml | dose | hour (patches)
    patch_mcg_per_hour: Decimal | None = None
    wear_hours: int | None = None
    other_ingredients: tuple[str, ...] = ()
    form: str = ""
    route: str = ""
    presentation: str = ""  # tablet | capsule | ml | patch | dose | suppository | sachet | lozenge | film
    release: str = "immediate"
    classes: frozenset[str] = frozenset()
    status: str = "ok"
    source: str = ""

    @property
    def is_opioid(self) -> bool:
        return "opioid" in self.classes

    @property
    def is_patch(self) -> bool:
        return self.patch_mcg_per_hour is not None

    def mg_per(self, unit: str) -> Decimal | None:
        """mg of the ingredient in one ``unit`` (unit = one tablet/capsule/dose…, or ml), if the strength says."""
        if self.strength_mg is None or self.is_patch:
            return None
        if unit == "ml" and self.per_unit == "ml":
            return self.strength_mg / self.per_value
        if unit == "unit" and self.per_unit in ("unit", "dose"):
            return self.strength_mg / self.per_value
        return None


@dataclass(frozen=True)
class FactorRow:
    profile: str
    ingredient: str
    route: str  # a route, or "*" for every non-transdermal route
    presentation: str
    dose_min_mg: Decimal | None
    dose_max_mg: Decimal | None
    factor: Decimal
    basis: str  # "mg" | "mg delivered per day"
    source: str
    source_url: str
    notes: str


@dataclass(frozen=True)
class Factor:
    value: Decimal
    source: str
    route: str  # the route whose row was used (may differ from the product's: see ROUTE_FALLBACK)
    row: FactorRow


@dataclass
class Profile:
    name: str
    rows: list[FactorRow] = field(default_factory=list)
    _by_ingredient: dict[str, list[FactorRow]] = field(default_factory=dict, repr=False)

    def add(self, row: FactorRow) -> None:
        self.rows.append(row)
        self._by_ingredient.setdefault(row.ingredient, []).append(row)

    def factor(
        self, ingredient: str, route: str, presentation: str = "", daily_mg: Decimal | None = None
    ) -> Factor | None:
        """The factor for ``ingredient`` by ``route``; tiers (methadone, cdc-2016) chosen by ``daily_mg``."""
        candidates = self._by_ingredient.get(ingredient, [])
        routes = [route]
        if route in ROUTE_FALLBACK:
            routes.append(ROUTE_FALLBACK[route])
        if route != "transdermal":
            routes.append("*")
        for wanted in routes:
            rows = [r for r in candidates if r.route == wanted]
            exact = [r for r in rows if r.presentation and r.presentation == presentation]
            rows = exact or [r for r in rows if not r.presentation]
            if daily_mg is not None and any(r.dose_min_mg is not None for r in rows):
                rows = [r for r in rows if _in_tier(r, daily_mg)]
            if rows:
                return Factor(rows[0].factor, rows[0].source, wanted, rows[0])
        return None


def _in_tier(row: FactorRow, daily_mg: Decimal) -> bool:
    """Tiers run above their lower bound up to and including their upper; zero falls in the first tier."""
    low = row.dose_min_mg if row.dose_min_mg is not None else Decimal(0)
    above_low = daily_mg > low or (daily_mg == 0 and low == 0)
    return above_low and (row.dose_max_mg is None or daily_mg <= row.dose_max_mg)


@dataclass
class Knowledge:
    """Everything identification and OME need, loaded once per process."""

    products: dict[tuple[str, str], Product]
    by_name: dict[str, Product]
    opioid_strength: dict[str, str]  # ingredient -> weak | strong
    synonyms: dict[str, str]
    co_drugs: dict[str, list[str]]
    brands: dict[str, str]  # brand word(s) -> ingredient (from the catalogue's brand products)
    class_by_ingredient: dict[str, frozenset[str]]  # non-opioid classes (gabapentinoid, benzodiazepine, z-drug)
    profiles: dict[str, Profile]

    def canonical_ingredient(self, words: str) -> str:
        words = self.synonyms.get(words, words)
        return self.synonyms.get(words, words)

    def is_opioid(self, ingredient: str) -> bool:
        return ingredient in self.opioid_strength
