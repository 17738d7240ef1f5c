"""Tapering plans: hand-worked schedules, properties, the CLI and the link that rebuilds a plan."""

from __future__ import annotations

import itertools
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cds_service.clinical.knowledge.loader import load_knowledge
from cds_service.clinical.ome import compute_ome
from cds_service.clinical.taper import (
    TaperError,
    achievable,
    family_strengths,
    plan_taper,
    regimens_from_ome,
    regimens_from_params,
)
from tests.ome_helpers import mr

START = date(2026, 12, 1)
MORPHINE_MR_60 = "36127711000001103"
OXYCODONE_MR_40 = "322696002"
OXYCODONE_5 = "322691007"
FENTANYL_50 = "36120211000001106"
CO_CODAMOL = "322341003"


def _plan(*orders, **options):
    knowledge = load_knowledge()
    ome = compute_ome([(o, "existing") for o in orders], {}, knowledge)
    regimens, problems = regimens_from_ome(ome, knowledge)
    assert problems == []
    return plan_taper(regimens, START, knowledge=knowledge, **options)


def _schedule(plan, order_id="mr1"):
    return [
        (s.starts, float(next(d.dose for d in s.doses if d.order_id == order_id)), float(s.total_ome))
        for s in plan.steps
    ]


def d(month, day, year=2026):
    return date(year, month, day)


def test_morphine_mr_60_twice_daily_worked_by_hand():
    # 120 mg/day; 12 a week (10%) until a third (40), then 6 every two weeks (5%); 5,10,15,30,60 mg tablets,
    # at most three a dose, twice a day; each dose the highest achievable at or under the target.
    plan = _plan(mr(code=MORPHINE_MR_60, dosage="ONE tablet TWICE a day"))
    assert _schedule(plan) == [
        (d(12, 1), 60, 120),
        (d(12, 8), 50, 100),
        (d(12, 15), 45, 90),
        (d(12, 22), 40, 80),
        (d(12, 29), 35, 70),
        (d(1, 5, 2027), 30, 60),
        (d(1, 12, 2027), 20, 40),
        (d(2, 9, 2027), 15, 30),
        (d(3, 9, 2027), 10, 20),
        (d(3, 23, 2027), 5, 10),
        (d(4, 20, 2027), 0, 0),
    ]
    assert plan.duration_days == 140
    # 50 mg: the fewest different tablets (one 30 mg + two 10 mg), not 30 + 15 + 5
    assert plan.steps[1].doses[0].units == ((Decimal(30), 1), (Decimal(10), 2))
    assert any("larger step than the guidance" in n for n in plan.steps[1].notes)  # 120 -> 100: no 54 mg dose


def test_morphine_slow_pace_takes_the_slow_end_of_both_ranges():
    plan = _plan(mr(code=MORPHINE_MR_60, dosage="ONE tablet TWICE a day"), pace="slow")
    assert _schedule(plan) == [
        (d(12, 1), 60, 120),
        (d(12, 15), 50, 100),
        (d(12, 29), 45, 90),
        (d(1, 12, 2027), 40, 80),
        (d(1, 26, 2027), 35, 70),
        (d(2, 9, 2027), 30, 60),
        (d(2, 23, 2027), 20, 40),
        (d(4, 20, 2027), 15, 30),
        (d(6, 15, 2027), 10, 20),
        (d(7, 13, 2027), 5, 10),
        (d(9, 7, 2027), 0, 0),
    ]


def _oxycodone():
    return (
        mr(code=OXYCODONE_MR_40, dosage="ONE tablet TWICE a day", id="mr"),
        mr(code=OXYCODONE_5, dosage="ONE capsule up to four times a day when required", id="prn"),
    )


def test_oxycodone_mr_first_keeps_the_prn_stable_until_the_mr_is_gone():
    # 40 mg bd = 120 + 5 mg PRN up to 4 a day = 30 -> 150; 15 a week, then 7.5 every two weeks below 50.
    plan = _plan(*_oxycodone(), strategy="mr-first")
    assert [(s.starts, float(s.total_ome)) for s in plan.steps] == [
        (d(12, 1), 150),
        (d(12, 8), 135),
        (d(12, 15), 120),
        (d(12, 22), 105),
        (d(12, 29), 90),
        (d(1, 5, 2027), 75),
        (d(1, 12, 2027), 60),
        (d(1, 19, 2027), 45),
        (d(2, 2, 2027), 30),
        (d(3, 2, 2027), 22.5),
        (d(3, 16, 2027), 15),
        (d(3, 30, 2027), 7.5),
        (d(4, 13, 2027), 0),
    ]
    prn = [(float(x.dose), float(x.per_day)) for s in plan.steps for x in s.doses if x.order_id == "prn"]
    # 5 mg up to four a day for the first nine steps; then three, two, one a day; then stopped
    assert prn == [(5, 4)] * 9 + [(5, 3), (5, 2), (5, 1), (0, 1)]


def test_oxycodone_prn_first_weans_the_prn_and_never_lets_it_rise():
    plan = _plan(*_oxycodone(), strategy="prn-first")
    steps = [(s.starts, float(s.total_ome)) for s in plan.steps]
    assert steps[:3] == [(d(12, 1), 150), (d(12, 8), 135), (d(12, 15), 120)]
    mr_doses = [float(x.dose) for s in plan.steps[:3] for x in s.doses if x.order_id == "mr"]
    assert mr_doses == [40, 40, 40]  # regular dose stable while the PRN goes: 4 -> 2 a day -> stopped
    assert [float(x.per_day) * float(x.dose) for s in plan.steps[:3] for x in s.doses if x.order_id == "prn"] == [
        20,
        10,
        0,
    ]
    assert steps[-1] == (d(3, 30, 2027), 0)


def test_fentanyl_50_patch_steps_through_patch_strengths():
    # 50 x 2.4 = 120; patches 12, 25, 37.5, 50, 75, 100 micrograms/hour, up to three worn together.
    plan = _plan(mr(code=FENTANYL_50, dosage="apply one patch every 72 hours"))
    assert _schedule(plan) == [
        (d(12, 1), 50, 120),
        (d(12, 8), 37.5, 90),
        (d(12, 22), 25, 60),
        (d(1, 12, 2027), 12, 28.8),
        (d(3, 9, 2027), 0, 0),
    ]
    assert "patch" in plan.steps[1].describe()


def test_co_codamol_two_tablets_four_times_a_day():
    # 8 x 30 mg codeine = 240 mg x 0.1 = 24; at most two tablets a dose (paracetamol).
    plan = _plan(mr(code=CO_CODAMOL, dosage="TWO tablets FOUR times a day"))
    assert _schedule(plan) == [
        (d(12, 1), 60, 24),
        (d(12, 8), 45, 18),
        (d(12, 22), 38, 15.2),
        (d(12, 29), 30, 12),
        (d(1, 12, 2027), 23, 9.2),
        (d(1, 19, 2027), 16, 6.4),
        (d(2, 2, 2027), 15, 6),
        (d(2, 16, 2027), 8, 3.2),
        (d(3, 16, 2027), 0, 0),
    ]
    assert all(count <= 2 for s in plan.steps for x in s.doses for _, count in x.units)


def test_consolidate_puts_everything_into_the_main_modified_release_opioid():
    plan = _plan(*_oxycodone(), strategy="consolidate")
    assert any("consolidated into oxycodone modified-release tablets" in n for n in plan.notes)
    assert all(x.order_id == "mr" for s in plan.steps[1:] for x in s.doses)


@pytest.mark.parametrize(
    ("options", "message"),
    [({"strategy": "fast"}, "strategy"), ({"pace": "rapid"}, "pace"), ({"interval_days": 3}, "7 to 14")],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(TaperError, match=message):
        _plan(mr(code=MORPHINE_MR_60, dosage="ONE tablet TWICE a day"), **options)


def test_nothing_to_taper_is_refused():
    with pytest.raises(TaperError, match="no current opioid"):
        plan_taper([], START)


PRODUCTS = [(MORPHINE_MR_60, "tablet"), (OXYCODONE_MR_40, "tablet"), (FENTANYL_50, "patch")]


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(PRODUCTS), st.integers(1, 3), st.integers(1, 3), st.sampled_from(["standard", "slow"]))
def test_plan_properties(product, units, per_day, pace):
    code, kind = product
    times = {1: "ONCE a day", 2: "TWICE a day", 3: "THREE times a day"}[per_day]
    dosage = f"apply {units} patches every 72 hours" if kind == "patch" else f"{units} tablets {times}"
    plan = _plan(mr(code=code, dosage=dosage), pace=pace)
    knowledge = load_knowledge()
    product_ = knowledge.products[("https://dmd.nhs.uk", code)]
    strengths = family_strengths(product_, knowledge)
    doses = achievable(strengths, 3)
    totals = [s.total_ome for s in plan.steps]
    assert all(b <= a for a, b in itertools.pairwise(totals))  # never increases
    assert totals[-1] == 0  # reaches zero
    original = totals[0]
    for previous, step in itertools.pairwise(plan.steps):
        dose = step.doses[0]
        assert dose.dose in doses  # whole units of strengths that exist
        assert sum(s * c for s, c in dose.units) == dose.dose
        assert step.total_ome <= step.target_ome  # never above the target
        # the highest achievable at or under the target: the next achievable dose up would exceed it
        per_dose = original / plan.steps[0].doses[0].dose  # OME of one unit of dose at this regimen
        higher = [x for x in doses if dose.dose < x < previous.doses[0].dose]
        if higher:
            assert min(higher) * per_dose > step.target_ome
        # never faster than the guidance: 1 week between steps in the first phase, 2 weeks below a third
        gap = (step.starts - previous.starts).days
        minimum = 7 if pace == "standard" else 14
        assert gap >= (minimum if previous.total_ome > original / 3 else 2 * minimum)


def test_a_link_rebuilds_the_same_plan_without_patient_data():
    from cds_service.clinical.taper import link_params

    knowledge = load_knowledge()
    ome = compute_ome([(o, "existing") for o in _oxycodone()], {}, knowledge)
    regimens, _ = regimens_from_ome(ome, knowledge)
    plan = plan_taper(regimens, START)
    params = link_params(regimens, "mr-first", "standard", START)
    assert all(name in ("o", "strategy", "pace", "start") for name, _ in params)
    rebuilt = plan_taper(regimens_from_params([v for k, v in params if k == "o"], knowledge), START)
    assert [s.total_ome for s in rebuilt.steps] == [s.total_ome for s in plan.steps]


@pytest.mark.parametrize(
    "value",
    [
        "x",
        "1:2:3",
        "999:10:2:0",
        f"{MORPHINE_MR_60}:abc:2:0",
        f"{MORPHINE_MR_60}:0:2:0",
        f"{MORPHINE_MR_60}:10:99:0",
        "322341003::2:0",
    ],
)
def test_bad_link_parameters_are_refused(value):
    with pytest.raises(TaperError):
        regimens_from_params([value], load_knowledge())
