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
from functools import cached_property
from typing import Any

from cds_service.clinical.facts import fhir
from cds_service.clinical.ome import OmeResult, OrderOme
from cds_service.clinical.record import HISTORY_STATUSES, PatientRecord

SEDATIVE_CLASSES = ("gabapentinoid", "benzodiazepine", "z-drug")
PREGNANCY_DAYS = 280  # a coded pregnancy event counts for this long
NOT_SUPPLIED = frozenset({"cancelled", "entered-in-error"})  # an issue with these statuses supplied nothing


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


def runs_out(issued: date, days: Decimal) -> date:
    """The day a supply of ``days`` issued on ``issued`` runs out (the last date there is, if beyond it)."""
    try:
        return issued + timedelta(days=float(days))
    except OverflowError:
        return date.max if days > 0 else issued


@dataclass
class Family:
    """The orders of one product, any status and origin; what the repeat facts read of them, each computed once
    (and only when a fact asks)."""

    members: list[OrderInfo]

    @cached_property
    def first_repeat(self) -> date | None:
        return min((o.issued_on for o in self.members if o.repeat and o.issued_on), default=None)

    @cached_property
    def last_issued(self) -> date | None:
        issued = (o for o in self.members if o.order.intent != "plan" and o.order.status not in NOT_SUPPLIED)
        return max((o.issued_on for o in issued if o.issued_on), default=None)

    @cached_property
    def latest_expiry(self) -> date | None:
        return max((d for o in self.members if (d := fhir.expiry(o.order.resource))), default=None)

    @cached_property
    def current_units_per_day(self) -> Decimal | None:
        """Units a day of the current order of this product on record (not a draft, not history; one superseded by
        a draft still says what the patient was taking), highest reading; None if none can be read."""
        found = [
            units
            for o in self.members
            if not o.is_draft
            and o.order.status not in HISTORY_STATUSES
            and (units := fhir.own_units_per_day(o.order)) is not None
        ]
        return max(found, default=None)

    @cached_property
    def supplies(self) -> list[tuple[date, date]]:
        """(issued, runs out) of every supply on record (not a draft, not cancelled) whose length is known.

        Length: the expected duration, else quantity / units a day of the current order of the product, else of the
        issue's own dosage.
        """
        found = []
        for member in self.members:
            if member.is_draft or not member.issued_on or member.order.status in NOT_SUPPLIED:
                continue
            if days := fhir.supply_days(member.order, self.current_units_per_day):
                found.append((member.issued_on, runs_out(member.issued_on, days)))
        return found


def _working_days_early(issued_now: date, family: Family) -> int:
    """How many working days before the family's earlier supplies run out a draft issued on ``issued_now`` is."""
    ahead = (fhir.working_days_between(issued_now, end) for start, end in family.supplies if start <= issued_now)
    return max(ahead, default=0)


def _reauthorises(draft: OrderInfo, existing: set[str | None]) -> bool:
    """A draft linked to an earlier order, or of the same product as an existing repeat."""
    resource = draft.order.resource
    return bool(resource.get("basedOn") or resource.get("priorPrescription")) or draft.key in existing


def repeat_order(info: OrderInfo, family: Family, existing: set[str | None], today: date) -> RepeatOrder:
    first = family.first_repeat
    last = family.last_issued if first and not info.is_draft else None  # no issue on record: unknown
    reauthorised = info.is_draft and _reauthorises(info, existing)
    expiry = family.latest_expiry if reauthorised else None
    return RepeatOrder(
        info=info,
        months_on_repeat=fhir.months_between(first, today) if first else None,
        months_not_issued=fhir.months_between(last, today) if last else None,
        reauthorised=reauthorised,
        past_expiry=expiry is not None and expiry < today,
        working_days_early=_working_days_early(info.issued_on or today, family) if info.is_draft else 0,
    )


def repeats(orders: list[OrderInfo], meds: Medication, today: date) -> list[RepeatOrder]:
    """Every current opioid repeat, in order."""
    members: dict[str, list[OrderInfo]] = defaultdict(list)
    for info in orders:
        if info.key is not None:
            members[info.key].append(info)
    families = {key: Family(found) for key, found in members.items()}
    existing = {o.key for o in meds.current if not o.is_draft and o.repeat}
    return [
        repeat_order(o, families[o.key] if o.key is not None else Family([o]), existing, today)
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
    unreadable: tuple[str, ...] = ()  # medication orders that could not be read (record.unreadable)


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
        unreadable=tuple(record.unreadable),
    )
