"""Products whose dm+d name carries no strength, or several: the curated product_strengths.csv, and the name fixes.

OME worked by hand from the strengths in product_strengths.csv (each row cites its SPC or the dm+d name) and the
uk factors in ome_factors.csv: codeine oral 0.1, dihydrocodeine oral 0.1, morphine oral 1, alfentanil nasal 30.
"""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest

from cds_service.clinical.knowledge.identify import by_text
from cds_service.clinical.knowledge.loader import load_knowledge
from tests.helpers import ROOT, SOURCES
from tests.ome_helpers import mr, ome

DATA = ROOT / "cds_service/clinical/knowledge/data"
QDS_2 = "TWO tablets FOUR times a day"


def _rows(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _order(code: str, dosage: str) -> dict:
    return ome(mr(code=code, dosage=dosage)).to_json()["orders"][0]


@pytest.mark.parametrize(
    ("code", "dosage", "expected"),
    [
        # Solpadeine Max 12.8mg/500mg tablets: 8 x 12.8 mg codeine = 102.4 mg x 0.1 = 10.24
        ("604311000001102", QDS_2, 10.24),
        # Solpadeine Plus tablets (and its generic VMP): 8 x 8 mg codeine = 64 mg x 0.1 = 6.4
        ("4923911000001100", QDS_2, 6.4),
        ("4934411000001109", QDS_2, 6.4),
        # Syndol Headache Relief tablets: 8 x 8 mg codeine = 64 mg x 0.1 = 6.4
        ("34792111000001108", QDS_2, 6.4),
        # Veganin tablets: 8 x 8 mg codeine = 6.4
        ("7948211000001109", QDS_2, 6.4),
        # Ultramol Soluble tablets and its generic VMP: 8 x 8 mg codeine = 6.4
        ("3996611000001107", QDS_2, 6.4),
        ("4009611000001106", QDS_2, 6.4),
        # Migraleve Pink tablets, 2 at the onset (at most 2 a day): 2 x 8 mg codeine = 16 mg x 0.1 = 1.6
        ("3361311000001102", "TWO tablets once a day", 1.6),
        ("3546911000001102", "TWO tablets once a day", 1.6),
        # J Collis Browne's tablets 2 every 4 hours: 12 x 0.35 mg morphine = 4.2 mg x 1 = 4.2
        ("4362711000001108", "TWO tablets every 4 hours", 4.2),
        ("4367211000001103", "TWO tablets every 4 hours", 4.2),
        # Diocalm Dual Action 2 every 4 hours: 12 x 0.395 mg morphine = 4.74 mg x 1 = 4.74
        ("3991511000001104", "TWO tablets every 4 hours", 4.74),
        # Dimotane Co 10 ml tds: 30 ml x 10 mg/5 ml codeine = 60 mg x 0.1 = 6
        ("4647211000001101", "10ml three times a day", 6.0),
        # Kaolin and Morphine mixture 10 ml tds: 30 ml x 0.458 mg/5 ml = 2.748 mg morphine x 1 = 2.75 (rounded)
        ("317382007", "10ml three times a day", 2.75),
        ("11784911000001109", "10ml three times a day", 2.75),
        # Co-codamol 30mg/500mg/5ml oral solution 10 ml qds: 40 ml x 30 mg/5 ml = 240 mg codeine x 0.1 = 24
        ("38063911000001100", "10ml four times a day", 24.0),
        # Co-codamol 8mg/500mg/5ml oral suspension 10 ml qds: 40 ml x 8 mg/5 ml = 64 mg x 0.1 = 6.4
        ("13892911000001107", "10ml four times a day", 6.4),
        # Co-dydramol 10mg/500mg/5ml oral solution 10 ml qds: 40 ml x 10 mg/5 ml = 80 mg dihydrocodeine x 0.1 = 8
        ("13893011000001104", "10ml four times a day", 8.0),
        # Oramorph 10mg/5ml unit dose vials, 5 ml every 4 hours: 30 ml x 2 mg/ml = 60 mg x 1 (oral, not injection 2)
        ("3331611000001103", "5ml every 4 hours", 60.0),
        ("3521311000001108", "5ml every 4 hours", 60.0),
        # Morphine sulfate 30mg/5ml unit dose vials, 5 ml twice a day: 10 ml x 6 mg/ml = 60 mg x 1 = 60
        ("3631511000001107", "5ml twice a day", 60.0),
        # Alfentanil 0.1% nasal spray, 0.1 ml every 2 hours: 1.2 ml x 1 mg/ml = 1.2 mg x 30 = 36
        ("14937511000001104", "0.1ml every 2 hours", 36.0),
    ],
)
def test_curated_product_ome_by_hand(code, dosage, expected):
    order = _order(code, dosage)
    assert order["counted"], order["reason"]
    assert order["ome_mg_per_day_max"] == expected


def test_unit_dose_vials_are_oral_not_injection():
    order = _order("3609711000001109", "5ml every 4 hours")  # Oramorph 30mg/5ml unit dose vials
    assert order["route"] == "oral" and order["factor"] == 1.0  # 30 ml x 6 mg/ml = 180 mg x 1
    assert order["ome_mg_per_day_max"] == 180.0


def test_every_curated_row_is_a_listed_dmd_product_with_its_name_and_a_source():
    catalogue = {(r["system"], r["code"]): r for r in _rows("catalogue.csv")}
    knowledge = load_knowledge()
    rows = _rows("product_strengths.csv")
    assert len(rows) >= 40
    for row in rows:
        listed = catalogue[("https://dmd.nhs.uk", row["code"])]  # the catalogue holds only codes from the lists
        assert row["name"] == listed["name"], row["code"]
        assert row["source"] and row["route"] and row["per_unit"] in ("unit", "ml"), row["code"]
        product = knowledge.products[("https://dmd.nhs.uk", row["code"])]
        assert product.is_opioid and product.status == "ok" and product.strength_mg is not None, row["name"]


def test_curated_strengths_come_before_reading_the_name():
    product, via = by_text("Migraleve Pink tablets", load_knowledge())
    assert via == "name" and product is not None
    assert (product.ingredient, product.strength_mg, product.per_unit) == ("codeine", 8, "unit")


def test_product_strengths_names_are_copied_from_the_vendored_lists(tmp_path):
    out = tmp_path / "product_strengths.csv"
    script = ROOT / "scripts" / "build_product_strengths.py"
    subprocess.run([sys.executable, str(script), "--shared", str(SOURCES), "--out", str(out)], check=True)
    assert out.read_bytes() == (DATA / "product_strengths.csv").read_bytes()


@pytest.mark.parametrize(
    ("text", "strength", "per_value"),
    [
        ("Co-codamol 30mg/500mg/5ml oral solution", 30, 5),  # 30 mg codeine per 5 ml, not per "unit"
        ("Co-dydramol 10mg/500mg/5ml oral solution", 10, 5),
        ("Co-codamol 30mg/500mg tablets", 30, 1),
    ],
)
def test_a_co_drug_liquid_name_reads_its_strength_per_volume(text, strength, per_value):
    product, _ = by_text(text, load_knowledge())
    assert product is not None and (product.strength_mg, product.per_value) == (strength, per_value)


def test_an_oral_solution_in_unit_dose_vials_reads_as_oral():
    product, _ = by_text("Morphine sulfate 20mg/5ml oral solution unit dose vials", load_knowledge())
    assert product is not None and product.route == "oral"


@pytest.mark.parametrize(
    ("code", "text"),
    [("250646", None), (None, "Pholcodine 5mg/5ml linctus")],  # RxNorm pholcodine 2 MG/ML Oral Solution; free text
)
def test_pholcodine_is_an_opioid_not_counted_for_want_of_a_factor(code, text):
    concept = {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": code}]} if code else {}
    resource = mr(text=text, dosage="10ml three times a day")
    if code:
        resource["medicationCodeableConcept"] = concept
    result = ome(resource)
    order = result.orders[0]
    assert order.is_opioid and not order.counted
    assert order.reason == "no UK oral morphine equivalent"
    assert not result.complete  # an opioid we cannot count leaves the total incomplete
