"""The real service under gunicorn, on a loopback port, spoken to over HTTP."""

from __future__ import annotations

import concurrent.futures
import json
import uuid

import pytest
import requests

from tests.helpers import BASE_URL, FILES, claims_for, gunicorn_server, load_request, write_trust
from tests.openapi_check import errors

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dev-server")
    with gunicorn_server(tmp, {"OPIOID_CDS_AUTH": "off"}) as server:
        yield server


def test_discovery_over_http(dev_server):
    response = requests.get(dev_server.url + "/cds-services", timeout=5)
    assert response.status_code == 200
    assert errors("DiscoveryResponse", response.json()) == []
    assert len(response.json()["services"]) == 4


def test_order_sign_over_http(dev_server):
    response = requests.post(
        dev_server.url + "/cds-services/opioid-order-sign", json=load_request("order-sign.json"), timeout=5
    )
    assert response.status_code == 200
    cards = response.json()["cards"]
    assert errors("CdsResponse", response.json()) == []
    # morphine 60 mg MR bd + fentanyl 50 micrograms/hour: 240 mg/day OME, two regular strong opioids
    assert {c["source"]["topic"]["code"] for c in cards} == {"dose/high-ome", "combination/multiple-strong-opioids"}


def test_dev_mode_is_logged_loudly(dev_server):
    assert "DEVELOPMENT MODE" in dev_server.log()


def test_chunked_body_over_the_limit_is_413(dev_server):
    def chunks():
        yield b'{"hook": "order-sign", "pad": "'
        for _ in range(6 * 1024):
            yield b"x" * 1024
        yield b'"}'

    response = requests.post(
        dev_server.url + "/cds-services/opioid-order-sign",
        data=chunks(),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 413
    assert response.json()["resourceType"] == "OperationOutcome"


def test_bad_inputs_never_take_the_server_down(dev_server):
    bodies = [b"{", b"[]", b"null", b'{"hook": 1}', b"\xff\xfe", b"[" * 50_000, b'{"context": {"patientId": []}}']
    for body in bodies:
        response = requests.post(
            dev_server.url + "/cds-services/opioid-order-sign",
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=5,
        )
        assert 400 <= response.status_code < 500
    assert requests.get(dev_server.url + "/health", timeout=5).status_code == 200


def test_concurrent_duplicate_feedback_is_stored_once_across_workers(dev_server):
    card = str(uuid.uuid4())
    body = {
        "feedback": [
            {
                "card": card,
                "outcome": "accepted",
                "acceptedSuggestions": [{"id": str(uuid.uuid4())}],
                "outcomeTimestamp": "2026-11-23T10:00:00Z",
            }
        ]
    }
    distinct = [
        {"feedback": [{"card": card, "outcome": "overridden", "outcomeTimestamp": f"2026-11-23T10:0{i}:30Z"}]}
        for i in range(5)
    ]
    url = dev_server.url + "/cds-services/opioid-order-sign/feedback"
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda b: requests.post(url, json=b, timeout=10).status_code, [body] * 20 + distinct))
    assert statuses == [200] * 25
    from cds_service.protocol.store import Store

    store = Store(f"sqlite:///{dev_server.log_path.parent}/live.sqlite3")
    rows = store.feedback_for_card(card)
    assert len(rows) == 6  # the duplicate once, the five distinct overrides each once


@pytest.fixture(scope="module")
def secure_server(tmp_path_factory):
    from tests.helpers import SigningKey

    tmp = tmp_path_factory.mktemp("secure-server")
    key = SigningKey.generate("ES384")
    env = {
        "OPIOID_CDS_AUTH": "required",
        "OPIOID_CDS_PUBLIC_BASE_URL": BASE_URL,
        "OPIOID_CDS_TRUSTED_ISSUERS": str(write_trust(tmp, [key])),
    }
    with gunicorn_server(tmp, env) as server:
        yield server, key


def test_jwt_is_required_and_replay_is_caught_across_workers(secure_server):
    server, key = secure_server
    url = server.url + "/cds-services/opioid-order-sign"
    body = load_request("order-sign.json")
    assert requests.post(url, json=body, timeout=5).status_code == 401
    token = key.sign(claims_for("/cds-services/opioid-order-sign"))
    assert requests.post(url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=5).status_code == 200
    replays = [
        requests.post(url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=5).status_code
        for _ in range(6)
    ]  # several connections: the replays land on different workers
    assert replays == [401] * 6
    assert token not in server.log()


def test_serve_refuses_to_start_without_trusted_issuers(tmp_path):
    with (
        pytest.raises(RuntimeError, match="configuration error"),
        gunicorn_server(tmp_path, {"OPIOID_CDS_AUTH": "required"}),
    ):
        pass


def test_example_feedback_over_http(dev_server):
    body = json.loads(
        (FILES / "cds-hooks-examples" / "feedback-overridden-with-reason.spec3.0-ballot.json").read_text()
    )
    response = requests.post(dev_server.url + "/cds-services/opioid-patient-view/feedback", json=body, timeout=5)
    assert response.status_code == 200


def test_one_patient_has_one_pseudonym_across_workers(dev_server):
    import re

    url = dev_server.url + "/cds-services/opioid-patient-view"

    def seen():
        lines = [line for line in dev_server.log().splitlines() if "hook=patient-view" in line]
        return lines, {re.search(r"\[(\d+)\]", line).group(1) for line in lines}

    for _ in range(200):  # a new connection each time, until both workers have answered
        assert requests.post(url, json=load_request("patient-view.json"), timeout=5).status_code == 200
        if len(seen()[1]) == 2:
            break
    lines, workers = seen()
    assert len(workers) == 2
    assert len({re.search(r"patient=([0-9a-f]+)", line).group(1) for line in lines}) == 1
    assert "pat-1" not in dev_server.log()


@pytest.mark.integration
def test_a_token_in_the_query_string_never_reaches_the_gunicorn_access_log(tmp_path):
    token = "eyJhbGciOiJFUzM4NCJ9.query-string-secret.signature"
    with gunicorn_server(tmp_path, {"OPIOID_CDS_AUTH": "off"}, workers=1, extra_args=("--access-log",)) as server:
        assert requests.get(f"{server.url}/health?access_token={token}", timeout=5).status_code == 200
        assert requests.get(f"{server.url}/cds-services?access_token={token}", timeout=5).status_code == 200
        server.process.terminate()
        server.process.wait(timeout=15)
        log = server.log()
    assert "GET /health HTTP/1.1" in log  # the access log is on and names the path
    assert "query-string-secret" not in log and "access_token" not in log
