"""Build cds_service/clinical/knowledge/data/ome_factors.csv: OME factor profiles by ingredient x route, each row cited.

- uk (default): OpenPrescribing opioid_ing_form_ome.csv (BNF / Opioids Aware / listed sources), per mg of
  ingredient; transdermal per mg delivered per day (100 = 2.4 per microgram/hour).
- cdc-2022: CDC MME Clinical Conversion Factors CodeSystem (cqframework opioid-mme-r4, version 3.0.0).
- cdc-2016: the CDC 2016 / CMS column of cross_source_comparison.csv; methadone tiered by daily dose as in the
  CDC 2016 guideline table.
Run: python scripts/build_factors.py [--shared scripts/sources]
"""

from __future__ import annotations

import argparse
import csv
import json
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "scripts" / "sources"  # the vendored reference lists (see its README)
OUT = ROOT / "cds_service" / "clinical" / "knowledge" / "data" / "ome_factors.csv"
SALTS = {"sulfate", "sulphate", "hydrochloride", "phosphate", "tartrate", "citrate", "pectinate", "hcl"}
COLUMNS = [
    "profile",
    "ingredient",
    "route",
    "presentation",
    "dose_min_mg",
    "dose_max_mg",
    "factor",
    "basis",
    "source",
    "source_url",
    "notes",
    "upstream",
]


def base(name: str) -> str:
    return " ".join(w for w in name.lower().split() if w not in SALTS)


def uk_rows(shared: Path) -> list[dict[str, str]]:
    path = shared / "reference/uk/ome-factors/openprescribing_opioid_ing_form_ome.csv"
    chosen: dict[tuple[str, str], dict[str, str]] = {}
    for row in csv.DictReader(path.open(encoding="utf-8")):
        ingredient, route = base(row["nm"]), row["form"].strip()
        out = {
            "profile": "uk",
            "ingredient": ingredient,
            "route": route,
            "presentation": "",
            "dose_min_mg": "",
            "dose_max_mg": "",
            "factor": str(Decimal(row["ome"])),
            "basis": "mg delivered per day" if route == "transdermal" else "mg",
            "source": row["ref"],
            "source_url": row["link"],
            "notes": row["notes"],
            "upstream": f"openprescribing opioid_ing_form_ome.csv vpi {row['vpi']} {row['nm']}",
        }
        key = (ingredient, route)
        # Salt and base rows of one ingredient and route: keep the larger factor (under-counting is the danger).
        if key not in chosen or Decimal(out["factor"]) > Decimal(chosen[key]["factor"]):
            if key in chosen:
                out["notes"] = (out["notes"] + "; " if out["notes"] else "") + (
                    f"larger of two upstream rows (other: {chosen[key]['factor']})"
                )
            chosen[key] = out
    return sorted(chosen.values(), key=lambda r: (r["ingredient"], r["route"]))


def cdc_2022_rows(shared: Path) -> list[dict[str, str]]:
    path = (
        shared / "reference/cdc/valuesets/cqframework+opioid-mme-r4@master/input/vocabulary/codesystem/"
        "codesystem-CDCMMEClinicalConversionFactors.json"
    )
    document = json.loads(path.read_text(encoding="utf-8"))
    source = f"CDC MME Clinical Conversion Factors v{document.get('version')} (cqframework opioid-mme-r4)"
    rows = []
    for concept in document["concept"]:
        ingredient = base(concept["display"])
        props = {p["code"]: p for p in concept.get("property", [])}
        if "dose-form-conversion-factor" in props:
            # "316987:7200@0.33333333": MME/day = mg/hour x 7200 x patches per day (one 72-hour patch = 1/3 a day).
            form, rest = props["dose-form-conversion-factor"]["valueString"].split(":")
            per_patch, per_day = (Decimal(x) for x in rest.split("@"))
            factor = (per_patch * per_day / 24).quantize(Decimal("0.01"))
            rows.append(
                {
                    "profile": "cdc-2022",
                    "ingredient": ingredient,
                    "route": "transdermal",
                    "presentation": "",
                    "dose_min_mg": "",
                    "dose_max_mg": "",
                    "factor": str(factor),
                    "basis": "mg delivered per day",
                    "source": source,
                    "source_url": "http://fhir.org/guides/cdc/opioid-mme-r4",
                    "notes": f"RxNorm dose form {form}: {rest} converted to per mg delivered per day (= 2.4 per mcg/h)",
                    "upstream": f"RxNorm {concept['code']} {concept['display']}",
                }
            )
            continue  # the bare fentanyl factor is not a per-mg oral factor; other fentanyl forms are not counted
        factor = props["conversion-factor"]["valueDecimal"]
        rows.append(
            {
                "profile": "cdc-2022",
                "ingredient": ingredient,
                "route": "*",
                "presentation": "",
                "dose_min_mg": "",
                "dose_max_mg": "",
                "factor": str(Decimal(str(factor))),
                "basis": "mg",
                "source": source,
                "source_url": "http://fhir.org/guides/cdc/opioid-mme-r4",
                "notes": "applies to every non-transdermal form",
                "upstream": f"RxNorm {concept['code']} {concept['display']}",
            }
        )
    return rows


CDC_2016 = "CDC 2016 guideline / CMS conversion factors (cross_source_comparison.csv, column cdc_2016_cms)"
CDC_2016_URL = "https://www.cdc.gov/mmwr/volumes/65/rr/rr6501e1.htm"
# (ingredient, route, presentation, factor, basis, note): read from the cdc_2016_cms column, per-microgram
# values converted to per mg, per microgram/hour to per mg delivered per day.
CDC_2016_ROWS = [
    ("codeine", "oral", "", "0.15", "mg", ""),
    ("dihydrocodeine", "oral", "", "0.25", "mg", "CMS 2014"),
    ("tramadol", "oral", "", "0.1", "mg", ""),
    ("tapentadol", "oral", "", "0.4", "mg", ""),
    ("oxycodone", "oral", "", "1.5", "mg", ""),
    ("hydromorphone", "oral", "", "4", "mg", ""),
    ("morphine", "oral", "", "1", "mg", ""),
    ("fentanyl", "transdermal", "", "100", "mg delivered per day", "2.4 per microgram/hour"),
    ("buprenorphine", "transdermal", "", "75", "mg delivered per day", "CMS 2014: 1.8 per microgram/hour"),
    ("buprenorphine", "sublingual", "", "30", "mg", "CMS 0.03 per microgram"),
    ("fentanyl", "buccal", "", "130", "mg", "0.13 per microgram (buccal tablet)"),
    ("fentanyl", "buccal", "film", "180", "mg", "0.18 per microgram (buccal film)"),
    ("fentanyl", "sublingual", "", "130", "mg", "0.13 per microgram"),
    ("fentanyl", "oromucosal", "", "130", "mg", "0.13 per microgram (lozenge)"),
    ("fentanyl", "oromucosal", "dose", "180", "mg", "0.18 per microgram (oral spray)"),
    ("fentanyl", "nasal", "", "160", "mg", "0.16 per microgram"),
    ("pethidine", "oral", "", "0.1", "mg", "meperidine"),
    ("pentazocine", "oral", "", "0.37", "mg", ""),
    ("nalbuphine", "injection", "", "1", "mg", "CMS"),
]
# CDC 2016 guideline, table of MME conversion factors: methadone 1-20 mg/day 4; 21-40 8; 41-60 10; >=61-80 12.
METHADONE_2016 = [("0", "20", "4"), ("20", "40", "8"), ("40", "60", "10"), ("60", "", "12")]


def cdc_2016_rows() -> list[dict[str, str]]:
    rows = [
        {
            "profile": "cdc-2016",
            "ingredient": i,
            "route": r,
            "presentation": p,
            "dose_min_mg": "",
            "dose_max_mg": "",
            "factor": f,
            "basis": b,
            "source": CDC_2016,
            "source_url": CDC_2016_URL,
            "notes": n,
            "upstream": "",
        }
        for i, r, p, f, b, n in CDC_2016_ROWS
    ]
    rows += [
        {
            "profile": "cdc-2016",
            "ingredient": "methadone",
            "route": "oral",
            "presentation": "",
            "dose_min_mg": lo,
            "dose_max_mg": hi,
            "factor": f,
            "basis": "mg",
            "source": "CDC 2016 guideline, MME conversion table",
            "source_url": CDC_2016_URL,
            "notes": "tiered by total daily methadone dose (above the lower bound, up to and including the upper)",
            "upstream": "",
        }
        for lo, hi, f in METHADONE_2016
    ]
    return rows


def build(shared: Path, out: Path = OUT) -> None:
    rows = uk_rows(shared) + cdc_2022_rows(shared) + cdc_2016_rows()
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"{out.name}: {len(rows)} factor rows")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", type=Path, default=SOURCES, help="the reference lists (default: scripts/sources)")
    parser.add_argument("--out", type=Path, default=OUT)
    arguments = parser.parse_args()
    build(arguments.shared, arguments.out)
