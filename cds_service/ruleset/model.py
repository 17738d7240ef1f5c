"""The rule model: what a rule file means once it has been read, as plain typed values (no I/O, no engine).

A rule is one YAML file (``rules/dose/high-ome.yaml`` holds ``id: dose/high-ome``) with the blocks of
:data:`TOP_KEYS` in that order. ``when`` is a tree of :class:`AllOf` / :class:`AnyOf` / :class:`Not` over
:class:`Comparison` leaves, each comparing one fact of the closed vocabulary (``clinical/facts/``) with a
literal or a :class:`SettingRef`. ``ruleset.loader`` builds these from the files; ``ruleset.compiler`` turns them
into durable-rules JSON; ``cards.render`` fills the :class:`Card` templates.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The longest text each card placeholder can take: the card-value registry's widths (the facts cut to them).
from cds_service.clinical.facts import PLACEHOLDER_WIDTH

OPERATORS = ("eq", "neq", "gt", "gte", "lt", "lte", "in")
STATUSES = ("draft", "active", "retired")
INDICATORS = ("info", "warning", "critical")
TOP_KEYS = ("id", "title", "status", "description", "rationale", "references", "provenance", "when", "card")
TEXT_KEYS = ("title", "description", "rationale")
PROVENANCE_KEYS = ("authored_by", "checked_by", "date_reviewed", "next_review")
CARD_REQUIRED = ("indicator", "summary", "detail")
CARD_OPTIONAL = ("advice", "suggestions", "links", "taper_advice", "patient_message")
CARD_KEYS = CARD_REQUIRED + CARD_OPTIONAL
CARD_TEMPLATES = ("summary", "detail", "patient_message")  # the card texts that may hold placeholders
SUGGESTIONS = ("medication-review", "refer-pain-service", "change-to-acute", "remove-from-repeat")
SUMMARY_LIMIT = 139
PLACEHOLDER = re.compile(r"\{([a-z_.]+)\}")  # a card template placeholder: {name} or {settings.name}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the rule set, at a file and line (``line`` None: the file as a whole)."""

    path: Path | str
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}" if self.line is not None else f"{self.path}: {self.message}"


@dataclass(frozen=True)
class Setting:
    name: str
    value: Any
    source: str


@dataclass(frozen=True)
class SettingRef:
    """A value that names a setting (``{setting: high_ome_mg_per_day}``); resolved when compiling."""

    name: str


@dataclass(frozen=True)
class Comparison:
    fact: str
    operator: str  # one of OPERATORS
    value: Any  # a literal (a list for ``in``) or a SettingRef


@dataclass(frozen=True)
class AllOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    item: Condition


Condition = AllOf | AnyOf | Not | Comparison


def comparisons(node: Condition) -> Iterator[Comparison]:
    """Every comparison in ``node``, in file order."""
    if isinstance(node, Comparison):
        yield node
    elif isinstance(node, Not):
        yield from comparisons(node.item)
    else:
        for item in node.items:
            yield from comparisons(item)


def is_order_fact(fact: str) -> bool:
    return fact.startswith("order.")


@dataclass(frozen=True)
class Provenance:
    authored_by: str
    checked_by: str
    date_reviewed: str
    next_review: str


@dataclass(frozen=True)
class Card:
    indicator: str
    summary: str
    detail: str
    advice: tuple[str, ...] = ()
    suggestions: tuple[str, ...] = ()
    links: tuple[str, ...] = ()
    taper_advice: bool = False
    patient_message: str | None = None


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    status: str
    description: str
    rationale: str
    references: tuple[str, ...]
    provenance: Provenance
    when: Condition
    card: Card
    path: Path

    @property
    def engine_name(self) -> str:
        return re.sub(r"[^a-z0-9]", "_", self.id)

    @property
    def uses_orders(self) -> bool:
        return any(is_order_fact(c.fact) for c in comparisons(self.when))


@dataclass
class RuleSet:
    rules: list[Rule]
    settings: dict[str, Setting]
    links: dict[str, dict[str, str]]

    def by_engine_name(self) -> dict[str, Rule]:
        return {r.engine_name: r for r in self.rules}


@dataclass(frozen=True)
class Firing:
    rule: str  # engine name of the rule
    summary: dict[str, Any]
    order: dict[str, Any] | None


def longest_summary(summary: str, settings: Mapping[str, Setting]) -> int:
    """The length of ``summary`` with every placeholder at its widest."""

    def width(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("settings."):
            setting = settings.get(name.removeprefix("settings."))
            return "x" * len(str(setting.value) if setting else "")
        return "x" * PLACEHOLDER_WIDTH.get(name, 0)

    return len(PLACEHOLDER.sub(width, summary))
