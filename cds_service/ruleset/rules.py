"""Rules as data: load every rule file under ``rules/``, check it, and compile it for the engine.

A rule is one YAML file named after its id (``rules/dose/high-ome.yaml`` holds ``id: dose/high-ome``) with the
blocks: id, title, status, description, rationale, references, provenance, when, card. ``when`` speaks only the
fact vocabulary of ``facts.py`` with ``all`` / ``any`` / ``not`` and the operators below; values may name a
setting (``{setting: high_ome_mg_per_day}``). Every problem is collected with its file and line; a rule set with
any problem does not load (``opioid-cds check-rules``, and the service refuses to start).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cds_service.clinical.facts import FACTS, PLACEHOLDER_WIDTH  # the longest text of each card placeholder
from cds_service.errors import RuleSetError

OPERATORS = {"eq", "neq", "gt", "gte", "lt", "lte", "in"}
NEGATION = {"eq": "neq", "neq": "eq", "gt": "lte", "gte": "lt", "lt": "gte", "lte": "gt"}
DURABLE_OP = {"neq": "$neq", "gt": "$gt", "gte": "$gte", "lt": "$lt", "lte": "$lte"}
STATUSES = {"draft", "active", "retired"}
INDICATORS = {"info", "warning", "critical"}
TOP_KEYS = ["id", "title", "status", "description", "rationale", "references", "provenance", "when", "card"]
PROVENANCE_KEYS = {"authored_by", "checked_by", "date_reviewed", "next_review"}
CARD_REQUIRED = {"indicator", "summary", "detail"}
CARD_KEYS = CARD_REQUIRED | {"advice", "suggestions", "links", "taper_advice", "patient_message"}
SUGGESTIONS = {"medication-review", "refer-pain-service", "change-to-acute", "remove-from-repeat"}
SUMMARY_LIMIT = 139
PLACEHOLDER = re.compile(r"\{([a-z_.]+)\}")  # a card template placeholder: {name} or {settings.name}


class _LineLoader(yaml.SafeLoader):
    """A YAML loader that remembers the line of every mapping (as ``__line__``)."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping = yaml.SafeLoader.construct_mapping(loader, node, deep=True)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _load_yaml(path: Path) -> Any:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_LineLoader)  # noqa: S506 (SafeLoader subclass)


def _strip_lines(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_lines(v) for k, v in value.items() if k != "__line__"}
    if isinstance(value, list):
        return [_strip_lines(v) for v in value]
    return value


@dataclass(frozen=True)
class Setting:
    name: str
    value: Any
    source: str


@dataclass
class Rule:
    id: str
    title: str
    status: str
    when: dict[str, Any]
    card: dict[str, Any]
    path: Path
    document: dict[str, Any] = field(repr=False)

    @property
    def engine_name(self) -> str:
        return re.sub(r"[^a-z0-9]", "_", self.id)

    @property
    def uses_orders(self) -> bool:
        return any(f.startswith("order.") for f in _facts_of(self.when))


@dataclass
class RuleSet:
    rules: list[Rule]
    settings: dict[str, Setting]
    links: dict[str, dict[str, str]]

    def by_engine_name(self) -> dict[str, Rule]:
        return {r.engine_name: r for r in self.rules}


def _facts_of(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["fact"]] if isinstance(node.get("fact"), str) else []
        for key in ("all", "any"):
            for child in node.get(key) or []:
                found += _facts_of(child)
        if "not" in node:
            found += _facts_of(node["not"])
        return found
    return []


def load_settings_files(paths: list[Path], problems: list[str]) -> dict[str, Setting]:
    """Settings from ``paths`` in order, later files overriding earlier ones (a practice's file last)."""
    settings: dict[str, Setting] = {}
    for index, path in enumerate(paths):
        try:
            document = _load_yaml(path)
        except (OSError, yaml.YAMLError) as exc:
            problems.append(f"{path}: cannot read: {exc}")
            continue
        if not isinstance(document, dict):
            problems.append(f"{path}:1: settings must be a mapping of name -> {{value, source}}")
            continue
        for name, entry in document.items():
            if name == "__line__":
                continue
            line = entry.get("__line__", "?") if isinstance(entry, dict) else "?"
            if not isinstance(entry, dict) or "value" not in entry:
                problems.append(f"{path}:{line}: setting {name!r} needs a value")
                continue
            if index > 0 and name not in settings:
                problems.append(f"{path}:{line}: unknown setting {name!r} (not in rules/settings.yaml)")
                continue
            source = entry.get("source")
            if not isinstance(source, str) or not source.strip():
                problems.append(f"{path}:{line}: setting {name!r} needs a source")
                continue
            if index > 0 and type(entry["value"]) is not type(settings[name].value):
                problems.append(f"{path}:{line}: setting {name!r} must be a {type(settings[name].value).__name__}")
                continue
            settings[name] = Setting(name, entry["value"], source)
    return settings


def _check_condition(
    node: Any, where: str, line: Any, settings: Mapping[str, Setting], problems: list[str], kinds: set[str]
) -> None:
    if not isinstance(node, dict):
        problems.append(f"{where}:{line}: a condition must be a mapping")
        return
    line = node.get("__line__", line)
    keys = set(node) - {"__line__"}
    if keys & {"all", "any"}:
        key = "all" if "all" in keys else "any"
        if keys != {key} or not isinstance(node[key], list) or not node[key]:
            problems.append(f"{where}:{line}: '{key}' takes a non-empty list and nothing beside it")
            return
        child_kinds: set[str] = set()
        for child in node[key]:
            _check_condition(child, where, line, settings, problems, child_kinds)
        if key == "any" and len(child_kinds) > 1:
            problems.append(f"{where}:{line}: 'any' cannot mix summary facts and order.* facts")
        kinds |= child_kinds
        return
    if "not" in keys:
        if keys != {"not"}:
            problems.append(f"{where}:{line}: 'not' takes one condition and nothing beside it")
            return
        _check_condition(node["not"], where, line, settings, problems, kinds)
        return
    fact = node.get("fact")
    if fact not in FACTS:
        problems.append(f"{where}:{line}: unknown fact {fact!r}")
        return
    kinds.add(FACTS[fact].kind)
    operators = keys - {"fact"}
    if len(operators) != 1 or not operators <= OPERATORS:
        problems.append(f"{where}:{line}: use exactly one operator of {sorted(OPERATORS)}, not {sorted(operators)}")
        return
    operator = operators.pop()
    value = node[operator]
    if isinstance(value, dict):
        name = value.get("setting")
        if set(value) - {"__line__"} != {"setting"} or name not in settings:
            problems.append(f"{where}:{line}: unknown setting {name!r}")
            return
        value = settings[name].value
    spec = FACTS[fact]
    values = value if operator == "in" else [value]
    if operator == "in" and not isinstance(value, list):
        problems.append(f"{where}:{line}: 'in' takes a list")
        return
    for item in values:
        ok = {
            "number": isinstance(item, int | float) and not isinstance(item, bool),
            "bool": isinstance(item, bool),
            "string": isinstance(item, str),
        }[spec.type]
        if not ok:
            problems.append(f"{where}:{line}: {fact} is a {spec.type}; {item!r} is not")
    if spec.type == "bool" and operator not in ("eq", "neq"):
        problems.append(f"{where}:{line}: {fact} is a bool: use eq or neq")


def _check_template(text: Any, where: str, line: Any, settings: Mapping[str, Setting], problems: list[str]) -> None:
    if not isinstance(text, str) or not text.strip():
        problems.append(f"{where}:{line}: must be non-empty text")
        return
    for name in PLACEHOLDER.findall(text):
        if name.startswith("settings."):
            if name.removeprefix("settings.") not in settings:
                problems.append(f"{where}:{line}: unknown setting {name!r} in the text")
        elif name not in PLACEHOLDER_WIDTH:
            problems.append(f"{where}:{line}: unknown placeholder {{{name}}}")


def longest_summary(summary: str, settings: Mapping[str, Setting]) -> int:
    """The length of ``summary`` with every placeholder at its widest."""

    def width(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("settings."):
            setting = settings.get(name.removeprefix("settings."))
            return "x" * len(str(setting.value) if setting else "")
        return "x" * PLACEHOLDER_WIDTH.get(name, 0)

    return len(PLACEHOLDER.sub(width, summary))


def _check_rule(
    path: Path,
    root: Path,
    document: Any,
    settings: Mapping[str, Setting],
    links: Mapping[str, Any],
    problems: list[str],
) -> Rule | None:
    where = str(path)
    if not isinstance(document, dict):
        problems.append(f"{where}:1: a rule must be a mapping")
        return None
    before = len(problems)
    keys = [k for k in document if k != "__line__"]
    for key in TOP_KEYS:
        if key not in document:
            problems.append(f"{where}:1: missing '{key}'")
    unknown = set(keys) - set(TOP_KEYS)
    if unknown:
        problems.append(f"{where}:1: unknown keys {sorted(unknown)}")
    present = [k for k in keys if k in TOP_KEYS]
    if present != [k for k in TOP_KEYS if k in present]:
        problems.append(f"{where}:1: blocks must come in the order {', '.join(TOP_KEYS)}")
    expected_id = path.relative_to(root).with_suffix("").as_posix()
    if document.get("id") != expected_id:
        problems.append(f"{where}:1: id {document.get('id')!r} must be the file path {expected_id!r}")
    if document.get("status") not in STATUSES:
        problems.append(f"{where}:1: status must be one of {sorted(STATUSES)}")
    for key in ("title", "description", "rationale"):
        if key in document and (not isinstance(document[key], str) or not document[key].strip()):
            problems.append(f"{where}:1: '{key}' must be non-empty text")
    if "references" in document and (not isinstance(document["references"], list) or not document["references"]):
        problems.append(f"{where}:1: 'references' must be a non-empty list")
    provenance = document.get("provenance")
    if "provenance" in document:
        line = provenance.get("__line__", 1) if isinstance(provenance, dict) else 1
        missing = PROVENANCE_KEYS - set(provenance or {}) if isinstance(provenance, dict) else PROVENANCE_KEYS
        if missing:
            problems.append(f"{where}:{line}: provenance needs {sorted(missing)}")
    if "when" in document:
        _check_condition(document["when"], where, 1, settings, problems, set())
    card = document.get("card")
    if "card" in document:
        if not isinstance(card, dict):
            problems.append(f"{where}:1: 'card' must be a mapping")
        else:
            line = card.get("__line__", 1)
            for key in CARD_REQUIRED - set(card):
                problems.append(f"{where}:{line}: card is missing '{key}'")
            for key in set(card) - CARD_KEYS - {"__line__"}:
                problems.append(f"{where}:{line}: card has unknown key '{key}'")
            if "indicator" in card and card["indicator"] not in INDICATORS:
                problems.append(f"{where}:{line}: indicator must be one of {sorted(INDICATORS)}")
            for key in ("summary", "detail", "patient_message"):
                if key in card:
                    _check_template(card[key], where, line, settings, problems)
            if isinstance(card.get("summary"), str):
                longest = longest_summary(card["summary"], settings)
                if longest > SUMMARY_LIMIT:
                    problems.append(f"{where}:{line}: summary could be {longest} characters (limit {SUMMARY_LIMIT})")
            for key, known in (("suggestions", SUGGESTIONS), ("links", set(links))):
                for item in card.get(key) or []:
                    if item not in known:
                        problems.append(f"{where}:{line}: unknown {key[:-1]} {item!r}")
            advice = card.get("advice", [])
            if not isinstance(advice, list) or not all(isinstance(a, str) and a.strip() for a in advice):
                problems.append(f"{where}:{line}: advice must be a list of text")
    if len(problems) > before:
        return None
    clean = _strip_lines(document)
    return Rule(clean["id"], clean["title"], clean["status"], clean["when"], clean["card"], path, clean)


def load_rules(directory: Path, extra_settings: Path | None = None) -> RuleSet:
    """Load and check every rule under ``directory``; raise :class:`RuleSetError` listing every problem."""
    problems: list[str] = []
    settings_paths = [directory / "settings.yaml"] + ([extra_settings] if extra_settings else [])
    settings = load_settings_files(settings_paths, problems)
    links: dict[str, dict[str, str]] = {}
    links_path = directory / "links.yaml"
    try:
        raw_links = _strip_lines(_load_yaml(links_path)) or {}
        for name, link in raw_links.items():
            if (
                not isinstance(link, dict)
                or not str(link.get("url", "")).startswith("https://")
                or not link.get("label")
            ):
                problems.append(f"{links_path}: link {name!r} needs a label and an https url")
            else:
                links[name] = link
    except (OSError, yaml.YAMLError) as exc:
        problems.append(f"{links_path}: cannot read: {exc}")
    rules: list[Rule] = []
    seen: dict[str, Path] = {}
    files = sorted(p for p in (*directory.rglob("*.yaml"), *directory.rglob("*.yml")) if p.parent != directory)
    if not files:
        problems.append(f"{directory}: no rule files")
    for path in files:
        try:
            document = _load_yaml(path)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            problems.append(f"{path}:{mark.line + 1 if mark else 1}: not valid YAML: {exc}")
            continue
        rule = _check_rule(path, directory, document, settings, links, problems)
        if rule is None:
            continue
        if rule.id in seen:
            problems.append(f"{path}:1: duplicate id {rule.id!r} (also in {seen[rule.id]})")
            continue
        seen[rule.id] = path
        rules.append(rule)
    if problems:
        raise RuleSetError(problems)
    return RuleSet([r for r in rules if r.status == "active"], settings, links)


# --- compiling for durable-rules ------------------------------------------------------------------------------------
def _encode(value: Any) -> Any:
    """Facts carry booleans as 1/0 (the engine compares types loosely)."""
    return int(value) if isinstance(value, bool) else value


def _leaf(node: dict[str, Any], settings: Mapping[str, Setting], negate: bool) -> dict[str, Any]:
    name = node["fact"].removeprefix("order.")
    operator = next(k for k in node if k in OPERATORS)
    value = node[operator]
    if isinstance(value, dict):
        value = settings[value["setting"]].value
    if operator == "in":
        alternatives = [_leaf({"fact": node["fact"], "eq": v}, settings, negate) for v in value]
        return {"$and" if negate else "$or": alternatives}
    if negate:
        operator = NEGATION[operator]
    if operator == "eq":
        return {name: _encode(value)}
    return {DURABLE_OP[operator]: {name: _encode(value)}}


def _compile(node: dict[str, Any], settings: Mapping[str, Setting], kind: str, negate: bool = False) -> list[Any]:
    """The durable expressions of ``node`` that test facts of ``kind`` (summary or order)."""
    if "all" in node or "any" in node:
        key = "all" if "all" in node else "any"
        parts = [e for child in node[key] for e in _compile(child, settings, kind, negate)]
        if not parts:
            return []
        conjunctive = (key == "all") != negate
        return parts if conjunctive else [{"$or": parts}]
    if "not" in node:
        return _compile(node["not"], settings, kind, not negate)
    if FACTS[node["fact"]].kind != kind:
        return []
    return [_leaf(node, settings, negate)]


def compile_rule(rule: Rule, settings: Mapping[str, Setting]) -> dict[str, Any]:
    """The durable-rules definition of one rule (metadata stripped: the C engine rejects unknown keys)."""
    summary = [{"kind": "summary"}, *_compile(rule.when, settings, "summary")]
    patterns = [{"m": {"$and": summary}}]
    if rule.uses_orders:
        order = [{"kind": "order"}, *_compile(rule.when, settings, "order")]
        patterns.append({"o": {"$and": order}})
    return {"all": patterns}
