"""The store on SQLite and (when OPIOID_CDS_TEST_DATABASE_URL is set) PostgreSQL: idempotent, deadlock-free writes,
schema creation by several processes at once, and what the service answers while the database is down."""

from __future__ import annotations

import json
import multiprocessing
import random

import pytest
from sqlalchemy import create_engine, func, select

from cds_service.protocol.store import Store, StoreUnavailable, feedback, feedback_key
from tests.databases import database_url  # noqa: F401 - the fixture
from tests.helpers import FILES

SERVICE = "opioid-order-sign"
DEAD_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=1"  # port 1: nothing listens


def _items(count: int) -> list[dict]:
    return [
        {"card": f"card-{n % 7}", "outcome": "accepted", "outcomeTimestamp": f"2026-11-26T10:{n:02d}:00Z"}
        for n in range(count)
    ]


def _count(store: Store) -> tuple[int, int]:
    with store.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(feedback)).scalar_one()
        distinct = conn.execute(select(func.count(func.distinct(feedback.c.dedupe_key)))).scalar_one()
    return total, distinct


def test_feedback_sent_twice_is_stored_once(database_url):  # noqa: F811
    store = Store(database_url)
    store.create_schema()
    assert store.save_feedback(SERVICE, _items(3)) == (3, 0)
    assert store.save_feedback(SERVICE, _items(3)) == (0, 3)
    assert _count(store) == (3, 3)


def test_the_same_item_twice_in_one_batch_is_stored_once_and_counted_a_duplicate(database_url):  # noqa: F811
    store = Store(database_url)
    store.create_schema()
    item = _items(1)[0]
    assert store.save_feedback(SERVICE, [item, dict(item)]) == (1, 1)
    assert _count(store) == (1, 1)


def test_a_batch_with_known_and_new_items_stores_only_the_new(database_url):  # noqa: F811
    store = Store(database_url)
    store.create_schema()
    store.save_feedback(SERVICE, _items(2))
    assert store.save_feedback(SERVICE, _items(5)) == (3, 2)


def test_a_jti_seen_twice_is_a_replay(database_url):  # noqa: F811
    store = Store(database_url)
    store.create_schema()
    assert store.remember_jti("https://issuer", "jti-1", expires_at=2000.0, now=1000.0) is True
    assert store.remember_jti("https://issuer", "jti-1", expires_at=2000.0, now=1000.0) is False
    assert store.remember_jti("https://other-issuer", "jti-1", expires_at=2000.0, now=1000.0) is True


def test_an_expired_jti_is_cleaned_up_and_a_later_one_kept(database_url):  # noqa: F811
    store = Store(database_url)
    store.create_schema()
    store.remember_jti("https://issuer", "old", expires_at=1500.0, now=1000.0)
    store.remember_jti("https://issuer", "new", expires_at=3000.0, now=2000.0)  # old (1500 < 2000) is swept
    assert store.remember_jti("https://issuer", "old", expires_at=3500.0, now=2500.0) is True
    assert store.remember_jti("https://issuer", "new", expires_at=3500.0, now=2500.0) is False


def _send_shuffled(url: str, seed: int, rounds: int) -> tuple[int, int, int]:
    """One process: send every item of the shared set, in its own shuffled order and batches, ``rounds`` times."""
    store = Store(url)
    rng = random.Random(seed)
    stored = duplicates = errors = 0
    for _ in range(rounds):
        items = _items(30)
        rng.shuffle(items)
        for start in range(0, len(items), 10):
            try:
                s, d = store.save_feedback(SERVICE, items[start : start + 10])
                stored += s
                duplicates += d
            except Exception:
                errors += 1
    store.engine.dispose()
    return stored, duplicates, errors


def test_eight_processes_sending_the_same_feedback_shuffled_store_each_item_exactly_once(database_url):  # noqa: F811
    store = Store(database_url)
    store.create_schema()
    with multiprocessing.get_context("spawn").Pool(8) as pool:
        results = pool.starmap(_send_shuffled, [(database_url, seed, 5) for seed in range(8)])
    stored = sum(r[0] for r in results)
    duplicates = sum(r[1] for r in results)
    errors = sum(r[2] for r in results)
    # 8 processes x 5 rounds x 30 items = 1,200 items sent, 30 distinct: each stored once, the other 1,170 duplicates.
    assert errors == 0
    assert (stored, duplicates) == (30, 1170)
    assert _count(store) == (30, 30)
    expected = {feedback_key(SERVICE, item) for item in _items(30)}
    with store.engine.connect() as conn:
        assert set(conn.execute(select(feedback.c.dedupe_key)).scalars()) == expected  # none lost


def _create_schema(url: str) -> str:
    try:
        Store(url).create_schema()
        return "ok"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def test_four_processes_creating_the_schema_at_once_on_a_fresh_database_all_succeed(database_url):  # noqa: F811
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        outcomes = pool.map(_create_schema, [database_url] * 4)
    assert outcomes == ["ok"] * 4
    store = Store(database_url)
    assert store.save_feedback(SERVICE, _items(1)) == (1, 0)


def test_jti_check_fails_closed_with_503_when_the_database_is_down():
    store = Store(DEAD_POSTGRES)
    with pytest.raises(StoreUnavailable) as raised:
        store.remember_jti("https://issuer", "jti-1", expires_at=2000.0, now=1000.0)
    assert raised.value.status == 503


def test_feedback_is_503_not_500_when_the_database_is_down():
    with pytest.raises(StoreUnavailable):
        Store(DEAD_POSTGRES).save_feedback(SERVICE, _items(1))


def _database_goes_down(app) -> None:
    app.extensions["opioid_cds"].store.engine = create_engine(DEAD_POSTGRES)


def test_database_down_ready_is_503_and_the_hook_still_answers_cards(app, client):
    from tests.helpers import load_request

    _database_goes_down(app)
    assert client.get("/ready").status_code == 503
    response = client.post("/cds-services/opioid-order-sign", json=load_request("order-sign.json"))
    assert response.status_code == 200
    assert "cards" in response.get_json()
    example = FILES / "cds-hooks-examples" / "feedback-accepted.spec3.0-ballot.json"
    feedback_response = client.post("/cds-services/opioid-order-sign/feedback", json=json.loads(example.read_text()))
    assert feedback_response.status_code == 503


def test_database_down_a_signed_request_is_refused_with_503_not_accepted(secure_settings, es384_key):
    from cds_service.app import create_app
    from tests.helpers import claims_for, load_request

    app = create_app(secure_settings)
    _database_goes_down(app)
    token = es384_key.sign(claims_for("/cds-services/opioid-order-sign"))
    response = app.test_client().post(
        "/cds-services/opioid-order-sign",
        json=load_request("order-sign.json"),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 503  # fails closed: the jti could not be checked, so the token is not accepted
    assert "cards" not in response.get_json()
