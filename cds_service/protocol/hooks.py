"""CDS Hooks request model: check a request body against its service and hook, and report every problem.

Each problem is an :class:`Issue` whose expression is the JSON path of the offending member
(``context.draftOrders.entry[2].resource``); all are collected, then raised together as one 400.
Unknown members are ignored, ``Bundle.type`` is not required.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from cds_service.clinical.record import PatientRecord, bare_patient_id, patient_id_of, record_from_resources
from cds_service.errors import BadRequest, Issue
from cds_service.protocol.jsonbody import ROOT
from cds_service.protocol.services import HISTORY_WINDOW_DAYS, OPTIONAL_PREFETCH, ContextField, ServiceDefinition


@dataclass(frozen=True)
class FhirAuthorization:
    """The client's OAuth token for its FHIR server. ``access_token`` is never logged or stored."""

    access_token: str = field(repr=False)
    token_type: str
    scope: str | None = None
    subject: str | None = None
    expires_in: int | None = None


@dataclass(frozen=True)
class HookRequest:
    """A checked CDS Hooks request. ``prefetch`` holds only the keys the client sent (a value may be None)."""

    service: ServiceDefinition
    hook: str
    hook_instance: str
    context: dict[str, Any]
    prefetch: dict[str, Any]
    fhir_server: str | None = None
    fhir_authorization: FhirAuthorization | None = None

    @property
    def patient_id(self) -> str:
        """The patient's resource id (a "Patient/123" reference, as some clients send, is read as "123")."""
        return bare_patient_id(str(self.context["patientId"]))


def is_text(value: Any) -> bool:
    """A string with something other than white space in it."""
    return isinstance(value, str) and value.strip() != ""


def _check_resource(value: Any, path: str, issues: list[Issue]) -> bool:
    if not isinstance(value, dict):
        issues.append(Issue("Must be a FHIR resource (a JSON object).", path))
        return False
    if not is_text(value.get("resourceType")):
        issues.append(Issue("A FHIR resource needs a resourceType.", f"{path}.resourceType", "required"))
        return False
    return True


def check_bundle(value: Any, path: str, issues: list[Issue]) -> None:
    """A Bundle as clients send it: resourceType Bundle, entries each holding a resource (type optional)."""
    if not _check_resource(value, path, issues):
        return
    if value["resourceType"] != "Bundle":
        issues.append(Issue(f"Expected a Bundle, got {value['resourceType']}.", f"{path}.resourceType"))
        return
    entries = value.get("entry", [])
    if entries is None:
        return
    if not isinstance(entries, list):
        issues.append(Issue("Bundle.entry must be an array.", f"{path}.entry"))
        return
    for index, entry in enumerate(entries):
        entry_path = f"{path}.entry[{index}]"
        if not isinstance(entry, dict):
            issues.append(Issue("A Bundle entry must be an object.", entry_path))
        elif "resource" not in entry:
            issues.append(Issue("A Bundle entry must hold a resource.", f"{entry_path}.resource", "required"))
        else:
            _check_resource(entry["resource"], f"{entry_path}.resource", issues)


def fetched_resource_problems(resource: dict[str, Any], path: str, patient_id: str) -> list[Issue]:
    """Problems with a resource read from the FHIR server: the same checks as prefetch the client sends."""
    issues: list[Issue] = []
    if _check_resource(resource, path, issues) and resource["resourceType"] == "Bundle":
        check_bundle(resource, path, issues)
    if not issues:
        check_same_patient(located_resources(path, resource), patient_id, issues)
    return issues


def located_resources(path: str, value: Any) -> list[tuple[str, Any]]:
    """(JSON path, resource) for each resource in a checked Bundle, array of resources or single resource."""
    if value is None:
        return []
    if isinstance(value, list):
        return [(f"{path}[{i}]", r) for i, r in enumerate(value)]
    if value.get("resourceType") == "Bundle":
        return [(f"{path}.entry[{i}].resource", r) for i, r in enumerate(bundle_resources(value))]
    return [(path, value)]


def bundle_resources(bundle: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The resources of a Bundle, in order (entries that hold no resource object are skipped)."""
    entries = bundle.get("entry") if isinstance(bundle, dict) else None
    if not isinstance(entries, list):
        return []
    return [e["resource"] for e in entries if isinstance(e, dict) and isinstance(e.get("resource"), dict)]


def _check_context_field(spec: ContextField, context: dict[str, Any], issues: list[Issue]) -> None:
    path = f"context.{spec.name}"
    if spec.name not in context or context[spec.name] is None:
        if spec.required:
            issues.append(Issue(f"The hook requires context.{spec.name}.", path, "required"))
        return
    value = context[spec.name]
    if spec.kind == "string":
        if not is_text(value):
            issues.append(Issue("Must be a non-empty string.", path))
    elif spec.kind == "string-array":
        if not isinstance(value, list) or not value:
            issues.append(Issue("Must be a non-empty array of strings.", path))
        else:
            for i, item in enumerate(value):
                if not is_text(item):
                    issues.append(Issue("Must be a non-empty string.", f"{path}[{i}]"))
    elif spec.kind == "bundle":
        check_bundle(value, path, issues)
    elif spec.kind == "bundle-or-array":
        if isinstance(value, list):
            for i, item in enumerate(value):
                _check_resource(item, f"{path}[{i}]", issues)
        else:
            check_bundle(value, path, issues)


def _check_selections(context: dict[str, Any], issues: list[Issue]) -> None:
    """order-select: every selection must name a resource in draftOrders (``Type/id``)."""
    selections, drafts = context.get("selections"), context.get("draftOrders")
    if not isinstance(selections, list) or not isinstance(drafts, dict):
        return
    present = {
        f"{r.get('resourceType')}/{r.get('id')}"
        for r in bundle_resources(drafts)
        if isinstance(r, dict) and r.get("id")
    }
    for i, selection in enumerate(selections):
        if is_text(selection) and selection not in present:
            issues.append(
                Issue(
                    f"Selection {selection!r} is not a resource in context.draftOrders.",
                    f"context.selections[{i}]",
                )
            )


def check_same_patient(resources: list[tuple[str, Any]], patient_id: str, issues: list[Issue]) -> None:
    """Refuse data about another patient: a wrong-patient medication list would give wrong-patient advice.

    Some clients send ``patientId`` as a reference ("Patient/123"); it is compared by its id.
    """
    patient_id = bare_patient_id(patient_id)
    for path, resource in resources:
        if not isinstance(resource, dict):
            continue
        if resource.get("resourceType") == "Patient":
            if resource.get("id") and resource["id"] != patient_id:
                issues.append(Issue(f"Patient {resource['id']!r} is not context.patientId.", f"{path}.id"))
            continue
        for member in ("subject", "patient"):  # DSTU2 MedicationOrder names its patient in ``patient``
            subject = resource.get(member)
            reference = subject.get("reference") if isinstance(subject, dict) else None
            subject_id = patient_id_of(reference)
            if subject_id is not None and subject_id != patient_id:
                issues.append(Issue(f"Subject {reference!r} is not context.patientId.", f"{path}.{member}.reference"))


def _check_authorization(body: dict[str, Any], issues: list[Issue]) -> FhirAuthorization | None:
    auth = body.get("fhirAuthorization")
    if auth is None:
        return None
    if not isinstance(auth, dict):
        issues.append(Issue("fhirAuthorization must be an object.", "fhirAuthorization"))
        return None
    for name in ("access_token", "token_type"):
        if not is_text(auth.get(name)):
            issues.append(Issue(f"fhirAuthorization.{name} is required.", f"fhirAuthorization.{name}", "required"))
    if is_text(auth.get("token_type")) and auth["token_type"].lower() != "bearer":
        issues.append(Issue("fhirAuthorization.token_type must be Bearer.", "fhirAuthorization.token_type"))
    if not is_text(body.get("fhirServer")):
        issues.append(Issue("fhirServer is required with fhirAuthorization.", "fhirServer", "required"))
    expires = auth.get("expires_in")
    if expires is not None and (isinstance(expires, bool) or not isinstance(expires, int)):
        issues.append(Issue("fhirAuthorization.expires_in must be an integer.", "fhirAuthorization.expires_in"))
    if any(i.expression and i.expression.startswith(("fhirAuthorization", "fhirServer")) for i in issues):
        return None
    return FhirAuthorization(
        access_token=auth["access_token"],
        token_type=auth["token_type"],
        scope=auth.get("scope") if isinstance(auth.get("scope"), str) else None,
        subject=auth.get("subject") if isinstance(auth.get("subject"), str) else None,
        expires_in=expires,
    )


def parse_hook_request(service: ServiceDefinition, body: Any) -> HookRequest:
    """Check ``body`` as a call to ``service``; raise one :class:`BadRequest` listing every problem."""
    if not isinstance(body, dict):
        raise BadRequest("A CDS Hooks request must be a JSON object.", ROOT)
    issues: list[Issue] = []
    hook = body.get("hook")
    if not is_text(hook):
        issues.append(Issue("hook is required.", "hook", "required"))
    elif hook != service.hook:
        issues.append(Issue(f"Service {service.id} answers the {service.hook} hook, not {hook}.", "hook"))
    if not is_text(body.get("hookInstance")):
        issues.append(Issue("hookInstance is required.", "hookInstance", "required"))
    fhir_server = body.get("fhirServer")
    if fhir_server is not None and not (
        isinstance(fhir_server, str) and fhir_server.startswith(("https://", "http://"))
    ):
        issues.append(Issue("fhirServer must be an absolute http(s) URL.", "fhirServer"))
    authorization = _check_authorization(body, issues)

    context = body.get("context")
    if not isinstance(context, dict):
        issues.append(Issue("context is required and must be an object.", "context", "required"))
        raise BadRequest(issues=issues)
    for spec in service.context:
        _check_context_field(spec, context, issues)
    if service.hook == "order-select":
        _check_selections(context, issues)

    prefetch = body.get("prefetch")
    if prefetch is None:
        prefetch = {}
    elif not isinstance(prefetch, dict):
        issues.append(Issue("prefetch must be an object.", "prefetch"))
        prefetch = {}
    for key in service.prefetch:
        value = prefetch.get(key)
        is_resource = value is not None and _check_resource(value, f"prefetch.{key}", issues)
        if is_resource and value["resourceType"] == "Bundle":
            check_bundle(value, f"prefetch.{key}", issues)
    if issues:
        raise BadRequest(issues=issues)

    located: list[tuple[str, Any]] = []
    for spec in service.context:
        if spec.kind in ("bundle", "bundle-or-array"):
            located += located_resources(f"context.{spec.name}", context.get(spec.name))
    for key in service.prefetch:
        located += located_resources(f"prefetch.{key}", prefetch.get(key))
    check_same_patient(located, context["patientId"], issues)
    if issues:
        raise BadRequest(issues=issues)

    return HookRequest(
        service=service,
        hook=hook,
        hook_instance=body["hookInstance"],
        context=context,
        prefetch={k: prefetch[k] for k in service.prefetch if k in prefetch},
        fhir_server=fhir_server.rstrip("/") if isinstance(fhir_server, str) else None,
        fhir_authorization=authorization,
    )


def build_record(request: HookRequest, prefetch: dict[str, dict[str, Any] | None]) -> PatientRecord:
    """Collect the patient's data from draft orders and resolved prefetch (nothing validated yet)."""
    located: list[tuple[str, str, dict[str, Any]]] = []
    for name in ("draftOrders", "medications"):
        located += [("draft", p, r) for p, r in located_resources(f"context.{name}", request.context.get(name))]
    for key, value in prefetch.items():
        located += [("existing", p, r) for p, r in located_resources(f"prefetch.{key}", value)]
    return record_from_resources(request.patient_id, located)


def within_history_window(prefetch: dict[str, dict[str, Any] | None], today: date) -> dict[str, dict[str, Any] | None]:
    """The prefetch with issue and dispense history (the optional history keys) dated more than
    HISTORY_WINDOW_DAYS before ``today`` left out (an entry with no readable date is kept)."""
    start = today - timedelta(days=HISTORY_WINDOW_DAYS)
    windowed = dict(prefetch)
    for key in OPTIONAL_PREFETCH:
        bundle = prefetch.get(key)
        if isinstance(bundle, dict) and isinstance(bundle.get("entry"), list):
            entries = [
                e for e in bundle["entry"] if not (isinstance(e, dict) and _dated_before(e.get("resource"), start))
            ]
            windowed[key] = {**bundle, "entry": entries}
    return windowed


def _dated_before(resource: Any, start: date) -> bool:
    """An issue (authoredOn) or dispense (whenHandedOver) dated before ``start``; False when it has no date."""
    if not isinstance(resource, dict):
        return False
    when = resource.get("whenHandedOver") if resource.get("resourceType") == "MedicationDispense" else None
    when = when or resource.get("authoredOn")
    try:
        return isinstance(when, str) and date.fromisoformat(when[:10]) < start
    except ValueError:
        return False
