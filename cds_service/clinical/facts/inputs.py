"""What every fact of one request is computed from, read once per request (:func:`fact_inputs`).

Facts and card values only look things up here: the current orders and opioids, the patient's coded context,
and each opioid repeat's history. Each part is built in one pass over the orders or the record.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from cds_service.clinical.facts import fhir
from cds_service.clinical.ome import OmeResult, OrderOme
from cds_service.clinical.record import HISTORY_STATUSES, PatientRecord

SEDATIVE_CLASSES = ("gabapentinoid", "benzodiazepine", "z-drug")
PREGNANCY_DAYS = 280  # a coded pregnancy event counts for this long


@dataclass(frozen=True)
class ClinicalCodes:
    """SNOMED CT code sets the context needs (loaded once from cds_service/clinical/knowledge/data by the caller)."""

    medication_review: frozenset[str]
    cancer: frozenset[str]
    palliative: frozenset[str]
    pregnancy: frozenset[str]
    opioid_dependence: frozenset[str]
    copd: frozenset[str]
    substance_misuse: frozenset[str]


@dataclass(frozen=True)
class OrderInfo:
    """One order of the OME result, with what the facts read from its resource (read once)."""

    order: OrderOme
    key: str | None  # same product (fhir.product_key)
    repeat: bool
    issued_on: date | None

    @property
    def classes(self) -> frozenset[str]:
        return self.order.product.classes if self.order.product else frozenset()

    @property
    def ingredient(self) -> str:
        return self.order.product.ingredient if self.order.product else ""

    @property
    def is_draft(self) -> bool:
        return self.order.origin == "draft"


def order_info(order: OrderOme) -> OrderInfo:
    return OrderInfo(order, fhir.product_key(order), fhir.is_repeat(order.resource), fhir.issued_on(order.resource))


@dataclass(frozen=True)
class Medication:
    """The current orders (not history, not a second order for the same supply) and what they add up to."""

    current: list[OrderInfo]
    opioids: list[OrderInfo]
    classes: frozenset[str]  # every class of every current order
    strong: list[str]  # strong opioid ingredients, sorted
    weak: list[str]  # weak opioid ingredients, sorted
    sedatives: list[str]  # the SEDATIVE_CLASSES that are current, in that order
    mr_counts: dict[str, int]  # opioid ingredient -> modified-release (not patch) orders


def _ingredients(opioids: list[OrderInfo], opioid_class: str) -> list[str]:
    return sorted({o.ingredient for o in opioids if opioid_class in o.classes})


def _mr_counts(opioids: list[OrderInfo]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for info in opioids:
        product = info.order.product
        if product is not None and product.release == "modified" and not product.is_patch:
            counts[info.ingredient] += 1
    return dict(counts)


def medication(orders: list[OrderInfo]) -> Medication:
    current = [o for o in orders if o.order.status not in HISTORY_STATUSES and not o.order.same_supply_as]
    opioids = [o for o in current if o.order.is_opioid]
    classes = frozenset().union(*(o.classes for o in current))
    return Medication(
        current=current,
        opioids=opioids,
        classes=classes,
        strong=_ingredients(opioids, "strong-opioid"),
        weak=_ingredients(opioids, "weak-opioid"),
        sedatives=[c for c in SEDATIVE_CLASSES if c in classes],
        mr_counts=_mr_counts(opioids),
    )


@dataclass(frozen=True)
class CodedEvent:
    """An Observation or Procedure that is recorded: its codes and date."""

    codes: frozenset[str]
    on: date | None


@dataclass(frozen=True)
class Context:
    """The patient's coded context: Conditions, and Observations / Procedures carrying the same codes."""

    current: frozenset[str]  # codes of current Conditions
    events: list[CodedEvent]
    event_codes: frozenset[str]
    history: frozenset[str]  # codes of every recorded Condition and event, current or not
    age: int  # whole years, -1 when unknown


def age_on(patient: dict[str, Any] | None, today: date) -> int:
    birth = fhir.parse_date(patient.get("birthDate")) if isinstance(patient, dict) else None
    return (today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))) if birth else -1


def context(record: PatientRecord, today: date) -> Context:
    events = [
        CodedEvent(fhir.codes(r.get("code")), fhir.event_date(r))
        for r in record.observations + record.procedures
        if fhir.recorded(r)
    ]
    event_codes = frozenset().union(*(e.codes for e in events))
    current = frozenset().union(*(fhir.codes(c.get("code")) for c in record.conditions if fhir.condition_current(c)))
    recorded = frozenset().union(*(fhir.codes(c.get("code")) for c in record.conditions if fhir.recorded(c)))
    return Context(current, events, event_codes, recorded | event_codes, age_on(record.patient, today))


@dataclass(frozen=True)
class RepeatOrder:
    """A current opioid repeat and what its product's orders (its family: same product, any status) say."""

    info: OrderInfo
    months_on_repeat: int | None  # since the first repeat of the family was issued (None: no date)
    months_not_issued: int | None  # since the family was last issued (None: a draft, or never issued)
    reauthorised: bool  # a draft that reauthorises or reissues an existing repeat
    past_expiry: bool  # ... whose authorisation has expired
    working_days_early: int  # a draft issued before the family's last supply runs out: working days early


def _months_on_repeat(family: list[OrderInfo], today: date) -> int | None:
    dates = [o.issued_on for o in family if o.repeat and o.issued_on]
    return fhir.months_between(min(dates), today) if dates else None


def _months_not_issued(info: OrderInfo, family: list[OrderInfo], today: date) -> int | None:
    if info.is_draft:
        return None
    issued = [o.issued_on for o in family if o.order.intent != "plan" and o.issued_on]
    return fhir.months_between(max(issued), today) if issued else None  # no issue on record: unknown


def _working_days_early(info: OrderInfo, family: list[OrderInfo], today: date) -> int:
    """How many working days before the family's earlier supplies run out the draft ``info`` is issued."""
    issued_now = info.issued_on or today
    early = 0
    for previous in family:
        if previous is info or previous.is_draft or not previous.issued_on or previous.issued_on > issued_now:
            continue
        days = fhir.supply_days(previous.order)
        if days:
            runs_out = previous.issued_on + timedelta(days=float(days))
            early = max(early, fhir.working_days_between(issued_now, runs_out))
    return early


def repeat_order(info: OrderInfo, family: list[OrderInfo], existing: set[str | None], today: date) -> RepeatOrder:
    months = _months_on_repeat(family, today)
    not_issued = _months_not_issued(info, family, today) if months is not None else None
    reauthorised = info.is_draft and (
        bool(info.order.resource.get("basedOn") or info.order.resource.get("priorPrescription")) or info.key in existing
    )
    expiries = [d for o in family if (d := fhir.expiry(o.order.resource))] if reauthorised else []
    return RepeatOrder(
        info=info,
        months_on_repeat=months,
        months_not_issued=not_issued,
        reauthorised=reauthorised,
        past_expiry=bool(expiries) and max(expiries) < today,
        working_days_early=_working_days_early(info, family, today) if info.is_draft else 0,
    )


def repeats(orders: list[OrderInfo], meds: Medication, today: date) -> list[RepeatOrder]:
    """Every current opioid repeat, in order."""
    families: dict[str, list[OrderInfo]] = defaultdict(list)
    for info in orders:
        if info.key is not None:
            families[info.key].append(info)
    existing = {o.key for o in meds.current if not o.is_draft and o.repeat}
    return [
        repeat_order(o, families[o.key] if o.key is not None else [o], existing, today)
        for o in meds.opioids
        if o.repeat
    ]


@dataclass(frozen=True)
class FactInputs:
    """Everything the facts of one request are computed from."""

    hook: str
    today: date
    settings: Mapping[str, Any]
    codes: ClinicalCodes
    ome: OmeResult
    total_before_drafts: Decimal  # the total without the drafts (the total itself when nothing is drafted)
    orders: list[OrderInfo]  # every order of the OME result, in its order
    meds: Medication
    context: Context
    repeats: list[RepeatOrder]
    last_review: date | None
    risk_factors: list[str]


def last_review(events: list[CodedEvent], codes: ClinicalCodes) -> date | None:
    reviews = [e.on for e in events if e.codes & codes.medication_review and e.on]
    return max(reviews) if reviews else None


def risk_factors(meds: Medication, ctx: Context, codes: ClinicalCodes, settings: Mapping[str, Any]) -> list[str]:
    """The patient's risk factors for opioid harm, as the card lists them."""
    found = [
        ("COPD", bool(ctx.current & codes.copd)),
        (f"age {ctx.age}", ctx.age >= settings["older_adult_age_years"]),
        ("benzodiazepine use", "benzodiazepine" in meds.sedatives),
        ("history of substance misuse", bool(ctx.history & codes.substance_misuse)),
    ]
    return [name for name, present in found if present]


def fact_inputs(
    hook: str,
    record: PatientRecord,
    ome: OmeResult,
    ome_before: OmeResult | None,
    codes: ClinicalCodes,
    settings: Mapping[str, Any],
    today: date,
) -> FactInputs:
    orders = [order_info(o) for o in ome.orders]
    meds = medication(orders)
    ctx = context(record, today)
    return FactInputs(
        hook=hook,
        today=today,
        settings=settings,
        codes=codes,
        ome=ome,
        total_before_drafts=ome_before.total_max if ome_before is not None else ome.total_max,
        orders=orders,
        meds=meds,
        context=ctx,
        repeats=repeats(orders, meds, today),
        last_review=last_review(ctx.events, codes),
        risk_factors=risk_factors(meds, ctx, codes, settings),
    )
