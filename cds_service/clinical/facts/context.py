"""Context facts: the hook, palliative care, pregnancy, opioid dependence, risk factors and age."""

from __future__ import annotations

from cds_service.clinical.facts.inputs import PREGNANCY_DAYS, FactInputs
from cds_service.clinical.facts.registry import summary_fact

GROUP = "context"


@summary_fact(
    "hook",
    "string",
    "the CDS Hooks hook (order-select, order-sign, patient-view, medication-prescribe)",
    group="request",
)
def hook(i: FactInputs) -> str:
    return i.hook


@summary_fact(
    "has_palliative_context",
    "bool",
    "active cancer, palliative care register or end-of-life condition",
    group=GROUP,
)
def has_palliative_context(i: FactInputs) -> bool:
    codes, ctx = i.codes, i.context
    return bool(ctx.current & (codes.cancer | codes.palliative) or ctx.event_codes & codes.palliative)


@summary_fact(
    "palliative_suppression",
    "bool",
    "palliative context and the suppress_in_palliative_care setting",
    group=GROUP,
)
def palliative_suppression(i: FactInputs) -> bool:
    return has_palliative_context(i) and bool(i.settings["suppress_in_palliative_care"])


@summary_fact("is_pregnant", "bool", "an active pregnancy is coded", group=GROUP)
def is_pregnant(i: FactInputs) -> bool:
    if i.context.current & i.codes.pregnancy:
        return True
    return any(
        e.codes & i.codes.pregnancy and e.on and (i.today - e.on).days <= PREGNANCY_DAYS for e in i.context.events
    )


@summary_fact("has_opioid_dependence", "bool", "opioid dependence is coded", group=GROUP)
def has_opioid_dependence(i: FactInputs) -> bool:
    return bool(i.context.history & i.codes.opioid_dependence)


@summary_fact("risk_factor_count", "number", "COPD, age, benzodiazepine use, substance misuse history", group=GROUP)
def risk_factor_count(i: FactInputs) -> int:
    return len(i.risk_factors)


@summary_fact("age_years", "number", "age in whole years (-1 when unknown)", group=GROUP)
def age_years(i: FactInputs) -> int:
    return i.context.age
