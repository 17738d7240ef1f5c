"""Repeat facts: how long opioids have been on repeat, reauthorisation and expiry, early and missed issues, review."""

from __future__ import annotations

from cds_service.clinical.facts.fhir import months_between
from cds_service.clinical.facts.inputs import FactInputs
from cds_service.clinical.facts.registry import summary_fact

GROUP = "repeat"
NO_REVIEW_MONTHS = 999  # months_since_medication_review when no review is coded


@summary_fact("months_on_repeat_opioid", "number", "longest time an opioid has been on repeat, in months", group=GROUP)
def months_on_repeat_opioid(i: FactInputs) -> int:
    return max([0, *(r.months_on_repeat for r in i.repeats if r.months_on_repeat is not None)])


@summary_fact(
    "opioid_repeat_being_reauthorised",
    "bool",
    "an opioid repeat is being reauthorised or reissued now",
    group=GROUP,
)
def opioid_repeat_being_reauthorised(i: FactInputs) -> bool:
    return any(r.reauthorised for r in i.repeats)


@summary_fact(
    "months_since_medication_review",
    "number",
    "months since the last coded medication review (999: none)",
    group=GROUP,
)
def months_since_medication_review(i: FactInputs) -> int:
    return months_between(i.last_review, i.today) if i.last_review else NO_REVIEW_MONTHS


@summary_fact(
    "opioid_repeat_past_expiry",
    "bool",
    "an opioid repeat being reauthorised is past its authorisation expiry",
    group=GROUP,
)
def opioid_repeat_past_expiry(i: FactInputs) -> bool:
    return any(r.past_expiry for r in i.repeats)


@summary_fact(
    "early_request_working_days", "number", "most working days early of an opioid repeat issued now", group=GROUP
)
def early_request_working_days(i: FactInputs) -> int:
    return max([0, *(r.working_days_early for r in i.repeats)])


@summary_fact(
    "repeat_opioid_not_issued_months",
    "number",
    "longest time an opioid on repeat has not been issued, in months",
    group=GROUP,
)
def repeat_opioid_not_issued_months(i: FactInputs) -> int:
    return max([0, *(r.months_not_issued for r in i.repeats if r.months_not_issued is not None)])
