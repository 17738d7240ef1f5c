"""One supply counted once across UK dialects: EPS basedOn.identifier, groupIdentifier, GP Connect plan + issues.

The fixtures are the NHS Digital EPS example bundles in tests/files/eps/ (see its README). Factors: morphine oral 1,
codeine oral 0.1 (cds_service/clinical/knowledge/data/ome_factors.csv, BNF).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from tests.ome_helpers import mr, ome

EPS = Path(__file__).parent / "files" / "eps"
ITEM = "https://fhir.nhs.uk/Id/prescription-order-item-number"
MORPHINE_MR_60 = "36127711000001103"  # Morphine 60mg modified-release tablets
ORAMORPH = "322440003"  # Morphine 10mg/5ml oral solution (2 mg/ml)
BD = "ONE tablet TWICE a day"


def _items(name: str) -> list[dict[str, Any]]:
    bundle = json.loads((EPS / name).read_text())
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "MedicationRequest"]


def _item(name: str, display_part: str) -> dict[str, Any]:
    return next(r for r in _items(name) if display_part in json.dumps(r["medicationCodeableConcept"]))


def _authorisation_for(issue: dict[str, Any], dosage: str, id: str = "auth") -> dict[str, Any]:
    """The authorisation an EPS issue names: same product, intent original-order, the issue's basedOn identifier."""
    auth = copy.deepcopy(issue)
    auth.pop("basedOn", None)
    auth["id"] = id
    auth["intent"] = "original-order"
    auth["identifier"] = [issue["basedOn"][0]["identifier"]]
    auth["dosageInstruction"] = [{"text": dosage}]
    return auth


def _eps_morphine_issue(dosage: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The EPS morphine 15 mg MR item, made an issue of authorisation item "auth-item-1" (by identifier only)."""
    issue = copy.deepcopy(_item("eps-multiple-drugs-fentanyl-patch-morphine-bundle.json", "Morphine 15mg"))
    issue["intent"] = "instance-order"
    issue["basedOn"] = [{"identifier": {"system": ITEM, "value": "auth-item-1"}}]
    if dosage is not None:
        issue["dosageInstruction"] = dosage
    return issue


def test_eps_issue_and_its_authorisation_by_identifier_printed_differently_are_counted_once():
    issue = _eps_morphine_issue()  # "twice a day - Oral route - One twice daily": 2 x 15 mg = 30 mg x 1 = 30
    auth = _authorisation_for(issue, "ONE tablet TWICE a day")  # the same 30, printed another way
    result = ome(auth, issue).to_json()
    assert result["total_ome_mg_per_day"] == 30.0  # not 60: one supply
    assert [o["counted"] for o in result["orders"]] == [True, False]
    assert result["orders"][1]["same_supply_as"] == "auth" and result["complete"]


def test_eps_issue_and_authorisation_that_disagree_count_the_higher_and_say_so():
    issue = _eps_morphine_issue()  # 30 mg/day as above
    auth = _authorisation_for(issue, "TWO tablets TWICE a day")  # 2 x 2 x 15 = 60 mg x 1 = 60
    result = ome(issue, auth).to_json()
    assert result["total_ome_mg_per_day"] == 60.0  # the higher, never the lower (30), never both (90)
    counted = [o for o in result["orders"] if o["counted"]]
    assert [o["id"] for o in counted] == ["auth"]
    assert any("doses differ" in f and "the higher counted" in f for f in counted[0]["flags"])


def test_eps_issues_of_other_products_naming_one_authorisation_are_not_merged():
    # the EPS repeat-prescribing example: amoxicillin, co-codamol, pseudoephedrine, azithromycin issues all name
    # authorisation item 299c610b-...; the authorisation here is co-codamol 30/500, "TWO tablets FOUR times a day":
    # 8 x 30 mg codeine = 240 mg x 0.1 = 24. The co-codamol issue ("2 times a day for 10 days", 20 tablets: 2 a
    # day read from the quantity = 60 mg x 0.1 = 6) is the same supply: the higher, 24, is counted.
    issues = _items("eps-repeat-prescribing-amoxicillin-bundle.json")
    co_codamol = next(i for i in issues if "Co-codamol" in json.dumps(i))
    auth = _authorisation_for(co_codamol, "TWO tablets FOUR times a day")
    result = ome(auth, *issues).to_json()
    assert result["total_ome_mg_per_day"] == 24.0
    by_display = {o["display"]: o for o in result["orders"][1:]}
    assert by_display["Co-codamol 30mg/500mg tablets"]["same_supply_as"] == "auth"
    amoxicillin = by_display["Amoxicillin 250mg capsules"]
    assert amoxicillin["same_supply_as"] is None and amoxicillin["reason"] == "not an opioid"
    assert any("another product" in f for f in amoxicillin["flags"])


def test_two_items_of_one_eps_prescription_of_the_same_product_add_up():
    # one prescription (groupIdentifier), two items of morphine 15 mg MR with their own item numbers:
    # "One twice daily" 30 + "ONE tablet at night" 15 = 45 mg x 1
    first = copy.deepcopy(_item("eps-multiple-drugs-fentanyl-patch-morphine-bundle.json", "Morphine 15mg"))
    second = copy.deepcopy(first)
    second["id"] = "second-item"
    second["identifier"] = [{"system": ITEM, "value": "second-item"}]
    second["dosageInstruction"] = [{"text": "ONE tablet at night"}]
    assert ome(first, second).to_json()["total_ome_mg_per_day"] == 45.0


def test_the_same_eps_item_twice_is_one_supply():
    # the GP record and the EPS copy of one item: one item number, two resource ids; 2 x 15 = 30 mg x 1
    eps_copy = _item("eps-multiple-drugs-fentanyl-patch-morphine-bundle.json", "Morphine 15mg")
    gp_copy = copy.deepcopy(eps_copy)
    gp_copy["id"] = "gp-record-copy"
    gp_copy["dosageInstruction"] = [{"text": "ONE tablet TWICE a day"}]
    assert ome(eps_copy, gp_copy).to_json()["total_ome_mg_per_day"] == 30.0


def test_same_product_twice_in_one_prescription_without_item_numbers_counts_both_and_says_so():
    # Was "..._is_one_supply" expecting 120. Changed: a prescription (groupIdentifier) holds several items, and
    # without item numbers nothing tells the same item printed twice from two items; joining them hid the second
    # item's dose (review: Oramorph "5ml four hourly" + "10ml at night" on one prescription counted 60, not 80).
    # Both are counted and flagged: 2 x 60 = 120 + 2 x 60 = 120 -> 240 mg x 1.
    group = {"system": "https://fhir.nhs.uk/Id/prescription-order-number", "value": "4243A0-A99968-4E149+"}
    a = mr(code=MORPHINE_MR_60, dosage=BD, id="a", groupIdentifier=group)  # 2 x 60 = 120
    b = mr(code=MORPHINE_MR_60, dosage=[{"text": "1 tablet - twice a day"}], id="b", groupIdentifier=group)
    result = ome(a, b).to_json()
    assert result["total_ome_mg_per_day"] == 240.0
    assert any("without item numbers: both counted" in f for f in result["orders"][1]["flags"])


def test_gp_connect_plan_and_issue_printed_differently_are_counted_once():
    plan = mr(code=MORPHINE_MR_60, dosage=BD, id="plan", intent="plan")  # 2 x 60 = 120
    issue = mr(
        code=MORPHINE_MR_60,
        id="issue",
        intent="order",
        basedOn=[{"reference": "MedicationRequest/plan"}],
        dosageInstruction=[
            {
                "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}],
            }
        ],
    )
    assert ome(plan, issue).to_json()["total_ome_mg_per_day"] == 120.0  # not 240


def test_gp_connect_issue_with_a_higher_dose_than_its_plan_is_counted():
    plan = mr(code=MORPHINE_MR_60, dosage=BD, id="plan", intent="plan")  # 120
    issue = mr(
        code=MORPHINE_MR_60,
        dosage="ONE tablet THREE times a day",  # 3 x 60 = 180
        id="issue",
        intent="order",
        basedOn=[{"reference": "MedicationRequest/plan"}],
    )
    result = ome(plan, issue).to_json()
    assert result["total_ome_mg_per_day"] == 180.0
    assert result["orders"][0]["same_supply_as"] == "issue"


def test_prior_prescription_by_identifier_links_a_reissue():
    old = mr(code=MORPHINE_MR_60, dosage=BD, id="old", identifier=[{"system": ITEM, "value": "item-7"}])
    new = mr(
        code=MORPHINE_MR_60,
        dosage="1 tablet 2 times a day",
        id="new",
        priorPrescription={"identifier": {"system": ITEM, "value": "item-7"}},
    )
    assert ome(old, new).to_json()["total_ome_mg_per_day"] == 120.0  # 2 x 60, once


def test_two_items_sharing_a_prescription_number_as_identifier_add_up():
    # a system that puts the prescription number (not the item number) in identifier: two items of one product,
    # 2 x 60 = 120 and "ONE tablet at night" 60, are two regimens: 120 + 60 = 180 mg x 1
    number = {"system": "https://fhir.nhs.uk/Id/prescription-order-number", "value": "4243A0-A99968-4E149+"}
    item_number = {"system": ITEM, "value": "x"}
    a = mr(code=MORPHINE_MR_60, dosage=BD, id="a", identifier=[number, {**item_number, "value": "a"}])
    b = mr(code=MORPHINE_MR_60, dosage="ONE tablet at night", id="b", identifier=[number])
    assert ome(a, b).to_json()["total_ome_mg_per_day"] == 180.0


def test_eps_authorisation_and_issue_are_not_a_duplicate_modified_release_opioid():
    from datetime import date

    from cds_service.assess import clinical_codes
    from cds_service.clinical.facts import build_facts
    from cds_service.clinical.record import record_from_resources

    issue = _eps_morphine_issue()
    auth = _authorisation_for(issue, "ONE tablet TWICE a day")
    record = record_from_resources("p1", [("existing", "$[0]", auth), ("existing", "$[1]", issue)])
    result = ome(auth, issue)
    settings = {"older_adult_age_years": 65, "suppress_in_palliative_care": True}
    facts = build_facts("patient-view", record, result, None, clinical_codes(), settings, date(2026, 11, 23))
    assert facts.summary["max_mr_orders_per_ingredient"] == 1  # one morphine MR supply, not 2
    assert facts.summary["total_ome_mg_per_day"] == 30.0  # 2 x 15 mg x 1, once


# --- never one supply: different products, ids of two origins, identifiers without a system ----------------------
def _draft_and_existing(draft: dict[str, Any], existing: dict[str, Any]) -> dict[str, Any]:
    from cds_service.clinical.knowledge.loader import load_knowledge
    from cds_service.clinical.ome import compute_ome

    return compute_ome([(existing, "existing"), (draft, "draft")], {}, load_knowledge(), "uk").to_json()


def test_draft_sharing_an_id_with_an_existing_order_of_another_product_counts_both():
    # existing morphine 60 mg MR "1 bd": 2 x 60 = 120; draft Oramorph "5ml qds prn": 5 ml x 2 mg/ml = 10 mg x 4 =
    # 0-40; the EHR gave the draft id "1" too. Two products: 120 + 40 = 160 (was 40: the MR vanished).
    existing = mr(code=MORPHINE_MR_60, dosage="1 bd", id="1")
    draft = mr(code=ORAMORPH, dosage="5ml qds prn", id="1", status="draft")
    result = _draft_and_existing(draft, existing)
    assert result["total_ome_mg_per_day"] == 160.0
    assert all(o["counted"] and o["same_supply_as"] is None for o in result["orders"])


def test_draft_sharing_an_id_with_an_existing_order_of_the_same_product_and_another_dose_counts_both():
    # existing morphine 60 mg MR bd = 120; draft of the same product "ONE tablet at night" = 60, both id "1" and
    # not linked: a bare id from two servers is no link. 120 + 60 = 180 (was 60: the draft "replaced" the MR).
    existing = mr(code=MORPHINE_MR_60, dosage=BD, id="1")
    draft = mr(code=MORPHINE_MR_60, dosage="ONE tablet at night", id="1", status="draft")
    assert _draft_and_existing(draft, existing)["total_ome_mg_per_day"] == 180.0


def test_immediate_release_prn_issue_naming_a_modified_release_authorisation_counts_both_and_says_so():
    # authorisation morphine 60 mg MR "1 bd" = 2 x 60 = 120; the issue is Oramorph "5-10ml 2 hourly prn":
    # up to 10 ml x 2 mg/ml = 20 mg x 12 a day = 0-240. Another product: 120 + 240 = 360 (was 240, MR dropped).
    auth = mr(code=MORPHINE_MR_60, dosage="1 bd", id="mr", intent="plan")
    issue = mr(code=ORAMORPH, dosage="5-10ml 2 hourly prn", id="ir", basedOn=[{"reference": "MedicationRequest/mr"}])
    result = ome(auth, issue).to_json()
    assert result["total_ome_mg_per_day"] == 360.0
    assert [o["counted"] for o in result["orders"]] == [True, True]
    assert any("linked to mr, another product" in f for f in result["orders"][1]["flags"])


def test_two_oramorph_items_of_one_prescription_without_item_numbers_add_up():
    # one prescription, two Oramorph items: "5ml four hourly" = 10 mg x 6 = 60; "10ml at night" = 20 mg x 1 = 20;
    # 60 + 20 = 80 mg x 1 (was 60: joined as one supply, the higher counted)
    group = {"system": "urn:local:prescription", "value": "rx-77"}
    a = mr(code=ORAMORPH, dosage="5ml four hourly", id="a", groupIdentifier=group)
    b = mr(code=ORAMORPH, dosage="10ml at night", id="b", groupIdentifier=group)
    assert ome(a, b).to_json()["total_ome_mg_per_day"] == 80.0


def test_two_products_sharing_an_identifier_without_a_system_add_up():
    # {"value": "1"} with no system is no identity: morphine 60 mg MR "1 bd" = 120 + Oramorph "5ml qds" =
    # 10 mg x 4 = 40 -> 160 (was 120: the higher only)
    a = mr(code=MORPHINE_MR_60, dosage="1 bd", id="a", identifier=[{"value": "1"}])
    b = mr(code=ORAMORPH, dosage="5ml qds", id="b", identifier=[{"value": "1"}])
    assert ome(a, b).to_json()["total_ome_mg_per_day"] == 160.0


def test_same_product_sharing_an_identifier_without_a_system_adds_up():
    # morphine 60 mg MR "1 bd" = 120 and "ONE tablet at night" = 60, both {"value": "1"}: 120 + 60 = 180 (was 120)
    a = mr(code=MORPHINE_MR_60, dosage="1 bd", id="a", identifier=[{"value": "1"}])
    b = mr(code=MORPHINE_MR_60, dosage="ONE tablet at night", id="b", identifier=[{"value": "1"}])
    assert ome(a, b).to_json()["total_ome_mg_per_day"] == 180.0
