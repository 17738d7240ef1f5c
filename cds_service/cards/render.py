"""Cards from firings: the rule's card template filled with the patient's own figures.

One card per rule per request, ordered critical, warning, info. A card names its rule in ``source.topic``, shows
each order with its dose and OME (and the orders not counted, with why), the reason, the guidance steps and the
patient's risk factors; its suggestions carry FHIR R4 actions; every card and suggestion has a uuid.
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from cds_service.cards.taper import PlannedTaper, detail_lines, taper_link, taper_suggestion
from cds_service.clinical.facts import RequestFacts, card_text
from cds_service.clinical.facts.card_values import NO_MEDICATION_NAME
from cds_service.clinical.ome import OmeResult, OrderOme
from cds_service.clinical.record import HISTORY_STATUSES
from cds_service.ruleset.model import PLACEHOLDER, Firing, Rule, RuleSet

RULE_SYSTEM = "urn:opioid-cds:rule"
OVERRIDE_SYSTEM = "urn:opioid-cds:override-reason"
OVERRIDE_REASONS = [
    ("palliative-care", "Palliative or end-of-life care"),
    ("taper-agreed", "Taper already agreed with the patient"),
    ("specialist-plan", "Specialist plan in place"),
    ("patient-declined", "Patient declined after discussion"),
    ("other", "Other (please comment)"),
]
SNOMED = "http://snomed.info/sct"
COURSE_SYSTEM = "http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy"
ORDER = {"critical": 0, "warning": 1, "info": 2}
SOURCE_LABEL = "Opioid safety (opioid-cds)"
PREGNANCY = "Pregnancy: do not stop or taper abruptly: withdrawal is associated with premature labour."
DEPENDENCE = (
    "Opioid dependence is coded: refer to local drug and alcohol services for opioid substitution "
    "treatment rather than tapering in primary care."
)


@dataclass(frozen=True)
class CardContext:
    """What rendering needs beyond the facts: the patient id (for new resources) and the review code to use."""

    patient_id: str
    review_code: tuple[str, str]  # (SNOMED code, display) from the MEDRVW codelist
    profile: str
    source_url: str | None = None  # the service's "about" page: who made the card and from what rules
    taper: Callable[[], PlannedTaper | None] | None = None  # called only when a card needs it
    base_url: str | None = None  # absolute base for links to the service's own pages
    unchecked: tuple[str, ...] = ()  # why each medication order that could not be read was not checked


def _fill(template: str, values: dict[str, str], settings: dict[str, Any]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("settings."):
            return str(settings[name.removeprefix("settings.")])
        return values.get(name, "")

    return " ".join(PLACEHOLDER.sub(replace, template).split())


def _number(value: Decimal | None) -> str:
    return "" if value is None else f"{value:.1f}".rstrip("0").rstrip(".")


def _dose(order: OrderOme) -> str:
    """Units a day, or for a patch the patches worn and how often they are changed (never "0.3 patch/day")."""
    return order.dose_text


def _orders_table(ome: OmeResult) -> list[str]:
    rows = [o for o in ome.orders if o.is_opioid and o.status not in HISTORY_STATUSES and not o.same_supply_as]
    if not rows:
        return []
    lines = ["| Order | Dose | OME mg/day | Factor (source) |", "|---|---|---|---|"]
    for order in rows:
        name = order.display.replace("|", "/")
        if order.counted:
            low, high = _number(order.ome_min), _number(order.ome_max)
            figure = high if low == high else f"{low}-{high}"
            factor = f"{_number(order.factor)} ({order.factor_source})"
            if order.factor_basis and order.factor_basis != "mg":
                factor += f", per {order.factor_basis}"
            if order.flags:
                factor += "; " + "; ".join(order.flags)
        else:
            figure, factor = "not counted", order.reason or ""
        lines.append(f"| {name} | {_dose(order)} | {figure} | {factor.replace('|', '/')} |")
    return lines


def _detail(
    rule: Rule,
    facts: RequestFacts,
    ome: OmeResult,
    settings: dict[str, Any],
    values: dict[str, str],
    taper_text: str | None = None,
    unchecked: tuple[str, ...] = (),
) -> str:
    card = rule.card
    parts = [_fill(card.detail, values, settings)]
    table = _orders_table(ome)
    if table:
        total = (
            f"Total: **{values['total_ome']} mg/day** oral morphine equivalent"
            + (
                f" ({values['total_ome_min']} mg/day without as-needed doses)"
                if values["total_ome_min"] != values["total_ome"]
                else ""
            )
            + f"; factors from the {ome.profile} profile."
        )
        parts += ["\n".join(table), total]
    missing = ome.not_counted
    if missing:
        parts.append(
            "**Not counted** (the total may be higher):\n"
            + "\n".join(f"- {o.display or NO_MEDICATION_NAME}: {o.reason}" for o in missing)
        )
    if unchecked:
        parts.append(unchecked_line(unchecked))
    advice = list(card.advice)
    if card.taper_advice and facts.summary["has_opioid_dependence"]:
        advice = [DEPENDENCE]
    if facts.summary["is_pregnant"]:
        advice.insert(0, PREGNANCY)
    if advice:
        parts.append("**What to do**\n" + "\n".join(f"- {a}" for a in advice))
    if taper_text:
        parts.append(taper_text)
    if facts.risk_factors:
        parts.append("**Risk factors**: " + ", ".join(facts.risk_factors) + ".")
    if card.patient_message:
        parts.append("**Message for the patient**\n\n> " + _fill(card.patient_message, values, settings))
    parts.append(f"**Why**: {rule.rationale}")
    return "\n\n".join(parts)


def _service_request(ctx: CardContext, code: dict[str, Any], reason: str) -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "proposal",
        "code": code,
        "subject": {"reference": f"Patient/{ctx.patient_id}"},
        "reasonCode": [{"text": reason}],
    }


def _updated_orders(orders: list[OrderOme], change: Callable[[dict[str, Any]], None]) -> list[dict[str, Any]]:
    actions = []
    for order in orders:
        if not order.resource.get("id"):
            continue
        resource = copy.deepcopy(order.resource)
        change(resource)
        actions.append({"type": "update", "description": f"Update {order.display}", "resource": resource})
    return actions


def _suggestion(label: str, actions: list[dict[str, Any]], recommended: bool = False) -> dict[str, Any] | None:
    if not actions:
        return None
    suggestion: dict[str, Any] = {"label": label, "uuid": str(uuid.uuid4()), "actions": actions}
    if recommended:
        suggestion["isRecommended"] = True
    return suggestion


def _suggestions(rule: Rule, ctx: CardContext, facts: RequestFacts, subjects: list[OrderOme]) -> list[dict[str, Any]]:
    repeats = [o for o in subjects if o.origin == "existing"] or [
        o for o in facts.order_refs.values() if o.is_opioid and o.origin == "existing"
    ]
    built = []
    for kind in rule.card.suggestions:
        if kind == "medication-review":
            code = {
                "coding": [{"system": SNOMED, "code": ctx.review_code[0], "display": ctx.review_code[1]}],
                "text": "Opioid medication review",
            }
            request = _service_request(ctx, code, rule.title)
            built.append(
                _suggestion(
                    "Request an opioid medication review",
                    [{"type": "create", "description": "Request a medication review", "resource": request}],
                )
            )
        elif kind == "refer-pain-service":
            request = _service_request(ctx, {"text": "Referral to specialist pain service"}, rule.title)
            built.append(
                _suggestion(
                    "Refer to the specialist pain service",
                    [{"type": "create", "description": "Refer to the specialist pain service", "resource": request}],
                )
            )
        elif kind == "change-to-acute":

            def to_acute(resource: dict[str, Any]) -> None:
                resource["courseOfTherapyType"] = {
                    "coding": [{"system": COURSE_SYSTEM, "code": "acute", "display": "Short course (acute) therapy"}]
                }

            built.append(
                _suggestion(
                    "Change to acute prescribing", _updated_orders([o for o in repeats if o.is_opioid], to_acute)
                )
            )
        elif kind == "remove-from-repeat":

            def stop(resource: dict[str, Any]) -> None:
                resource["status"] = "stopped"
                resource["statusReason"] = {"text": "Removed from repeat: no longer issued"}

            built.append(_suggestion("Remove from repeat", _updated_orders([o for o in repeats if o.is_opioid], stop)))
    return [s for s in built if s is not None]


def render_card(
    rule: Rule, firings: list[Firing], facts: RequestFacts, ome: OmeResult, rule_set: RuleSet, ctx: CardContext
) -> dict[str, Any]:
    """The card for one rule that fired (possibly once per matching order)."""
    settings = {name: s.value for name, s in rule_set.settings.items()}
    subjects = [facts.order_refs[f.order["ref"]] for f in firings if f.order and f.order.get("ref") in facts.order_refs]
    values = dict(facts.values)
    names = list(dict.fromkeys(o.display for o in subjects))
    values["orders"] = card_text("orders", names) if subjects else "The order"
    taper = None
    if rule.card.taper_advice and not facts.summary["has_opioid_dependence"] and ctx.taper is not None:
        taper = ctx.taper()
    taper_text = taper_suggestion_ = taper_page = None
    if taper is not None:
        plan, regimens = taper
        taper_page = taper_link(ctx.base_url, plan, regimens)
        taper_text = detail_lines(plan, taper_page)
        taper_suggestion_ = taper_suggestion(plan, {o.id: o for o in facts.order_refs.values()}, ctx.patient_id)
    card: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "summary": _fill(rule.card.summary, values, settings)[:139],
        "detail": _detail(rule, facts, ome, settings, values, taper_text, ctx.unchecked),
        "indicator": rule.card.indicator,
        "source": {"label": SOURCE_LABEL, "topic": {"system": RULE_SYSTEM, "code": rule.id, "display": rule.title}},
    }
    if ctx.source_url:
        card["source"]["url"] = ctx.source_url
    suggestions = _suggestions(rule, ctx, facts, subjects)
    if taper_suggestion_ is not None:
        suggestions.insert(0, {**taper_suggestion_, "uuid": str(uuid.uuid4()), "isRecommended": True})
    if suggestions:
        card["suggestions"] = suggestions
        card["selectionBehavior"] = "at-most-one"
    card["overrideReasons"] = [{"system": OVERRIDE_SYSTEM, "code": c, "display": d} for c, d in OVERRIDE_REASONS]
    links = [{"label": rule_set.links[n]["label"], "url": rule_set.links[n]["url"]} for n in rule.card.links]
    if taper_page:
        links.insert(0, {"label": "Printable taper plan for the patient", "url": taper_page})
    if links:
        card["links"] = [{**link, "type": "absolute"} for link in links]
    return card


def render_cards(
    firings: list[Firing], facts: RequestFacts, ome: OmeResult, rule_set: RuleSet, ctx: CardContext
) -> list[dict[str, Any]]:
    """One card per rule, most urgent first."""
    rules = rule_set.by_engine_name()
    grouped: dict[str, list[Firing]] = {}
    for firing in firings:
        grouped.setdefault(firing.rule, []).append(firing)
    cards = [render_card(rules[name], group, facts, ome, rule_set, ctx) for name, group in grouped.items()]
    if ctx.unchecked:
        cards.append(unchecked_card(ctx.unchecked))
    return sorted(cards, key=lambda c: (ORDER[c["indicator"]], c["source"]["topic"]["code"]))


def unchecked_line(reasons: tuple[str, ...]) -> str:
    """ "1 order could not be checked: reason" (the reasons of several joined)."""
    count = len(reasons)
    return f"**{count} order{'' if count == 1 else 's'} could not be checked**: " + "; ".join(reasons)


def unchecked_card(reasons: tuple[str, ...]) -> dict[str, Any]:
    """Shown when a medication order could not be read, whatever else fired: its dose is in no total."""
    count = len(reasons)
    return {
        "uuid": str(uuid.uuid4()),
        "summary": f"{count} medication order{'' if count == 1 else 's'} could not be checked for opioid safety",
        "detail": (
            unchecked_line(reasons) + ". Its dose is not in the oral morphine equivalent total: check it by hand."
        ),
        "indicator": "info",
        "source": {
            "label": SOURCE_LABEL,
            "topic": {"system": RULE_SYSTEM, "code": "input/order-not-checked", "display": "Order not checked"},
        },
    }


def could_not_assess_card(reason: str) -> dict[str, Any]:
    """Shown when the engine fails: never read silence as "no alerts"."""
    return {
        "uuid": str(uuid.uuid4()),
        "summary": "Opioid safety checks could not be run for this prescription",
        "detail": (
            "The opioid safety service could not assess this request, so no warnings were checked. "
            f"Check the opioid total and co-prescribing by hand. ({reason})"
        ),
        "indicator": "info",
        "source": {
            "label": SOURCE_LABEL,
            "topic": {"system": RULE_SYSTEM, "code": "engine/could-not-assess", "display": "Could not assess"},
        },
    }
