"""Transdermal patches: one patch worn continuously at its rate, whatever the interval, text or quantity.

Expected values by hand from ome_factors.csv, uk profile: fentanyl transdermal 100 and buprenorphine transdermal
100 per mg delivered per day (OpenPrescribing opioid_ing_form_ome.csv, Opioids Aware), i.e. 2.4 per microgram/hour.
Fentanyl 25 micrograms/hour: 25 x 24 / 1000 = 0.6 mg/day x 100 = 60 mg/day per patch worn.
Buprenorphine 10 micrograms/hour (7-day patch): 10 x 24 / 1000 = 0.24 mg/day x 100 = 24 mg/day per patch worn.
"""

from __future__ import annotations

import json
from datetime import date

import pytest

from cds_service.assess import Assessor
from cds_service.cards.render import _orders_table
from cds_service.clinical.knowledge.loader import load_knowledge
from cds_service.clinical.patches import HALF_FLAG, PART_TIME_FLAG
from cds_service.clinical.record import record_from_document
from tests.helpers import FIXTURES
from tests.ome_helpers import mr, ome

FENTANYL_25 = "333919005"  # Fentanyl 25micrograms/hour transdermal patches
BUPRENORPHINE_10 = "9567411000001100"  # Buprenorphine 10micrograms/hour transdermal patches (7-day)


def _supply(patches: int, days: int) -> dict:
    return {
        "dispenseRequest": {
            "quantity": {"value": patches, "unit": "patch"},
            "expectedSupplyDuration": {"value": days, "unit": "days", "code": "d"},
        }
    }


def _order(code: str, dosage, **extra) -> dict:
    return ome(mr(code=code, dosage=dosage, **extra)).to_json()["orders"][0]


def test_fentanyl_as_directed_10_patches_for_30_days_is_one_patch_worn_60():
    # was 0.33 patches a day x 60 = 20: the supply (one patch every 3 days) is one patch worn, 0.6 mg/day x 100
    order = _order(FENTANYL_25, "AS DIRECTED", **_supply(10, 30))
    assert order["counted"] and order["ome_mg_per_day_max"] == 60.0 and order["ome_mg_per_day_min"] == 60.0
    assert order["patches_worn"] == 1
    assert any("one patch worn" in flag for flag in order["flags"])


@pytest.mark.parametrize(
    ("dosage", "interval"),
    [
        ("APPLY ONE PATCH EVERY THIRD DAY", "72 hours"),
        ("apply one patch every 72 hours", "72 hours"),
        ("change every 3 days", "72 hours"),
        ("one patch weekly", "7 days"),
        ("apply 1 every 7 days", "7 days"),
        ("Apply ONE patch twice a week", "84 hours"),
    ],
)
def test_fentanyl_25_patch_wording_is_one_patch_worn_60_whatever_the_interval(dosage, interval):
    order = _order(FENTANYL_25, dosage)
    assert order["counted"], order["reason"]
    assert order["ome_mg_per_day_max"] == 60.0  # 0.6 mg/day x 100, the interval does not change it
    assert order["patches_worn"] == 1
    assert order["dose"] == f"1 patch of 25 micrograms/hour, changed every {interval}"


def test_fentanyl_quantity_only_is_one_patch_worn_60():
    resource = mr(code=FENTANYL_25, **_supply(10, 30))
    order = ome(resource).to_json()["orders"][0]
    assert order["counted"] and order["ome_mg_per_day_max"] == 60.0
    assert "no dose: one patch worn at a time" in order["flags"]


def test_buprenorphine_7_day_patch_as_directed_is_24_not_a_seventh():
    # 4 patches for 28 days: one patch worn, 0.24 mg/day x 100 = 24 (a seventh would be 3.43)
    order = _order(BUPRENORPHINE_10, "AS DIRECTED", **_supply(4, 28))
    assert order["ome_mg_per_day_max"] == 24.0
    assert order["dose"] == "1 patch of 10 micrograms/hour, changed every 7 days"


@pytest.mark.parametrize(
    "dosage",
    [
        "apply TWO 25 patches every 72 hours",
        "Apply 2 patches every 3 days",
        [
            {
                "doseAndRate": [{"doseQuantity": {"value": 2, "unit": "patch"}}],
                "timing": {"repeat": {"frequency": 1, "period": 72, "periodUnit": "h"}},
            }
        ],
        "apply 50 micrograms/hour every 72 hours",
    ],
)
def test_two_fentanyl_25_patches_worn_together_count_120(dosage):
    order = _order(FENTANYL_25, dosage)
    assert order["ome_mg_per_day_max"] == 120.0  # 2 x 0.6 mg/day x 100
    assert order["patches_worn"] == 2
    assert order["dose"] == "2 patches of 25 micrograms/hour worn together, changed every 72 hours"


def test_a_strength_before_patch_is_not_a_count():
    order = _order(FENTANYL_25, "apply fentanyl 25 patch every 72 hours")
    assert order["ome_mg_per_day_max"] == 60.0 and order["patches_worn"] == 1  # not 25 patches


@pytest.mark.parametrize("dosage", ["apply half a patch every 72 hours", "cut patch in half, apply every 3 days"])
def test_half_a_patch_is_flagged_and_counted_at_the_full_patch(dosage):
    order = _order(FENTANYL_25, dosage)
    assert order["ome_mg_per_day_max"] == 60.0  # never lower than one whole patch: 0.6 mg/day x 100
    assert HALF_FLAG in order["flags"]


def test_a_structured_half_patch_dose_is_flagged_and_counted_at_the_full_patch():
    dosage = [{"doseAndRate": [{"doseQuantity": {"value": 0.5, "unit": "patch"}}], "timing": {"code": {"text": "x"}}}]
    order = _order(FENTANYL_25, dosage)
    assert order["ome_mg_per_day_max"] == 60.0 and HALF_FLAG in order["flags"]


@pytest.mark.parametrize(
    "dosage", ["apply one patch in the morning and remove after 12 hours", "one patch, 12 hours on 12 hours off"]
)
def test_a_patch_taken_off_part_of_the_day_is_flagged_and_counted_all_day(dosage):
    order = _order(FENTANYL_25, dosage)
    assert order["ome_mg_per_day_max"] == 60.0 and PART_TIME_FLAG in order["flags"]


def test_wear_for_72_hours_is_not_part_time():
    order = _order(FENTANYL_25, "apply one patch and wear for 72 hours")
    assert PART_TIME_FLAG not in order["flags"] and order["ome_mg_per_day_max"] == 60.0


def test_patch_supply_days_still_follow_the_change_interval():
    from cds_service.clinical.facts.fhir import supply_days

    supply = {"quantity": {"value": 10}}
    resource = mr(code=FENTANYL_25, dosage="apply one patch every 72 hours", dispenseRequest=supply)
    order = ome(resource).orders[0]
    assert supply_days(order) == 30  # 10 patches, one put on every 3 days


def test_orders_table_shows_the_patch_worn_and_its_interval_never_patches_a_day():
    result = ome(mr(code=FENTANYL_25, dosage="AS DIRECTED", **_supply(10, 30)))
    table = "\n".join(_orders_table(result))
    assert "| 1 patch of 25 micrograms/hour, changed every 72 hours | 60 |" in table
    assert "patch/day" not in table


def test_order_sign_card_shows_the_fentanyl_patch_as_worn():
    body = json.loads((FIXTURES / "requests" / "order-sign.json").read_text())
    assessor = Assessor.from_paths(load_knowledge())
    evaluation = assessor.assess(body["hook"], record_from_document(body), date(2026, 11, 23))
    details = "\n".join(card["detail"] for card in evaluation.body["cards"])
    # fentanyl 50 micrograms/hour: 50 x 24 / 1000 = 1.2 mg/day x 100 = 120
    assert "1 patch of 50 micrograms/hour, changed every 72 hours | 120 |" in details
    assert "patch/day" not in details


# Reviewer rv10 under-counts. Fentanyl 25 micrograms/hour: 0.6 mg/day x 100 = 60 mg OME for each patch worn.
def _structured(value, text=None) -> list[dict]:
    dosage: dict = {
        "doseAndRate": [{"doseQuantity": {"value": value, "unit": "patch"}}],
        "timing": {"repeat": {"frequency": 1, "period": 72, "periodUnit": "h"}},
    }
    if text:
        dosage["text"] = text
    return [dosage]


def test_structured_one_patch_with_text_apply_two_patches_counts_the_two_flagged():
    # was 60 unflagged: the text says 2 patches worn, 2 x 60 = 120, flagged as disagreeing with the dose of 1
    order = _order(FENTANYL_25, _structured(1, "apply two patches every 72 hours"))
    assert order["ome_mg_per_day_max"] == 120.0 and order["patches_worn"] == 2
    assert any("differ" in flag for flag in order["flags"])


def test_structured_two_patches_with_text_apply_one_patch_counts_the_two_flagged():
    # was 120 unflagged: the higher reading, 2 x 60 = 120, stands, but the disagreement is flagged
    order = _order(FENTANYL_25, _structured(2, "apply one patch"))
    assert order["ome_mg_per_day_max"] == 120.0 and order["patches_worn"] == 2
    assert any("differ" in flag for flag in order["flags"])


def test_structured_and_text_that_agree_are_not_flagged():
    order = _order(FENTANYL_25, _structured(1, "apply one patch every 72 hours"))
    assert order["ome_mg_per_day_max"] == 60.0 and not any("differ" in flag for flag in order["flags"])


def test_one_patch_with_two_patches_if_pain_counts_the_two_flagged():
    # was 60: "2 patches if pain" is the highest reading, 2 x 60 = 120; the lowest stays 1 patch, 60
    order = _order(FENTANYL_25, "apply 1 patch every 72 hrs, 2 patches if pain")
    assert order["ome_mg_per_day_max"] == 120.0 and order["ome_mg_per_day_min"] == 60.0
    assert order["patches_worn"] == 2 and order["flags"]


def test_one_25_patch_and_one_12_patch_adds_the_12_flagged():
    # was 60: one 25 patch (60) and one 12 micrograms/hour patch: 12 x 24 / 1000 = 0.288 mg/day x 100 = 28.8;
    # 60 + 28.8 = 88.8, flagged (the 12 patch is another product named in this order's text)
    order = _order(FENTANYL_25, "apply one 25 patch and one 12 patch every 3 days")
    assert order["ome_mg_per_day_max"] == pytest.approx(88.8)
    assert any("12 micrograms/hour" in flag for flag in order["flags"])


def test_one_patch_plus_one_patch_adds_up():
    # "1 patch plus 1 patch": 1 + 1 = 2 worn, 2 x 60 = 120
    order = _order(FENTANYL_25, "apply 1 patch plus 1 patch every 72 hours")
    assert order["ome_mg_per_day_max"] == 120.0 and order["patches_worn"] == 2


def test_structured_one_patch_and_a_second_line_apply_one_further_patch_add_up_to_two():
    # was 60: the second dosage line adds a patch, 1 + 1 = 2 worn, 2 x 60 = 120, flagged
    dosage = [*_structured(1), {"text": "apply one further patch"}]
    order = _order(FENTANYL_25, dosage)
    assert order["ome_mg_per_day_max"] == 120.0 and order["patches_worn"] == 2
    assert any("dose lines" in flag for flag in order["flags"])


def test_a_second_line_that_only_says_how_to_apply_adds_no_patch():
    # "apply to clean, dry, hairless skin" names no patch worn: 1 patch, 60
    dosage = [*_structured(1), {"text": "apply to clean, dry, hairless skin"}]
    assert _order(FENTANYL_25, dosage)["ome_mg_per_day_max"] == 60.0


def test_dose_lines_in_sequence_count_the_highest_step_not_the_sum():
    # sequence 1: 2 patches (120), then sequence 2: 1 patch (60): one after the other, the highest step 120
    dosage = [
        {"sequence": 1, "text": "apply two patches every 72 hours for 9 days"},
        {"sequence": 2, "text": "then apply one patch every 72 hours"},
    ]
    order = _order(FENTANYL_25, dosage)
    assert order["ome_mg_per_day_max"] == 120.0 and order["patches_worn"] == 2


@pytest.mark.parametrize(
    "dosage", ["apply x2 every 72 hours", "apply ii patches every 72 hours", "apply 2x every 72 hours", "patch x 2"]
)
def test_apply_x2_ii_and_2x_are_two_patches_worn(dosage):
    # was 60 "one patch worn": x2, ii, 2x mean 2 patches, 2 x 60 = 120
    order = _order(FENTANYL_25, dosage)
    assert order["ome_mg_per_day_max"] == 120.0 and order["patches_worn"] == 2


def test_apply_two_without_the_word_patch_is_two_patches_worn():
    # "apply two every 3 days": 2 x 60 = 120
    assert _order(FENTANYL_25, "apply two every 3 days")["ome_mg_per_day_max"] == 120.0


def test_a_number_not_read_is_flagged_and_counted_at_its_highest_plausible_reading():
    # "3" stands alone: it may be 3 patches worn, 3 x 60 = 180 at the most, flagged; never silently 1 patch (60)
    order = _order(FENTANYL_25, "apply patch; 3 if needed")
    assert order["ome_mg_per_day_max"] == 180.0
    assert any('"3"' in flag for flag in order["flags"])


def test_a_large_number_not_read_is_flagged():
    # "7" days? "7" patches? Beyond the most worn at once (4) it is not a count, but it is flagged, never silent
    order = _order(FENTANYL_25, "apply one patch, use 7 then review")
    assert order["ome_mg_per_day_max"] == 60.0 and any('"7"' in flag for flag in order["flags"])


def test_only_another_strength_in_the_text_counts_the_higher_of_it_and_the_supplied_patch():
    # "2 x 12 mcg/hr patches" on a 25 order: 2 x 12 = 24 micrograms/hour (57.6) or the supplied 25 patch (60):
    # the higher, 60, flagged; not both added (117.6) and never the lower
    order = _order(FENTANYL_25, "2 x 12 mcg/hr patches every 72 hours")
    assert order["ome_mg_per_day_max"] == 60.0 and any("12 micrograms/hour" in f for f in order["flags"])


def test_a_leading_bare_number_is_the_patches_worn():
    # "2 every 72 hours": 2 patches worn, 2 x 60 = 120, read as the count (not left as an unread number)
    order = _order(FENTANYL_25, "2 every 72 hours")
    assert order["ome_mg_per_day_max"] == 120.0 and order["ome_mg_per_day_min"] == 120.0
    assert order["patches_worn"] == 2 and not any("not read" in flag for flag in order["flags"])
