"""Tapering plans (pure): a patient-specific schedule from the current opioid orders.

Guidance (primary-care tapering; Opioids Aware): reduce by 10% of the original total daily dose every 1-2 weeks;
once a third of the original dose is reached, slow to 5% every 2-4 weeks; keep the dosing interval; never
increase once reduced; either reduce the modified-release (regular) dose first and keep the PRN stable, or wean
the PRN first and keep the regular dose stable; or consolidate into one modified-release preparation first.

Each step has a target total daily OME; each opioid is set to the highest dose achievable with whole units of the
strengths that exist for that product family (from the catalogue) that keeps the total at or under the target,
reducing one regimen at a time in the strategy's order. A step that would not lower anything is skipped (the
next target comes sooner than any available reduction); the last step is to stop. Where the plan cannot follow
the guidance exactly (a reduction larger than one step because no smaller unit exists), the step says so.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, TypeAlias

from cds_service.clinical.knowledge.model import Knowledge, Product
from cds_service.clinical.ome import OmeResult, OrderOme
from cds_service.errors import TaperError

STANDARD = {"first": (Decimal("0.10"), 7), "second": (Decimal("0.05"), 14)}
SLOW = {"first": (Decimal("0.10"), 14), "second": (Decimal("0.05"), 28)}
PACES = {"standard": STANDARD, "slow": SLOW}
STRATEGIES = ("mr-first", "prn-first", "consolidate")
MAX_UNITS_PER_DOSE = 3
MAX_STEPS = 120
TWO_DP = Decimal("0.01")


@dataclass(frozen=True)
class Regimen:
    """One opioid order as the planner sees it."""

    order_id: str
    display: str
    product: Product
    family: str  # what the dose is described as ("morphine modified-release tablets")
    strengths: tuple[Decimal, ...]  # mg (or micrograms/hour for patches) of the units that exist
    per_day: Decimal  # administrations per day (regular) or the most allowed (PRN)
    dose: Decimal  # mg (or micrograms/hour) per administration now
    prn: bool
    factor: Decimal  # OME per mg (per mg delivered per day for patches)
    max_units: int = MAX_UNITS_PER_DOSE

    @property
    def is_patch(self) -> bool:
        return self.product.is_patch

    @property
    def current_strength(self) -> Decimal | None:
        return self.product.patch_mcg_per_hour if self.product.is_patch else self.product.strength_mg

    def daily_ome(self, dose: Decimal, per_day: Decimal | None = None) -> Decimal:
        if self.is_patch:
            return dose * 24 / 1000 * self.factor
        return dose * (self.per_day if per_day is None else per_day) * self.factor


@dataclass
class DoseAt:
    order_id: str
    family: str
    dose: Decimal  # per administration (mg, or micrograms/hour for patches)
    per_day: Decimal
    prn: bool
    units: tuple[tuple[Decimal, int], ...]  # (strength, count) making one dose
    ome: Decimal
    is_patch: bool = False
    noun: str = "tablet"

    def describe(self) -> str:
        if self.dose == 0 or self.per_day == 0:
            return f"{self.family}: stop"
        amount = f"{_fmt(self.dose)} micrograms/hour" if self.is_patch else f"{_fmt(self.dose)} mg"
        if self.is_patch:
            return f"{self.family} {amount} ({_units_text(self.units, 'patch', True)})"
        times = {1: "once a day", 2: "twice a day", 3: "three times a day", 4: "four times a day"}
        when = (
            times.get(int(self.per_day), f"{_fmt(self.per_day)} times a day")
            if self.per_day == int(self.per_day)
            else f"{_fmt(self.per_day)} times a day"
        )
        if self.prn:
            when = f"up to {when.replace('a day', 'a day when required')}"
        return f"{self.family} {amount} {when} ({_units_text(self.units, self.noun, False)})"


@dataclass
class TaperStep:
    number: int
    starts: date
    doses: list[DoseAt]
    total_ome: Decimal
    target_ome: Decimal
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return "; ".join(d.describe() for d in self.doses)


@dataclass
class TaperPlan:
    strategy: str
    pace: str
    original_ome: Decimal
    steps: list[TaperStep]
    notes: list[str]
    slow_reasons: list[str] = field(default_factory=list)

    @property
    def duration_days(self) -> int:
        return (self.steps[-1].starts - self.steps[0].starts).days if self.steps else 0

    def week_of(self, index: int) -> int:
        """The week (1 = the first) in which step ``index`` starts."""
        return (self.steps[index].starts - self.steps[0].starts).days // 7 + 1

    def to_json(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "pace": self.pace,
            "original_ome_mg_per_day": float(self.original_ome.quantize(TWO_DP)),
            "duration_days": self.duration_days,
            "notes": self.notes,
            "slow_reasons": self.slow_reasons,
            "steps": [
                {
                    "step": s.number,
                    "starts": s.starts.isoformat(),
                    "total_ome_mg_per_day": float(s.total_ome.quantize(TWO_DP)),
                    "target_ome_mg_per_day": float(s.target_ome.quantize(TWO_DP)),
                    "description": s.describe(),
                    "notes": s.notes,
                    "doses": [
                        {
                            "order": d.order_id,
                            "product": d.family,
                            "dose_per_administration": float(d.dose),
                            "administrations_per_day": float(d.per_day),
                            "prn": d.prn,
                            "units": [{"strength": float(s_), "count": c} for s_, c in d.units],
                            "ome_mg_per_day": float(d.ome.quantize(TWO_DP)),
                        }
                        for d in s.doses
                    ],
                }
                for s in self.steps
            ],
        }


def _fmt(value: Decimal) -> str:
    text = f"{value.normalize():f}"
    return text


def _units_text(units: tuple[tuple[Decimal, int], ...], noun: str, patch: bool) -> str:
    if not units:
        return "none"
    words = {1: "one", 2: "two", 3: "three", 4: "four"}
    parts = []
    for strength, count in units:
        label = f"{_fmt(strength)} micrograms/hour" if patch else f"{_fmt(strength)} mg"
        plural = noun + ("es" if noun.endswith("ch") else "s") if count > 1 else noun
        parts.append(f"{words.get(count, str(count))} {label} {plural}")
    return " + ".join(parts)


@functools.lru_cache(maxsize=4096)
def achievable(
    strengths: tuple[Decimal, ...], max_units: int, prefer: Decimal | None = None
) -> dict[Decimal, tuple[tuple[Decimal, int], ...]]:
    """Every dose made of at most ``max_units`` whole units of the given strengths -> the units making it: the
    fewest different strengths, then the most units of ``prefer`` (what the patient has now), then the fewest."""
    best: dict[Decimal, tuple[tuple[int, int, int], tuple[tuple[Decimal, int], ...]]] = {Decimal(0): ((0, 0, 0), ())}
    for count in range(1, max_units + 1):
        for combination in itertools.combinations_with_replacement(sorted(strengths, reverse=True), count):
            total = sum(combination, Decimal(0))
            grouped = tuple((s, combination.count(s)) for s in sorted(set(combination), reverse=True))
            rank = (len(grouped), -combination.count(prefer) if prefer is not None else 0, count)
            if total not in best or rank < best[total][0]:
                best[total] = (rank, grouped)
    return {total: units for total, (_, units) in best.items()}


# ingredient, route, release, presentation, other ingredients, per unit
FamilyKey: TypeAlias = tuple[str, str, str, str, tuple[str, ...], str]


def _family_key(product: Product) -> FamilyKey:
    return (
        product.ingredient,
        product.route,
        product.release,
        product.presentation,
        product.other_ingredients,
        product.per_unit,
    )


def family_strengths(product: Product, knowledge: Knowledge) -> tuple[Decimal, ...]:
    """Strengths that exist for the product's family (same ingredient, route, release, form, other ingredients)."""
    index: dict[FamilyKey, set[Decimal]] | None = knowledge.__dict__.get("_taper_families")
    if index is None:  # built once per knowledge base
        index = {}
        for other in knowledge.products.values():
            value = other.patch_mcg_per_hour if other.is_patch else other.strength_mg
            if other.status == "ok" and value:
                index.setdefault(_family_key(other), set()).add(value)
        knowledge.__dict__["_taper_families"] = index
    found = set(index.get(_family_key(product), set()))
    own = product.patch_mcg_per_hour if product.is_patch else product.strength_mg
    if own:
        found.add(own)
    return tuple(sorted(found))


def family_name(product: Product) -> str:
    release = "modified-release " if product.release == "modified" and not product.is_patch else ""
    presentation = {"tablet": "tablets", "capsule": "capsules", "patch": "patches", "ml": "oral solution"}.get(
        product.presentation, product.presentation or ""
    )
    extra = f" (with {', '.join(product.other_ingredients)})" if product.other_ingredients else ""
    return f"{product.ingredient} {release}{presentation}{extra}".strip()


def regimens_from_ome(ome: OmeResult, knowledge: Knowledge) -> tuple[list[Regimen], list[str]]:
    """The counted opioid orders of an OmeResult as regimens; orders the planner cannot use are listed."""
    regimens, problems = [], []
    for order in ome.orders:
        product = order.product
        if not order.counted or product is None or not product.is_opioid:  # product is None: not an opioid
            continue
        mg_per_day, factor = order.mg_per_day_max, order.factor
        assert mg_per_day is not None and factor is not None  # a counted order has both
        strengths = family_strengths(product, knowledge)
        if not strengths or product.presentation in ("ml", "dose", ""):
            problems.append(f"{order.display}: no plan for this form (only tablets, capsules and patches)")
            continue
        if product.is_patch:
            worn = mg_per_day * 1000 / 24 if mg_per_day else Decimal(0)
            dose, per_day = worn, Decimal(1)
        else:
            per_unit = product.mg_per("unit")
            lines = order.units_per_day_max or Decimal(0)
            dose_units = _dose_units(order)
            if per_unit is None or not lines or dose_units is None:
                problems.append(f"{order.display}: dose per administration is not known")
                continue
            dose = dose_units * per_unit
            per_day = (mg_per_day / dose) if dose else Decimal(0)
        max_units = 2 if product.other_ingredients else MAX_UNITS_PER_DOSE
        regimens.append(
            Regimen(
                order.id,
                order.display,
                product,
                family_name(product),
                strengths,
                per_day,
                dose,
                order.prn and not order.regular,
                factor,
                max_units,
            )
        )
    return regimens, problems


def _dose_units(order: OrderOme) -> Decimal | None:
    """Units (tablets, patches) in one administration, from the dose lines the OME was computed from."""
    lines = order.lines
    if len(lines) != 1:
        return None
    line = lines[0]
    if line.unit == "unit":
        return line.dose_high
    per_unit = order.product.mg_per("unit") if order.product is not None else None
    if line.unit == "mg" and per_unit:
        return line.dose_high / per_unit
    return None


def plan_taper(
    regimens: list[Regimen],
    start: date,
    strategy: str = "mr-first",
    pace: str = "standard",
    interval_days: int | None = None,
    knowledge: Knowledge | None = None,
) -> TaperPlan:
    """The schedule; :class:`TaperError` when there is nothing to taper or the options are wrong."""
    if strategy not in STRATEGIES:
        raise TaperError(f"strategy must be one of {', '.join(STRATEGIES)}")
    if pace not in PACES:
        raise TaperError(f"pace must be one of {', '.join(PACES)}")
    if not regimens:
        raise TaperError("no current opioid with a known dose to taper")
    phases = dict(PACES[pace])
    if interval_days is not None:
        if not 7 <= interval_days <= 14:
            raise TaperError("the first-phase step interval must be 7 to 14 days (every 1-2 weeks)")
        if pace == "standard":  # the slow pace already uses the slow end (14 days)
            phases["first"] = (phases["first"][0], interval_days)
    notes: list[str] = []
    current = {r.order_id: (r.dose, r.per_day) for r in regimens}
    by_id = {r.order_id: r for r in regimens}
    order = _reduction_order(regimens, strategy)
    original = sum((r.daily_ome(r.dose) for r in regimens), Decimal(0))
    steps = [_step(0, start, regimens, current, original, original, [])]
    if strategy == "consolidate":
        regimens, current, by_id, order, note = _consolidate(regimens, current, original, knowledge)
        if note:
            notes.append(note)
    target, when = original, start
    slowed = False
    for _ in range(MAX_STEPS):
        total_now = _total(by_id, current)
        if total_now == 0:
            break
        phase = "second" if total_now <= original / 3 else "first"
        fraction, days = phases[phase]
        step_size = original * fraction
        target = max(Decimal(0), target - step_size)
        when = when + timedelta(days=days)
        step_notes: list[str] = []
        if not _reduce(order, by_id, current, target):
            continue  # nothing achievable lies between: hold this dose until the next target
        total_after = _total(by_id, current)
        if total_now - total_after > step_size + Decimal("0.01") and total_after > 0:
            step_notes.append(
                f"a larger step than the guidance ({_fmt((total_now - total_after).quantize(TWO_DP))} instead of "
                f"{_fmt(step_size.quantize(TWO_DP))} mg/day OME): no achievable dose lies between"
            )
        if phase == "second" and not slowed:
            step_notes.append("a third of the original dose reached: slower, smaller steps from here")
            slowed = True
        steps.append(_step(len(steps), when, regimens, current, total_after, target, step_notes))
    if _total(by_id, current) != 0:
        raise TaperError("the plan did not reach zero within the step limit")
    steps[-1].notes.append("stop")
    return TaperPlan(strategy, pace, original, steps, notes)


def _total(by_id: dict[str, Regimen], current: dict[str, tuple[Decimal, Decimal]]) -> Decimal:
    return sum((by_id[i].daily_ome(d, n) for i, (d, n) in current.items()), Decimal(0))


def _reduction_order(regimens: list[Regimen], strategy: str) -> list[str]:
    regular = sorted(
        (r for r in regimens if not r.prn), key=lambda r: (r.product.release != "modified", -r.daily_ome(r.dose))
    )
    prn = sorted((r for r in regimens if r.prn), key=lambda r: -r.daily_ome(r.dose))
    ordered = prn + regular if strategy == "prn-first" else regular + prn
    return [r.order_id for r in ordered]


def _reduce(
    order: list[str], by_id: dict[str, Regimen], current: dict[str, tuple[Decimal, Decimal]], target: Decimal
) -> bool:
    """Lower regimens in order until the total is at or under ``target``; True if anything changed."""
    changed = False
    for order_id in order:
        if _total(by_id, current) <= target:
            break
        regimen = by_id[order_id]
        dose, per_day = current[order_id]
        allowed = target - (_total(by_id, current) - regimen.daily_ome(dose, per_day))
        options = _options(regimen, dose, per_day)
        choice = next(((d, n) for d, n in options if regimen.daily_ome(d, n) <= allowed), (Decimal(0), per_day))
        if choice != (dose, per_day):
            current[order_id] = choice
            changed = True
    return changed


def _options(regimen: Regimen, dose: Decimal, per_day: Decimal) -> list[tuple[Decimal, Decimal]]:
    """Lower (dose, per_day) choices, highest first. The interval is kept; PRN also drops administrations."""
    doses = achievable(regimen.strengths, regimen.max_units)
    options = [(d, per_day) for d in sorted(doses, reverse=True) if d < dose]
    if regimen.prn:  # wean as-needed use: the same dose, fewer times a day
        options += [(dose, Decimal(n)) for n in range(int(per_day) - 1, 0, -1)]
        options.sort(key=lambda dn: regimen.daily_ome(*dn), reverse=True)
    return options


def _step(
    number: int,
    starts: date,
    regimens: list[Regimen],
    current: dict[str, tuple[Decimal, Decimal]],
    total: Decimal,
    target: Decimal,
    notes: list[str],
) -> TaperStep:
    doses = []
    for regimen in regimens:
        dose, per_day = current[regimen.order_id]
        units = achievable(regimen.strengths, regimen.max_units, regimen.current_strength).get(dose, ())
        doses.append(
            DoseAt(
                regimen.order_id,
                regimen.family,
                dose,
                per_day,
                regimen.prn,
                units,
                regimen.daily_ome(dose, per_day),
                regimen.is_patch,
                "patch" if regimen.is_patch else regimen.product.presentation or "unit",
            )
        )
    return TaperStep(number, starts, doses, total, target, notes)


def _consolidate(
    regimens: list[Regimen],
    current: dict[str, tuple[Decimal, Decimal]],
    original: Decimal,
    knowledge: Knowledge | None,
) -> tuple[list[Regimen], dict[str, tuple[Decimal, Decimal]], dict[str, Regimen], list[str], str]:
    """Step one of "consolidate": everything as the main modified-release opioid, at or under the same OME."""
    main = max(
        (r for r in regimens if r.product.release == "modified" and not r.is_patch),
        key=lambda r: r.daily_ome(r.dose),
        default=None,
    )
    if main is None or len(regimens) == 1:
        return (
            regimens,
            current,
            {r.order_id: r for r in regimens},
            _reduction_order(regimens, "mr-first"),
            ("nothing to consolidate: tapered as it is"),
        )
    mg_per_day = original / main.factor
    per_day = main.per_day
    doses = achievable(main.strengths, main.max_units)
    dose = max((d for d in doses if d * per_day <= mg_per_day), default=Decimal(0))
    merged = Regimen(
        main.order_id,
        main.display,
        main.product,
        main.family,
        main.strengths,
        per_day,
        dose,
        False,
        main.factor,
        main.max_units,
    )
    note = (
        f"consolidated into {main.family}: {_fmt(dose)} mg {_fmt(per_day)} times a day "
        f"(all opioids at or under the same oral morphine equivalent; check the conversion clinically)"
    )
    return [merged], {main.order_id: (dose, per_day)}, {main.order_id: merged}, [main.order_id], note


# --- plans from a link, and the link from a plan --------------------------------------------------------------------
def link_params(regimens: list[Regimen], strategy: str, pace: str, start: date) -> list[tuple[str, str]]:
    """Query parameters that rebuild the plan: product codes and doses only, never a patient identifier."""
    params = [("o", f"{r.product.code}:{_fmt(r.dose)}:{_fmt(r.per_day)}:{int(r.prn)}") for r in regimens]
    return [*params, ("strategy", strategy), ("pace", pace), ("start", start.isoformat())]


def regimens_from_params(values: list[str], knowledge: Knowledge, profile: str = "uk") -> list[Regimen]:
    """Regimens from ``o`` parameters ("<dm+d code>:<dose>:<per day>:<prn 0|1>"); TaperError names a bad one."""
    regimens = []
    for index, value in enumerate(values):
        parts = value.split(":")
        if len(parts) != 4:
            raise TaperError(f"o[{index}] must be code:dose:per_day:prn")
        code, dose_text, per_day_text, prn_text = parts
        product = knowledge.products.get(("https://dmd.nhs.uk", code))
        if product is None or not product.is_opioid:
            raise TaperError(f"o[{index}]: {code!r} is not an opioid product we know")
        try:
            dose, per_day = Decimal(dose_text), Decimal(per_day_text)
        except ArithmeticError:
            raise TaperError(f"o[{index}]: dose and per_day must be numbers") from None
        if not (dose.is_finite() and per_day.is_finite()) or not (0 < dose <= 10000 and 0 < per_day <= 24):
            raise TaperError(f"o[{index}]: dose or per_day out of range")
        factor = knowledge.profiles[profile].factor(product.ingredient, product.route or "oral", product.presentation)
        strengths = family_strengths(product, knowledge)
        if factor is None or not strengths:
            raise TaperError(f"o[{index}]: no factor or strengths for {product.name}")
        max_units = 2 if product.other_ingredients else MAX_UNITS_PER_DOSE
        regimens.append(
            Regimen(
                f"o{index}",
                product.name,
                product,
                family_name(product),
                strengths,
                per_day,
                dose,
                prn_text == "1",
                factor.value,
                max_units,
            )
        )
    return regimens
