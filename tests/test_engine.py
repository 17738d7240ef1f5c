"""The durable-rules wrapper: correct firings, clean facts, failures reported, safe under threads."""

from __future__ import annotations

import threading

import pytest

from cds_service.ruleset.engine import Engine, EngineError, clean_fact
from cds_service.ruleset.loader import load_rules
from tests.helpers import ROOT


@pytest.fixture(scope="module")
def engine():
    return Engine(load_rules(ROOT / "rules"))


def _summary(**facts):
    base = {
        "kind": "summary",
        "hook": "order-sign",
        "total_ome_mg_per_day": 0,
        "palliative_suppression": False,
        "has_palliative_context": False,
        "has_opioid": False,
        "sedative_class_count": 0,
    }
    base.update(facts)
    return base


def test_threshold_rule_fires_at_and_above_but_not_below(engine):
    assert [f.rule for f in engine.evaluate([_summary(total_ome_mg_per_day=119.99)])] == []
    assert [f.rule for f in engine.evaluate([_summary(total_ome_mg_per_day=120)])] == ["dose_high_ome"]


def test_a_state_where_nothing_fires_is_safe_many_times(engine):
    for _ in range(2000):
        assert engine.evaluate([_summary()]) == []


def test_order_rules_fire_once_per_matching_order(engine):
    orders = [{"kind": "order", "ref": i, "is_ir_fentanyl": True} for i in range(3)]
    firings = engine.evaluate([_summary(), *orders])
    assert sorted(f.order["ref"] for f in firings if f.rule == "combination_immediate_release_fentanyl") == [0, 1, 2]


def test_identical_order_facts_are_kept_apart_by_their_ids(engine):
    order = {"kind": "order", "ref": 0, "is_repeat": True, "ingredient": "codeine"}
    firings = engine.evaluate([_summary(), order, dict(order)])
    assert sum(f.rule == "repeat_codeine_on_repeat" for f in firings) == 2


@pytest.mark.parametrize(
    ("fact", "message"),
    [
        ({"x": float("nan")}, "finite"),
        ({"x": float("inf")}, "finite"),
        ({"x": 1e13}, "finite"),
        ({"x": [1]}, "not a primitive"),
        ({f"p{i}": 1 for i in range(70)}, "properties"),
    ],
)
def test_facts_the_engine_would_misread_are_refused(fact, message):
    with pytest.raises(EngineError, match=message):
        clean_fact(fact)


def test_small_numbers_never_reach_the_engine_in_exponent_form():
    import json

    cleaned = clean_fact({"a": 3e-05, "b": True, "c": 2.0, "d": 0.00012})
    assert cleaned == {"a": 0, "b": 1, "c": 2, "d": 0.0001}
    assert "e" not in json.dumps(cleaned).replace("true", "")


def test_too_many_facts_is_an_engine_error(engine):
    with pytest.raises(EngineError, match="limit"):
        engine.evaluate([_summary()] + [{"kind": "order", "ref": i} for i in range(500)])


def test_threads_get_their_own_answers(engine):
    wrong = []

    def worker(total):
        expected = ["dose_high_ome"] if 120 <= total < 300 else ["dose_very_high_ome"] if total >= 300 else []
        for _ in range(300):
            got = [f.rule for f in engine.evaluate([_summary(total_ome_mg_per_day=total)])]
            if got != expected:
                wrong.append((total, got))

    threads = [threading.Thread(target=worker, args=(t,)) for t in (10, 150, 400, 90, 200, 320)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


def test_an_engine_failure_is_could_not_assess_never_silence(monkeypatch):
    from datetime import date

    from cds_service.assess import Assessor
    from cds_service.clinical.knowledge.loader import load_knowledge
    from cds_service.clinical.record import record_from_document
    from tests.helpers import load_request

    assessor = Assessor.from_paths(load_knowledge())

    def broken(_facts):
        raise EngineError("simulated engine failure")

    monkeypatch.setattr(assessor.engine, "evaluate", broken)
    evaluation = assessor.assess(
        "order-sign", record_from_document(load_request("order-sign.json")), date(2026, 11, 23)
    )
    (card,) = evaluation.body["cards"]
    assert card["indicator"] == "info" and "could not be run" in card["summary"]
    assert card["source"]["topic"]["code"] == "engine/could-not-assess"
