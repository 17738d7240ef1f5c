"""Medication orders in the FHIR versions clients send, read into the R4 MedicationRequest shape the core reads.

- DSTU2 ``MedicationOrder`` (the CDS Hooks Sandbox with a DSTU2 FHIR server, older EHRs): ``patient`` -> ``subject``,
  ``dateWritten`` -> ``authoredOn``, ``prescriber`` -> ``requester``, ``encounter``; each dosage's ``doseQuantity`` /
  ``doseRange`` / ``rate*`` -> ``doseAndRate``, ``timing.repeat.periodUnits`` / ``durationUnits`` -> ``periodUnit``
  / ``durationUnit``, ``siteCodeableConcept`` -> ``site``, ``asNeeded[x]`` kept; ``dispenseRequest`` kept without its
  own medication; intent ``order`` (DSTU2 has none).
- STU3 ``MedicationRequest``: ``context`` -> ``encounter``, a single ``category`` -> a list; the dose members on the
  Dosage are moved by ``record.normalise_dosage``. DSTU2-style ``periodUnits`` found in any order are read too.

The result is a converted copy (the raw resource is never changed); the record keeps the raw one beside it.
Anything that is a medication order we cannot read gets a reason instead (:func:`as_r4_medication_request`).
Sources: FHIR DSTU2 MedicationOrder (hl7.org/fhir/DSTU2/medicationorder.html), FHIR STU3 MedicationRequest
(hl7.org/fhir/STU3/medicationrequest.html) and the R4 mappings from them
(hl7.org/fhir/R4/medicationrequest-version-maps.html).
"""

from __future__ import annotations

import copy
from typing import Any

# DSTU1 and other pre-R4 medication order types we do not read (counted as "could not be checked", never dropped).
UNREAD_ORDER_TYPES = frozenset({"MedicationPrescription"})
_DOSE_KEYS = ("doseQuantity", "doseRange", "rateRatio", "rateRange", "rateQuantity")
_DSTU2_STATUSES = frozenset({"active", "on-hold", "completed", "entered-in-error", "stopped", "draft"})
# MedicationOrder members carried over unchanged (the same name and meaning in R4).
_SAME = (
    "id",
    "meta",
    "text",
    "contained",
    "extension",
    "identifier",
    "medicationCodeableConcept",
    "medicationReference",
    "priorPrescription",
    "substitution",
)


def is_medication_order(resource: dict[str, Any]) -> bool:
    """A resource that orders a medication, in any FHIR version we know of."""
    kind = resource.get("resourceType")
    return kind in ("MedicationRequest", "MedicationOrder") or kind in UNREAD_ORDER_TYPES


def as_r4_medication_request(resource: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """(the order as an R4-shaped MedicationRequest, None) or (None, why it cannot be read).

    An R4 MedicationRequest is returned as it is (the same object) when nothing needs converting.
    """
    kind = resource.get("resourceType")
    if kind == "MedicationRequest":
        return _from_stu3(resource), None
    if kind == "MedicationOrder":
        return _from_dstu2(resource)
    return None, f"{kind} (a FHIR DSTU1 order) is not read: send a MedicationRequest"


def _timing(timing: Any) -> Any:
    """A Timing with DSTU2 ``periodUnits`` / ``durationUnits`` renamed (a copy only when needed)."""
    if not isinstance(timing, dict) or not isinstance(timing.get("repeat"), dict):
        return timing
    repeat = timing["repeat"]
    if "periodUnits" not in repeat and "durationUnits" not in repeat:
        return timing
    timing = copy.deepcopy(timing)
    for old, new in (("periodUnits", "periodUnit"), ("durationUnits", "durationUnit")):
        if old in timing["repeat"]:
            value = timing["repeat"].pop(old)
            timing["repeat"].setdefault(new, value)
    return timing


def _dosage(dosage: Any) -> Any:
    """One DSTU2 dosageInstruction as an R4 Dosage."""
    if not isinstance(dosage, dict):
        return dosage
    converted = {k: v for k, v in dosage.items() if k not in _DOSE_KEYS and k != "siteCodeableConcept"}
    dose = {k: dosage[k] for k in _DOSE_KEYS if k in dosage}
    if dose:
        converted["doseAndRate"] = [dose]
    if "siteCodeableConcept" in dosage:
        converted.setdefault("site", dosage["siteCodeableConcept"])
    if isinstance(dosage.get("additionalInstructions"), dict):
        converted["additionalInstruction"] = [dosage["additionalInstructions"]]
        del converted["additionalInstructions"]
    if "timing" in dosage:
        converted["timing"] = _timing(dosage["timing"])
    return converted


def _from_dstu2(order: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    dosages = order.get("dosageInstruction")
    if dosages is not None and not isinstance(dosages, list):
        return None, "MedicationOrder.dosageInstruction is not a list"
    status = order.get("status")
    converted: dict[str, Any] = {k: copy.deepcopy(order[k]) for k in _SAME if k in order}
    converted["resourceType"] = "MedicationRequest"
    converted["status"] = status if status in _DSTU2_STATUSES else "unknown"
    converted["intent"] = "order"
    for old, new in (("patient", "subject"), ("dateWritten", "authoredOn"), ("prescriber", "requester")):
        if old in order:
            converted[new] = copy.deepcopy(order[old])
    if "encounter" in order:
        converted["encounter"] = copy.deepcopy(order["encounter"])
    if isinstance(order.get("note"), str):
        converted["note"] = [{"text": order["note"]}]
    if isinstance(order.get("reasonCodeableConcept"), dict):
        converted["reasonCode"] = [copy.deepcopy(order["reasonCodeableConcept"])]
    if dosages:
        converted["dosageInstruction"] = [_dosage(copy.deepcopy(d)) for d in dosages]
    dispense = order.get("dispenseRequest")
    if isinstance(dispense, dict):
        converted["dispenseRequest"] = {
            k: copy.deepcopy(v)
            for k, v in dispense.items()
            if k not in ("medicationCodeableConcept", "medicationReference")
        }
    return converted, None


def _from_stu3(request: dict[str, Any]) -> dict[str, Any]:
    """STU3 members renamed; the same object when there are none."""
    dosages = request.get("dosageInstruction")
    stu3_timing = isinstance(dosages, list) and any(
        isinstance(d, dict) and _timing(d.get("timing")) is not d.get("timing") for d in dosages
    )
    if "context" not in request and not isinstance(request.get("category"), dict) and not stu3_timing:
        return request
    converted = copy.deepcopy(request)
    context = converted.pop("context", None)
    if isinstance(context, dict) and "encounter" not in converted:
        converted["encounter"] = context
    if isinstance(converted.get("category"), dict):
        converted["category"] = [converted["category"]]
    if stu3_timing:
        for dosage in converted["dosageInstruction"]:
            if isinstance(dosage, dict) and "timing" in dosage:
                dosage["timing"] = _timing(dosage["timing"])
    return converted


# MedicationDispense statuses whose supply reached the patient when handed over (FHIR R4 medicationdispense-status).
_NOT_SUPPLIED = frozenset({"cancelled", "declined", "entered-in-error", "preparation"})


def dispense_as_issue(dispense: dict[str, Any]) -> dict[str, Any]:
    """A MedicationDispense as issue history: a completed MedicationRequest-shaped issue (a converted copy).

    ``whenHandedOver`` -> ``authoredOn`` (the day the supply started), ``quantity`` -> ``dispenseRequest.quantity``,
    ``daysSupply`` -> ``dispenseRequest.expectedSupplyDuration``, ``authorizingPrescription`` -> ``basedOn``; the
    dosage is the R4 Dosage it carries. One not handed over (no date, or cancelled, declined, in error, in
    preparation) is "cancelled": no supply.
    """
    handed_over = dispense.get("whenHandedOver")
    supplied = isinstance(handed_over, str) and dispense.get("status") not in _NOT_SUPPLIED
    issue: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": f"dispense-{dispense.get('id') or 'unidentified'}",
        "status": "completed" if supplied else "cancelled",
        "intent": "order",
    }
    for key in ("subject", "medicationCodeableConcept", "medicationReference", "contained", "dosageInstruction"):
        if key in dispense:
            issue[key] = copy.deepcopy(dispense[key])
    if supplied:
        issue["authoredOn"] = handed_over
    prescriptions = dispense.get("authorizingPrescription")
    if isinstance(prescriptions, list) and prescriptions:
        issue["basedOn"] = copy.deepcopy(prescriptions)
    request: dict[str, Any] = {}
    if isinstance(dispense.get("quantity"), dict):
        request["quantity"] = copy.deepcopy(dispense["quantity"])
    if isinstance(dispense.get("daysSupply"), dict):
        request["expectedSupplyDuration"] = copy.deepcopy(dispense["daysSupply"])
    if request:
        issue["dispenseRequest"] = request
    return issue
