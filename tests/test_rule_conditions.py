"""Conditions through the real engine: all / any / not, nested, compiled from small rule sets written here.

The old compiler pushed ``not`` down per kind of fact and flattened nested groups. What it did (measured through
the engine before the fix): ``not: {all: [A, B]}`` over two summary facts fired exactly when A and B were not both
true (twice when both were false); ``not: {all: [has_opioid, order.is_repeat]}`` compiled to "not has_opioid AND
some order that is not a repeat", so it stayed silent with no orders at all and with has_opioid true;
``not: {fact: order.is_repeat, eq: true}`` meant "some order is not a repeat"; and ``any: [{all: [A, B]}, C]``
fired on A alone. Now summary-only ``not`` compiles exactly, groups keep their nesting, and a ``not`` over
order.* facts is refused at load with its file and line.
"""

from __future__ import annotations

import itertools
import shutil
import textwrap
from pathlib import Path

import pytest

from cds_service.errors import RuleSetError
from cds_service.ruleset.engine import Engine
from cds_service.ruleset.loader import load_rules
from tests.helpers import ROOT

HEAD = """\
id: dose/probe
title: Probe
status: active
description: A rule written by the test.
rationale: To check how conditions compile.
references: [none]
provenance: {authored_by: tests, checked_by: tests, date_reviewed: 2026-11-23, next_review: 2027-11-23}
when:
"""
CARD = """\
card:
  indicator: info
  summary: Probe
  detail: Probe.
"""
BOOLS = list(itertools.product([False, True], repeat=2))


def _write(tmp_path: Path, when: str) -> Path:
    directory = tmp_path / "rules"
    (directory / "dose").mkdir(parents=True)
    for name in ("settings.yaml", "links.yaml"):
        shutil.copy(ROOT / "rules" / name, directory / name)
    path = directory / "dose" / "probe.yaml"
    path.write_text(HEAD + textwrap.indent(textwrap.dedent(when).strip() + "\n", "  ") + CARD)
    return path


def _engine(tmp_path: Path, when: str) -> Engine:
    return Engine(load_rules(_write(tmp_path, when).parent.parent))


def _fires(engine: Engine, summary: dict, orders: list[dict] | None = None) -> bool:
    facts = [{"kind": "summary", **summary}] + [{"kind": "order", "ref": i, **o} for i, o in enumerate(orders or [])]
    return any(f.rule == "dose_probe" for f in engine.evaluate(facts))


NOT_ALL = """
not:
  all:
    - {fact: has_opioid, eq: true}
    - {fact: has_benzodiazepine, eq: true}
"""


@pytest.mark.parametrize(("opioid", "benzodiazepine"), BOOLS)
def test_not_all_of_two_summary_facts_fires_unless_both_are_true(tmp_path, opioid, benzodiazepine):
    engine = _engine(tmp_path, NOT_ALL)
    expected = {(False, False): True, (False, True): True, (True, False): True, (True, True): False}
    assert (
        _fires(engine, {"has_opioid": opioid, "has_benzodiazepine": benzodiazepine}) is expected[opioid, benzodiazepine]
    )


@pytest.mark.parametrize(("opioid", "benzodiazepine"), BOOLS)
def test_not_any_of_two_summary_facts_fires_only_when_neither_is_true(tmp_path, opioid, benzodiazepine):
    engine = _engine(tmp_path, NOT_ALL.replace("all:", "any:"))
    expected = {(False, False): True, (False, True): False, (True, False): False, (True, True): False}
    assert (
        _fires(engine, {"has_opioid": opioid, "has_benzodiazepine": benzodiazepine}) is expected[opioid, benzodiazepine]
    )


@pytest.mark.parametrize(("a", "b", "c"), list(itertools.product([False, True], repeat=3)))
def test_any_of_an_all_and_a_fact_keeps_the_all_together(tmp_path, a, b, c):
    engine = _engine(
        tmp_path,
        """
        any:
          - all:
              - {fact: has_opioid, eq: true}
              - {fact: has_benzodiazepine, eq: true}
          - {fact: has_z_drug, eq: true}
        """,
    )
    # (opioid and benzodiazepine) or Z-drug, by hand: true on the rows where c, or where a and b.
    expected = c or (a and b)
    assert _fires(engine, {"has_opioid": a, "has_benzodiazepine": b, "has_z_drug": c}) is expected


@pytest.mark.parametrize(("a", "b", "c"), list(itertools.product([False, True], repeat=3)))
def test_not_over_all_with_a_nested_any_is_exact(tmp_path, a, b, c):
    engine = _engine(
        tmp_path,
        """
        not:
          all:
            - {fact: has_opioid, eq: true}
            - any:
                - {fact: has_benzodiazepine, eq: true}
                - {fact: has_z_drug, eq: true}
        """,
    )
    # not (opioid and (benzodiazepine or Z-drug)): silent only on (T, T, F), (T, F, T), (T, T, T).
    expected = (a, b, c) not in {(True, True, False), (True, False, True), (True, True, True)}
    assert _fires(engine, {"has_opioid": a, "has_benzodiazepine": b, "has_z_drug": c}) is expected


@pytest.mark.parametrize("opioid", [False, True])
def test_not_not_is_the_condition_itself(tmp_path, opioid):
    engine = _engine(tmp_path, "not: {not: {fact: has_opioid, eq: true}}")
    assert _fires(engine, {"has_opioid": opioid}) is opioid


@pytest.mark.parametrize(("total", "expected"), [(0, True), (119.9, True), (120, False), (400, False)])
def test_not_over_a_setting_threshold_fires_below_it(tmp_path, total, expected):
    engine = _engine(tmp_path, "not: {fact: total_ome_mg_per_day, gte: {setting: high_ome_mg_per_day}}")
    assert _fires(engine, {"total_ome_mg_per_day": total}) is expected


@pytest.mark.parametrize(("hook", "expected"), [("order-sign", True), ("patient-view", False), ("order-select", False)])
def test_not_in_fires_outside_the_list(tmp_path, hook, expected):
    engine = _engine(tmp_path, "not: {fact: hook, in: [patient-view, order-select]}")
    assert _fires(engine, {"hook": hook}) is expected


def test_a_summary_not_beside_an_order_fact_fires_per_matching_order(tmp_path):
    engine = _engine(
        tmp_path,
        """
        all:
          - not: {fact: has_palliative_context, eq: true}
          - {fact: order.is_ir_fentanyl, eq: true}
        """,
    )
    orders = [{"is_ir_fentanyl": True}, {"is_ir_fentanyl": False}]
    firings = engine.evaluate(
        [{"kind": "summary", "has_palliative_context": False}]
        + [{"kind": "order", "ref": i, **o} for i, o in enumerate(orders)]
    )
    assert [f.order["ref"] for f in firings if f.rule == "dose_probe"] == [0]
    assert not _fires(engine, {"has_palliative_context": True}, orders)


@pytest.mark.parametrize(
    ("when", "line"),
    [
        # The mixed case: not (has_opioid and some order is a repeat). Line 9 is the 'not:' key.
        ("not:\n  all:\n    - {fact: has_opioid, eq: true}\n    - {fact: order.is_repeat, eq: true}", 9),
        # The "some order is not a repeat" trap.
        ("not: {fact: order.is_repeat, eq: true}", 9),
        # Deeper: the not on line 11 (all: 9, its first item 10, the not 11).
        ("all:\n  - {fact: has_opioid, eq: true}\n  - not:\n      any:\n        - {fact: order.is_prn, eq: true}", 11),
    ],
)
def test_a_not_over_order_facts_is_refused_at_load_with_file_and_line(tmp_path, when, line):
    path = _write(tmp_path, when)
    with pytest.raises(RuleSetError) as caught:
        load_rules(path.parent.parent)
    (problem,) = caught.value.problems
    assert str(problem).startswith(f"{path}:{line}: 'not' cannot test order.* facts")
    assert "{fact: order.is_repeat, eq: false}" in str(problem)
