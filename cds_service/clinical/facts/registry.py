"""The registry of facts and card values: each one a small named function, registered with its spec.

Summary facts take the request's :class:`~cds_service.clinical.facts.inputs.FactInputs`, order facts one
:class:`~cds_service.clinical.facts.inputs.OrderInfo`; both return a primitive of the registered type. Card
values are the text of card ``{placeholders}``: each is registered with its maximum width, and the same width
truncates it (so the rule checker's 139-character guarantee and the text actually shown cannot drift apart).

To add a fact: write a function in the module of its group, decorated with :func:`summary_fact` (or
:func:`order_fact`); it is then in ``FACTS``, emitted for every request and usable in rules.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from cds_service.clinical.facts.inputs import FactInputs, OrderInfo

Primitive = bool | int | float | str
GROUPS = ("request", "medication", "context", "repeat", "order")  # in the order FACTS lists them
TYPES = ("number", "bool", "string")
ORDER_PREFIX = "order."
STRUCTURAL_KEYS = ("kind", "ref")  # keys of every fact dict that are not facts: which fact it is, which order


@dataclass(frozen=True)
class FactSpec:
    name: str
    kind: str  # summary | order
    type: str  # number | bool | string
    description: str
    group: str = ""  # one of GROUPS

    @property
    def key(self) -> str:
        """The key of the fact in the engine's fact dict (order facts without their ``order.`` prefix)."""
        return self.name.removeprefix(ORDER_PREFIX)


@dataclass(frozen=True)
class SummaryFact:
    spec: FactSpec
    compute: Callable[[FactInputs], Primitive]


@dataclass(frozen=True)
class OrderFact:
    spec: FactSpec
    compute: Callable[[OrderInfo], Primitive]


SUMMARY_FACTS: dict[str, SummaryFact] = {}
ORDER_FACTS: dict[str, OrderFact] = {}

F = TypeVar("F", bound=Callable[..., Any])


def _spec(name: str, kind: str, type_: str, description: str, group: str) -> FactSpec:
    if name in SUMMARY_FACTS or name in ORDER_FACTS:
        raise ValueError(f"fact {name!r} registered twice")
    if type_ not in TYPES or group not in GROUPS:
        raise ValueError(f"fact {name!r}: type {type_!r} or group {group!r} unknown")
    if (kind == "order") != name.startswith(ORDER_PREFIX) or name.removeprefix(ORDER_PREFIX) in STRUCTURAL_KEYS:
        raise ValueError(f"fact {name!r}: order facts, and only they, are named order.*")
    return FactSpec(name, kind, type_, description, group)


def summary_fact(name: str, type_: str, description: str, *, group: str) -> Callable[[F], F]:
    """Register ``fn(inputs: FactInputs) -> value`` as the summary fact ``name``."""

    def register(fn: F) -> F:
        SUMMARY_FACTS[name] = SummaryFact(_spec(name, "summary", type_, description, group), fn)
        in_groups = sorted(SUMMARY_FACTS.items(), key=lambda item: GROUPS.index(item[1].spec.group))
        SUMMARY_FACTS.clear()  # kept in the order of GROUPS, whatever order the group modules are imported in
        SUMMARY_FACTS.update(in_groups)
        return fn

    return register


def order_fact(name: str, type_: str, description: str) -> Callable[[F], F]:
    """Register ``fn(order: OrderInfo) -> value`` as the order fact ``name`` (``order.<key>``)."""

    def register(fn: F) -> F:
        ORDER_FACTS[name] = OrderFact(_spec(name, "order", type_, description, "order"), fn)
        return fn

    return register


def fact_specs() -> dict[str, FactSpec]:
    """Every registered fact, grouped in the order of GROUPS (registration order within a group)."""
    registered: list[SummaryFact | OrderFact] = [*SUMMARY_FACTS.values(), *ORDER_FACTS.values()]
    return {f.spec.name: f.spec for f in registered}


# --- card values ----------------------------------------------------------------------------------------------
def fit_names(names: Sequence[str], width: int) -> str:
    """Names joined with commas; cut to ``width`` with an ellipsis when longer."""
    text = ", ".join(names)
    return text if len(text) <= width else text[: width - 1].rstrip(", ") + "…"


def fit_count(value: int | Decimal, width: int) -> str:
    """A whole number; the largest number of ``width`` digits when it has more (999 for width 3)."""
    text = f"{value:.0f}"
    return text if len(text) <= width else "9" * width


def fit_text(text: str, width: int) -> str:
    """Text cut to ``width`` characters."""
    return text[:width]


@dataclass(frozen=True)
class CardValue:
    """A card placeholder: its widest text, how a value is fitted to it, and how it is computed (None: the
    card fills it when it is rendered, from the orders that fired)."""

    name: str
    width: int
    fit: Callable[[Any, int], str]
    description: str
    compute: Callable[[FactInputs], Any] | None = None
    empty: str = ""  # the text when the fitted value is empty

    def text(self, raw: Any) -> str:
        fitted = self.fit(raw, self.width) or self.empty
        return fitted if len(fitted) <= self.width else fit_text(fitted, self.width)


CARD_VALUES: dict[str, CardValue] = {}


def register_card_value(value: CardValue) -> CardValue:
    if value.name in CARD_VALUES:
        raise ValueError(f"card value {value.name!r} registered twice")
    if len(value.empty) > value.width:
        raise ValueError(f"card value {value.name!r}: {value.empty!r} is wider than {value.width}")
    CARD_VALUES[value.name] = value
    return value


def card_value(
    name: str, width: int, fit: Callable[[Any, int], str], description: str, *, empty: str = ""
) -> Callable[[F], F]:
    """Register ``fn(inputs: FactInputs) -> raw`` as the card placeholder ``{name}``, at most ``width`` long."""

    def register(fn: F) -> F:
        register_card_value(CardValue(name, width, fit, description, fn, empty))
        return fn

    return register


def card_text(name: str, raw: Any) -> str:
    """``raw`` as the text of the placeholder ``{name}``, fitted to its registered width."""
    return CARD_VALUES[name].text(raw)
