"""Persistent store (SQLAlchemy): card feedback, stored idempotently, and the JWT ``jti`` replay cache.

SQLite by default (a file shared by all gunicorn workers, WAL mode); any SQLAlchemy URL through
``OPIOID_CDS_DATABASE_URL``. Nothing here ever holds an access token or a JWT.
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    insert,
    select,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError

metadata = MetaData()

feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dedupe_key", String(64), nullable=False, unique=True),
    Column("service_id", String(200), nullable=False),
    Column("card_uuid", String(200), nullable=False, index=True),
    Column("outcome", String(20), nullable=False),
    Column("outcome_timestamp", String(64), nullable=False),
    Column("accepted_suggestions", Text, nullable=True),
    Column("override_reason", Text, nullable=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
)

jwt_replay = Table(
    "jwt_replay",
    metadata,
    Column("key", String(64), primary_key=True),  # sha256 of iss + jti: no token material is kept
    Column("expires_at", Float, nullable=False, index=True),
)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def feedback_key(service_id: str, item: dict[str, Any]) -> str:
    """The identity of one feedback item: the same item sent twice has the same key."""
    canonical = json.dumps(
        [
            service_id,
            item["card"],
            item["outcome"],
            item["outcomeTimestamp"],
            item.get("acceptedSuggestions"),
            item.get("overrideReason"),
        ],
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


class Store:
    def __init__(self, database_url: str) -> None:
        if database_url.startswith("sqlite:///") and not database_url.startswith("sqlite:///:memory:"):
            Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(database_url, pool_pre_ping=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)

    def create_schema(self) -> None:
        """Create the tables if missing (safe when several workers start at once)."""
        for _attempt in range(5):
            try:
                metadata.create_all(self.engine)
                return
            except OperationalError as exc:  # another worker created a table between check and create
                if "already exists" not in str(exc):
                    raise
        metadata.create_all(self.engine)

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    def save_feedback(self, service_id: str, items: list[dict[str, Any]]) -> tuple[int, int]:
        """Store each item once; return (newly stored, already known)."""
        stored = duplicates = 0
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            for item in items:
                key = feedback_key(service_id, item)
                if conn.execute(select(feedback.c.id).where(feedback.c.dedupe_key == key)).first():
                    duplicates += 1
                    continue
                try:
                    with conn.begin_nested():
                        conn.execute(
                            insert(feedback).values(
                                dedupe_key=key,
                                service_id=service_id,
                                card_uuid=item["card"],
                                outcome=item["outcome"],
                                outcome_timestamp=item["outcomeTimestamp"],
                                accepted_suggestions=_json_or_none(item.get("acceptedSuggestions")),
                                override_reason=_json_or_none(item.get("overrideReason")),
                                received_at=now,
                            )
                        )
                    stored += 1
                except IntegrityError:  # the same item arrived concurrently through another worker
                    duplicates += 1
        return stored, duplicates

    def feedback_for_card(self, card_uuid: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(feedback).where(feedback.c.card_uuid == card_uuid).order_by(feedback.c.id))
            return [dict(r._mapping) for r in rows]

    def remember_jti(self, issuer: str, jti: str, expires_at: float, now: float | None = None) -> bool:
        """Record a token id until it expires; False if it was already seen (a replay)."""
        key = hashlib.sha256(f"{issuer}\n{jti}".encode()).hexdigest()
        now = time.time() if now is None else now
        with self.engine.begin() as conn:
            conn.execute(delete(jwt_replay).where(jwt_replay.c.expires_at < now))
            try:
                with conn.begin_nested():
                    conn.execute(insert(jwt_replay).values(key=key, expires_at=expires_at))
            except IntegrityError:
                return False
        return True


def _json_or_none(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)
