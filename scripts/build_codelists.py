"""Copy the SNOMED CT codelists the service needs from ../shared/reference into cds_service/data/.

Codes are never typed by hand: each output row is copied from a public codelist and keeps its source.
Run: python scripts/build_codelists.py [--shared ../shared]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "cds_service" / "data"

# output file -> (input file under reference/uk/snomed, citation written on every row)
CODELISTS: dict[str, tuple[str, str]] = {
    "medication_review_codes.csv": (
        "medication-review-done-medrvw_cod__nhsd-refset__opensafely-medication-reviews.csv",
        "NHS Digital primary care domain refset MEDRVW_COD (medication review done), "
        "as published in OpenSAFELY codelist opensafely/medication-reviews",
    ),
}


def read_codes(path: Path) -> list[tuple[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        code_col = "code" if "code" in (reader.fieldnames or []) else "id"
        term_col = "term" if "term" in (reader.fieldnames or []) else "name"
        return [(row[code_col].strip(), row[term_col].strip()) for row in reader if row[code_col].strip()]


def build(shared: Path) -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    for out_name, (in_name, citation) in CODELISTS.items():
        rows = read_codes(shared / "reference" / "uk" / "snomed" / in_name)
        with (DATA / out_name).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["system", "code", "term", "source", "source_file"])
            for code, term in sorted(rows, key=lambda r: int(r[0])):
                writer.writerow(["http://snomed.info/sct", code, term, citation, in_name])
        print(f"{out_name}: {len(rows)} codes from {in_name}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    build(parser.parse_args().shared)
