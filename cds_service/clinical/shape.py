"""Shape check of the FHIR elements the core reads: a wrong-typed element is removed from the copy the core reads.

The core reads raw dicts and trusts each element it reads to have its FHIR JSON type (a string, a number, an
object, a list). One wrong-typed element (``intent`` a list, ``coding`` a number, ``periodUnit`` a list) would
otherwise crash the assessment. :func:`check_record` walks every element the core reads, against the table
below; an element of the wrong type is removed from a copy (copy on write: the raw resource is never mutated)
and becomes a data-quality note naming it by path (``...dosageInstruction[0].timing.repeat.periodUnit: expected
a string, got a list``). Nulls are left alone: the core reads them as absent. Elements the core does not read are
not checked.

Removing an element must never lower the OME silently. Each element of a MedicationRequest is in one category:

- ``dose``: the dose, frequency, route and text of a ``dosageInstruction`` (and the list itself). Without it the
  order could be read too low (the other lines alone, or the quantity supplied), so the order is not counted,
  with the element named as the reason (:func:`apply_to_ome`).
- ``cap``: ``maxDosePerPeriod`` and ``asNeeded*``. Without a maximum the highest reading only rises; but a PRN
  line read from its maximum alone would fall back on the quantity supplied, so an order estimated from the
  quantity supplied is not counted.
- ``medication`` and ``supply`` (what was ordered; the quantity supplied): removing them can only make the
  order uncountable, never lower; when the order is not counted, the element is named in the reason. Before a
  malformed medication is removed, what can be read of it is kept (``salvage``): a CodeableConcept sent as a list
  (its first object), a coding sent as a bare code (a SNOMED CT identifier) or name (its display), a code sent as
  a number; so an opioid is still identified and named, and flagged as malformed, not "an order with no
  medication".
- anything else (status, intent, dates, links, extensions): a data-quality note only. Without ``status`` an order
  counts as current; without ``basedOn`` a reissue counts as a second supply: both count more, not less.

Pure: no I/O; the tables are the FHIR R4 types of the elements the core reads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from cds_service.clinical.knowledge.model import Knowledge
from cds_service.clinical.ome import OmeResult, OrderOme, record_ome
from cds_service.clinical.record import PatientRecord

DOSE, CAP, MEDICATION, SUPPLY = "dose", "cap", "medication", "supply"
MALFORMED = "malformed: "  # the flag of an order not counted because an element was removed (and which)


@dataclass(frozen=True)
class Spec:
    """The FHIR JSON type of an element: string | number | boolean | object | list, or one of ``alternatives``."""

    kind: str
    members: Mapping[str, Spec] = field(default_factory=dict)  # object: the members the core reads
    item: Spec | None = None  # list: the type of each member
    category: str | None = None  # problems at or under this element carry this category
    alternatives: tuple[Spec, ...] = ()
    # a wrong-typed value -> (what can still be read of it, how it was read), or None: removed
    salvage: Callable[[Any], tuple[Any, str] | None] | None = None


STRING = Spec("string")
NUMBER = Spec("number")
BOOLEAN = Spec("boolean")


def obj(category: str | None = None, **members: Spec) -> Spec:
    return Spec("object", members, category=category)


def list_of(item: Spec, category: str | None = None) -> Spec:
    return Spec("list", item=item, category=category)


def tagged(spec: Spec, category: str) -> Spec:
    return dataclasses.replace(spec, category=category)


SNOMED = "http://snomed.info/sct"


# The Verhoeff check digit that ends every SNOMED CT identifier (SNOMED CT Technical Implementation Guide,
# "Check-digit computation"): the dihedral group D5 multiplication table and the position permutation.
_VERHOEFF_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_VERHOEFF_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)


def _verhoeff_valid(digits: str) -> bool:
    check = 0
    for index, digit in enumerate(reversed(digits)):
        check = _VERHOEFF_D[check][_VERHOEFF_P[index % 8][int(digit)]]
    return check == 0


def _number_as_code(value: Any) -> tuple[Any, str] | None:
    """A code sent as a JSON number (36127311000001102): its digits, as the string it should have been."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value), "read as the string " + str(value)
    return None


def _coding_of(value: Any) -> tuple[Any, str] | None:
    """A coding sent as a bare code or name: a SNOMED CT identifier (digits, valid check digit) is read as a
    SNOMED CT coding (dm+d codes are SNOMED CT identifiers), anything else as the coding's display."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not text.strip():
        return None
    text = text.strip()
    if text.isdigit() and 6 <= len(text) <= 18 and _verhoeff_valid(text):
        return {"system": SNOMED, "code": text, "display": text}, "read as the SNOMED CT code " + text
    return {"display": text}, "read as the text " + repr(text)


def _concept_of(value: Any) -> tuple[Any, str] | None:
    """A CodeableConcept sent as a list (its first object is read) or as a bare name (read as its text)."""
    if isinstance(value, list):
        first = next((item for item in value if isinstance(item, dict)), None)
        if first is not None:
            return first, "its first object read"
        texts = [item for item in value if isinstance(item, str) and item.strip()]
        return ({"text": texts[0]}, "read as the text " + repr(texts[0])) if texts else None
    if isinstance(value, str) and value.strip():
        return {"text": value}, "read as the text " + repr(value)
    return None


def _codings_of(value: Any) -> tuple[Any, str] | None:
    """``coding`` sent as one object instead of a list of them."""
    return ([value], "read as a list of one") if isinstance(value, dict) else None


CODING = dataclasses.replace(
    obj(system=STRING, code=Spec("string", salvage=_number_as_code), display=STRING), salvage=_coding_of
)
CONCEPT = dataclasses.replace(
    obj(coding=Spec("list", item=CODING, salvage=_codings_of), text=STRING), salvage=_concept_of
)
REFERENCE = obj(reference=STRING, display=STRING)
QUANTITY = obj(value=NUMBER, unit=STRING, code=STRING, system=STRING)
RANGE = obj(low=QUANTITY, high=QUANTITY)
RATIO = obj(numerator=QUANTITY, denominator=QUANTITY)
PERIOD = obj(start=STRING, end=STRING)
TIMING = obj(
    repeat=obj(
        frequency=NUMBER,
        frequencyMax=NUMBER,
        period=NUMBER,
        periodMax=NUMBER,
        periodUnit=STRING,
        timeOfDay=list_of(STRING),
        when=list_of(STRING),
    ),
    code=CONCEPT,
)
DOSAGE = obj(
    text=STRING,
    timing=TIMING,
    route=CONCEPT,
    doseAndRate=list_of(obj(doseQuantity=QUANTITY, doseRange=RANGE)),
    asNeededBoolean=tagged(BOOLEAN, CAP),
    asNeededCodeableConcept=tagged(CONCEPT, CAP),
    # R4 has one Ratio; R5 and some clients send a list (clinical/dosage.py reads both).
    maxDosePerPeriod=Spec("ratio", alternatives=(RATIO, list_of(RATIO)), category=CAP),
)
EXTENSION = obj(url=STRING, valueDateTime=STRING, extension=list_of(obj(url=STRING, valueDateTime=STRING)))
MEDICATION_RESOURCE = obj(
    id=STRING,
    code=CONCEPT,
    form=CONCEPT,
    ingredient=list_of(obj(itemCodeableConcept=CONCEPT, itemReference=REFERENCE, strength=RATIO)),
)
MEDICATION_REQUEST = obj(
    id=STRING,
    status=STRING,
    intent=STRING,
    subject=REFERENCE,
    authoredOn=STRING,
    medicationCodeableConcept=tagged(CONCEPT, MEDICATION),
    medicationReference=tagged(REFERENCE, MEDICATION),
    contained=list_of(MEDICATION_RESOURCE, category=MEDICATION),
    dosageInstruction=list_of(DOSAGE, category=DOSE),
    dispenseRequest=obj(
        quantity=tagged(QUANTITY, SUPPLY),
        expectedSupplyDuration=tagged(QUANTITY, SUPPLY),
        numberOfRepeatsAllowed=NUMBER,
        validityPeriod=PERIOD,
    ),
    basedOn=list_of(REFERENCE),
    priorPrescription=REFERENCE,
    courseOfTherapyType=CONCEPT,
    extension=list_of(EXTENSION),
)
CLINICAL_EVENT = obj(
    id=STRING,
    status=STRING,
    code=CONCEPT,
    clinicalStatus=CONCEPT,
    verificationStatus=CONCEPT,
    performedDateTime=STRING,
    effectiveDateTime=STRING,
    issued=STRING,
    recordedDate=STRING,
    onsetDateTime=STRING,
    performedPeriod=PERIOD,
    effectivePeriod=PERIOD,
)
PATIENT = obj(id=STRING, birthDate=STRING)

_ARTICLE = {"string": "a string", "number": "a number", "boolean": "a boolean", "object": "an object"}
_ARTICLE |= {"list": "a list", "ratio": "a Ratio (an object)"}


@dataclass(frozen=True)
class Problem:
    path: str  # from the resource: "dosageInstruction[0].timing.repeat.periodUnit"
    message: str  # "dosageInstruction[0].timing.repeat.periodUnit: expected a string, got a list"
    category: str | None


@dataclass
class ShapeReport:
    """What the shape check removed: notes for the record, and each order's problems (by the order's resource)."""

    notes: list[str] = field(default_factory=list)
    orders: dict[int, list[Problem]] = field(default_factory=dict)  # id(cleaned resource) -> problems

    def problems_of(self, resource: dict[str, Any]) -> list[Problem]:
        return self.orders.get(id(resource), [])


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "an empty string" if not value else "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _numeric_text(value: str) -> bool:
    try:
        return Decimal(value.strip()).is_finite()
    except (InvalidOperation, ValueError):
        return False


def _fits(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "number":  # a JSON number; a numeric string is read as one (clinical/dosage.py), so it is kept
        return (isinstance(value, int | float) and not isinstance(value, bool)) or (
            isinstance(value, str) and _numeric_text(value)
        )
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "list":
        return isinstance(value, list)
    return False


def _walk(value: Any, spec: Spec, path: str, category: str | None, found: list[Problem]) -> tuple[bool, Any]:
    """(keep, value): ``keep`` False when ``value`` is of the wrong type; ``value`` is a copy if a member changed."""
    category = spec.category or category
    if value is None:
        return True, value
    if spec.alternatives:
        match = next((alt for alt in spec.alternatives if _fits(value, alt.kind)), None)
        if match is None:
            found.append(Problem(path, f"{path}: expected {_ARTICLE[spec.kind]}, got {_type_name(value)}", category))
            return False, None
        return _walk(value, match, path, category, found)
    if not _fits(value, spec.kind):
        message = f"{path}: expected {_ARTICLE[spec.kind]}, got {_type_name(value)}"
        salvaged = spec.salvage(value) if spec.salvage is not None else None
        if salvaged is not None and _fits(salvaged[0], spec.kind):  # what can be read is kept, and named
            found.append(Problem(path, f"{message}: {salvaged[1]}", category))
            return _walk(salvaged[0], dataclasses.replace(spec, salvage=None), path, category, found)
        found.append(Problem(path, message, category))
        return False, None
    if spec.kind == "object" and spec.members:
        copied: dict[str, Any] | None = None
        for key, member in spec.members.items():
            if key not in value:
                continue
            keep, new = _walk(value[key], member, f"{path}.{key}" if path else key, category, found)
            if keep and new is value[key]:
                continue
            copied = dict(value) if copied is None else copied
            if keep:
                copied[key] = new
            else:
                del copied[key]
        return True, value if copied is None else copied
    if spec.kind == "list" and spec.item is not None:
        items: list[Any] = []
        changed = False
        for index, item in enumerate(value):
            keep, new = _walk(item, spec.item, f"{path}[{index}]", category, found)
            if keep:
                items.append(new)
            changed = changed or not keep or new is not item
        return True, items if changed else value
    return True, value


def checked(resource: dict[str, Any], spec: Spec) -> tuple[dict[str, Any], list[Problem]]:
    """``resource`` with every wrong-typed element ``spec`` names removed (a copy if any was), and the problems."""
    found: list[Problem] = []
    _, cleaned = _walk(resource, spec, "", None, found)
    return cleaned, found


def _label(resource: dict[str, Any], index: int) -> str:
    kind = str(resource.get("resourceType"))
    return f"{kind}/{resource['id']}" if isinstance(resource.get("id"), str) else f"{kind}[{index}]"


def check_record(record: PatientRecord) -> ShapeReport:
    """Replace each resource of ``record`` by its checked copy; the problems become data-quality notes."""
    report = ShapeReport()
    for order in record.orders:
        order.resource, found = checked(order.resource, MEDICATION_REQUEST)
        if found:
            report.orders[id(order.resource)] = found
            report.notes += [f"{order.path}.{p.message}" for p in found]
    for key, medication in list(record.medications.items()):
        record.medications[key], found = checked(medication, MEDICATION_RESOURCE)
        report.notes += [f"{key}.{p.message}" for p in found]
    for events in (record.conditions, record.procedures, record.observations):
        for index, event in enumerate(events):
            events[index], found = checked(event, CLINICAL_EVENT)
            report.notes += [f"{_label(event, index)}.{p.message}" for p in found]
    if record.patient is not None:
        record.patient, found = checked(record.patient, PATIENT)
        report.notes += [f"Patient.{p.message}" for p in found]
    record.data_quality += report.notes
    return report


def _uncount(order: OrderOme, reason: str) -> None:
    order.counted = False
    order.reason = reason
    for name in ("ome_min", "ome_max", "mg_per_day_min", "mg_per_day_max", "units_per_day_min", "units_per_day_max"):
        setattr(order, name, None)
    order.factor = order.factor_source = order.factor_basis = order.factor_route = None


def apply_to_ome(ome: OmeResult, report: ShapeReport) -> None:
    """Orders that lost an element their dose depends on are not counted, with the element as the reason."""
    for order in ome.orders:
        problems = [p for p in report.problems_of(order.resource) if p.category in (DOSE, CAP, MEDICATION, SUPPLY)]
        if not problems:
            continue
        named = "; ".join(p.message for p in problems[:3]) + ("; …" if len(problems) > 3 else "")
        if order.counted:
            lost_dose = any(p.category == DOSE for p in problems)
            estimated = order.dose_basis == "dispense quantity" and any(p.category == CAP for p in problems)
            if lost_dose or estimated:
                _uncount(order, f"malformed dosage: {named}")
                order.flags.append(MALFORMED + named)
            elif any(p.category == MEDICATION for p in problems):  # what was ordered, read from a malformed element
                order.flags.append(MALFORMED + named)
        elif order.blocks_completeness or (order.product is None and order.identified.problem):
            if order.product is None and any(p.category == MEDICATION for p in problems):
                # what was ordered is malformed, not missing: never ignored as an empty draft
                order.identified = dataclasses.replace(order.identified, problem=named)
            order.reason = f"{order.reason}: {named}" if order.reason else named
            if order.product is not None or any(p.category == MEDICATION for p in problems):
                order.flags.append(MALFORMED + named)  # an opioid, or an order that may be one


def checked_ome(record: PatientRecord, knowledge: Knowledge, profile: str = "uk") -> OmeResult:
    """The OME of ``record`` after the shape check (for callers without an Assessor: the CLI)."""
    report = check_record(record)
    ome = record_ome(record, knowledge, profile)
    apply_to_ome(ome, report)
    return ome
