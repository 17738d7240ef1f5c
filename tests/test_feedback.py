"""Feedback: checked per CDS Hooks 2.0, stored once per distinct item, never lost."""

from __future__ import annotations

import copy
import json
import random
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from tests.databases import database_url  # noqa: F401 - the fixture
from tests.helpers import FILES

PATH = "/cds-services/opioid-order-sign/feedback"
EXAMPLES = FILES / "cds-hooks-examples"


def _example(name: str) -> dict:
    return json.loads((EXAMPLES / f"feedback-{name}.spec3.0-ballot.json").read_text())


def _stored(app, card: str) -> list[dict]:
    return app.extensions["opioid_cds"].store.feedback_for_card(card)


@pytest.mark.parametrize("name", ["accepted", "overridden-no-reason", "overridden-with-reason"])
def test_spec_examples_are_accepted_and_stored(app, client, name):
    body = _example(name)
    response = client.post(PATH, json=body)
    assert response.status_code == 200, response.get_json()
    rows = _stored(app, body["feedback"][0]["card"])
    assert len(rows) == 1
    assert rows[0]["outcome"] == body["feedback"][0]["outcome"]
    assert rows[0]["service_id"] == "opioid-order-sign"


def test_same_feedback_twice_is_stored_once(app, client):
    body = _example("accepted")
    assert client.post(PATH, json=body).status_code == 200
    assert client.post(PATH, json=body).status_code == 200
    assert len(_stored(app, body["feedback"][0]["card"])) == 1


def test_different_feedback_for_the_same_card_is_all_kept(app, client):
    first = _example("overridden-with-reason")
    later = copy.deepcopy(first)
    later["feedback"][0]["outcomeTimestamp"] = "2020-12-11T00:05:00Z"
    later["feedback"][0]["overrideReason"]["userComment"] = "Discussed again with the patient."
    client.post(PATH, json=first)
    client.post(PATH, json=later)
    assert len(_stored(app, first["feedback"][0]["card"])) == 2


def test_a_batch_with_one_known_and_one_new_item_stores_the_new_one(app, client):
    known = _example("accepted")
    client.post(PATH, json=known)
    new_item = copy.deepcopy(known["feedback"][0])
    new_item["outcomeTimestamp"] = "2021-01-01T09:00:00+00:00"
    client.post(PATH, json={"feedback": [known["feedback"][0], new_item]})
    assert len(_stored(app, known["feedback"][0]["card"])) == 2


def test_feedback_survives_a_restart(tmp_path):
    from cds_service.app import create_app
    from tests.conftest import dev_settings

    body = _example("accepted")
    create_app(dev_settings(tmp_path)).test_client().post(PATH, json=body)
    restarted = create_app(dev_settings(tmp_path))
    assert len(_stored(restarted, body["feedback"][0]["card"])) == 1


def _item(**changes):
    item = copy.deepcopy(_example("accepted")["feedback"][0])
    for key, value in changes.items():
        if value is None:
            item.pop(key, None)
        else:
            item[key] = value
    return item


@pytest.mark.parametrize(
    ("item", "expression"),
    [
        (_item(card=None), "feedback[0].card"),
        (_item(card="not-a-uuid"), "feedback[0].card"),
        (_item(outcome="ignored"), "feedback[0].outcome"),
        (_item(outcome=None), "feedback[0].outcome"),
        (_item(acceptedSuggestions=None), "feedback[0].acceptedSuggestions"),
        (_item(acceptedSuggestions=[]), "feedback[0].acceptedSuggestions"),
        (_item(acceptedSuggestions=[{"label": "no id"}]), "feedback[0].acceptedSuggestions[0].id"),
        (_item(outcomeTimestamp=None), "feedback[0].outcomeTimestamp"),
        (_item(outcomeTimestamp="yesterday"), "feedback[0].outcomeTimestamp"),
        (_item(outcomeTimestamp="2020-12-11T00:00:00"), "feedback[0].outcomeTimestamp"),
        (_item(outcome="overridden", acceptedSuggestions=None, overrideReason={}), "feedback[0].overrideReason"),
        (
            _item(outcome="overridden", acceptedSuggestions=None, overrideReason={"reason": {"code": "x"}}),
            "feedback[0].overrideReason.reason.system",
        ),
        (_item(overrideReason={"userComment": "why"}), "feedback[0].overrideReason"),
        (
            _item(outcome="overridden", overrideReason={"userComment": "c"}),
            "feedback[0].acceptedSuggestions",
        ),
        ("not an object", "feedback[0]"),
    ],
)
def test_invalid_feedback_is_400_naming_the_member(app, client, item, expression):
    response = client.post(PATH, json={"feedback": [item]})
    assert response.status_code == 400
    expressions = [e for i in response.get_json()["issue"] for e in i["expression"]]
    assert expression in expressions


@pytest.mark.parametrize("body", [{}, {"feedback": []}, {"feedback": {}}, []])
def test_feedback_without_items_is_400(client, body):
    assert client.post(PATH, json=body).status_code == 400


def test_nothing_is_stored_when_any_item_is_invalid(app, client):
    good = _example("accepted")["feedback"][0]
    response = client.post(PATH, json={"feedback": [good, _item(outcome="maybe")]})
    assert response.status_code == 400
    assert _stored(app, good["card"]) == []


def test_feedback_for_unknown_service_is_404(client):
    assert client.post("/cds-services/nope/feedback", json=_example("accepted")).status_code == 404


def _shared_items(count: int) -> list[dict]:
    """``count`` distinct, valid feedback items (the cards' ids fixed, so every client sends the same set)."""
    return [
        {
            "card": str(uuid.uuid5(uuid.NAMESPACE_URL, f"opioid-cds-test-card-{n % 7}")),
            "outcome": "accepted",
            "outcomeTimestamp": f"2026-11-26T10:{n:02d}:00Z",
            "acceptedSuggestions": [{"id": "e56e1945-20b3-4393-8503-a1a20fd73152"}],
        }
        for n in range(count)
    ]


@pytest.mark.integration
def test_eight_workers_receiving_the_same_feedback_shuffled_answer_no_5xx_and_store_each_item_once(
    tmp_path,
    database_url,  # noqa: F811
):
    """Issue #13: 8 clients sending the same items in shuffled order got 32 of 120 answered 500 (deadlock)."""
    import requests

    from cds_service.protocol.store import Store, feedback
    from tests.helpers import gunicorn_server

    def client_run(server_url: str, seed: int) -> list[int]:
        rng = random.Random(seed)
        statuses = []
        with requests.Session() as session:
            for _ in range(5):
                items = _shared_items(30)
                rng.shuffle(items)
                for start in range(0, 30, 10):
                    response = session.post(server_url + PATH, json={"feedback": items[start : start + 10]}, timeout=30)
                    statuses.append(response.status_code)
        return statuses

    server_env = {"OPIOID_CDS_DATABASE_URL": database_url}
    with gunicorn_server(tmp_path, server_env, workers=8) as server, ThreadPoolExecutor(8) as pool:
        statuses = [s for run in pool.map(lambda seed: client_run(server.url, seed), range(8)) for s in run]
    # 8 clients x 5 rounds x 3 batches = 120 requests, every one answered 200; 30 distinct items, each stored once.
    assert len(statuses) == 120
    assert [s for s in statuses if s != 200] == []
    store = Store(database_url)
    with store.engine.connect() as conn:
        keys = list(conn.execute(select(feedback.c.dedupe_key)).scalars())
    assert len(keys) == len(set(keys)) == 30  # 0 duplicates, 0 lost
