"""The product catalogue, the name grammar and identification."""

from __future__ import annotations

import csv
import subprocess
import sys
from decimal import Decimal

import pytest

from cds_service.clinical.knowledge.identify import identify
from cds_service.clinical.knowledge.loader import load_knowledge
from cds_service.clinical.knowledge.names import parse_name
from tests.helpers import ROOT, SOURCES

CATALOGUE = ROOT / "cds_service/clinical/knowledge/data/catalogue.csv"
OPIOID_LISTS = (
    "opioid-containing-medicines",
    "strongopioids",
    "opioids-for-analgesia",
    "weak-opioids",
    "tramadol-and-tapentadol",
    "long-acting-opioids",
    "ir-fentanyl",
)


def _catalogue() -> list[dict[str, str]]:
    return list(csv.DictReader(CATALOGUE.open(encoding="utf-8")))


@pytest.mark.parametrize(
    ("name", "words", "value", "unit", "per_value", "per_unit", "route", "presentation", "release"),
    [
        ("Morphine 10mg modified-release tablets", "morphine", "10", "mg", "1", None, "oral", "tablet", "modified"),
        ("Morphine sulfate 10mg/5ml oral solution", "morphine", "10", "mg", "5", "ml", "oral", "ml", "immediate"),
        (
            "Fentanyl 25micrograms/hour transdermal patches",
            "fentanyl",
            "25",
            "microgram",
            "1",
            "hour",
            "transdermal",
            "patch",
            "modified",
        ),
        (
            "Fentanyl 100micrograms/dose nasal spray",
            "fentanyl",
            "100",
            "microgram",
            "1",
            "dose",
            "nasal",
            "dose",
            "immediate",
        ),
        (
            "Fentanyl 200microgram lozenges",
            "fentanyl",
            "200",
            "microgram",
            "1",
            None,
            "oromucosal",
            "lozenge",
            "immediate",
        ),
        (
            "12 HR Oxycodone Hydrochloride 10 MG Extended Release Oral Tablet",
            "oxycodone",
            "10",
            "mg",
            "1",
            None,
            "oral",
            "tablet",
            "modified",
        ),
        (
            "72 HR Fentanyl 0.075 MG/HR Transdermal System",
            "fentanyl",
            "0.075",
            "mg",
            "1",
            "hour",
            "transdermal",
            "patch",
            "modified",
        ),
        (
            "MORPHINE ER 20 MG CAPSULE,EXTENDED RELEASE PELLETS",
            "morphine",
            "20",
            "mg",
            "1",
            None,
            "oral",
            "capsule",
            "modified",
        ),
        (
            "Abuse-Deterrent 12 HR oxycodone hydrochloride 15 MG Extended Release Oral Tablet [Xtampza]",
            "oxycodone",
            "15",
            "mg",
            "1",
            None,
            "oral",
            "tablet",
            "modified",
        ),
        (
            "Morphine sulfate 10mg/1ml solution for injection ampoules",
            "morphine",
            "10",
            "mg",
            "1",
            "ml",
            "injection",
            "ml",
            "immediate",
        ),
        (
            "Buprenorphine 200microgram sublingual tablets sugar free",
            "buprenorphine",
            "200",
            "microgram",
            "1",
            None,
            "sublingual",
            "tablet",
            "immediate",
        ),
        ("Morphine 10mg suppositories", "morphine", "10", "mg", "1", None, "rectal", "suppository", "immediate"),
    ],
)
def test_name_grammar(name, words, value, unit, per_value, per_unit, route, presentation, release):
    parsed = parse_name(name)
    component = parsed.components[0]
    strength = component.strengths[0]
    assert component.base_words == words
    assert (strength.value, strength.unit, strength.per_value, strength.per_unit) == (
        Decimal(value),
        unit,
        Decimal(per_value),
        per_unit,
    )
    assert (parsed.route, parsed.presentation, parsed.release) == (route, presentation, release)


def test_combination_names_have_every_component():
    parsed = parse_name("Oxycodone 10mg / Naloxone 5mg modified-release tablets")
    assert [c.base_words for c in parsed.components] == ["oxycodone", "naloxone"]
    rx = parse_name("acetaminophen 300 MG / codeine phosphate 30 MG Oral Tablet")
    assert [c.base_words for c in rx.components] == ["acetaminophen", "codeine"]


def test_a_name_without_strength_is_not_parsed():
    assert parse_name("Methadone hydrochloride powder") is None


@pytest.mark.parametrize(
    ("name", "ingredient", "strength_mg", "others"),
    [
        ("Co-codamol 30mg/500mg tablets", "codeine", Decimal(30), ("paracetamol",)),
        ("Co-dydramol 10mg/500mg tablets", "dihydrocodeine", Decimal(10), ("paracetamol",)),
        ("Co-proxamol 32.5mg/325mg tablets", "dextropropoxyphene", Decimal("32.5"), ("paracetamol",)),
        ("Tramadol 37.5mg / Paracetamol 325mg tablets", "tramadol", Decimal("37.5"), ("paracetamol",)),
        ("Oxycodone 10mg / Naloxone 5mg modified-release tablets", "oxycodone", Decimal(10), ("naloxone",)),
        ("acetaminophen 300 MG / codeine phosphate 30 MG Oral Tablet", "codeine", Decimal(30), ("paracetamol",)),
    ],
)
def test_basis_of_strength_is_the_opioid_part(name, ingredient, strength_mg, others):
    identified = identify({"medicationCodeableConcept": {"text": name}}, {}, load_knowledge())
    assert identified.product.ingredient == ingredient
    assert identified.product.strength_mg == strength_mg
    assert identified.product.other_ingredients == others


def test_every_opioid_vmp_of_the_shared_lists_is_in_the_catalogue_with_its_facts():
    rows = [
        r
        for r in _catalogue()
        if r["system"] == "https://dmd.nhs.uk" and r["type"] == "VMP" and any(k in r["source"] for k in OPIOID_LISTS)
    ]
    assert len(rows) > 600
    for row in rows:
        # Over-the-counter combinations named only by brand, with no strength, name no ingredient we can read.
        assert row["ingredient"] or row["name"].startswith("Generic "), row["name"]
        assert "opioid" in row["classes"].split() or row["status"].startswith("listed"), row["name"]
        if row["status"] == "ok":
            assert row["route"] and (row["strength_mg"] or row["patch_mcg_per_hour"]), row["name"]
    parsed = sum(r["status"] == "ok" for r in rows)
    assert parsed / len(rows) > 0.95


def test_every_catalogue_row_names_its_source():
    assert all(r["source"] for r in _catalogue())


def test_catalogue_and_factors_are_rebuilt_identically_from_the_vendored_lists(tmp_path):
    for script, committed in (("build_catalogue.py", "catalogue.csv"), ("build_factors.py", "ome_factors.csv")):
        out = tmp_path / committed
        subprocess.run(
            [sys.executable, str(ROOT / "scripts" / script), "--shared", str(SOURCES), "--out", str(out)],
            check=True,
            capture_output=True,
        )
        assert out.read_bytes() == (ROOT / "cds_service/clinical/knowledge/data" / committed).read_bytes(), committed


@pytest.mark.parametrize(
    ("code", "classes"),
    [
        ("14951911000001104", {"opioid", "strong-opioid", "immediate-release-fentanyl"}),  # fentanyl sublingual
        ("23560111000001105", {"opioid", "strong-opioid", "immediate-release-fentanyl"}),  # fentanyl buccal film
        ("333919005", {"opioid", "strong-opioid"}),  # fentanyl patch: not immediate release
        ("322503009", {"opioid", "weak-opioid"}),  # codeine
        ("322623000", {"opioid", "weak-opioid"}),  # tramadol
        ("42017511000001108", {"opioid", "strong-opioid"}),  # tapentadol
        ("415167006", {"gabapentinoid"}),  # pregabalin
        ("321197008", {"benzodiazepine"}),  # diazepam 5 mg
    ],
)
def test_classes(code, classes):
    assert load_knowledge().products[("https://dmd.nhs.uk", code)].classes == classes


def test_z_drugs_are_classed():
    z = [p for p in load_knowledge().products.values() if p.name.startswith("Zopiclone 7.5mg tablets")]
    assert z and all(p.classes == {"z-drug"} for p in z)


@pytest.mark.parametrize(
    "text",
    [
        "Methadone 1mg/ml oral solution",
        "Buprenorphine 8mg sublingual tablets",
        "buprenorphine 2 MG / naloxone 0.5 MG Sublingual Tablet",
    ],
)
def test_opioid_substitution_products(text):
    product = identify({"medicationCodeableConcept": {"text": text}}, {}, load_knowledge()).product
    assert "opioid-substitution" in product.classes


def test_low_dose_sublingual_buprenorphine_is_analgesic_not_substitution():
    product = load_knowledge().products[("https://dmd.nhs.uk", "322498006")]  # 200 microgram sublingual
    assert "opioid-substitution" not in product.classes


def test_patch_wear_times():
    products = load_knowledge().products
    assert products[("https://dmd.nhs.uk", "333919005")].wear_hours == 72  # fentanyl 25
    assert products[("https://dmd.nhs.uk", "9567411000001100")].wear_hours == 168  # buprenorphine 10
    transtec = [p for p in products.values() if p.name == "Buprenorphine 35micrograms/hour transdermal patches"]
    assert transtec and transtec[0].wear_hours == 96


def test_weak_strong_map_is_configurable(tmp_path):
    path = tmp_path / "strength.csv"
    rows = (
        (ROOT / "cds_service/clinical/knowledge/data/opioid_strength.csv")
        .read_text()
        .replace("tramadol,weak,", "tramadol,strong,")
    )
    path.write_text(rows)
    custom = load_knowledge(str(path))
    assert "strong-opioid" in custom.products[("https://dmd.nhs.uk", "322623000")].classes
    assert "weak-opioid" in load_knowledge().products[("https://dmd.nhs.uk", "322623000")].classes


def test_a_broken_strength_map_refuses_to_load(tmp_path):
    from cds_service.errors import ConfigError

    path = tmp_path / "strength.csv"
    path.write_text("ingredient,strength,source\ntramadol,medium,me\n")
    with pytest.raises(ConfigError, match="line 2"):
        load_knowledge(str(path))


@pytest.mark.parametrize(
    ("coding_system", "code"),
    [("https://dmd.nhs.uk", "36127711000001103"), ("http://snomed.info/sct", "36127711000001103")],
)
def test_dmd_codes_are_found_under_either_system(coding_system, code):
    resource = {"medicationCodeableConcept": {"coding": [{"system": coding_system, "code": code}]}}
    identified = identify(resource, {}, load_knowledge())
    assert identified.via == "code" and identified.product.name == "Morphine 60mg modified-release tablets"


def test_rxnorm_code_is_found():
    resource = {
        "medicationCodeableConcept": {
            "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "1049593"}]
        }
    }
    product = identify(resource, {}, load_knowledge()).product
    assert product.ingredient == "oxycodone" and product.strength_mg == 60 and product.release == "modified"


def test_an_unknown_code_falls_back_to_the_display():
    resource = {
        "medicationCodeableConcept": {
            "coding": [
                {"system": "https://dmd.nhs.uk", "code": "1", "display": "Morphine 30mg modified-release tablets"}
            ]
        }
    }
    identified = identify(resource, {}, load_knowledge())
    assert identified.via == "name" and identified.product.strength_mg == 30


def test_missing_medication_reference_is_reported():
    resource = {"medicationReference": {"reference": "Medication/absent"}}
    identified = identify(resource, {}, load_knowledge())
    assert identified.product is None and "was not found" in identified.problem


def test_codelists_are_rebuilt_identically_from_the_vendored_lists(tmp_path):
    script = ROOT / "scripts" / "build_codelists.py"
    subprocess.run([sys.executable, str(script), "--shared", str(SOURCES), "--out", str(tmp_path)], check=True)
    data = ROOT / "cds_service/clinical/knowledge/data"
    built = sorted(p.name for p in tmp_path.glob("*.csv"))
    assert built and all((tmp_path / n).read_bytes() == (data / n).read_bytes() for n in built), built
