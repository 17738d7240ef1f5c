"""Oral morphine equivalent (OME): per order and in total, with how each figure was reached.

Per order: mg of opioid per day x the factor for its ingredient and route in the chosen profile. Patches: the
patch rate (micrograms/hour) x 24 / 1000 = mg delivered per day, x the factor, for every patch worn at once,
whatever the change interval, the wording or the quantity supplied (``clinical/patches.py``). One supply is
counted once: a draft that reauthorises or re-issues an active order (``basedOn`` or ``priorPrescription`` by
reference or identifier, or the same product and dose), an authorisation and its issues (GP Connect plan +
orders, EPS items by item number and ``groupIdentifier``) are one regimen; when they print the dose differently
the higher is counted and flagged. Orders we cannot quantify are returned as not counted with the reason, and
the total is incomplete.
Pure: Decimal arithmetic on raw dicts; figures are rounded only by ``to_json``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from cds_service.clinical.dosage import DosageError, DoseLine, daily_dosage, settle_units
from cds_service.clinical.knowledge.identify import Identified, identify
from cds_service.clinical.knowledge.model import Knowledge, Product
from cds_service.clinical.knowledge.names import classify_form
from cds_service.clinical.patches import patch_dose
from cds_service.clinical.record import HISTORY_STATUSES, PatientRecord
from cds_service.errors import ConfigError

AUTHORISATION_INTENTS = frozenset({"plan", "original-order"})
METHADONE_FLAG = "approximate: no fixed ratio (Opioids Aware)"


@dataclass
class OrderOme:
    id: str
    display: str
    origin: str  # draft | existing
    status: str
    intent: str
    identified: Identified
    resource: dict[str, Any] = field(repr=False, default_factory=dict)
    counted: bool = False
    reason: str | None = None
    units_per_day_min: Decimal | None = None
    units_per_day_max: Decimal | None = None
    unit: str | None = None  # what units_per_day counts: tablet, capsule, ml, patch, dose, mg…
    mg_per_day_min: Decimal | None = None
    mg_per_day_max: Decimal | None = None
    ome_min: Decimal | None = None
    ome_max: Decimal | None = None
    factor: Decimal | None = None
    factor_source: str | None = None
    factor_route: str | None = None
    factor_basis: str | None = None
    flags: list[str] = field(default_factory=list)
    same_supply_as: str | None = None
    dose_basis: str | None = None
    prn: bool = False  # some dose line is as needed
    regular: bool = False  # some dose line is regular
    lines: list[DoseLine] = field(default_factory=list)  # the dose lines read
    patches_worn: Decimal | None = None  # patches: how many are worn at once (the highest reading)
    change_hours: Decimal | None = None  # patches: how often they are changed, when known

    @property
    def product(self) -> Product | None:
        return self.identified.product

    @property
    def dose_text(self) -> str:
        """The dose as people read it: "1 patch of 25 micrograms/hour, changed every 72 hours", "2 tablet/day"."""
        product = self.product
        if product is not None and product.is_patch and self.patches_worn is not None:
            worn = _plain(self.patches_worn)
            rate = _plain(product.patch_mcg_per_hour or Decimal(0))
            text = f"{worn} patch{'' if self.patches_worn == 1 else 'es'} of {rate} micrograms/hour"
            text += " worn together" if self.patches_worn > 1 else ""
            return text + (f", changed every {_interval(self.change_hours)}" if self.change_hours else "")
        if self.units_per_day_max is None:
            return ""
        low, high = _plain(self.units_per_day_min), _plain(self.units_per_day_max)
        return f"{high if low == high else f'{low}-{high}'} {self.unit}/day"

    @property
    def is_opioid(self) -> bool:
        return self.product is not None and self.product.is_opioid

    @property
    def blocks_completeness(self) -> bool:
        """Not counted for a reason that may hide opioid dose (not: history, same supply, not an opioid)."""
        if self.counted or self.same_supply_as or self.status in HISTORY_STATUSES or self.is_empty_draft:
            return False
        return self.product is None or self.product.is_opioid

    @property
    def is_empty_draft(self) -> bool:
        """A draft that names no medication at all (sent while the prescriber types): ignored, not "not counted"."""
        found = self.identified
        return (
            self.origin == "draft"
            and found.product is None
            and not found.display
            and not found.code
            and (found.problem in ("no medication given", "product not recognised"))
        )


@dataclass
class OmeResult:
    profile: str
    orders: list[OrderOme]

    @property
    def counted(self) -> list[OrderOme]:
        return [o for o in self.orders if o.counted]

    @property
    def total_max(self) -> Decimal:
        return sum((o.ome_max for o in self.counted if o.ome_max is not None), Decimal(0))

    @property
    def total_min(self) -> Decimal:
        return sum((o.ome_min for o in self.counted if o.ome_min is not None), Decimal(0))

    @property
    def complete(self) -> bool:
        return not any(o.blocks_completeness for o in self.orders)

    @property
    def not_counted(self) -> list[OrderOme]:
        return [o for o in self.orders if o.blocks_completeness]

    def to_json(self) -> dict[str, Any]:
        """The ``opioid-cds ome --json`` shape (figures rounded here, and only here)."""
        return {
            "profile": self.profile,
            "total_ome_mg_per_day": _round(self.total_max),
            "total_ome_mg_per_day_min": _round(self.total_min),
            "complete": self.complete,
            "orders": [_order_json(o) for o in self.orders],
        }


def _plain(value: Decimal | None) -> str:
    return "" if value is None else f"{value:.1f}".rstrip("0").rstrip(".")


def _interval(hours: Decimal) -> str:
    """72 -> "72 hours"; 168 -> "7 days" (whole days beyond three are said in days)."""
    if hours > 72 and hours % 24 == 0:
        return f"{_plain(hours / 24)} days"
    return f"{_plain(hours)} hours"


def _round(value: Decimal | None, places: str = "0.01") -> float | None:
    return None if value is None else float(value.quantize(Decimal(places)))


def _count(value: Decimal | None) -> int | float | None:
    if value is None:
        return None
    rounded = value.quantize(Decimal("0.01"))
    return int(rounded) if rounded == rounded.to_integral_value() else float(rounded)


def _order_json(order: OrderOme) -> dict[str, Any]:
    product = order.product
    return {
        "id": order.id,
        "display": order.display,
        "system": order.identified.system or (product.system if product else None),
        "code": order.identified.code or (product.code if product else None),
        "ingredient": product.ingredient if product else None,
        "route": order.factor_route
        if order.factor_route and product and not product.route
        else (product.route or None if product else None),
        "classes": sorted(product.classes) if product else [],
        "release": product.release if product else None,
        "units_per_day_min": _count(order.units_per_day_min),
        "units_per_day_max": _count(order.units_per_day_max),
        "unit": order.unit,
        "dose": order.dose_text,
        "patches_worn": _count(order.patches_worn),
        "ome_mg_per_day_min": _round(order.ome_min),
        "ome_mg_per_day_max": _round(order.ome_max),
        "factor": _round(order.factor, "0.0001") if order.factor is not None else None,
        "factor_source": order.factor_source,
        "factor_basis": order.factor_basis,
        "counted": order.counted,
        "reason": order.reason,
        "flags": order.flags,
        "same_supply_as": order.same_supply_as,
        "dose_basis": order.dose_basis,
        "identified_by": order.identified.via,
        "origin": order.origin,
        "status": order.status,
    }


# --- one supply counted once ------------------------------------------------------------------------------------
# How UK systems tie the orders of one supply together:
# - FHIR R4 / GP Connect: an issue (intent order, instance-order, reflex-order) names its authorisation (intent plan
#   or original-order) in ``basedOn`` by reference; a reissue or reauthorisation names the earlier one in
#   ``basedOn`` or ``priorPrescription``.
# - EPS: an issue names its authorisation in ``basedOn.identifier`` (system prescription-order-item-number + value),
#   the authorisation carrying the same value in its own ``identifier``; ``groupIdentifier`` is the prescription
#   (several items, usually of different products), so it links only orders of the same product that name the same
#   item (matching item identifiers); items without item identifiers are never joined by the prescription alone.
# Every link joins orders of the same product only (the same dm+d code, or the same ingredient, strength, release,
# presentation and route): a link to another product (as in the NHS Digital EPS repeat prescribing example, where
# four items of four products name one authorisation, or an immediate-release "when required" issue naming a
# modified-release authorisation) is flagged and both are counted. Resource ids are not unique across servers: a
# draft (from the EHR) and an existing order that share an id are not one supply on that account, and an identifier
# without a system is no identity at all.
def _ref_keys(reference: Any) -> list[str]:
    """What a Reference points at: ``id:<id>`` (by reference) and/or ``ident:<system>|<value>`` (by identifier)."""
    if not isinstance(reference, dict):
        return []
    keys = []
    if isinstance(reference.get("reference"), str):
        ref: str = reference["reference"].split("/_history/")[0]
        keys.append("id:" + ref.removeprefix("urn:uuid:").rsplit("/", 1)[-1])
    keys += _identifier_keys(reference.get("identifier"))
    return keys


def _identifier_keys(identifiers: Any) -> list[str]:
    """``ident:<system>|<value>`` of each identifier that has both (a bare value may be anyone's "1")."""
    found = identifiers if isinstance(identifiers, list) else [identifiers]
    return [
        f"ident:{i['system']}|{i['value']}"
        for i in found
        if isinstance(i, dict)
        and isinstance(i.get("value"), str)
        and i["value"]
        and isinstance(i.get("system"), str)
        and i["system"]
    ]


# Identifier systems that name a whole prescription (several items), never one supply: not matched as an item.
PRESCRIPTION_SYSTEMS = ("https://fhir.nhs.uk/Id/prescription-order-number", "https://fhir.nhs.uk/Id/prescription")


def _item_keys(order: OrderOme) -> list[str]:
    """An order's business identifiers that name one item (not prescription-level ones)."""
    keys = _identifier_keys(order.resource.get("identifier"))
    return [k for k in keys if not k.startswith(_PRESCRIPTION_PREFIXES)]


def _own_keys(order: OrderOme) -> list[str]:
    """The keys an order is known by: its id within its origin, and its item identifiers.

    Ids are scoped by origin (``id@draft:1``, ``id@existing:1``): draft ids come from the EHR, existing ones from
    the FHIR server, and the same "1" on both names two resources.
    """
    return [f"id@{order.origin}:{order.id}", *_item_keys(order)]


_PRESCRIPTION_PREFIXES = tuple(f"ident:{system}|" for system in PRESCRIPTION_SYSTEMS)


def _link_targets(order: OrderOme, key: str, by_key: dict[str, list[OrderOme]]) -> list[OrderOme]:
    """The orders a link key names: by id, an existing order names existing orders only; a draft names either."""
    if not key.startswith("id:"):
        return by_key.get(key, [])
    ident = key.removeprefix("id:")
    origins = ("existing",) if order.origin != "draft" else ("draft", "existing")
    return [t for origin in origins for t in by_key.get(f"id@{origin}:{ident}", [])]


def _links(resource: dict[str, Any]) -> list[str]:
    based_on = resource.get("basedOn")
    keys = [k for r in based_on if isinstance(r, dict) for k in _ref_keys(r)] if isinstance(based_on, list) else []
    return keys + _ref_keys(resource.get("priorPrescription"))


def _product_identity(product: Product) -> tuple[Any, ...]:
    """What makes two codes one product: ingredient(s), strength, release, presentation, route."""
    strength = None if product.strength_mg is None or not product.per_value else product.strength_mg / product.per_value
    return (
        product.ingredient,
        tuple(sorted(product.other_ingredients)),
        strength,
        product.per_unit,
        product.patch_mcg_per_hour,
        product.release,
        _presentation(product),
        product.route,
    )


def _same_product(a: OrderOme, b: OrderOme) -> bool:
    """Orders that may be one supply: the same product (the same code, or the same ingredient, strength, release,
    presentation and route). An order whose product is not known links to nothing: it stays "not counted" and
    the total incomplete, rather than vanishing into another order's supply."""
    if a.product is None or b.product is None:
        return False
    if _product_id(a) == _product_id(b):
        return True
    return _product_identity(a.product) == _product_identity(b.product)


def _product_id(order: OrderOme) -> str | None:
    product = order.product
    return None if product is None else f"{product.system}|{product.code or product.name.lower()}"


def _group_key(order: OrderOme) -> str | None:
    """The prescription (EPS groupIdentifier) and product an order belongs to, when both are known."""
    group = _identifier_keys(order.resource.get("groupIdentifier"))
    product = _product_id(order)
    return f"{group[0]}#{product}" if group and product else None


def _signature(order: OrderOme) -> str | None:
    product = order.product
    if product is None:
        return None
    key = product.code or product.name.lower()
    dosage = order.resource.get("dosageInstruction")
    return json.dumps([product.system, key, dosage], sort_keys=True, default=str)


def _group_same_supply(orders: list[OrderOme]) -> list[tuple[OrderOme, list[OrderOme]]]:
    """Mark every order that is the same supply as another; return each group as (counted, the others)."""
    current = [o for o in orders if o.status not in HISTORY_STATUSES]
    parent = {id(o): id(o) for o in current}
    by_key: dict[str, list[OrderOme]] = {}
    for order in current:
        for key in _own_keys(order):
            by_key.setdefault(key, []).append(order)

    def find(key: int) -> int:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    def union(a: OrderOme, b: OrderOme) -> None:
        parent[find(id(a))] = find(id(b))

    for order in current:
        for ref in _links(order.resource):
            for target in _link_targets(order, ref, by_key):
                if target is order:
                    continue
                if _same_product(order, target):
                    union(order, target)
                else:
                    order.flags.append(f"linked to {target.id}, another product: counted separately")
    for members in by_key.values():  # one id (in one origin) or item identifier on two resources: the same item
        for other in members[1:]:
            if _same_product(members[0], other):
                union(other, members[0])
    by_group: dict[str, list[OrderOme]] = {}
    for order in current:
        if (group_key := _group_key(order)) is not None:
            by_group.setdefault(group_key, []).append(order)
    for members in by_group.values():
        for other in members[1:]:
            items_a, items_b = set(_item_keys(members[0])), set(_item_keys(other))
            if items_a & items_b:  # the same item of one prescription
                union(other, members[0])
            elif not (items_a and items_b):  # no item numbers to tell: two items, both counted, and said
                other.flags.append(
                    f"the same product as {members[0].id} on one prescription, without item numbers: both counted"
                )
    signatures: dict[str, OrderOme] = {}
    for order in current:
        signature = _signature(order)
        if signature is None:
            continue
        if signature in signatures and (order.origin == "draft") != (signatures[signature].origin == "draft"):
            union(order, signatures[signature])
        signatures.setdefault(signature, order)
    groups: dict[int, list[OrderOme]] = {}
    for order in current:
        groups.setdefault(find(id(order)), []).append(order)
    found = []
    for members in groups.values():
        if len(members) < 2:
            continue
        counted = sorted(
            members,
            key=lambda o: (
                o.origin != "draft",
                o.intent not in AUTHORISATION_INTENTS,
                str(o.resource.get("authoredOn") or ""),
            ),
        )[0]
        others = [m for m in members if m is not counted]
        for member in others:
            member.same_supply_as = counted.id
            member.reason = f"same supply as {counted.id}"
        found.append((counted, others))
    return found


def _count_the_higher(groups: list[tuple[OrderOme, list[OrderOme]]], knowledge: Knowledge, profile: str) -> None:
    """An authorisation and its issues that print the dose differently: count the higher, and say so.

    A draft is the regimen being prescribed now and replaces what it is linked to, so a group holding a draft is
    left as it is. Otherwise every opioid member is quantified and the one with the highest OME is counted (ties:
    the one chosen first), never a lower reading.
    """
    for counted, others in groups:
        if counted.origin == "draft" or not counted.is_opioid:
            continue
        for member in others:
            if member.is_opioid:
                _quantify(member, member.resource, knowledge, profile)
        members = [counted, *others]
        readable = [m for m in members if m.counted and m.ome_max is not None]
        if not readable:
            continue
        best = max(readable, key=lambda m: m.ome_max or Decimal(0))  # the first of equal figures
        figures = {m.ome_max for m in readable}
        for member in members:
            if member is best:
                continue
            member.counted = False
            member.same_supply_as = best.id
            member.reason = f"same supply as {best.id}"
        best.same_supply_as, best.reason = None, None
        if len(figures) > 1 or len(readable) < len(members):
            described = ", ".join(
                f"{m.id}: {_count(m.ome_max)} mg/day" if m in readable else f"{m.id}: dose not read" for m in members
            )
            best.flags.append(f"one supply, doses differ ({described}): the higher counted")


# --- per order ---------------------------------------------------------------------------------------------------
def _route(product: Product, resource: dict[str, Any], order: OrderOme) -> str:
    if product.route:
        return product.route
    for dosage in resource.get("dosageInstruction") or []:
        route = dosage.get("route") if isinstance(dosage, dict) else None
        if isinstance(route, dict):
            words = " ".join(
                [str(route.get("text") or "")]
                + [str(c.get("display") or "") for c in route.get("coding") or [] if isinstance(c, dict)]
            )
            found, _ = classify_form(words)
            if found:
                return found
    order.flags.append("route not stated: oral assumed")
    return "oral"


def _presentation(product: Product) -> str:
    if product.is_patch:
        return "patch"
    return product.presentation or ("ml" if product.per_unit == "ml" else "unit")


def _quantify_patch(order: OrderOme, product: Product, resource: dict[str, Any]) -> tuple[Decimal, Decimal] | None:
    """One patch worn at its rate for every patch worn at once, whatever the interval, text or quantity."""
    rate = product.patch_mcg_per_hour
    if rate is None or rate <= 0:
        order.reason = f"the patch rate of {product.name} is not known"
        return None
    dose = patch_dose(resource, rate, product.wear_hours)
    order.dose_basis, order.prn, order.regular = dose.basis, False, True
    order.flags += dose.flags
    order.patches_worn, order.change_hours = dose.worn_high, dose.change_hours
    if dose.change_hours:  # patches put on per day: how long a supply lasts
        order.units_per_day_min = dose.worn_low * 24 / dose.change_hours
        order.units_per_day_max = dose.worn_high * 24 / dose.change_hours
    extra = dose.extra_mcg_per_hour  # another strength the text adds ("and one 12 patch"), flagged by patch_dose
    return (rate * dose.worn_low + extra) * 24 / 1000, (rate * dose.worn_high + extra) * 24 / 1000


def _quantify(order: OrderOme, resource: dict[str, Any], knowledge: Knowledge, profile: str) -> None:
    product = order.product
    assert product is not None
    if not any(r.ingredient == product.ingredient for table in knowledge.profiles.values() for r in table.rows):
        # An opioid no source gives a factor for (pholcodine, an antitussive): identified, never a silent zero.
        order.reason = "no UK oral morphine equivalent" if profile == "uk" else f"no {profile} oral morphine equivalent"
        return
    if product.is_patch:
        order.unit = "patch"
        route = product.route or "transdermal"
        if (patch := _quantify_patch(order, product, resource)) is None:
            return
        mg_low, mg_high = patch
    else:
        try:
            dosage = daily_dosage(resource)
        except DosageError as exc:
            order.reason = str(exc)
            return
        settle_units(dosage, product.mg_per)  # a text in mg beside a dose in tablets, or the reverse
        order.dose_basis = dosage.basis
        order.flags += dosage.notes
        order.lines = dosage.lines
        order.prn = any(line.prn for line in dosage.lines)
        order.regular = any(not line.prn for line in dosage.lines)
        route = _route(product, resource, order)
        order.unit = _presentation(product)
        mg_low = mg_high = units_low = units_high = Decimal(0)
        for line in dosage.lines:
            amount = line.daily
            if amount.unit == "mg":
                per_unit_mg = product.mg_per("ml" if order.unit == "ml" else "unit")
                mg_low, mg_high = mg_low + amount.low, mg_high + amount.high
                if per_unit_mg:
                    units_low += amount.low / per_unit_mg
                    units_high += amount.high / per_unit_mg
                continue
            per_unit_mg = product.mg_per(amount.unit)
            if per_unit_mg is None:
                what = "ml" if amount.unit == "ml" else "doses"
                order.reason = (
                    f"dose in {what} cannot be converted to mg: no strength per {what} for {product.name}"
                    if product.strength_mg is not None or product.status.startswith("ingredient")
                    else f"strength of {product.name} is not known"
                )
                return
            mg_low, mg_high = mg_low + amount.low * per_unit_mg, mg_high + amount.high * per_unit_mg
            units_low, units_high = units_low + amount.low, units_high + amount.high
        order.units_per_day_min, order.units_per_day_max = units_low, units_high
    order.mg_per_day_min, order.mg_per_day_max = mg_low, mg_high
    profile_table = knowledge.profiles[profile]
    presentation = product.presentation
    factor_high = profile_table.factor(product.ingredient, route, presentation, order.mg_per_day_max)
    factor_low = profile_table.factor(product.ingredient, route, presentation, order.mg_per_day_min)
    if factor_high is None or factor_low is None:
        order.reason = f"no {profile} factor for {product.ingredient} by the {route} route"
        return
    order.factor, order.factor_source, order.factor_route = factor_high.value, factor_high.source, factor_high.route
    order.factor_basis = factor_high.row.basis
    if factor_high.route not in (route, "*"):
        order.flags.append(f"{route}: the {factor_high.route} factor was used")
    order.ome_min = mg_low * factor_low.value
    order.ome_max = mg_high * factor_high.value
    if product.ingredient == "methadone":
        order.flags.append(METHADONE_FLAG)
    order.counted = True


def compute_ome(
    orders: Sequence[tuple[dict[str, Any], str]],
    medications: dict[str, dict[str, Any]],
    knowledge: Knowledge,
    profile: str = "uk",
) -> OmeResult:
    """OME of each order and the total. ``orders``: (MedicationRequest dict, origin "draft" | "existing")."""
    if profile not in knowledge.profiles:
        raise ConfigError(f"unknown OME profile {profile!r}; known: {', '.join(sorted(knowledge.profiles))}")
    results: list[OrderOme] = []
    for index, (resource, origin) in enumerate(orders):
        identified = identify(resource, medications, knowledge)
        order = OrderOme(
            id=str(resource.get("id") or f"order-{index + 1}"),
            display=identified.display or (identified.product.name if identified.product else ""),
            origin=origin,
            status=str(resource.get("status") or "unknown"),
            intent=str(resource.get("intent") or ""),
            identified=identified,
            resource=resource,
        )
        results.append(order)
    groups = _group_same_supply(results)
    for order in results:
        if order.status in HISTORY_STATUSES:
            order.reason = f"not current: status {order.status}"
        elif order.same_supply_as:
            continue
        elif order.product is None:
            order.reason = order.identified.problem or "product not recognised"
        elif not order.product.is_opioid:
            order.reason = "not an opioid"
        else:
            _quantify(order, order.resource, knowledge, profile)
    _count_the_higher(groups, knowledge, profile)
    return OmeResult(profile, results)


def record_ome(record: PatientRecord, knowledge: Knowledge, profile: str = "uk", drafts: bool = True) -> OmeResult:
    """OME of a patient's record: every order (or only the existing ones when ``drafts`` is False)."""
    orders = [(o.resource, o.origin) for o in record.orders if drafts or o.origin != "draft"]
    return compute_ome(orders, record.medications, knowledge, profile)
