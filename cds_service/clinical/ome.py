"""Oral morphine equivalent (OME): per order and in total, with how each figure was reached.

Per order: mg of opioid per day x the factor for its ingredient and route in the chosen profile. Patches: the
patch rate (micrograms/hour) x 24 / 1000 = mg delivered per day, x the factor, for every patch worn at once,
whatever the change interval. One supply is counted once: a draft that reauthorises or re-issues an active order
(``basedOn``, ``priorPrescription``, or the same product and dose), an authorisation and its issues are one
regimen. Orders we cannot quantify are returned as not counted with the reason, and the total is incomplete.
Pure: Decimal arithmetic on raw dicts; figures are rounded only by ``to_json``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from cds_service.clinical.dosage import DosageError, DoseLine, daily_dosage
from cds_service.clinical.knowledge.identify import Identified, identify
from cds_service.clinical.knowledge.model import Knowledge, Product
from cds_service.clinical.knowledge.names import classify_form
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

    @property
    def product(self) -> Product | None:
        return self.identified.product

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
def _ref_id(reference: Any) -> str | None:
    if not isinstance(reference, dict) or not isinstance(reference.get("reference"), str):
        return None
    ref: str = reference["reference"].split("/_history/")[0]
    return ref.removeprefix("urn:uuid:").rsplit("/", 1)[-1]


def _links(resource: dict[str, Any]) -> list[str]:
    refs = [_ref_id(r) for r in resource.get("basedOn") or [] if isinstance(r, dict)]
    refs.append(_ref_id(resource.get("priorPrescription")))
    return [r for r in refs if r]


def _signature(order: OrderOme) -> str | None:
    product = order.product
    if product is None:
        return None
    key = product.code or product.name.lower()
    dosage = order.resource.get("dosageInstruction")
    return json.dumps([product.system, key, dosage], sort_keys=True, default=str)


def _group_same_supply(orders: list[OrderOme]) -> None:
    current = [o for o in orders if o.status not in HISTORY_STATUSES]
    parent = {id(o): id(o) for o in current}
    by_id: dict[str, OrderOme] = {}
    for order in current:
        by_id.setdefault(order.id, order)

    def find(key: int) -> int:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    def union(a: OrderOme, b: OrderOme) -> None:
        parent[find(id(a))] = find(id(b))

    for order in current:
        for ref in _links(order.resource):
            if ref in by_id and by_id[ref] is not order:
                union(order, by_id[ref])
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
        for member in members:
            if member is not counted:
                member.same_supply_as = counted.id
                member.reason = f"same supply as {counted.id}"


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


def _quantify(order: OrderOme, resource: dict[str, Any], knowledge: Knowledge, profile: str) -> None:
    product = order.product
    assert product is not None
    try:
        dosage = daily_dosage(resource)
    except DosageError as exc:
        order.reason = str(exc)
        return
    order.dose_basis = dosage.basis
    order.flags += dosage.notes
    order.lines = dosage.lines
    order.prn = any(line.prn for line in dosage.lines)
    order.regular = any(not line.prn for line in dosage.lines)
    route = _route(product, resource, order)
    order.unit = _presentation(product)
    if product.is_patch:
        worn_low = worn_high = Decimal(0)
        units_low = units_high = Decimal(0)
        rate = product.patch_mcg_per_hour
        assert rate is not None
        for line in dosage.lines:
            if line.unit == "mcg/h":  # the dose states the rate itself
                worn_low += Decimal(0) if line.prn else line.dose_low / rate
                worn_high += line.dose_high / rate
            elif line.unit == "unit":
                worn_low += Decimal(0) if line.prn else line.dose_low
                worn_high += line.dose_high
            else:
                order.reason = f"a patch dose in {line.unit} cannot be read"
                return
            units_low += line.daily.low if line.unit == "unit" else Decimal(0)
            units_high += line.daily.high if line.unit == "unit" else Decimal(0)
        order.units_per_day_min, order.units_per_day_max = units_low, units_high
        order.mg_per_day_min = rate * worn_low * 24 / 1000
        order.mg_per_day_max = rate * worn_high * 24 / 1000
    else:
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
        order.mg_per_day_min, order.mg_per_day_max = mg_low, mg_high
        order.units_per_day_min, order.units_per_day_max = units_low, units_high
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
    order.ome_min = order.mg_per_day_min * factor_low.value
    order.ome_max = order.mg_per_day_max * factor_high.value
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
    _group_same_supply(results)
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
    return OmeResult(profile, results)


def record_ome(record: PatientRecord, knowledge: Knowledge, profile: str = "uk", drafts: bool = True) -> OmeResult:
    """OME of a patient's record: every order (or only the existing ones when ``drafts`` is False)."""
    orders = [(o.resource, o.origin) for o in record.orders if drafts or o.origin != "draft"]
    return compute_ome(orders, record.medications, knowledge, profile)
