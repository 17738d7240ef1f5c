"""Discovery is generated from the service definitions and uses CDS Hooks 2.0 prefetch tokens only."""

from __future__ import annotations

import re

import pytest

from cds_service.clinical.knowledge.codelists import load_codelist
from cds_service.protocol.services import SERVICES, SERVICES_BY_ID

TOKEN = re.compile(r"\{\{(.*?)\}\}")
USER_TOKENS = {"userPractitionerId", "userPractitionerRoleId", "userPatientId", "userRelatedPersonId"}


def test_discovery_lists_the_four_services_with_their_hooks(client):
    services = client.get("/cds-services").get_json()["services"]
    assert {s["id"]: s["hook"] for s in services} == {
        "opioid-order-select": "order-select",
        "opioid-order-sign": "order-sign",
        "opioid-patient-view": "patient-view",
        "opioid-medication-prescribe": "medication-prescribe",
    }


def test_discovery_is_the_service_definitions(client):
    assert client.get("/cds-services").get_json() == {"services": [s.discovery() for s in SERVICES]}


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.id)
def test_each_service_has_required_members_and_no_empty_ones(service):
    entry = service.discovery()
    for name in ("hook", "title", "description", "id", "usageRequirements"):
        assert isinstance(entry[name], str) and entry[name].strip(), name
    assert entry["prefetch"] and all(isinstance(v, str) and v for v in entry["prefetch"].values())


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.id)
def test_prefetch_tokens_are_2_0_tokens_of_primitive_context_fields(service):
    primitive = {f"context.{f.name}" for f in service.context if f.kind == "string"}
    for template in service.prefetch.values():
        for token in TOKEN.findall(template):
            assert token in primitive | USER_TOKENS, (service.id, token)


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.id)
def test_prefetch_asks_for_patient_medications_conditions_and_reviews(service):
    templates = service.prefetch
    assert templates["patient"] == "Patient/{{context.patientId}}"
    assert templates["medications"].startswith("MedicationRequest?patient={{context.patientId}}")
    assert "status=active" in templates["medications"]
    assert "_include=MedicationRequest:medication" in templates["medications"]
    assert "clinical-status=active" in templates["conditions"]
    assert templates["medicationReviewProcedures"].startswith("Procedure?patient={{context.patientId}}&code=")
    assert templates["medicationReviewObservations"].startswith("Observation?patient={{context.patientId}}&code=")


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.id)
def test_issue_history_keys_are_optional_newest_first_and_bounded(service):
    from cds_service.protocol.services import OPTIONAL_PREFETCH

    issues, dispenses = service.prefetch["issueHistory"], service.prefetch["dispenseHistory"]
    assert issues.startswith("MedicationRequest?patient={{context.patientId}}") and "status=completed" in issues
    assert "_sort=-authoredon" in issues and "_count=50" in issues
    assert dispenses.startswith("MedicationDispense?patient={{context.patientId}}")
    assert "_sort=-whenhandedover" in dispenses and "_count=50" in dispenses
    assert {"issueHistory", "dispenseHistory"} == OPTIONAL_PREFETCH
    assert "issueHistory" in service.usage_requirements and "dispenseHistory" in service.usage_requirements


def test_medication_review_searches_use_every_code_of_the_codelist():
    codes = load_codelist("medication_review_codes")
    assert len(codes) == 16  # MEDRVW_COD as copied from the shared list
    template = SERVICES_BY_ID["opioid-order-sign"].prefetch["medicationReviewProcedures"]
    searched = template.split("&code=", 1)[1].split(",")
    assert searched == [f"http://snomed.info/sct|{c.code}" for c in codes]


def test_every_codelist_row_names_its_source():
    assert all(c.source and c.system == "http://snomed.info/sct" for c in load_codelist("medication_review_codes"))


def test_order_select_requires_selections_and_draft_orders():
    required = {f.name for f in SERVICES_BY_ID["opioid-order-select"].context if f.required}
    assert required == {"userId", "patientId", "selections", "draftOrders"}


def test_medication_prescribe_is_the_deprecated_hook_with_medications():
    service = SERVICES_BY_ID["opioid-medication-prescribe"]
    assert service.deprecated_hook
    assert {f.name for f in service.context if f.required} == {"patientId", "medications"}
