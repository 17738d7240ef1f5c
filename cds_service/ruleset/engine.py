"""The rules engine: rules compiled into one durable-rules ruleset, evaluated per request through its C module.

Follows the shared notes on durable-rules 2.0.28: never the stock Host; one lock per ruleset held across
prime -> assert -> actions -> delete_state (in ``finally``); a fresh state (sid) per evaluation, primed with a
sentinel so a state where nothing fires is not freed uninitialised; facts flat, finite, at most 64 properties,
ids we assign. Any engine error is raised as :class:`EngineError`: "could not assess", never "no alerts".
"""

from __future__ import annotations

import itertools
import json
import math
import threading
from typing import Any

import durable_rules_engine as dre

from cds_service.errors import EngineError
from cds_service.ruleset.compiler import compile_rule
from cds_service.ruleset.model import Firing, RuleSet

SENTINEL = "__sentinel__"
MAX_PROPERTIES = 64
MAX_FACTS = 400
__all__ = ["MAX_FACTS", "MAX_PROPERTIES", "SENTINEL", "Engine", "EngineError", "Firing", "clean_fact"]


def clean_fact(fact: dict[str, Any]) -> dict[str, Any]:
    """A fact the engine reads correctly: bools as 1/0, finite rounded numbers (never exponent form), strings."""
    if len(fact) > MAX_PROPERTIES - 2:
        raise EngineError(f"a fact has {len(fact)} properties (limit {MAX_PROPERTIES - 2})")
    clean: dict[str, Any] = {}
    for key, value in fact.items():
        if isinstance(value, bool):
            clean[key] = int(value)
        elif isinstance(value, int | float):
            number = float(value)
            if not math.isfinite(number) or abs(number) >= 1e12:
                raise EngineError(f"fact {key}={value!r} is not a finite number the engine can read")
            rounded = round(number, 4)
            clean[key] = int(rounded) if rounded == int(rounded) else rounded
            if "e" in json.dumps(clean[key]).lower():
                clean[key] = 0 if abs(rounded) < 1e-4 else clean[key]
        elif isinstance(value, str):
            clean[key] = value
        elif value is None:
            continue  # the engine matches nothing on null; an absent property is clearer
        else:
            raise EngineError(f"fact {key} is a {type(value).__name__}, not a primitive")
    return clean


class Engine:
    """One compiled ruleset and its lock. Safe under threads; create one per process (never across a fork)."""

    _names = itertools.count()

    def __init__(self, rule_set: RuleSet) -> None:
        definition: dict[str, Any] = {SENTINEL: {"all": [{"m": {SENTINEL: 1}}]}}
        for rule in rule_set.rules:
            definition[rule.engine_name] = compile_rule(rule, rule_set.settings)
        self.rule_count = len(rule_set.rules)
        self._handle = dre.create_ruleset(f"opioid_cds_{next(self._names)}", json.dumps(definition))
        self._lock = threading.Lock()
        self._sids = itertools.count()

    def evaluate(self, facts: list[dict[str, Any]]) -> list[Firing]:
        """Assert ``facts`` in a fresh state and return every firing; :class:`EngineError` on any failure."""
        if len(facts) > MAX_FACTS:
            raise EngineError(f"{len(facts)} facts (limit {MAX_FACTS})")
        sid = f"r{next(self._sids)}"
        payload = json.dumps([dict(clean_fact(f), sid=sid, id=f"f{i}") for i, f in enumerate(facts)], allow_nan=False)
        messages: list[dict[str, Any]] = []
        try:
            with self._lock:
                try:
                    _, state = dre.assert_fact(self._handle, json.dumps({"sid": sid, "id": "prime", SENTINEL: 1}))
                    dre.start_action_for_state(self._handle, state)
                    dre.complete_and_start_action(self._handle, state)
                    code, state = dre.assert_facts(self._handle, payload)
                    if code == 2:
                        raise EngineError("a fact was refused as a duplicate (MessageObserved)")
                    result = dre.start_action_for_state(self._handle, state)
                    pending = result[1] if result else None
                    while pending:
                        messages.append(json.loads(pending))
                        pending = dre.complete_and_start_action(self._handle, state)
                finally:
                    dre.delete_state(self._handle, sid)
        except dre.error as exc:
            raise EngineError(f"durable-rules error: {exc}") from exc
        firings = []
        for message in messages:
            for rule, bindings in message.items():
                if rule == SENTINEL:
                    continue
                firings.append(Firing(rule, bindings.get("m") or {}, bindings.get("o")))
        return firings
