"""Bounded schemathesis run against the live gunicorn server: no 5xx, every response as openapi.yaml says."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.helpers import ROOT, gunicorn_server

pytestmark = pytest.mark.integration

schema = schemathesis.openapi.from_path(ROOT / "openapi.yaml")
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    with gunicorn_server(tmp_path_factory.mktemp("fuzz"), {"OPIOID_CDS_AUTH": "off"}) as server:
        yield server


@schema.parametrize()
@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
def test_no_5xx_and_responses_match_the_schema(case, fuzz_server):
    case.call_and_validate(base_url=fuzz_server.url, checks=CHECKS, timeout=10)
