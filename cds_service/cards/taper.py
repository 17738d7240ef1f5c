"""The taper suggestion on dose and long-term cards (pure): step 1 as MedicationRequest updates, the whole
schedule as a CarePlan, and a link to the printable plan."""

from __future__ import annotations

import copy
from typing import Any, TypeAlias
from urllib.parse import urlencode

from cds_service.clinical.ome import OrderOme
from cds_service.clinical.taper import Regimen, TaperPlan, link_params

SLOW_MONTHS = 24
# A suggested taper: the plan and the regimens it was made from (what the link to the printable plan rebuilds).
PlannedTaper: TypeAlias = tuple[TaperPlan, list[Regimen]]


def slow_reasons(summary: dict[str, Any], risk_factors: list[str]) -> list[str]:
    """Why a slower taper is advised (guidance: cardio-respiratory disease, opioids for more than 2 years…)."""
    reasons = []
    if "COPD" in risk_factors:
        reasons.append("COPD (cardio-respiratory disease)")
    if summary.get("months_on_repeat_opioid", 0) >= SLOW_MONTHS:
        reasons.append(f"opioids on repeat for {summary['months_on_repeat_opioid']} months (more than 2 years)")
    if summary.get("has_benzodiazepine"):
        reasons.append("a benzodiazepine as well (taper one medicine at a time)")
    return reasons


def detail_lines(plan: TaperPlan, link: str | None) -> str:
    first = plan.steps[1:4]
    lines = [f"**Suggested taper** ({plan.strategy}, {plan.pace} pace; about {plan.duration_days // 7} weeks to stop):"]
    lines += [f"- Week {plan.week_of(s.number)}: {s.describe()} ({s.total_ome:.0f} mg/day)" for s in first]
    if len(plan.steps) > 4:
        lines.append(f"- … {len(plan.steps) - 4} more steps" + (f": [the whole plan]({link})" if link else ""))
    if plan.slow_reasons:
        lines.append("Slower pace because: " + "; ".join(plan.slow_reasons) + ".")
    return "\n".join(lines)


def taper_suggestion(plan: TaperPlan, orders: dict[str, OrderOme], patient_id: str) -> dict[str, Any] | None:
    """ "Start a taper (step 1: …)": update each order to its step-1 dose and create the CarePlan."""
    if len(plan.steps) < 2:
        return None
    step = plan.steps[1]
    actions = []
    for dose in step.doses:
        order = orders.get(dose.order_id)
        if order is None or not order.resource.get("id"):
            continue
        resource = copy.deepcopy(order.resource)
        if dose.dose == 0:
            resource["status"] = "stopped"
            resource["statusReason"] = {"text": "Stopped: step 1 of an agreed opioid taper"}
        else:
            timing = {"repeat": {"frequency": int(dose.per_day), "period": 1, "periodUnit": "d"}}
            instruction: dict[str, Any] = {
                "text": f"Taper step 1, from {step.starts.strftime('%d %b %Y')}: {dose.describe()}",
                "timing": timing,
            }
            if dose.is_patch:
                instruction["doseAndRate"] = [
                    {
                        "doseQuantity": {
                            "value": float(dose.dose),
                            "unit": "microgram/hour",
                            "system": "http://unitsofmeasure.org",
                            "code": "ug/h",
                        }
                    }
                ]
                instruction["timing"] = {"repeat": {"frequency": 1, "period": 72, "periodUnit": "h"}}
            else:
                instruction["doseAndRate"] = [
                    {
                        "doseQuantity": {
                            "value": float(dose.dose),
                            "unit": "mg",
                            "system": "http://unitsofmeasure.org",
                            "code": "mg",
                        }
                    }
                ]
            if dose.prn:
                instruction["asNeededBoolean"] = True
            resource["dosageInstruction"] = [instruction]
        actions.append({"type": "update", "description": f"Step 1: {dose.describe()}", "resource": resource})
    activities = [
        {
            "detail": {
                "status": "not-started",
                "description": f"Week {plan.week_of(s.number)}: {s.describe()}",
                "scheduledPeriod": {"start": s.starts.isoformat()},
            }
        }
        for s in plan.steps[1:]
    ]
    care_plan = {
        "resourceType": "CarePlan",
        "status": "draft",
        "intent": "proposal",
        "title": "Opioid taper",
        "description": (
            f"Reduce from {plan.original_ome:.0f} mg/day oral morphine equivalent to stopping over "
            f"about {plan.duration_days // 7} weeks ({plan.strategy}, {plan.pace} pace)."
        ),
        "subject": {"reference": f"Patient/{patient_id}"},
        "period": {"start": plan.steps[1].starts.isoformat(), "end": plan.steps[-1].starts.isoformat()},
        "activity": activities,
    }
    actions.append({"type": "create", "description": "Create the taper plan", "resource": care_plan})
    return {"label": f"Start a taper (step 1: {step.describe()})"[:200], "actions": actions}


def taper_link(base: str | None, plan: TaperPlan, regimens: list[Regimen]) -> str | None:
    """The printable plan's absolute URL (only when every product has a dm+d code to rebuild it from)."""
    if not base or any(r.product.system != "https://dmd.nhs.uk" or not r.product.code for r in regimens):
        return None
    return f"{base}/taper?" + urlencode(link_params(regimens, plan.strategy, plan.pace, plan.steps[0].starts))
