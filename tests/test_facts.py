"""Facts: the registry is the vocabulary actually emitted, card values fit their registered widths (also with
absurd input), the rule checker uses those widths, and a few facts worked out by hand on small records."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from cds_service.clinical import facts
from cds_service.clinical.facts import FACTS, PLACEHOLDER_WIDTH, build_facts, card_text, working_days_between
from cds_service.clinical.facts.registry import CARD_VALUES, STRUCTURAL_KEYS
from cds_service.clinical.knowledge.identify import Identified
from cds_service.clinical.knowledge.model import Product
from cds_service.clinical.ome import OmeResult, OrderOme, record_ome
from cds_service.clinical.record import PatientRecord, record_from_document, record_from_resources
from cds_service.ruleset import loader, model
from tests.helpers import FIXTURES, ROOT

TODAY = date(2026, 11, 23)  # a Monday
SETTINGS = {"older_adult_age_years": 65, "suppress_in_palliative_care": True}
DMD = "https://dmd.nhs.uk"
SNOMED = "http://snomed.info/sct"
CONTINUOUS = {"coding": [{"code": "continuous"}]}
# Requests between them producing every fact: drafts and existing orders, sedatives, repeats, palliative care.
FIXTURE_REQUESTS = [
    "requests/order-sign.json",
    "requests/patient-view.json",
    "requests/order-select.json",
    "co-prescribing/opioid-multiple-sedatives/fires.json",
    "combination/duplicate-modified-release/fires.json",
    "combination/immediate-release-fentanyl/fires.json",
    "repeat/early-request/fires-10-days-early.json",
    "repeat/not-issued/fires-3-months.json",
    "repeat/review-overdue/fires-no-review.json",
]
PYTHON_TYPES = {"number": (int, float), "bool": (bool,), "string": (str,)}


def _facts(record: PatientRecord, knowledge, codes, hook: str = "order-sign", today: date = TODAY):
    ome = record_ome(record, knowledge)
    before = record_ome(record, knowledge, drafts=False) if any(o.origin == "draft" for o in record.orders) else None
    return build_facts(hook, record, ome, before, codes, SETTINGS, today)


def _fixture_facts(name: str, knowledge, codes):
    body = json.loads((FIXTURES / name).read_text())
    return _facts(record_from_document(body), knowledge, codes, body["hook"])


def _order(mr_id: str, display: str, **extra: Any) -> dict[str, Any]:
    resource = {
        "resourceType": "MedicationRequest",
        "id": mr_id,
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {"coding": [{"system": DMD, "display": display}], "text": display},
        "dosageInstruction": [{"text": "ONE tablet TWICE a day"}],
    }
    resource.update(extra)
    return resource


def _record(*located: tuple[str, dict[str, Any]], birth: str = "1970-01-01") -> PatientRecord:
    patient = ("existing", "prefetch.patient", {"resourceType": "Patient", "id": "p1", "birthDate": birth})
    return record_from_resources("p1", [patient, *((o, f"$[{i}]", r) for i, (o, r) in enumerate(located))])


# --- (a) the registry is exactly what is emitted ---------------------------------------------------------------
def test_emitted_summary_and_order_fact_keys_are_the_registry_both_ways(knowledge, codes):
    summary_names = {name for name, spec in FACTS.items() if spec.kind == "summary"}
    order_names = {name for name, spec in FACTS.items() if spec.kind == "order"}
    emitted_orders: set[str] = set()
    for name in FIXTURE_REQUESTS:
        result = _fixture_facts(name, knowledge, codes)
        assert set(result.summary) - set(STRUCTURAL_KEYS) == summary_names, name
        for order in result.orders:
            keys = {f"order.{k}" for k in order if k not in STRUCTURAL_KEYS}
            assert keys == order_names, name
            emitted_orders |= keys
    assert emitted_orders == order_names  # the fixtures do have orders


def test_every_emitted_fact_has_its_registered_type(knowledge, codes):
    for name in FIXTURE_REQUESTS:
        result = _fixture_facts(name, knowledge, codes)
        emitted = [(k, v) for k, v in result.summary.items()]
        emitted += [(f"order.{k}", v) for order in result.orders for k, v in order.items()]
        for key, value in emitted:
            if key.removeprefix("order.") in STRUCTURAL_KEYS:
                continue
            spec = FACTS[key]
            assert isinstance(value, PYTHON_TYPES[spec.type]), (name, key, value)
            assert spec.type == "bool" or not isinstance(value, bool), (name, key, value)


def test_every_fact_is_in_one_of_the_groups_and_facts_keep_the_factspec_fields():
    assert {spec.group for spec in FACTS.values()} == {"request", "medication", "context", "repeat", "order"}
    for name, spec in FACTS.items():
        assert (spec.name, spec.kind in ("summary", "order"), spec.type in PYTHON_TYPES) == (name, True, True)
        assert spec.description


def test_emitted_card_values_are_the_registered_ones_but_orders_which_the_card_fills(knowledge, codes):
    result = _fixture_facts("requests/order-sign.json", knowledge, codes)
    assert set(result.values) == set(CARD_VALUES) - {"orders"}


# --- (b) card values fit their registered widths --------------------------------------------------------------
def test_card_values_of_the_fixture_requests_fit_their_widths(knowledge, codes):
    for name in FIXTURE_REQUESTS:
        for placeholder, text in _fixture_facts(name, knowledge, codes).values.items():
            assert len(text) <= PLACEHOLDER_WIDTH[placeholder], (name, placeholder, text)


def _product(n: int, ingredient: str, classes: set[str], release: str = "modified") -> Product:
    return Product(
        DMD,
        f"code-{n}",
        f"{ingredient} 10mg",
        "vmp",
        ingredient,
        Decimal(10),
        release=release,
        route="oral",
        classes=frozenset(classes),
    )


def _ome_order(n: int, product: Product, origin: str, intent: str, status: str, **resource: Any) -> OrderOme:
    display = f"{product.ingredient} {'extraordinarily long product description ' * 5}{n}"
    return OrderOme(
        id=f"mr-{n}",
        display=display,
        origin=origin,
        status=status,
        intent=intent,
        identified=Identified(product, "code", display),
        resource={"resourceType": "MedicationRequest", "id": f"mr-{n}", "intent": intent, **resource},
        counted=True,
        units_per_day_max=Decimal(2),
        ome_min=Decimal("123456789"),
        ome_max=Decimal("123456789"),
        regular=True,
    )


def _absurd_request() -> tuple[PatientRecord, OmeResult]:
    """30 strong opioids and 30 sedatives with 100-character ingredient names; every opioid on repeat for 5000
    months and last issued 5000 months ago for a supply of a million days; the even ones reissued early today,
    the odd ones not issued since; OME totals in the billions; a medication review in the year 1."""
    long_5000_months_ago = "1610-03-23"  # 2026-11 minus 5000 months (416 years 8 months) = 1610-03
    repeat = {"courseOfTherapyType": CONTINUOUS}
    supply = {"expectedSupplyDuration": {"value": 1_000_000, "code": "d"}}
    orders: list[OrderOme] = []
    for n in range(30):
        opioid = _product(n, f"{n:02d}-{'very-long-opioid-ingredient-' * 4}"[:100], {"opioid", "strong-opioid"})
        sedative = _product(100 + n, f"{n:02d}-{'very-long-sedative-ingredient-' * 4}"[:100], {"benzodiazepine"})
        authorisation = f"MedicationRequest/mr-{4 * n}"
        orders += [
            _ome_order(4 * n, opioid, "existing", "plan", "active", authoredOn=long_5000_months_ago, **repeat),
            _ome_order(
                4 * n + 1,
                opioid,
                "existing",
                "instance-order",
                "completed",
                authoredOn=long_5000_months_ago,
                dispenseRequest=supply,
                basedOn=[{"reference": authorisation}],
                **repeat,
            ),
            _ome_order(4 * n + 3, sedative, "existing", "order", "active"),
        ]
        if n % 2 == 0:
            orders.append(
                _ome_order(
                    4 * n + 2,
                    opioid,
                    "draft",
                    "instance-order",
                    "draft",
                    authoredOn=TODAY.isoformat(),
                    basedOn=[{"reference": authorisation}],
                    **repeat,
                )
            )
    review = {
        "resourceType": "Procedure",
        "status": "completed",
        "performedDateTime": "0001-01-01",
        "code": {"coding": [{"code": "182836005"}]},
    }
    patient = {"resourceType": "Patient", "birthDate": "1900-01-01"}
    return PatientRecord("p1", patient, [], {}, [], [review], []), OmeResult("uk", orders)


def test_card_values_fit_their_widths_with_absurdly_long_input(codes):
    record, ome = _absurd_request()
    result = build_facts("order-sign", record, ome, OmeResult("uk", []), codes, SETTINGS, TODAY)
    assert result.summary["months_on_repeat_opioid"] == 5000
    assert result.summary["repeat_opioid_not_issued_months"] == 5000
    assert result.summary["early_request_working_days"] > 999
    for placeholder, text in result.values.items():
        assert len(text) <= PLACEHOLDER_WIDTH[placeholder], (placeholder, text)
    assert result.values["months"] == result.values["not_issued_months"] == result.values["days_early"] == "999"
    assert result.values["total_ome"] == result.values["total_ome_min"] == "999999"
    assert result.values["ingredients"].endswith("…")
    assert len(result.values["duplicate_ingredient"]) == 20
    orders = card_text("orders", [o.display for o in ome.orders])
    assert len(orders) <= PLACEHOLDER_WIDTH["orders"] and orders.endswith("…")


def test_absurd_request_card_summaries_stay_within_the_limit(codes):
    record, ome = _absurd_request()
    result = build_facts("order-sign", record, ome, None, codes, SETTINGS, TODAY)
    values = {**result.values, "orders": card_text("orders", [o.display for o in ome.orders])}
    rule_set = loader.load_rules(ROOT / "rules")
    for rule in rule_set.rules:
        summary = model.PLACEHOLDER.sub(
            lambda m: (
                str(rule_set.settings[m.group(1)[9:]].value)
                if m.group(1).startswith("settings.")
                else values[m.group(1)]
            ),
            rule.card.summary,
        )
        assert len(summary) <= model.SUMMARY_LIMIT, (rule.id, summary)


# --- (c) the rule checker's widths are the registry's ---------------------------------------------------------
def test_rule_checker_uses_the_registered_card_value_widths():
    assert model.PLACEHOLDER_WIDTH is facts.PLACEHOLDER_WIDTH
    assert loader.PLACEHOLDER_WIDTH is facts.PLACEHOLDER_WIDTH
    assert {name: value.width for name, value in CARD_VALUES.items()} == model.PLACEHOLDER_WIDTH


# --- (d) facts worked out by hand -------------------------------------------------------------------------------
MORPHINE_MR = "Morphine 30mg modified-release tablets"


def test_months_on_repeat_counts_whole_months_from_the_first_authorisation(knowledge, codes):
    # Authorised 2025-01-10; today 2026-11-23: (2026 - 2025) * 12 + (11 - 1) = 22 months, and the 23rd is past
    # the 10th, so no month is taken off: 22.
    record = _record(
        (
            "existing",
            _order("auth", MORPHINE_MR, intent="plan", authoredOn="2025-01-10", courseOfTherapyType=CONTINUOUS),
        )
    )
    result = _facts(record, knowledge, codes, "patient-view")
    assert result.summary["months_on_repeat_opioid"] == 22
    assert result.values["months"] == "22"
    assert result.values["repeat_orders"] == MORPHINE_MR
    # Never issued (only the authorisation): "not issued" is unknown, so 0.
    assert result.summary["repeat_opioid_not_issued_months"] == 0


def test_a_28_day_supply_reissued_after_10_days_is_12_working_days_early(knowledge, codes):
    # Issued Monday 2026-11-02 for 28 days: runs out Monday 2026-11-30. Reissued 10 days later, Thursday
    # 2026-11-12. Weekdays after the 12th up to the 30th: Fri 13 (1), 16-20 (5), 23-27 (5), Mon 30 (1) = 12.
    supply = {"quantity": {"value": 56}, "expectedSupplyDuration": {"value": 28, "unit": "day", "code": "d"}}
    record = _record(
        (
            "existing",
            _order("auth", MORPHINE_MR, intent="plan", authoredOn="2025-01-10", courseOfTherapyType=CONTINUOUS),
        ),
        (
            "existing",
            _order(
                "issue",
                MORPHINE_MR,
                status="completed",
                intent="instance-order",
                authoredOn="2026-11-02",
                dispenseRequest=supply,
                basedOn=[{"reference": "MedicationRequest/auth"}],
                courseOfTherapyType=CONTINUOUS,
            ),
        ),
        (
            "draft",
            _order(
                "draft",
                MORPHINE_MR,
                status="draft",
                intent="instance-order",
                authoredOn="2026-11-12",
                basedOn=[{"reference": "MedicationRequest/auth"}],
                courseOfTherapyType=CONTINUOUS,
            ),
        ),
    )
    result = _facts(record, knowledge, codes)
    assert result.summary["early_request_working_days"] == 12
    assert result.values["days_early"] == "12"
    assert result.values["early_orders"] == MORPHINE_MR
    assert result.summary["opioid_repeat_being_reauthorised"] is True
    assert result.summary["opioid_repeat_past_expiry"] is False  # no expiry is coded


def _issued_then_reissued(supply: dict[str, Any], issued: str, reissued: str) -> PatientRecord:
    """A completed repeat issue of morphine MR with ``supply``, and a draft reissue of it on ``reissued``."""
    return _record(
        ("existing", _order("issue", MORPHINE_MR, status="completed", intent="instance-order", authoredOn=issued,
                            dispenseRequest=supply, courseOfTherapyType=CONTINUOUS)),
        ("draft", _order("draft", MORPHINE_MR, status="draft", intent="instance-order", authoredOn=reissued,
                         courseOfTherapyType=CONTINUOUS)),
    )  # fmt: skip


def test_a_supply_in_weeks_runs_for_seven_days_a_week(knowledge, codes):
    # 4 weeks = 28 days from Monday 2026-11-02: runs out 2026-11-30; reissued Friday 2026-11-27: Mon 30 = 1 day.
    supply = {"expectedSupplyDuration": {"value": 4, "unit": "weeks"}}
    record = _issued_then_reissued(supply, "2026-11-02", "2026-11-27")
    assert _facts(record, knowledge, codes).summary["early_request_working_days"] == 1


def test_a_supply_in_months_runs_for_thirty_days_a_month(knowledge, codes):
    # 1 month = 30 days from Monday 2026-10-26 (6 days left in October + 24): runs out Wednesday 2026-11-25;
    # reissued Monday 2026-11-23: Tuesday 24 and Wednesday 25 = 2 working days early.
    supply = {"expectedSupplyDuration": {"value": 1, "unit": "months"}}
    record = _issued_then_reissued(supply, "2026-10-26", "2026-11-23")
    assert _facts(record, knowledge, codes).summary["early_request_working_days"] == 2


def test_a_supply_duration_sent_as_true_is_not_read_as_a_number(knowledge, codes):
    # expectedSupplyDuration.value true used to reach Decimal("True") and answer 500. It is not a length: the
    # supply is unknown (a completed issue's daily dose is not worked out yet), so no early request is claimed.
    supply = {"expectedSupplyDuration": {"value": True, "unit": "d"}}
    record = _issued_then_reissued(supply, "2026-11-02", "2026-11-03")
    assert _facts(record, knowledge, codes).summary["early_request_working_days"] == 0


def test_a_supply_too_long_for_the_calendar_runs_out_on_its_last_day(knowledge, codes):
    # 10^12 days from 2026-11-02 is past 9999-12-31 (timedelta itself stops at 999999999 days): the supply runs
    # out on date.max, so a reissue today is as early as can be, shown as 999 on the card.
    supply = {"expectedSupplyDuration": {"value": 10**12, "unit": "d"}}
    record = _issued_then_reissued(supply, "2026-11-02", "2026-11-23")
    result = _facts(record, knowledge, codes)
    # Weekdays from 2026-11-23 to 9999-12-31: about 7,973 years x 52.18 weeks x 5, i.e. about 2.08 million.
    assert 2_000_000 < result.summary["early_request_working_days"] < 2_100_000
    assert result.values["days_early"] == "999"


def test_sedative_class_count_counts_classes_not_drugs(knowledge, codes):
    # Pregabalin (gabapentinoid) + diazepam and a draft lorazepam (both benzodiazepines) + zopiclone (Z-drug),
    # and a stopped gabapentin that does not count: 3 classes, not 4 current drugs.
    record = _record(
        ("existing", _order("m", MORPHINE_MR)),
        ("existing", _order("p", "Pregabalin 75mg capsules")),
        ("existing", _order("d", "Diazepam 5mg tablets")),
        ("draft", _order("l", "Lorazepam 1mg tablets", status="draft")),
        ("existing", _order("z", "Zopiclone 7.5mg tablets")),
        ("existing", _order("g", "Gabapentin 300mg capsules", status="stopped")),
    )
    result = _facts(record, knowledge, codes)
    assert result.summary["sedative_class_count"] == 3
    assert (result.summary["has_gabapentinoid"], result.summary["has_benzodiazepine"]) == (True, True)
    assert result.summary["has_z_drug"] is True
    assert result.values["classes"] == "a gabapentinoid, a benzodiazepine, a Z-drug"
    # "diazepam, lorazepam, pregabalin, zopiclone" is 42 characters, over the 30 of {sedative_drugs}: the first
    # 29 ("diazepam, " 10 + "lorazepam, " 11 + "pregabal" 8) and an ellipsis.
    assert result.values["sedative_drugs"] == "diazepam, lorazepam, pregabal…"
    assert "benzodiazepine use" in result.risk_factors


def test_months_since_review_age_and_risk_factors_by_hand(knowledge, codes):
    # Reviewed 2025-09-30; today 2026-11-23: 12 + (11 - 9) = 14, less one because the 23rd is before the 30th: 13.
    # Born 1960-11-24: 2026 - 1960 = 66, less one because the birthday is tomorrow: 65 (>= 65: a risk factor).
    review = {
        "resourceType": "Procedure",
        "status": "completed",
        "performedDateTime": "2025-09-30",
        "code": {"coding": [{"system": SNOMED, "code": "182836005"}]},
    }
    record = _record(("existing", _order("m", MORPHINE_MR)), ("existing", review), birth="1960-11-24")
    result = _facts(record, knowledge, codes, "patient-view")
    assert result.summary["months_since_medication_review"] == 13
    assert result.values["review_age"] == "13 months"
    assert result.values["last_review"] == "2025-09-30"
    assert result.summary["age_years"] == 65
    assert result.risk_factors == ["age 65"]
    assert result.summary["risk_factor_count"] == 1


def test_working_days_between_counts_weekdays_after_the_start_up_to_the_end():
    # Friday 2026-11-20 to Friday 2026-12-04: Mon 23 - Fri 27 (5) + Mon 30 - Fri 4 (5) = 10.
    assert working_days_between(date(2026, 11, 20), date(2026, 12, 4)) == 10
    assert working_days_between(date(2026, 11, 20), date(2026, 11, 22)) == 0  # the weekend only
    assert working_days_between(date(2026, 11, 23), date(2026, 11, 20)) == 0  # end before start
    for offset in range(7):
        start = TODAY + timedelta(days=offset)
        for span in range(40):
            end = start + timedelta(days=span)
            by_day = sum((start + timedelta(days=d)).weekday() < 5 for d in range(1, span + 1))
            assert working_days_between(start, end) == by_day
