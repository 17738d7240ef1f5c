"""Refresh the dm+d names of cds_service/clinical/knowledge/data/product_strengths.csv from the public lists.

product_strengths.csv is curated: one row per dm+d product whose name carries no strength (over-the-counter brands
such as "Migraleve Pink tablets"), several strengths ("Co-codamol 30mg/500mg/5ml oral solution") or a strength the
name grammar does not read ("Alfentanil 0.1% nasal spray"), with the opioid ingredient, its strength per unit
(tablet, capsule) or per ml volume, and the document the strength rests on (the product's SPC, the dm+d name).
The strengths and sources are written by hand; the codes and names are never typed: this script copies each
row's name from the dm+d codelists in scripts/sources/reference/uk/dmd and fails when a code is not in them.

Run: python scripts/build_product_strengths.py [--shared scripts/sources] [--out path]
"""

from __future__ import annotations

import argparse
import csv
import io
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "scripts" / "sources"  # the vendored reference lists (see its README)
DATA = ROOT / "cds_service" / "clinical" / "knowledge" / "data"
FILE = DATA / "product_strengths.csv"
COLUMNS = [
    "code",
    "name",
    "ingredient",
    "strength_mg",
    "per_value",
    "per_unit",
    "other_ingredients",
    "form",
    "route",
    "presentation",
    "source",
]


def dmd_names(shared: Path) -> dict[str, str]:
    """dm+d code -> name, from every codelist under reference/uk/dmd (the first name met wins)."""
    names: dict[str, str] = {}
    for path in sorted((shared / "reference/uk/dmd").glob("*.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                code = (row.get("dmd_id") or row.get("code") or "").strip()
                name = (row.get("term") or row.get("dmd_name") or "").strip()
                if code and name:
                    names.setdefault(code, name)
    for code, name in names.items():  # "VMP previous to X": the name of X (as build_catalogue.py does)
        if (match := re.match(r"VMP (?:previous|subsequent) to (\d+)", name)) and match.group(1) in names:
            names[code] = names[match.group(1)]
    return names


def build(shared: Path, out: Path = FILE, source: Path = FILE) -> None:
    names = dmd_names(shared)
    with source.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    missing = [r["code"] for r in rows if r["code"] not in names]
    if missing:
        sys.exit(f"{source.name}: codes not in the dm+d lists of {shared}: {', '.join(missing)}")
    for row in rows:
        row["name"] = names[row["code"]]
    rows.sort(key=lambda r: (r["name"].lower(), r["code"]))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({c: r.get(c, "") for c in COLUMNS} for r in rows)
    out.write_text(buffer.getvalue(), encoding="utf-8")
    print(f"{out.name}: {len(rows)} products")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", type=Path, default=SOURCES, help="the reference lists (default: scripts/sources)")
    parser.add_argument("--out", type=Path, default=FILE)
    arguments = parser.parse_args()
    build(arguments.shared, arguments.out)
