"""Property: whatever shape a MedicationRequest's elements take, the service answers 200 with cards or a 4xx
OperationOutcome, never 5xx (issue #10 item 6).

Every path the core reads (clinical/shape.py) is set to a value of any JSON type (nulls, booleans, huge and
negative numbers, empty strings, lists, objects, nesting within the body limits) or removed, one to four at a
time, in the draft being signed and in the prefetched order. Bounded and derandomized so CI time stays small: 300
examples through the Flask app, 40 through the real gunicorn server.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds_service.app import create_app
from tests.conftest import dev_settings
from tests.helpers import gunicorn_server, load_request
from tests.openapi_check import errors

SIGN = "/cds-services/opioid-order-sign"
D = ("dosageInstruction", 0)
PATHS: list[tuple[Any, ...]] = [
    ("id",),
    ("status",),
    ("intent",),
    ("subject",),
    ("subject", "reference"),
    ("authoredOn",),
    ("medicationCodeableConcept",),
    ("medicationCodeableConcept", "text"),
    ("medicationCodeableConcept", "coding"),
    ("medicationCodeableConcept", "coding", 0),
    ("medicationCodeableConcept", "coding", 0, "system"),
    ("medicationCodeableConcept", "coding", 0, "code"),
    ("medicationCodeableConcept", "coding", 0, "display"),
    ("medicationReference",),
    ("medicationReference", "reference"),
    ("contained",),
    ("contained", 0, "ingredient"),
    ("contained", 0, "ingredient", 0, "strength"),
    ("dosageInstruction",),
    D,
    (*D, "text"),
    (*D, "timing"),
    (*D, "timing", "repeat"),
    (*D, "timing", "repeat", "frequency"),
    (*D, "timing", "repeat", "frequencyMax"),
    (*D, "timing", "repeat", "period"),
    (*D, "timing", "repeat", "periodMax"),
    (*D, "timing", "repeat", "periodUnit"),
    (*D, "timing", "repeat", "timeOfDay"),
    (*D, "timing", "repeat", "when"),
    (*D, "timing", "code"),
    (*D, "timing", "code", "coding"),
    (*D, "route"),
    (*D, "route", "coding"),
    (*D, "doseAndRate"),
    (*D, "doseAndRate", 0),
    (*D, "doseAndRate", 0, "doseQuantity"),
    (*D, "doseAndRate", 0, "doseQuantity", "value"),
    (*D, "doseAndRate", 0, "doseQuantity", "unit"),
    (*D, "doseAndRate", 0, "doseRange"),
    (*D, "doseAndRate", 0, "doseRange", "low"),
    (*D, "doseAndRate", 0, "doseRange", "high", "value"),
    (*D, "doseQuantity"),  # STU3 style, moved into doseAndRate by the record
    (*D, "asNeededBoolean"),
    (*D, "asNeededCodeableConcept"),
    (*D, "maxDosePerPeriod"),
    (*D, "maxDosePerPeriod", "numerator"),
    (*D, "maxDosePerPeriod", "numerator", "value"),
    (*D, "maxDosePerPeriod", "denominator", "unit"),
    ("dosageInstruction", 1),
    ("dispenseRequest",),
    ("dispenseRequest", "quantity"),
    ("dispenseRequest", "quantity", "value"),
    ("dispenseRequest", "expectedSupplyDuration"),
    ("dispenseRequest", "expectedSupplyDuration", "value"),
    ("dispenseRequest", "expectedSupplyDuration", "unit"),
    ("dispenseRequest", "numberOfRepeatsAllowed"),
    ("dispenseRequest", "validityPeriod"),
    ("dispenseRequest", "validityPeriod", "start"),
    ("basedOn",),
    ("basedOn", 0),
    ("basedOn", 0, "reference"),
    ("priorPrescription",),
    ("courseOfTherapyType",),
    ("courseOfTherapyType", "coding"),
    ("extension",),
    ("extension", 0),
    ("extension", 0, "url"),
    ("extension", 0, "extension"),
    ("extension", 0, "extension", 0, "valueDateTime"),
]
KEYS = ["value", "unit", "code", "coding", "text", "repeat", "reference", "url", "low", "high", "numerator"]
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["", " ", "d", "h", "wk", "0", "-1", "1e400", "Use as directed", "2026-13-45", "Patient/x"])
    | st.text(max_size=8)
)
NESTED = st.recursive(
    LEAVES,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(KEYS), children, max_size=3),
    max_leaves=10,
)
# Scalars, flat containers and nesting about equally often (a plain recursive strategy draws mostly containers).
VALUES = st.one_of(
    LEAVES,
    st.lists(LEAVES, max_size=3),
    st.dictionaries(st.sampled_from(KEYS), LEAVES, max_size=3),
    NESTED,
)
REMOVE = st.sampled_from([False, False, False, True])  # set a value three times in four, else remove the element
MUTATION = st.tuples(st.sampled_from(["draft", "existing"]), st.sampled_from(PATHS), REMOVE, VALUES)


def _put(resource: dict[str, Any], path: tuple[Any, ...], remove: bool, value: Any) -> None:
    """Set (or remove) ``path`` in ``resource``, making the containers on the way if they are missing."""
    node: Any = resource
    for key, following in itertools.pairwise(path):
        child = node[key] if _has(node, key) else None
        if not isinstance(child, list if isinstance(following, int) else dict):
            child = [] if isinstance(following, int) else {}
            _assign(node, key, child)
        node = child
    if remove:
        if _has(node, path[-1]):
            del node[path[-1]]
    else:
        _assign(node, path[-1], value)


def _has(node: Any, key: Any) -> bool:
    return key in node if isinstance(node, dict) else isinstance(key, int) and key < len(node)


def _assign(node: Any, key: Any, value: Any) -> None:
    if isinstance(node, list):  # a list member past the end: the members before it are empty objects
        node.extend({} for _ in range(key + 1 - len(node)))
    node[key] = value


def _mutated(mutations: list[tuple[str, tuple[Any, ...], bool, Any]]) -> dict[str, Any]:
    body = load_request("order-sign.json")
    targets = {
        "draft": body["context"]["draftOrders"]["entry"][0]["resource"],
        "existing": body["prefetch"]["medications"]["entry"][0]["resource"],
    }
    for target, path, remove, value in mutations:
        _put(targets[target], path, remove, copy.deepcopy(value))
    return body


def _check(status: int, body: Any) -> None:
    assert status < 500, body
    if status == 200:
        assert isinstance(body.get("cards"), list)
        assert errors("CdsResponse", body) == []
        # the shape check, not the last resort (a "could not assess" card with a support reference for an unexpected
        # error), is what keeps these from failing. (An absurd total, say 10^40 a day, is "could not assess" by the
        # engine's own check of its facts, without a reference.)
        assert "support reference" not in str(body["cards"]), body
    else:
        assert 400 <= status < 500 and body["resourceType"] == "OperationOutcome", body


@pytest.fixture(scope="module")
def module_client(tmp_path_factory):
    return create_app(dev_settings(tmp_path_factory.mktemp("fuzz-shapes"))).test_client()


@settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(MUTATION, min_size=1, max_size=4))
def test_any_shape_of_a_medication_request_answers_cards_or_a_4xx_never_a_5xx(module_client, mutations):
    response = module_client.post(SIGN, json=_mutated(mutations))
    _check(response.status_code, response.get_json())


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    with gunicorn_server(tmp_path_factory.mktemp("fuzz-shapes-live"), {"OPIOID_CDS_AUTH": "off"}) as server:
        yield server


@pytest.mark.integration
@settings(max_examples=40, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(MUTATION, min_size=1, max_size=4))
def test_any_shape_of_a_medication_request_over_gunicorn_answers_no_5xx(live, mutations):
    response = requests.post(live.url + SIGN, json=_mutated(mutations), timeout=10)
    _check(response.status_code, response.json())
