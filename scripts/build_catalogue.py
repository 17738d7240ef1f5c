"""Build cds_service/clinical/knowledge/data/catalogue.csv from the public lists vendored in scripts/sources/reference.

Inputs: the dm+d VMP/AMP codelists (OpenSAFELY / OpenPrescribing, with dm+d names and BNF codes) and the CDC
RxNorm medication value sets (with display names) and MME ingredient codes. Every code is copied from a list,
never typed. Each row keeps the list(s) it came from. Names are parsed with
cds_service.clinical.knowledge.names; a brand
(AMP) name is tied to its ingredient through the BNF chemical substance (first 9 characters of its BNF code)
shared with a generic VMP. Rows that cannot be parsed are kept, marked unparsed, with the reason.

Run: python scripts/build_catalogue.py [--shared scripts/sources]
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "scripts" / "sources"  # the vendored reference lists (see its README)
sys.path.insert(0, str(ROOT))

from cds_service.clinical.knowledge.classify import product_from_parsed, resolve_components  # noqa: E402
from cds_service.clinical.knowledge.names import parse_name  # noqa: E402

DATA = ROOT / "cds_service" / "clinical" / "knowledge" / "data"
DMD = "https://dmd.nhs.uk"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
COLUMNS = [
    "system",
    "code",
    "name",
    "type",
    "bnf_code",
    "ingredient",
    "strength_mg",
    "per_value",
    "per_unit",
    "patch_mcg_per_hour",
    "wear_hours",
    "other_ingredients",
    "form",
    "route",
    "presentation",
    "release",
    "classes",
    "status",
    "source",
]

# dm+d list -> the class its membership gives (every list is an OpenSAFELY/OpenPrescribing codelist).
DMD_LISTS: dict[str, tuple[str, ...]] = {
    "opensafely-opioid-containing-medicines-oral": ("opioid",),
    "opensafely-opioid-containing-medicines-transdermal": ("opioid",),
    "opensafely-opioid-containing-medicines-buccal-nasal-and-oromucosal": ("opioid",),
    "opensafely-opioid-containing-medicines-parenteral": ("opioid",),
    "opensafely-opioid-containing-medicines-rectal": ("opioid",),
    "opensafely-opioid-containing-medicines-inhalation": ("opioid",),
    "opensafely-strongopioidsCW": ("opioid",),
    "user-anschaf-opioids-for-analgesia": ("opioid",),
    "user-anschaf-weak-opioids": ("opioid",),
    "user-anschaf-strong-opioids-exc-tramadol-and-tapentadol": ("opioid",),
    "user-anschaf-tramadol-and-tapentadol": ("opioid",),
    "user-anschaf-long-acting-opioids": ("opioid",),
    "opensafely-high-dose-long-acting-opioids-openprescribing": ("opioid",),
    "opensafely-long-acting-opioids": ("opioid",),
    "ir-fentanyl-dmd": ("opioid", "immediate-release-fentanyl"),
    "user-anschaf-gabapentinoids": ("gabapentinoid",),
    "benzodiazepines-dmd": ("benzodiazepine",),
    "z-drugs-dmd": ("z-drug",),
}
# CDC value set (file stem) -> classes. Benzodiazepines and opioids by set; the rest from the ingredient.
CDC_SETS: dict[str, tuple[str, ...]] = {
    "opioid-analgesics-with-ambulatory-misuse-potential": ("opioid",),
    "extended-release-opioid-with-ambulatory-misuse-potential": ("opioid",),
    "non-synthetic-opioid-medications": ("opioid",),
    "synthetic-opioid-medications": ("opioid",),
    "fentanyl-type-medications": ("opioid",),
    "oxycodone-medications": ("opioid",),
    "methadone-medications": ("opioid",),
    "buprenorphine-medications": ("opioid",),
    "buprenorphine-and-methadone-medications": ("opioid",),
    "benzodiazepine-medications": ("benzodiazepine",),
}
GABAPENTINOIDS = {"gabapentin", "pregabalin"}
Z_DRUGS = {"zopiclone", "zolpidem", "zaleplon", "eszopiclone"}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def list_key(filename: str) -> str | None:
    for key in DMD_LISTS:
        if filename.startswith(key) or key in filename:
            return key
    return None


class Vocabulary:
    """The build-time vocabulary: the same shape the run-time Knowledge offers to classify.py."""

    def __init__(self) -> None:
        self.opioid_strength = {r["ingredient"]: r["strength"] for r in read_csv(DATA / "opioid_strength.csv")}
        self.synonyms = {r["name"]: r["ingredient"] for r in read_csv(DATA / "ingredient_names.csv")}
        self.co_drugs: dict[str, list[str]] = defaultdict(list)
        for row in sorted(read_csv(DATA / "co_drugs.csv"), key=lambda r: int(r["position"])):
            self.co_drugs[row["name"]].append(row["ingredient"])
        self.brands: dict[str, str] = {}  # at build time brands resolve through their BNF chemical substance
        self.class_by_ingredient = {i: frozenset({"gabapentinoid"}) for i in GABAPENTINOIDS} | {
            i: frozenset({"z-drug"}) for i in Z_DRUGS
        }

    def canonical_ingredient(self, words: str) -> str:
        words = self.synonyms.get(words, words)
        return self.synonyms.get(words, words)

    def is_opioid(self, ingredient: str) -> bool:
        return ingredient in self.opioid_strength


def _text(value: Decimal | None) -> str:
    return "" if value is None else f"{value.normalize():f}"


def product_row(system, code, name, kind, bnf, sources, list_classes, vocab, brand_ingredient=None):
    source = "; ".join(sorted(sources))
    parsed = parse_name(name) if name else None
    if parsed is None:
        # No strength ("Kaolin and Morphine mixture", "Morphine sulfate powder"): still name the opioid if it is there.
        named = [
            w for w in re.findall(r"[a-z]+", (name or "").lower()) if vocab.is_opioid(vocab.canonical_ingredient(w))
        ]
        brand_ingredient = brand_ingredient or (vocab.canonical_ingredient(named[0]) if named else None)
        row = {c: "" for c in COLUMNS}
        classes = set(list_classes)
        if brand_ingredient and vocab.is_opioid(brand_ingredient):
            classes |= {"opioid", f"{vocab.opioid_strength[brand_ingredient]}-opioid"}
        row.update(
            system=system,
            code=code,
            name=name,
            type=kind,
            bnf_code=bnf,
            source=source,
            ingredient=brand_ingredient or "",
            classes=" ".join(sorted(classes)),
            status="unparsed: no strength in the name",
        )
        return row
    product = product_from_parsed(
        parsed,
        vocab,
        system=system,
        code=code,
        name=name,
        type=kind,
        source=source,
        brand_ingredient=brand_ingredient,
        list_classes=list_classes,
    )
    return {
        "system": product.system,
        "code": product.code,
        "name": product.name,
        "type": product.type,
        "bnf_code": bnf,
        "ingredient": product.ingredient,
        "strength_mg": _text(product.strength_mg),
        "per_value": _text(product.per_value),
        "per_unit": product.per_unit,
        "patch_mcg_per_hour": _text(product.patch_mcg_per_hour),
        "wear_hours": str(product.wear_hours or ""),
        "other_ingredients": " ".join(product.other_ingredients),
        "form": product.form,
        "route": product.route,
        "presentation": product.presentation,
        "release": product.release,
        "classes": " ".join(sorted(product.classes)),
        "status": product.status,
        "source": product.source,
    }


def dmd_rows(shared: Path, vocab: Vocabulary) -> list[dict[str, str]]:
    items: dict[str, dict] = {}
    paths = sorted((shared / "reference/uk/dmd").glob("*.csv"), key=lambda p: list_key(p.name) is None)
    for path in paths:
        key = list_key(path.name)
        for r in read_csv(path):
            if key is None:  # another list (e.g. addictive medicines): only fills in VMP/AMP type and BNF code
                known = items.get((r.get("dmd_id") or r.get("code") or "").strip())
                if known is not None:
                    known["type"] = known["type"] or (r.get("dmd_type") or "").strip()
                    known["bnf"] = known["bnf"] or (r.get("bnf_code") or "").strip()
                continue
            code = (r.get("dmd_id") or r.get("code") or "").strip()
            if not code:
                continue
            item = items.setdefault(code, {"name": "", "type": "", "bnf": "", "sources": set(), "classes": set()})
            item["name"] = item["name"] or (r.get("term") or r.get("dmd_name") or "").strip()
            item["type"] = item["type"] or (r.get("dmd_type") or "").strip()
            item["bnf"] = item["bnf"] or (r.get("bnf_code") or "").strip()
            item["sources"].add(f"dm+d codelist {path.stem}")
            item["classes"].update(DMD_LISTS[key])
    # "VMP previous to X": the name of X.
    for item in items.values():
        if match := re.match(r"VMP (?:previous|subsequent) to (\d+)", item["name"]):
            successor = items.get(match.group(1))
            if successor and successor["name"]:
                item["name"] = successor["name"]
                item["sources"].add("name taken from the related VMP " + match.group(1))
    # BNF chemical substance -> ingredient, learned from generic names.
    chemical: dict[str, Counter] = defaultdict(Counter)
    for item in items.values():
        parsed = parse_name(item["name"]) if item["name"] else None
        if parsed and item["bnf"]:
            for ingredient, _ in resolve_components(parsed, vocab):
                if vocab.is_opioid(ingredient) or ingredient in GABAPENTINOIDS | Z_DRUGS:
                    chemical[item["bnf"][:9]][ingredient] += 1
    # A brand name without a strength ("Diconal tablets") reads as its generic VMP: a branded BNF code's last two
    # characters are the generic's strength-formulation, so the generic code is chemical + "AA" + those twice.
    generic_names = {i["bnf"]: i["name"] for i in items.values() if i["bnf"][9:11] == "AA" and parse_name(i["name"])}
    rows = []
    for code, item in items.items():
        brand = chemical[item["bnf"][:9]].most_common(1)[0][0] if chemical.get(item["bnf"][:9]) else None
        name = item["name"]
        row = product_row(
            DMD, code, name, item["type"] or "dm+d", item["bnf"], item["sources"], item["classes"], vocab, brand
        )
        generic = generic_names.get(item["bnf"][:9] + "AA" + item["bnf"][13:15] * 2) if len(item["bnf"]) == 15 else None
        if row["status"].startswith("unparsed") and generic:
            row = product_row(
                DMD,
                code,
                generic,
                item["type"] or "dm+d",
                item["bnf"],
                item["sources"] | {f"strength and form from its generic VMP ({generic})"},
                item["classes"],
                vocab,
                brand,
            )
            row["name"] = name
        rows.append(row)
    return rows


def rxnorm_rows(shared: Path, vocab: Vocabulary) -> list[dict[str, str]]:
    items: dict[str, dict] = {}
    base = shared / "reference/cdc/valuesets"
    for path in sorted(base.glob("*/input/vocabulary/valueset/*.json")):
        stem = path.stem.removeprefix("valueset-")
        if stem not in CDC_SETS:
            continue
        document = json.loads(path.read_text(encoding="utf-8"))
        release = path.parts[-5].split("@")[-1]
        for concept in document.get("expansion", {}).get("contains", []):
            if concept.get("system") != RXNORM:
                continue
            item = items.setdefault(
                concept["code"], {"name": concept.get("display", ""), "sources": set(), "classes": set()}
            )
            item["sources"].add(f"CDC value set {stem} ({release})")
            item["classes"].update(CDC_SETS[stem])
    rows = [
        product_row(RXNORM, code, item["name"], "RxNorm", "", item["sources"], item["classes"], vocab)
        for code, item in items.items()
    ]
    # Ingredient-level codes (RxNorm IN) of the CDC MME conversion factor code system: identify the ingredient only.
    factors = json.loads(
        (
            base / "cqframework+opioid-mme-r4@master/input/vocabulary/codesystem/"
            "codesystem-CDCMMEClinicalConversionFactors.json"
        ).read_text(encoding="utf-8")
    )
    for concept in factors["concept"]:
        ingredient = vocab.canonical_ingredient(concept["display"].lower())
        row = {c: "" for c in COLUMNS}
        row.update(
            system=RXNORM,
            code=concept["code"],
            name=concept["display"],
            type="RxNorm IN",
            ingredient=ingredient,
            classes=f"opioid {vocab.opioid_strength[ingredient]}-opioid",
            status="ingredient only: dose must be given in mg",
            source="CDC MME Clinical Conversion Factors code system (cqframework opioid-mme-r4)",
        )
        rows.append(row)
    return rows


def build(shared: Path, out: Path = DATA / "catalogue.csv") -> None:
    vocab = Vocabulary()
    rows = dmd_rows(shared, vocab) + rxnorm_rows(shared, vocab)
    rows.sort(key=lambda r: (r["system"], r["name"].lower(), r["code"]))
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    status = Counter(r["status"].split(":")[0] for r in rows)
    print(f"{out.name}: {len(rows)} products; {dict(status)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", type=Path, default=SOURCES, help="the reference lists (default: scripts/sources)")
    parser.add_argument("--out", type=Path, default=DATA / "catalogue.csv")
    arguments = parser.parse_args()
    build(arguments.shared, arguments.out)
