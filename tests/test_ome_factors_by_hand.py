"""Every ingredient x route row of the uk profile, checked on a real product with OME worked out by hand.

Each case gives one unit a day (one tablet, capsule, suppository, vial, spray, ml, or one patch worn), so the
expected figure is the per-unit OME: strength in mg (per ml for liquids) x the factor in
cds_service/clinical/knowledge/data/ome_factors.csv (OpenPrescribing opioid_ing_form_ome.csv). Patches: micrograms/hour
x 24 / 1000 x 100 = micrograms/hour x 2.4.
"""

from __future__ import annotations

import csv

import pytest

from cds_service.clinical.knowledge.loader import load_knowledge
from tests.helpers import ROOT
from tests.ome_helpers import mr, ome

ONE_A_DAY = "ONE once daily"
ONE_ML = "1ml once daily"
PATCH = "apply ONE patch every 72 hours"

# (ingredient, route of the factor row, dm+d code or None, product name, dosage, expected OME mg/day, working)
CASES = [
    (
        "alfentanil",
        "injection",
        "34682211000001109",
        "Alfentanil 25mg/50ml solution for injection vials",
        ONE_ML,
        15,
        "0.5 mg/ml x 30",
    ),
    ("alfentanil", "nasal", None, "Alfentanil 1mg/1ml nasal spray", ONE_ML, 30, "1 mg/ml x 30 (text-identified)"),
    (
        "buprenorphine",
        "injection",
        "322499003",
        "Buprenorphine 300micrograms/1ml solution for injection ampoules",
        ONE_ML,
        30,
        "0.3 mg/ml x 100",
    ),
    (
        "buprenorphine",
        "oromucosal",
        "322498006",
        "Buprenorphine 200microgram sublingual tablets sugar free",
        ONE_A_DAY,
        12,
        "0.2 mg x 60 (sublingual reads the oromucosal row)",
    ),
    (
        "buprenorphine",
        "transdermal",
        "9567211000001104",
        "Buprenorphine 5micrograms/hour transdermal patches",
        "apply ONE patch every 7 days",
        12,
        "5 x 2.4",
    ),
    (
        "codeine",
        "injection",
        "12388811000001109",
        "Codeine 30mg/1ml solution for injection ampoules",
        ONE_ML,
        3,
        "30 x 0.1",
    ),
    ("codeine", "oral", "322502004", "Codeine 15mg tablets", ONE_A_DAY, 1.5, "15 x 0.1"),
    ("codeine", "rectal", "21148111000001100", "Codeine 1mg suppositories", ONE_A_DAY, 0.1, "1 x 0.1"),
    ("dextromoramide", "oral", "322514007", "Dextromoramide 5mg tablets", ONE_A_DAY, 10, "5 x 2"),
    ("dextropropoxyphene", "oral", "322312007", "Co-proxamol 32.5mg/325mg tablets", ONE_A_DAY, 3.25, "32.5 x 0.1"),
    (
        "diamorphine",
        "inhalation",
        "12292011000001106",
        "Diamorphine 20mg impregnated cigarettes",
        ONE_A_DAY,
        20,
        "20 x 1",
    ),
    (
        "diamorphine",
        "injection",
        "16073811000001106",
        "Diamorphine 5mg powder for solution for injection vials",
        ONE_A_DAY,
        16.5,
        "5 x 3.3",
    ),
    ("diamorphine", "oral", "322522000", "Diamorphine 10mg tablets", ONE_A_DAY, 10, "10 x 1"),
    ("diamorphine", "rectal", "12389111000001109", "Diamorphine 5mg suppositories", ONE_A_DAY, 5, "5 x 1"),
    (
        "dihydrocodeine",
        "injection",
        "322541002",
        "Dihydrocodeine 50mg/1ml solution for injection ampoules",
        ONE_ML,
        5,
        "50 x 0.1",
    ),
    ("dihydrocodeine", "oral", "322539003", "Dihydrocodeine 30mg tablets", ONE_A_DAY, 3, "30 x 0.1"),
    ("dipipanone", "oral", "322556006", "Dipipanone 10mg / Cyclizine 30mg tablets", ONE_A_DAY, 5, "10 x 0.5"),
    (
        "fentanyl",
        "buccal",
        "23560111000001105",
        "Fentanyl 200microgram buccal films sugar free",
        ONE_A_DAY,
        26,
        "0.2 x 130",
    ),
    (
        "fentanyl",
        "injection",
        None,
        "Fentanyl 100micrograms/2ml solution for injection ampoules",
        ONE_ML,
        7.5,
        "0.05 mg/ml x 150 (text-identified)",
    ),
    (
        "fentanyl",
        "nasal",
        "16037811000001102",
        "Fentanyl 50micrograms/dose nasal spray",
        "ONE spray once daily",
        8,
        "0.05 x 160",
    ),
    ("fentanyl", "oromucosal", "134807007", "Fentanyl 1.2mg lozenges", ONE_A_DAY, 156, "1.2 x 130"),
    (
        "fentanyl",
        "transdermal",
        "9752311000001101",
        "Fentanyl 12micrograms/hour transdermal patches",
        PATCH,
        28.8,
        "12 x 2.4",
    ),
    (
        "hydromorphone",
        "injection",
        "36057511000001104",
        "Hydromorphone 2mg/1ml solution for injection ampoules",
        ONE_ML,
        25,
        "2 x 12.5",
    ),
    ("hydromorphone", "oral", "322665006", "Hydromorphone 1.3mg capsules", ONE_A_DAY, 6.5, "1.3 x 5"),
    (
        "meptazinol",
        "injection",
        "333937006",
        "Meptazinol 100mg/1ml solution for injection ampoules",
        ONE_ML,
        3,
        "100 x 0.03",
    ),
    ("meptazinol", "oral", "333936002", "Meptazinol 200mg tablets", ONE_A_DAY, 6, "200 x 0.03"),
    ("methadone", "inhalation", "12299911000001100", "Methadone 30mg impregnated cigarettes", ONE_A_DAY, 90, "30 x 3"),
    ("methadone", "injection", "322592005", "Methadone 10mg/1ml solution for injection ampoules", ONE_ML, 30, "10 x 3"),
    ("methadone", "oral", "322591003", "Methadone 5mg tablets", ONE_A_DAY, 15, "5 x 3"),
    (
        "morphine",
        "injection",
        "18153811000001107",
        "Morphine sulfate 100mg/100ml infusion bags",
        ONE_ML,
        2,
        "1 mg/ml x 2",
    ),
    ("morphine", "oral", "322708003", "Morphine 10mg tablets", ONE_A_DAY, 10, "10 x 1"),
    ("morphine", "rectal", "370261003", "Morphine sulfate 5mg suppositories", ONE_A_DAY, 5, "5 x 1"),
    (
        "nalbuphine",
        "injection",
        "322596008",
        "Nalbuphine 10mg/1ml solution for injection ampoules",
        ONE_ML,
        10,
        "10 x 1",
    ),
    (
        "oxycodone",
        "injection",
        "36129811000001103",
        "Oxycodone 10mg/1ml solution for injection ampoules",
        ONE_ML,
        30,
        "10 x 3",
    ),
    ("oxycodone", "oral", "38752411000001107", "Oxycodone 5mg tablets", ONE_A_DAY, 7.5, "5 x 1.5"),
    ("oxycodone", "rectal", "17632111000001100", "Oxycodone pectinate 30mg suppositories", ONE_A_DAY, 45, "30 x 1.5"),
    (
        "papaveretum",
        "injection",
        "16110411000001103",
        "Papaveretum 30mg/1ml solution for injection ampoules",
        ONE_ML,
        20.1,
        "30 x 0.67",
    ),
    (
        "pentazocine",
        "injection",
        "322602006",
        "Pentazocine 30mg/1ml solution for injection ampoules",
        ONE_ML,
        11.1,
        "30 x 0.37",
    ),
    ("pentazocine", "oral", "322601004", "Pentazocine 25mg tablets", ONE_A_DAY, 9.25, "25 x 0.37"),
    ("pentazocine", "rectal", "322604007", "Pentazocine 50mg suppositories", ONE_A_DAY, 18.5, "50 x 0.37"),
    (
        "pethidine",
        "injection",
        "12392511000001108",
        "Pethidine 10mg/1ml solution for injection ampoules",
        ONE_ML,
        2.4,
        "10 x 0.24",
    ),
    ("pethidine", "oral", "322612004", "Pethidine 50mg tablets", ONE_A_DAY, 5, "50 x 0.1"),
    ("tapentadol", "oral", "42017511000001108", "Tapentadol 50mg tablets", ONE_A_DAY, 20, "50 x 0.4"),
    (
        "tramadol",
        "injection",
        "322622005",
        "Tramadol 100mg/2ml solution for injection ampoules",
        ONE_ML,
        10,
        "50 mg/ml x 0.2",
    ),
    ("tramadol", "oral", "322623000", "Tramadol 50mg capsules", ONE_A_DAY, 5, "50 x 0.1"),
]


def test_every_uk_factor_row_has_a_hand_worked_case():
    rows = csv.DictReader((ROOT / "cds_service/clinical/knowledge/data/ome_factors.csv").open())
    uk = {(r["ingredient"], r["route"]) for r in rows if r["profile"] == "uk"}
    assert uk == {(c[0], c[1]) for c in CASES}


@pytest.mark.parametrize(
    ("ingredient", "route", "code", "name", "dosage", "expected", "working"),
    CASES,
    ids=[f"{c[0]}-{c[1]}" for c in CASES],
)
def test_one_unit_a_day_is_the_per_unit_ome(ingredient, route, code, name, dosage, expected, working):
    if code:
        product = load_knowledge().products[("https://dmd.nhs.uk", code)]
        assert product.name == name and product.ingredient == ingredient
    result = ome(mr(code=code, text=None if code else name, dosage=dosage)).to_json()
    order = result["orders"][0]
    assert order["counted"], order["reason"]
    assert order["ingredient"] == ingredient
    assert result["total_ome_mg_per_day"] == pytest.approx(expected), working
