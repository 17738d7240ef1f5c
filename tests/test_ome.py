"""OME per order and in total. Expected values worked by hand from ome_factors.csv."""

from __future__ import annotations

import json

import pytest

from tests.helpers import FILES
from tests.ome_helpers import mr, ome, total

MORPHINE_MR_60 = "36127711000001103"  # Morphine 60mg modified-release tablets
MORPHINE_10 = "322708003"  # Morphine 10mg tablets
ORAMORPH = "322440003"  # Morphine sulfate 10mg/5ml oral solution
OXYCODONE_MR_40 = "322696002"  # Oxycodone 40mg modified-release tablets
OXYCODONE_5 = "322691007"  # Oxycodone 5mg capsules
CODEINE_30 = "322503009"  # Codeine 30mg tablets
CO_CODAMOL_30_500 = "322341003"  # Co-codamol 30mg/500mg tablets
METHADONE_5 = "322591003"  # Methadone 5mg tablets
FENTANYL_25 = "333919005"  # Fentanyl 25micrograms/hour transdermal patches
BUPRENORPHINE_10 = "9567411000001100"  # Buprenorphine 10micrograms/hour transdermal patches
PREGABALIN_75 = "415167006"  # Pregabalin 75mg capsules
BD = "ONE tablet TWICE a day"


def test_issue_example_morphine_60_mr_twice_daily_is_120():
    result = ome(mr(code=MORPHINE_MR_60, dosage=BD)).to_json()
    order = result["orders"][0]
    assert result["total_ome_mg_per_day"] == 120.0 and result["complete"]
    assert order["units_per_day_min"] == 2 and order["units_per_day_max"] == 2
    assert order["factor"] == 1.0 and order["factor_source"] == "BNF"
    assert order["classes"] == ["opioid", "strong-opioid"] and order["route"] == "oral"


def test_regular_plus_prn_reports_min_and_max():
    # oxycodone MR 40 mg bd = 80 mg x 1.5 = 120; oxycodone 5 mg up to 4 a day PRN = 0 to 20 mg x 1.5 = 0 to 30
    result = ome(
        mr(code=OXYCODONE_MR_40, dosage=BD, id="mr"),
        mr(code=OXYCODONE_5, dosage="ONE capsule up to four times a day when required", id="prn"),
    ).to_json()
    assert result["total_ome_mg_per_day_min"] == 120.0
    assert result["total_ome_mg_per_day"] == 150.0


def test_oral_solution_prn_with_maximum():
    # 10 mg/5 ml = 2 mg/ml; max 30 ml a day = 60 mg x 1 = 60
    result = ome(mr(code=ORAMORPH, dosage="5ml every 4 hours when required, max 30ml in 24 hours")).to_json()
    assert (result["total_ome_mg_per_day_min"], result["total_ome_mg_per_day"]) == (0.0, 60.0)


def test_co_codamol_counts_its_codeine_only():
    # 2 tablets qds = 8 x 30 mg codeine = 240 mg x 0.1 = 24
    assert total(mr(code=CO_CODAMOL_30_500, dosage="TWO tablets FOUR times a day")) == 24.0


@pytest.mark.parametrize(
    ("dosage", "expected"),
    [
        ("apply one patch every 72 hours", 60.0),
        ("apply one patch every 7 days", 60.0),
        ("apply TWO patches every 72 hours", 120.0),
    ],
)
def test_fentanyl_patch_is_2_4_per_microgram_hour_whatever_the_interval(dosage, expected):
    assert total(mr(code=FENTANYL_25, dosage=dosage)) == expected  # 25 x 2.4 = 60 per patch worn


def test_buprenorphine_patch_10_is_24():
    order = ome(mr(code=BUPRENORPHINE_10, dosage="apply one patch every 7 days")).to_json()["orders"][0]
    assert order["ome_mg_per_day_max"] == 24.0  # 10 x 2.4


def test_methadone_is_counted_and_always_flagged_approximate():
    order = ome(mr(code=METHADONE_5, dosage=BD)).to_json()["orders"][0]
    assert order["ome_mg_per_day_max"] == 30.0  # 10 mg x 3
    assert "approximate: no fixed ratio (Opioids Aware)" in order["flags"]


@pytest.mark.parametrize(
    ("tablets_bd", "expected"),
    [(2, 80.0), (3, 240.0), (4, 320.0), (5, 500.0), (6, 600.0), (7, 840.0)],
)
def test_cdc_2016_methadone_is_tiered_by_daily_dose(tablets_bd, expected):
    # 5 mg tablets twice a day: 20 mg x 4; 30 x 8; 40 x 8; 50 x 10; 60 x 10; 70 x 12
    words = {2: "TWO", 3: "THREE", 4: "FOUR", 5: "FIVE", 6: "SIX", 7: "SEVEN"}[tablets_bd]
    assert total(mr(code=METHADONE_5, dosage=f"{words} tablets TWICE a day"), profile="cdc-2016") == expected


@pytest.mark.parametrize(("profile", "expected"), [("uk", 12.0), ("cdc-2022", 18.0), ("cdc-2016", 18.0)])
def test_codeine_differs_by_profile(profile, expected):
    # codeine 30 mg qds = 120 mg: uk 0.1, CDC 0.15
    assert total(mr(code=CODEINE_30, dosage="ONE tablet FOUR times a day"), profile=profile) == expected


def test_a_route_the_profile_lacks_is_not_counted_and_the_total_is_incomplete():
    # cdc-2022 has no factor for sublingual buprenorphine
    result = ome(mr(code="322498006", dosage=BD), profile="cdc-2022")
    order = result.to_json()["orders"][0]
    assert not order["counted"] and "no cdc-2022 factor for buprenorphine" in order["reason"]
    assert not result.complete


def test_as_directed_is_not_counted_with_its_reason():
    result = ome(mr(code=MORPHINE_MR_60, dosage="as directed"))
    assert not result.complete
    assert result.to_json()["orders"][0]["reason"] == 'dose "as directed" cannot be quantified'


def test_unknown_product_is_not_counted_and_makes_the_total_incomplete():
    result = ome(mr(code="999999999", dosage=BD))
    assert not result.complete and result.to_json()["orders"][0]["reason"] == "product not recognised"


def test_non_opioid_is_listed_but_does_not_make_the_total_incomplete():
    result = ome(mr(code=PREGABALIN_75, dosage=BD), mr(code=MORPHINE_10, dosage=BD, id="m"))
    data = result.to_json()
    assert result.complete and data["total_ome_mg_per_day"] == 20.0
    assert data["orders"][0]["reason"] == "not an opioid" and data["orders"][0]["classes"] == ["gabapentinoid"]


def test_dose_in_ml_for_a_tablet_cannot_be_converted():
    result = ome(mr(code=MORPHINE_10, dosage="5ml twice a day"))
    assert not result.complete and "cannot be converted to mg" in result.to_json()["orders"][0]["reason"]


@pytest.mark.parametrize("status", ["completed", "stopped", "cancelled", "entered-in-error"])
def test_history_is_not_current_dose(status):
    result = ome(mr(code=MORPHINE_MR_60, dosage=BD, status=status), mr(code=MORPHINE_10, dosage=BD, id="now"))
    data = result.to_json()
    assert data["total_ome_mg_per_day"] == 20.0 and result.complete
    assert data["orders"][0]["reason"] == f"not current: status {status}"


# --- one supply counted once ----------------------------------------------------------------------------------------
def _draft_and_active(**draft_extra):
    active = mr(code=MORPHINE_MR_60, dosage=BD, id="active-1")
    draft = mr(code=MORPHINE_MR_60, dosage="ONE tablet THREE times a day", id="draft-1", status="draft", **draft_extra)
    from cds_service.clinical.knowledge.loader import load_knowledge
    from cds_service.clinical.ome import compute_ome

    return compute_ome([(draft, "draft"), (active, "existing")], {}, load_knowledge())


def test_draft_based_on_an_active_order_replaces_it():
    result = _draft_and_active(basedOn=[{"reference": "MedicationRequest/active-1"}]).to_json()
    assert result["total_ome_mg_per_day"] == 180.0  # the new dose only: 3 x 60
    assert result["orders"][1]["same_supply_as"] == "draft-1" and not result["orders"][1]["counted"]


def test_prior_prescription_links_the_same_way():
    result = _draft_and_active(priorPrescription={"reference": "MedicationRequest/active-1"}).to_json()
    assert result["total_ome_mg_per_day"] == 180.0


def test_unlinked_draft_with_another_dose_adds_up():
    assert _draft_and_active().to_json()["total_ome_mg_per_day"] == 300.0  # 120 + 180: two regimens


def test_reissue_of_the_same_product_and_dose_is_counted_once():
    from cds_service.clinical.knowledge.loader import load_knowledge
    from cds_service.clinical.ome import compute_ome

    active = mr(code=MORPHINE_MR_60, dosage=BD, id="active-1")
    draft = mr(code=MORPHINE_MR_60, dosage=BD, id="draft-1", status="draft")
    result = compute_ome([(draft, "draft"), (active, "existing")], {}, load_knowledge()).to_json()
    assert result["total_ome_mg_per_day"] == 120.0


def test_authorisation_and_its_issues_are_one_regimen():
    plan = mr(code=MORPHINE_MR_60, dosage=BD, id="auth", intent="plan")
    issue1 = mr(
        code=MORPHINE_MR_60,
        dosage=BD,
        id="issue-1",
        intent="instance-order",
        basedOn=[{"reference": "MedicationRequest/auth"}],
    )
    issue2 = mr(
        code=MORPHINE_MR_60,
        dosage=BD,
        id="issue-2",
        intent="reflex-order",
        basedOn=[{"reference": "MedicationRequest/auth"}],
        status="completed",
    )
    result = ome(plan, issue1, issue2).to_json()
    assert result["total_ome_mg_per_day"] == 120.0
    assert [o["counted"] for o in result["orders"]] == [True, False, False]
    assert result["orders"][1]["same_supply_as"] == "auth"


# --- identification paths feed the same arithmetic ------------------------------------------------------------------
def test_contained_medication_with_ingredient_strength():
    resource = {
        "resourceType": "MedicationRequest",
        "id": "c1",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "medicationReference": {"reference": "#med"},
        "contained": [
            {
                "resourceType": "Medication",
                "id": "med",
                "form": {"text": "Modified-release tablet"},
                "ingredient": [
                    {
                        "itemCodeableConcept": {"text": "Oxycodone hydrochloride"},
                        "strength": {
                            "numerator": {"value": 20, "unit": "mg"},
                            "denominator": {"value": 1, "unit": "tablet"},
                        },
                    }
                ],
            }
        ],
        "dosageInstruction": [{"text": BD}],
    }
    assert total(resource) == 60.0  # 40 mg x 1.5


def test_referenced_medication_by_code():
    from cds_service.clinical.knowledge.loader import load_knowledge
    from cds_service.clinical.ome import compute_ome

    medication = {
        "resourceType": "Medication",
        "id": "m9",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": FENTANYL_25}]},
    }
    resource = mr(dosage="apply one patch every 72 hours")
    del resource["medicationCodeableConcept"]
    resource["medicationReference"] = {"reference": "Medication/m9"}
    result = compute_ome([(resource, "existing")], {"Medication/m9": medication}, load_knowledge())
    assert result.to_json()["total_ome_mg_per_day"] == 60.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12 HR Oxycodone Hydrochloride 10 MG Extended Release Oral Tablet", 30.0),  # 20 mg x 1.5
        ("Zomorph 30mg modified-release capsules", 60.0),  # brand (AMP) name: 60 mg x 1
        ("OxyContin 20mg modified-release tablets", 60.0),  # 40 mg x 1.5
        ("Tramadol 37.5mg / Paracetamol 325mg tablets", 7.5),  # 75 mg x 0.1
    ],
)
def test_text_names_are_read(text, expected):
    assert total(mr(text=text, dosage=BD)) == expected


# --- the CDC MME calculator cases --------------------------------------------------------------------------------
CDC = [
    ("morphineMedRecMMECalc.json", "GuidanceResponse-mmecalc.json"),
    ("example-rec-05-mme-greater-than-fifty-context.json", "GuidanceResponse-patient-mme-greater-than-fifty.json"),
    ("example-rec-05-mme-less-than-fifty-context.json", "GuidanceResponse-patient-mme-less-than-fifty.json"),
    ("example-rec-05-mme-with-timeofday-context.json", "GuidanceResponse-patient-mme-with-timeofday.json"),
]


@pytest.mark.parametrize(("request_file", "response_file"), CDC)
def test_cdc_mme_calculator_cases_pass_under_cdc_2022(request_file, response_file):
    resource = json.loads((FILES / "cdc-mme" / request_file).read_text())
    guidance = json.loads((FILES / "cdc-mme" / response_file).read_text())
    expected = guidance["contained"][0]["parameter"][0]["valueQuantity"]["value"]
    assert total(resource, profile="cdc-2022") == expected
