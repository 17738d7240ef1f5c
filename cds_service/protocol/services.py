"""The CDS services we offer, declared once; discovery and request checks are generated from these.

Prefetch templates use only CDS Hooks 2.0 tokens (``{{context.patientId}}``). Medication reviews are asked
for by code; the one-year window is applied by the service, because 2.0 has no date tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cds_service.clinical.knowledge.codelists import load_codelist

PATIENT = "{{context.patientId}}"
HISTORY_COUNT = 50  # issues and dispenses asked for, newest first: over a year of monthly repeats of a few opioids


@dataclass(frozen=True)
class ContextField:
    """One member of a hook's ``context``: its JSON kind and whether the hook requires it."""

    name: str
    kind: str  # "string" | "string-array" | "bundle" | "bundle-or-array"
    required: bool = True


@dataclass(frozen=True)
class ServiceDefinition:
    id: str
    hook: str
    title: str
    description: str
    context: tuple[ContextField, ...]
    prefetch: dict[str, str] = field(default_factory=dict)
    usage_requirements: str = ""
    deprecated_hook: bool = False

    def discovery(self) -> dict[str, Any]:
        """The service's entry in ``GET /cds-services`` (no null or empty members)."""
        entry: dict[str, Any] = {
            "hook": self.hook,
            "title": self.title,
            "description": self.description,
            "id": self.id,
        }
        if self.prefetch:
            entry["prefetch"] = dict(self.prefetch)
        if self.usage_requirements:
            entry["usageRequirements"] = self.usage_requirements
        return entry


def _code_search(resource_type: str) -> str:
    codes = ",".join(f"{c.system}|{c.code}" for c in load_codelist("medication_review_codes"))
    return f"{resource_type}?patient={PATIENT}&code={codes}"


def _prefetch() -> dict[str, str]:
    return {
        "patient": f"Patient/{PATIENT}",
        "medications": f"MedicationRequest?patient={PATIENT}&status=active&_include=MedicationRequest:medication",
        "conditions": f"Condition?patient={PATIENT}&clinical-status=active",
        "medicationReviewProcedures": _code_search("Procedure"),
        "medicationReviewObservations": _code_search("Observation"),
        # issue history, newest first and bounded; the service ignores what is older than HISTORY_WINDOW_DAYS
        "issueHistory": (
            f"MedicationRequest?patient={PATIENT}&status=completed&_sort=-authoredon&_count={HISTORY_COUNT}"
            "&_include=MedicationRequest:medication"
        ),
        "dispenseHistory": f"MedicationDispense?patient={PATIENT}&_sort=-whenhandedover&_count={HISTORY_COUNT}",
    }


# Prefetch keys a client may leave out with no fhirServer (or that the server cannot answer): read as no data.
OPTIONAL_PREFETCH = frozenset({"issueHistory", "dispenseHistory"})
# Issues and dispenses in those keys dated more than this many days before the request are not read: CDS Hooks 2.0
# prefetch templates have no date tokens, so the service applies the window itself.
HISTORY_WINDOW_DAYS = 365


USAGE = (
    "Send the patient's active MedicationRequests with their Medications, active Conditions and coded "
    "medication reviews (Procedure or Observation, MEDRVW_COD) as prefetch, or a fhirServer with "
    "fhirAuthorization so the service can read them; without them it answers 412. Medication reviews "
    "older than 12 months are ignored. Optional: issueHistory (completed MedicationRequests, the issues) and "
    "dispenseHistory (MedicationDispenses), newest first, at most 50 each; the service reads issues and dispenses "
    "of the last 12 months to tell how long each supply lasts (early requests, repeats not issued)."
)

_USER = ContextField("userId", "string")
_PATIENT = ContextField("patientId", "string")
_ENCOUNTER = ContextField("encounterId", "string", required=False)


def _definitions() -> tuple[ServiceDefinition, ...]:
    prefetch = _prefetch()
    return (
        ServiceDefinition(
            id="opioid-order-select",
            hook="order-select",
            title="Opioid safety: order selection",
            description=(
                "When an opioid, gabapentinoid, benzodiazepine or Z-drug is selected, totals the patient's daily "
                "oral morphine equivalent and warns of high doses, risky combinations and co-prescribing."
            ),
            context=(
                _USER,
                _PATIENT,
                _ENCOUNTER,
                ContextField("selections", "string-array"),
                ContextField("draftOrders", "bundle"),
            ),
            prefetch=prefetch,
            usage_requirements=USAGE,
        ),
        ServiceDefinition(
            id="opioid-order-sign",
            hook="order-sign",
            title="Opioid safety: prescription signing",
            description=(
                "Before a prescription is signed or reauthorised, checks the patient's opioids: total daily oral "
                "morphine equivalent, combinations, co-prescribed sedatives and repeat-prescription review."
            ),
            context=(_USER, _PATIENT, _ENCOUNTER, ContextField("draftOrders", "bundle")),
            prefetch=prefetch,
            usage_requirements=USAGE,
        ),
        ServiceDefinition(
            id="opioid-patient-view",
            hook="patient-view",
            title="Opioid safety: record review",
            description=(
                "When a patient's record is opened, reviews current opioid prescribing: high total oral morphine "
                "equivalent, risky combinations, and opioids on repeat that need review or are no longer issued."
            ),
            context=(_USER, _PATIENT, _ENCOUNTER),
            prefetch=prefetch,
            usage_requirements=USAGE,
        ),
        ServiceDefinition(
            id="opioid-medication-prescribe",
            hook="medication-prescribe",
            title="Opioid safety: prescribing (CDS Hooks 1.0 clients)",
            description=(
                "The order-sign checks for clients still on the deprecated CDS Hooks 1.0 medication-prescribe "
                "hook (context.medications)."
            ),
            context=(
                ContextField("userId", "string", required=False),
                _PATIENT,
                _ENCOUNTER,
                ContextField("medications", "bundle-or-array"),
            ),
            prefetch=prefetch,
            usage_requirements=USAGE + " Deprecated hook: prefer opioid-order-sign.",
            deprecated_hook=True,
        ),
    )


SERVICES: tuple[ServiceDefinition, ...] = _definitions()
SERVICES_BY_ID: dict[str, ServiceDefinition] = {s.id: s for s in SERVICES}


def discovery_document() -> dict[str, Any]:
    """The body of ``GET /cds-services``."""
    return {"services": [s.discovery() for s in SERVICES]}
