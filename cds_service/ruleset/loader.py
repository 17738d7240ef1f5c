"""Read the rule files: the only module of the rule layer that touches files or YAML.

Each rule file is parsed once into a typed :class:`~cds_service.ruleset.model.Rule`. Every problem is collected as
a :class:`~cds_service.ruleset.model.Problem` at the line of the offending key (line 1 for a missing top-level
block); a rule set with any problem does not load (``opioid-cds check-rules`` prints them, and the service
refuses to start).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cds_service.clinical.facts import FACTS
from cds_service.errors import RuleSetError
from cds_service.ruleset.model import (
    CARD_KEYS,
    CARD_REQUIRED,
    CARD_TEMPLATES,
    INDICATORS,
    OPERATORS,
    PLACEHOLDER,
    PLACEHOLDER_WIDTH,
    PROVENANCE_KEYS,
    STATUSES,
    SUGGESTIONS,
    SUMMARY_LIMIT,
    TEXT_KEYS,
    TOP_KEYS,
    AllOf,
    AnyOf,
    Card,
    Comparison,
    Condition,
    Not,
    Problem,
    Provenance,
    Rule,
    RuleSet,
    Setting,
    SettingRef,
    comparisons,
    is_order_fact,
    longest_summary,
)

# --- YAML with the line of every key ---------------------------------------------------------------------------


class LineMap(dict):
    """A YAML mapping that knows its own line and the line of each of its keys."""

    line: int = 1
    key_lines: dict[Any, int]

    def line_of(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)


class LineList(list):
    """A YAML sequence that knows its own line and the line of each item."""

    line: int = 1
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if index < len(self.item_lines) else self.line


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineMap:
    loader.flatten_mapping(node)
    mapping = LineMap()
    mapping.line, mapping.key_lines = node.start_mark.line + 1, {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | float | bool) and key is not None:
            raise yaml.constructor.ConstructorError(None, None, "a key must be plain text", key_node.start_mark)
        if key in mapping:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[key] = key_node.start_mark.line + 1
    return mapping


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> LineList:
    sequence = LineList(loader.construct_object(child, deep=True) for child in node.value)
    sequence.line, sequence.item_lines = node.start_mark.line + 1, [c.start_mark.line + 1 for c in node.value]
    return sequence


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def read_yaml(path: Path) -> Any:
    """The document in ``path`` with line numbers kept (:class:`LineMap`, :class:`LineList`)."""
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_LineLoader)  # noqa: S506 (SafeLoader subclass)


def _yaml_problem(path: Path, exc: Exception) -> Problem:
    if isinstance(exc, yaml.YAMLError):
        mark = getattr(exc, "problem_mark", None)
        return Problem(path, mark.line + 1 if mark else 1, f"not valid YAML: {exc}")
    return Problem(path, None, f"cannot read: {exc}")


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


# --- settings and links ----------------------------------------------------------------------------------------
def _setting_problem(name: str, entry: Any, known: Mapping[str, Setting], practice: bool) -> str | None:
    if not isinstance(entry, dict) or "value" not in entry:
        return f"setting {name!r} needs a value"
    if practice and name not in known:
        return f"unknown setting {name!r} (not in rules/settings.yaml)"
    if not _is_text(entry.get("source")):
        return f"setting {name!r} needs a source"
    if practice and type(entry["value"]) is not type(known[name].value):
        return f"setting {name!r} must be a {type(known[name].value).__name__}"
    return None


def load_settings_files(paths: list[Path], problems: list[Problem]) -> dict[str, Setting]:
    """Settings from ``paths`` in order, later files overriding earlier ones (a practice's file last)."""
    settings: dict[str, Setting] = {}
    for index, path in enumerate(paths):
        try:
            document = read_yaml(path)
        except (OSError, yaml.YAMLError) as exc:
            problems.append(_yaml_problem(path, exc))
            continue
        if not isinstance(document, LineMap):
            problems.append(Problem(path, 1, "settings must be a mapping of name -> {value, source}"))
            continue
        for name, entry in document.items():
            message = _setting_problem(name, entry, settings, practice=index > 0)
            if message:
                problems.append(Problem(path, document.line_of(name), message))
            else:
                settings[name] = Setting(name, entry["value"], entry["source"])
    return settings


def load_links(path: Path, problems: list[Problem]) -> dict[str, dict[str, str]]:
    """The named links cards may cite (``rules/links.yaml``): each a label and an https url."""
    try:
        document = read_yaml(path) or LineMap()
    except (OSError, yaml.YAMLError) as exc:
        problems.append(_yaml_problem(path, exc))
        return {}
    if not isinstance(document, LineMap):
        problems.append(Problem(path, 1, "links must be a mapping of name -> {label, url}"))
        return {}
    links: dict[str, dict[str, str]] = {}
    for name, link in document.items():
        if isinstance(link, dict) and str(link.get("url", "")).startswith("https://") and _is_text(link.get("label")):
            links[name] = {"label": link["label"], "url": link["url"]}
        else:
            problems.append(Problem(path, document.line_of(name), f"link {name!r} needs a label and an https url"))
    return links


# --- one rule file ---------------------------------------------------------------------------------------------
NOT_OVER_ORDERS = (
    "'not' cannot test order.* facts ({facts}): the engine would read it as \"some order is not ...\" (and, mixed "
    "with summary facts, not as a negation of the whole). Test the order positively instead, e.g. "
    "{{fact: order.is_repeat, eq: false}} for an order that is not a repeat, and use a summary fact for "
    '"no order is ..."'
)


@dataclass
class _RuleReader:
    """Reads one rule document into a :class:`Rule`, collecting every problem with its line."""

    path: Path
    settings: Mapping[str, Setting]
    links: Mapping[str, Any]
    problems: list[Problem] = field(default_factory=list)

    def problem(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.path, line, message))

    # top level
    def read(self, document: Any, expected_id: str) -> Rule | None:
        if not isinstance(document, LineMap):
            self.problem(1, "a rule must be a mapping")
            return None
        self.check_blocks(document)
        self.check_header(document, expected_id)
        self.check_references(document)
        provenance = self.read_provenance(document)
        when = self.read_condition(document["when"], document.line_of("when")) if "when" in document else None
        card = self.read_card(document["card"], document.line_of("card")) if "card" in document else None
        if self.problems or provenance is None or when is None or card is None:
            return None
        return Rule(
            id=document["id"],
            title=document["title"],
            status=document["status"],
            description=document["description"],
            rationale=document["rationale"],
            references=tuple(str(r) for r in document["references"]),
            provenance=provenance,
            when=when,
            card=card,
            path=self.path,
        )

    def check_blocks(self, document: LineMap) -> None:
        for key in TOP_KEYS:
            if key not in document:
                self.problem(1, f"missing '{key}'")
        for key in document:
            if key not in TOP_KEYS:
                self.problem(document.line_of(key), f"unknown key {key!r} (the blocks are {', '.join(TOP_KEYS)})")
        present = [k for k in document if k in TOP_KEYS]
        for key, wanted in zip(present, [k for k in TOP_KEYS if k in present], strict=True):
            if key != wanted:
                self.problem(document.line_of(key), f"blocks must come in the order {', '.join(TOP_KEYS)}")
                break

    def check_header(self, document: LineMap, expected_id: str) -> None:
        if "id" in document and document["id"] != expected_id:
            self.problem(document.line_of("id"), f"id {document['id']!r} must be the file path {expected_id!r}")
        if "status" in document and document["status"] not in STATUSES:
            self.problem(document.line_of("status"), f"status must be one of {list(STATUSES)}")
        for key in TEXT_KEYS:
            if key in document and not _is_text(document[key]):
                self.problem(document.line_of(key), f"'{key}' must be non-empty text")

    def check_references(self, document: LineMap) -> None:
        if "references" not in document:
            return
        references = document["references"]
        if not isinstance(references, LineList) or not references:
            self.problem(document.line_of("references"), "'references' must be a non-empty list")
            return
        for index, reference in enumerate(references):
            if not _is_text(reference):
                self.problem(references.line_of(index), "a reference must be text (quote it when it holds ': ')")

    def read_provenance(self, document: LineMap) -> Provenance | None:
        if "provenance" not in document:
            return None
        provenance, line = document["provenance"], document.line_of("provenance")
        if not isinstance(provenance, LineMap):
            self.problem(line, f"provenance must be a mapping of {', '.join(PROVENANCE_KEYS)}")
            return None
        missing = [k for k in PROVENANCE_KEYS if provenance.get(k) in (None, "")]
        if missing:
            self.problem(line, f"provenance needs {missing}")
        for key in provenance:
            if key not in PROVENANCE_KEYS:
                self.problem(provenance.line_of(key), f"provenance has unknown key {key!r}")
        if missing or set(provenance) != set(PROVENANCE_KEYS):
            return None
        return Provenance(*(str(provenance[k]) for k in PROVENANCE_KEYS))

    # when
    def read_condition(self, node: Any, line: int) -> Condition | None:
        if not isinstance(node, LineMap):
            self.problem(line, "a condition must be a mapping: {all: [...]}, {any: [...]}, {not: ...} or {fact: ...}")
            return None
        if "all" in node or "any" in node:
            return self.read_group(node, "all" if "all" in node else "any")
        if "not" in node:
            return self.read_not(node)
        return self.read_comparison(node)

    def read_group(self, node: LineMap, key: str) -> Condition | None:
        line, items = node.line_of(key), node[key]
        if set(node) != {key} or not isinstance(items, LineList) or not items:
            self.problem(line, f"'{key}' takes a non-empty list and nothing beside it")
            return None
        read = [self.read_condition(item, items.line_of(i)) for i, item in enumerate(items)]
        children = tuple(child for child in read if child is not None)
        if len(children) < len(read):
            return None
        group = AllOf(children) if key == "all" else AnyOf(children)
        if key == "any" and len({is_order_fact(c.fact) for c in comparisons(group)}) > 1:
            self.problem(line, "'any' cannot mix summary facts and order.* facts")
            return None
        return group

    def read_not(self, node: LineMap) -> Condition | None:
        line = node.line_of("not")
        if set(node) != {"not"}:
            self.problem(line, "'not' takes one condition and nothing beside it")
            return None
        item = self.read_condition(node["not"], line)
        if item is None:
            return None
        orders = sorted({c.fact for c in comparisons(item) if is_order_fact(c.fact)})
        if orders:
            self.problem(line, NOT_OVER_ORDERS.format(facts=", ".join(orders)))
            return None
        return Not(item)

    def read_comparison(self, node: LineMap) -> Comparison | None:
        fact = node.get("fact")
        if not isinstance(fact, str) or fact not in FACTS:
            what = f"unknown fact {fact!r}" if "fact" in node else "a condition needs 'fact' (or all, any, not)"
            self.problem(node.line_of("fact"), what)
            return None
        operator = self.read_operator(node)
        value = self.read_value(node[operator]) if operator else _INVALID
        if operator is None or value is _INVALID:
            return None
        resolved = self.settings[value.name].value if isinstance(value, SettingRef) else value
        if not self.check_value(fact, operator, resolved, node.line_of(operator)):
            return None
        return Comparison(fact, operator, tuple(value) if isinstance(value, list) else value)

    def read_operator(self, node: LineMap) -> str | None:
        operators = [k for k in node if k != "fact"]
        if len(operators) == 1 and operators[0] in OPERATORS:
            return operators[0]
        wrong = next((k for k in operators if k not in OPERATORS), "fact")
        self.problem(node.line_of(wrong), f"use exactly one operator of {list(OPERATORS)}, not {operators}")
        return None

    def read_value(self, value: Any) -> Any:
        if not isinstance(value, LineMap):
            return value
        name = value.get("setting")
        if set(value) != {"setting"} or not isinstance(name, str) or name not in self.settings:
            self.problem(value.line_of("setting"), f"unknown setting {name!r}")
            return _INVALID
        return SettingRef(name)

    def check_value(self, fact: str, operator: str, value: Any, line: int) -> bool:
        spec = FACTS[fact]
        if operator == "in" and (not isinstance(value, list | tuple) or not value):
            self.problem(line, "'in' takes a non-empty list")
            return False
        if spec.type == "bool" and operator not in ("eq", "neq"):
            self.problem(line, f"{fact} is a bool: use eq or neq")
            return False
        wrong = [v for v in (value if operator == "in" else [value]) if not _TYPE_CHECKS[spec.type](v)]
        for item in wrong:
            self.problem(line, f"{fact} is a {spec.type}; {item!r} is not")
        return not wrong

    # card
    def read_card(self, card: Any, line: int) -> Card | None:
        if not isinstance(card, LineMap):
            self.problem(line, "'card' must be a mapping")
            return None
        before = len(self.problems)
        self.check_card_keys(card, line)
        self.check_card_texts(card)
        self.check_names(card, "suggestions", SUGGESTIONS)
        self.check_names(card, "links", self.links)
        self.check_card_options(card)
        if len(self.problems) > before:
            return None
        return Card(
            indicator=card["indicator"],
            summary=card["summary"],
            detail=card["detail"],
            advice=tuple(card.get("advice", ())),
            suggestions=tuple(card.get("suggestions") or ()),
            links=tuple(card.get("links") or ()),
            taper_advice=card.get("taper_advice", False),
            patient_message=card.get("patient_message"),
        )

    def check_card_keys(self, card: LineMap, line: int) -> None:
        for key in CARD_REQUIRED:
            if key not in card:
                self.problem(line, f"card is missing '{key}'")
        for key in card:
            if key not in CARD_KEYS:
                self.problem(card.line_of(key), f"card has unknown key {key!r}")
        if "indicator" in card and card["indicator"] not in INDICATORS:
            self.problem(card.line_of("indicator"), f"indicator must be one of {list(INDICATORS)}")

    def check_card_texts(self, card: LineMap) -> None:
        for key in CARD_TEMPLATES:
            if key in card:
                self.check_template(key, card[key], card.line_of(key))
        if _is_text(card.get("summary")):
            longest = longest_summary(card["summary"], self.settings)
            if longest > SUMMARY_LIMIT:
                self.problem(card.line_of("summary"), f"summary could be {longest} characters (limit {SUMMARY_LIMIT})")

    def check_card_options(self, card: LineMap) -> None:
        advice = card.get("advice", [])
        if not isinstance(advice, list) or not all(_is_text(a) for a in advice):
            self.problem(card.line_of("advice"), "advice must be a list of text")
        if not isinstance(card.get("taper_advice", False), bool):
            self.problem(card.line_of("taper_advice"), "taper_advice must be true or false")

    def check_template(self, key: str, text: Any, line: int) -> None:
        if not _is_text(text):
            self.problem(line, f"'{key}' must be non-empty text")
            return
        for name in PLACEHOLDER.findall(text):
            if name.startswith("settings."):
                if name.removeprefix("settings.") not in self.settings:
                    self.problem(line, f"unknown setting {name!r} in the text")
            elif name not in PLACEHOLDER_WIDTH:
                self.problem(line, f"unknown placeholder {{{name}}}")

    def check_names(self, card: LineMap, key: str, known: Any) -> None:
        if key not in card:
            return
        items = card[key]
        if not isinstance(items, LineList):
            self.problem(card.line_of(key), f"'{key}' must be a list")
            return
        for index, item in enumerate(items):
            if not isinstance(item, str) or item not in known:
                self.problem(items.line_of(index), f"unknown {key[:-1]} {item!r}")


_INVALID = object()  # a value that could not be read (its problem is already recorded)
_TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
}


def _read_rule(
    path: Path, root: Path, settings: Mapping[str, Setting], links: Mapping[str, Any], problems: list[Problem]
) -> tuple[Rule | None, int]:
    """The rule and the line of its id (for a duplicate id)."""
    try:
        document = read_yaml(path)
    except (OSError, yaml.YAMLError) as exc:
        problems.append(_yaml_problem(path, exc))
        return None, 1
    reader = _RuleReader(path, settings, links)
    rule = reader.read(document, path.relative_to(root).with_suffix("").as_posix())
    problems.extend(reader.problems)
    return rule, document.line_of("id") if isinstance(document, LineMap) else 1


def rule_files(directory: Path) -> list[Path]:
    """Every rule file: the YAML files in the family folders (not settings.yaml or links.yaml)."""
    return sorted(p for p in (*directory.rglob("*.yaml"), *directory.rglob("*.yml")) if p.parent != directory)


def load_rules(directory: Path, extra_settings: Path | None = None) -> RuleSet:
    """Load and check every rule under ``directory``; raise :class:`RuleSetError` listing every problem."""
    problems: list[Problem] = []
    settings = load_settings_files(
        [directory / "settings.yaml", *([extra_settings] if extra_settings else [])], problems
    )
    links = load_links(directory / "links.yaml", problems)
    files = rule_files(directory)
    if not files:
        problems.append(Problem(directory, None, "no rule files"))
    rules: dict[str, Rule] = {}
    for path in files:
        rule, id_line = _read_rule(path, directory, settings, links, problems)
        if rule is None:
            continue
        if rule.id in rules:
            problems.append(Problem(path, id_line, f"duplicate id {rule.id!r} (also in {rules[rule.id].path})"))
            continue
        rules[rule.id] = rule
    if problems:
        raise RuleSetError(problems)
    return RuleSet([r for r in rules.values() if r.status == "active"], settings, links)
