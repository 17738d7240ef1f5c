"""Copy the SNOMED CT codelists the service needs from scripts/sources/reference into the package data.

Codes are never typed by hand: each output row is copied from a public codelist and keeps its source.
Run: python scripts/build_codelists.py [--shared scripts/sources]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "scripts" / "sources"  # the vendored reference lists (see its README)
DATA = ROOT / "cds_service" / "clinical" / "knowledge" / "data"

# output file -> [(input file under reference/uk/snomed, citation written on each of its rows)]
CODELISTS: dict[str, list[tuple[str, str]]] = {
    "medication_review_codes.csv": [
        (
            "medication-review-done-medrvw_cod__nhsd-refset__opensafely-medication-reviews.csv",
            "NHS Digital primary care domain refset MEDRVW_COD (medication review done), "
            "as published in OpenSAFELY codelist opensafely/medication-reviews",
        )
    ],
    "cancer_codes.csv": [
        (
            "cancer-c19can_cod__nhsd-refset__opensafely-deaths-at-home-covid19.csv",
            "NHS Digital refset C19CAN_COD (cancer), OpenSAFELY codelist",
        ),
        (
            "haematological-cancer-c19haemcan_cod__nhsd-refset__opensafely-deaths-at-home-covid19.csv",
            "NHS Digital refset C19HAEMCAN_COD (haematological cancer), OpenSAFELY codelist",
        ),
    ],
    "palliative_codes.csv": [
        (
            "palliative-care-palcare_cod__nhsd-refset__opensafely-deaths-at-home-covid19.csv",
            "NHS Digital refset PALCARE_COD (palliative care register), OpenSAFELY codelist",
        ),
        (
            "gm-sde__patient__palliative-and-end-of-life-care__1__palliative-and-end-of-life-care.snomed.txt",
            "Greater Manchester SDE code set: palliative and end-of-life care",
        ),
    ],
    "pregnancy_codes.csv": [
        (
            "pregnancy-preg_cod__nhsd-refset__opensafely-pharmacy-first.csv",
            "NHS Digital refset PREG_COD (pregnancy), OpenSAFELY codelist",
        )
    ],
    "opioid_dependence_codes.csv": [
        (
            "user-hjforbes-opioid-dependency-clinical-diagnosis.csv",
            "OpenSAFELY codelist user/hjforbes/opioid-dependency-clinical-diagnosis",
        )
    ],
    "copd_codes.csv": [
        (
            "copd-copd_cod__nhsd-refset__opensafely-deaths-at-home-covid19.csv",
            "NHS Digital refset COPD_COD (COPD), OpenSAFELY codelist",
        )
    ],
    "substance_misuse_codes.csv": [
        (
            "drug-misuse__user-S_Walter__opensafely-lockdown-and-vulnerable-groups.csv",
            "OpenSAFELY codelist user/S_Walter/drug-misuse",
        )
    ],
}


def read_codes(path: Path) -> list[tuple[str, str]]:
    if path.suffix == ".txt":  # code<TAB>term, no header
        lines = path.read_text(encoding="utf-8").splitlines()
        return [tuple(line.split("\t", 1)) for line in lines if line.strip()]  # type: ignore[misc]
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        code_col = "code" if "code" in (reader.fieldnames or []) else "id"
        term_col = "term" if "term" in (reader.fieldnames or []) else "name"
        return [(row[code_col].strip(), row[term_col].strip()) for row in reader if row[code_col].strip()]


def build(shared: Path, out: Path = DATA) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for out_name, inputs in CODELISTS.items():
        rows: dict[str, tuple[str, str, str]] = {}
        for in_name, citation in inputs:
            for code, term in read_codes(shared / "reference" / "uk" / "snomed" / in_name):
                rows.setdefault(code.strip(), (term.strip(), citation, in_name))
        with (out / out_name).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["system", "code", "term", "source", "source_file"])
            for code in sorted(rows, key=int):
                writer.writerow(["http://snomed.info/sct", code, *rows[code]])
        print(f"{out_name}: {len(rows)} codes")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", type=Path, default=SOURCES, help="the reference lists (default: scripts/sources)")
    parser.add_argument("--out", type=Path, default=DATA, help="the folder to write (default: the package data)")
    arguments = parser.parse_args()
    build(arguments.shared, arguments.out)
