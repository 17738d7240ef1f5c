"""Compile a typed rule into a durable-rules definition (pure: no files, no engine).

A rule becomes one summary pattern (alias ``m``: the request's single summary fact) and, when it tests order.*
facts, one order pattern (alias ``o``: fires once per matching order). ``all`` may mix both kinds: its summary
parts go to ``m`` and its order parts to ``o``, and the two patterns are joined. ``any`` never mixes kinds and
``not`` never holds an order.* fact (the loader refuses both), so every ``not`` is a summary-only subtree, which
is compiled exactly: the negation is pushed down to the comparisons (De Morgan), keeping each ``all`` / ``any``
grouped as ``$and`` / ``$or``. Summary facts always carry every property, so a negated comparison is the
comparison with the opposite operator.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cds_service.clinical.facts import FACTS
from cds_service.ruleset.model import AllOf, Comparison, Condition, Not, Rule, Setting, SettingRef

NEGATION = {"eq": "neq", "neq": "eq", "gt": "lte", "gte": "lt", "lt": "gte", "lte": "gt"}
DURABLE_OP = {"neq": "$neq", "gt": "$gt", "gte": "$gte", "lt": "$lt", "lte": "$lte"}


def _encode(value: Any) -> Any:
    """Facts carry booleans as 1/0 (the engine compares types loosely)."""
    return int(value) if isinstance(value, bool) else value


def _leaf(node: Comparison, settings: Mapping[str, Setting], negate: bool) -> dict[str, Any]:
    name = node.fact.removeprefix("order.")
    value = settings[node.value.name].value if isinstance(node.value, SettingRef) else node.value
    if node.operator == "in":
        alternatives = [_leaf(Comparison(node.fact, "eq", v), settings, negate) for v in value]
        return {"$and" if negate else "$or": alternatives}
    operator = NEGATION[node.operator] if negate else node.operator
    if operator == "eq":
        return {name: _encode(value)}
    return {DURABLE_OP[operator]: {name: _encode(value)}}


def _join(parts: list[dict[str, Any]], conjunctive: bool) -> dict[str, Any]:
    if len(parts) == 1:
        return parts[0]
    return {"$and" if conjunctive else "$or": parts}


def _parts(node: Condition, settings: Mapping[str, Setting], kind: str, negate: bool = False) -> list[dict[str, Any]]:
    """The durable expressions of ``node`` that test facts of ``kind`` (summary or order), to be and-ed together."""
    if isinstance(node, Comparison):
        return [_leaf(node, settings, negate)] if FACTS[node.fact].kind == kind else []
    if isinstance(node, Not):
        return _parts(node.item, settings, kind, not negate)
    conjunctive = isinstance(node, AllOf) != negate
    children = [_parts(item, settings, kind, negate) for item in node.items]
    if conjunctive:
        return [part for child in children for part in child]
    alternatives = [_join(child, conjunctive=True) for child in children if child]
    return [_join(alternatives, conjunctive=False)] if alternatives else []


def compile_condition(node: Condition, settings: Mapping[str, Setting], kind: str) -> list[dict[str, Any]]:
    """``node`` restricted to the facts of ``kind``, as a list of durable expressions that must all hold."""
    return _parts(node, settings, kind)


def compile_rule(rule: Rule, settings: Mapping[str, Setting]) -> dict[str, Any]:
    """The durable-rules definition of one rule (metadata stripped: the C engine rejects unknown keys)."""
    summary = [{"kind": "summary"}, *compile_condition(rule.when, settings, "summary")]
    patterns = [{"m": {"$and": summary}}]
    if rule.uses_orders:
        order = [{"kind": "order"}, *compile_condition(rule.when, settings, "order")]
        patterns.append({"o": {"$and": order}})
    return {"all": patterns}
