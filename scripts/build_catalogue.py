"""Build cds_service/knowledge/data/catalogue.csv from the public lists in ../shared/reference.

Inputs: the dm+d VMP/AMP codelists (OpenSAFELY / OpenPrescribing, with dm+d names and BNF codes) and the CDC
RxNorm medication value sets (with display names) and MME ingredient codes. Every code is copied from a list,
never typed. Each row keeps the list(s) it came from. Names are parsed with cds_service.knowledge.names; a brand
(AMP) name is tied to its ingredient through the BNF chemical substance (first 9 characters of its BNF code)
shared with a generic VMP. Rows that cannot be parsed are kept, marked unparsed, with the reason.

Run: python scripts/build_catalogue.py [--shared ../shared]
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
sys.path.insert(0, str(ROOT))

from cds_service.knowledge.names import ParsedName, parse_name  # noqa: E402

DATA = ROOT / "cds_service" / "knowledge" / "data"
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
    def __init__(self) -> None:
        self.strength = {r["ingredient"]: r["strength"] for r in read_csv(DATA / "opioid_strength.csv")}
        self.synonyms = {r["name"]: r["ingredient"] for r in read_csv(DATA / "ingredient_names.csv")}
        self.co_drugs: dict[str, list[str]] = defaultdict(list)
        for row in sorted(read_csv(DATA / "co_drugs.csv"), key=lambda r: int(r["position"])):
            self.co_drugs[row["name"]].append(row["ingredient"])

    def canonical(self, words: str) -> str:
        words = self.synonyms.get(words, words)
        return self.synonyms.get(words, words)

    def is_opioid(self, ingredient: str) -> bool:
        return ingredient in self.strength


def components(parsed: ParsedName, vocab: Vocabulary, brand_ingredient: str | None):
    """(ingredient, ParsedStrength) pairs; co-drugs expanded; a brand word resolved through the BNF chemical."""
    pairs = []
    for component in parsed.components:
        words = component.base_words
        if words in vocab.co_drugs:
            strength = component.strengths[0]
            names = vocab.co_drugs[words]
            if strength.per_unit in ("mg", "microgram") and len(names) == 2:
                from cds_service.knowledge.names import ParsedStrength

                pairs.append((names[0], ParsedStrength(strength.value, strength.unit)))
                pairs.append((names[1], ParsedStrength(strength.per_value, strength.per_unit or "mg")))
            else:
                pairs.append((names[0], strength))
            continue
        ingredient = vocab.canonical(words)
        if not vocab.is_opioid(ingredient) and brand_ingredient and len(parsed.components) == 1:
            ingredient = brand_ingredient
        for strength in component.strengths:
            pairs.append((ingredient, strength))
    return pairs


def wear_hours(ingredient: str, rate: Decimal) -> str:
    if ingredient == "fentanyl":
        return "72"
    if ingredient == "buprenorphine":
        return "168" if rate <= 20 else "96"  # 5-20 micrograms/hour 7 days; 35-70 micrograms/hour 96 hours
    return ""


def substitution(ingredient: str, parsed: ParsedName, strength_mg: Decimal | None, others: list[str]) -> bool:
    """BNF 4.10 opioid substitution: methadone oral solution, high-strength sublingual buprenorphine, bup/naloxone."""
    form = parsed.form.lower()
    if ingredient == "methadone" and parsed.route == "oral" and re.search(r"oral solution|mixture|concentrate", form):
        return True
    if ingredient == "buprenorphine" and "naloxone" in others:
        return True
    return (
        ingredient == "buprenorphine"
        and parsed.route in ("sublingual", "oral")
        and strength_mg is not None
        and strength_mg >= 2
    )


def product_row(system, code, name, kind, bnf, sources, list_classes, vocab, brand_ingredient=None):
    row = {c: "" for c in COLUMNS}
    row.update(system=system, code=code, name=name, type=kind, bnf_code=bnf, source="; ".join(sorted(sources)))
    parsed = parse_name(name) if name else None
    classes = set(list_classes)
    if parsed is None:
        row.update(status="unparsed: no strength in the name", classes=" ".join(sorted(classes)))
        if brand_ingredient:
            row["ingredient"] = brand_ingredient
        return row
    pairs = components(parsed, vocab, brand_ingredient)
    opioid_pairs = [(i, s) for i, s in pairs if vocab.is_opioid(i)]
    ingredient, strength = (opioid_pairs or pairs)[0]
    others = sorted({i for i, _ in pairs if i != ingredient})
    strength_mg = strength.mg
    row.update(
        ingredient=ingredient,
        other_ingredients=" ".join(others),
        form=parsed.form,
        route=parsed.route or "",
        presentation=parsed.presentation or "",
        release=parsed.release,
    )
    if strength.per_unit == "hour" and strength_mg is not None:
        rate = (strength_mg * 1000).normalize()
        row.update(
            patch_mcg_per_hour=f"{rate:f}",
            wear_hours=wear_hours(ingredient, rate),
            per_unit="hour",
            strength_mg=f"{strength_mg.normalize():f}",
            per_value="1",
        )
    elif strength_mg is not None:
        row.update(
            strength_mg=f"{strength_mg.normalize():f}",
            per_value=f"{strength.per_value.normalize():f}",
            per_unit=strength.per_unit or "unit",
        )
    if vocab.is_opioid(ingredient):
        classes.add("opioid")
        classes.add(f"{vocab.strength[ingredient]}-opioid")
        if ingredient == "fentanyl" and parsed.route in ("buccal", "sublingual", "nasal", "oromucosal"):
            classes.add("immediate-release-fentanyl")
        if substitution(ingredient, parsed, strength_mg, others):
            classes.add("opioid-substitution")
    elif "opioid" in classes and not opioid_pairs:
        classes.discard("opioid")  # e.g. a naloxone-only product caught by a broad list
        row["status"] = "listed as opioid but no opioid ingredient recognised"
    if ingredient in GABAPENTINOIDS:
        classes.add("gabapentinoid")
    if ingredient in Z_DRUGS:
        classes.add("z-drug")
    row["classes"] = " ".join(sorted(classes))
    row["status"] = row["status"] or ("ok" if strength_mg is not None else "unparsed: strength unit unknown")
    return row


def dmd_rows(shared: Path, vocab: Vocabulary) -> list[dict[str, str]]:
    items: dict[str, dict] = {}
    for path in sorted((shared / "reference/uk/dmd").glob("*.csv")):
        key = list_key(path.name)
        if key is None:
            continue
        for r in read_csv(path):
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
            for ingredient, _ in components(parsed, vocab, None):
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
        ingredient = vocab.canonical(concept["display"].lower())
        row = {c: "" for c in COLUMNS}
        row.update(
            system=RXNORM,
            code=concept["code"],
            name=concept["display"],
            type="RxNorm IN",
            ingredient=ingredient,
            classes=f"opioid {vocab.strength.get(ingredient, 'strong')}-opioid",
            status="ingredient only: dose must be given in mg",
            source="CDC MME Clinical Conversion Factors code system (cqframework opioid-mme-r4)",
        )
        rows.append(row)
    return rows


def build(shared: Path) -> None:
    vocab = Vocabulary()
    rows = dmd_rows(shared, vocab) + rxnorm_rows(shared, vocab)
    rows.sort(key=lambda r: (r["system"], r["name"].lower(), r["code"]))
    with (DATA / "catalogue.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    status = Counter(r["status"].split(":")[0] for r in rows)
    print(f"catalogue.csv: {len(rows)} products; {dict(status)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    build(parser.parse_args().shared)
