from __future__ import annotations

import copy
from datetime import date

from cds_service.assess import Assessor
from cds_service.clinical.knowledge.loader import load_knowledge
from cds_service.clinical.record import normalise_dosage
from cds_service.protocol.hooks import build_record, parse_hook_request
from cds_service.protocol.services import SERVICES_BY_ID
from tests.helpers import load_request


def _record(name: str, service: str = "opioid-order-sign", body: dict | None = None):
    request = parse_hook_request(SERVICES_BY_ID[service], body or load_request(name))
    return build_record(request, request.prefetch)


def test_stu3_dose_quantity_reads_as_r4_dose_and_rate():
    r4 = _record("order-sign.json").orders[0].resource["dosageInstruction"]
    stu3 = _record("order-sign-stu3-dose-quantity.json").orders[0].resource["dosageInstruction"]
    assert stu3 == r4


def test_normalise_leaves_r4_dosage_untouched_and_does_not_copy():
    resource = load_request("order-sign.json")["context"]["draftOrders"]["entry"][0]["resource"]
    assert normalise_dosage(resource) is resource


def test_normalise_does_not_modify_the_request():
    body = load_request("order-sign-stu3-dose-quantity.json")
    before = copy.deepcopy(body)
    _record("", body=body)
    assert body == before


def test_draft_and_prefetched_orders_are_both_collected_with_their_origin():
    record = _record("order-sign.json")
    assert [(o.resource["id"], o.origin) for o in record.orders] == [
        ("draft-morphine", "draft"),
        ("rx-fentanyl", "existing"),
    ]
    assert record.patient["id"] == "pat-1"


def test_a_draft_also_in_the_prefetched_list_is_counted_once():
    body = load_request("order-sign.json")
    draft = copy.deepcopy(body["context"]["draftOrders"]["entry"][0]["resource"])
    body["prefetch"]["medications"]["entry"].append({"resource": draft})
    assert [o.resource["id"] for o in _record("", body=body).orders] == ["draft-morphine", "rx-fentanyl"]


def _assessed(body):
    record = _record("", body=body)
    Assessor.from_paths(load_knowledge()).assess("order-sign", record, date(2026, 11, 23))
    return record


def test_invalid_medication_request_is_kept_with_a_data_quality_note():
    body = load_request("order-sign.json")
    del body["context"]["draftOrders"]["entry"][0]["resource"]["intent"]
    record = _assessed(body)
    assert [o.resource["id"] for o in record.orders] == ["draft-morphine", "rx-fentanyl"]
    assert record.orders[0].problems
    assert any(n.startswith("context.draftOrders.entry[0].resource: intent") for n in record.data_quality)


def test_history_orders_are_kept_but_not_validated():
    body = load_request("order-sign.json")
    old = body["prefetch"]["medications"]["entry"][0]["resource"]
    old["status"] = "completed"
    del old["intent"]
    record = _assessed(body)
    assert record.orders[1].is_history and record.orders[1].problems == []


def test_orders_that_do_not_matter_are_not_validated():
    body = load_request("order-sign.json")
    other = body["prefetch"]["medications"]["entry"][0]["resource"]
    other["medicationCodeableConcept"] = {"text": "Amoxicillin 500mg capsules"}
    del other["intent"]
    record = _assessed(body)
    assert record.orders[1].problems == [] and record.data_quality == []


def test_medication_prescribe_array_of_medications_is_read():
    body = load_request("medication-prescribe.json")
    body["context"]["medications"] = [e["resource"] for e in body["context"]["medications"]["entry"]]
    record = _record("", service="opioid-medication-prescribe", body=body)
    assert [o.origin for o in record.orders] == ["draft", "existing"]
