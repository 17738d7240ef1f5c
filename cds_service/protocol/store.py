"""Persistent store (SQLAlchemy): card feedback, stored idempotently, and the JWT ``jti`` replay cache.

SQLite by default (a file shared by all gunicorn workers, WAL mode); PostgreSQL through
``OPIOID_CDS_DATABASE_URL=postgresql+psycopg://...`` (psycopg 3). Nothing here ever holds an access token or a JWT.

Concurrency (issue #13): every write is one ``INSERT ... ON CONFLICT DO NOTHING`` whose rows are in a stable (sorted)
order, so two transactions inserting the same keys wait on each other in the same order and cannot deadlock; a
deadlock or serialization failure that happens anyway is retried a bounded number of times. Schema creation on
PostgreSQL runs under a transaction-scoped advisory lock, so workers that start at once create it one at a time.
When the database cannot be reached, the store raises :class:`StoreUnavailable` (503), never a 500.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    Boolean,
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
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from cds_service.errors import CdsError

log = logging.getLogger(__name__)

#: How many times one write is tried when the database reports a deadlock or a serialization failure.
WRITE_ATTEMPTS = 5
#: Any constant: the key of the PostgreSQL advisory lock held while the schema is created.
SCHEMA_LOCK_KEY = 0x0C0D5_5C4E
_RETRYABLE_SQLSTATES = {"40P01", "40001"}  # deadlock_detected, serialization_failure

T = TypeVar("T")


class StoreUnavailable(CdsError):
    """The service's database cannot be reached; try again later."""

    status = 503
    issue_code = "transient"


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
    # Prompt memory (issue #14): the practice that sent the feedback (JWT ``tenant``; "" without one) and whether
    # the card it answers is one this service issued (False: stored as unmatched, never dropped).
    Column("tenant", String(200), nullable=False, server_default=""),
    Column("matched", Boolean, nullable=True),
)

#: Prompt memory (issue #14): one row per card the service decided on, shown or held back. No patient identifier:
#: ``patient_key`` is the pseudonym from :mod:`cds_service.protocol.privacy`.
prompt_log = Table(
    "prompt_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("card_uuid", String(64), nullable=False, unique=True),
    Column("issued_at", DateTime(timezone=True), nullable=False, index=True),
    Column("patient_key", String(64), nullable=False, index=True),
    Column("tenant", String(200), nullable=False, server_default=""),
    Column("service_id", String(200), nullable=False),
    Column("rule_id", String(200), nullable=False),  # the card's source.topic: its most specific rule
    Column("rules", Text, nullable=False),  # JSON list: every rule the card stands for
    Column("indicator", String(20), nullable=False),
    Column("fingerprint", Text, nullable=False),  # JSON: OME band and total, products, drug classes
    Column("status", String(20), nullable=False),  # shown | snoozed | held (patient-view once a day)
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


def _retryable(exc: DBAPIError) -> bool:
    """A deadlock or serialization failure (PostgreSQL), or a busy database (SQLite): trying again can succeed."""
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate in _RETRYABLE_SQLSTATES:
        return True
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


def _unreachable(exc: DBAPIError) -> bool:
    """The database is down or the connection was lost (not a bug in our SQL)."""
    return bool(exc.connection_invalidated) or (
        isinstance(exc, OperationalError) and getattr(exc.orig, "sqlstate", None) in (None, "08000", "08001", "08006")
    )


class Store:
    def __init__(self, database_url: str) -> None:
        if database_url.startswith("sqlite:///") and not database_url.startswith("sqlite:///:memory:"):
            Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(database_url, pool_pre_ping=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)

    def _insert(self, table: Table) -> Any:
        """An INSERT in this database's dialect, so it can say ON CONFLICT DO NOTHING."""
        if self.engine.dialect.name == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    def _write(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in one transaction; retry it on deadlock/serialization failure (bounded); 503 when down."""
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                with self.engine.begin() as conn:
                    return work(conn)
            except DBAPIError as exc:
                if _retryable(exc) and attempt < WRITE_ATTEMPTS:
                    log.warning(
                        "store: %s, attempt %d of %d; retrying", type(exc.orig).__name__, attempt, WRITE_ATTEMPTS
                    )
                    time.sleep(random.uniform(0.01, 0.05) * attempt)  # noqa: S311 - jitter, not a secret
                    continue
                if _unreachable(exc) or _retryable(exc):
                    raise StoreUnavailable("The store is not reachable; try again later.") from exc
                raise
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def create_schema(self) -> None:
        """Create the tables if missing (safe when several workers start at once).

        PostgreSQL: under a transaction-scoped advisory lock, so concurrent creators queue instead of racing on
        pg_type; SQLite serialises DDL itself, and a table created between check and create is tolerated.
        """
        if self.engine.dialect.name == "postgresql":
            with self.engine.begin() as conn:
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
                metadata.create_all(conn, checkfirst=True)
            return
        for _attempt in range(5):
            try:
                metadata.create_all(self.engine)
                return
            except OperationalError as exc:  # another worker created a table between check and create
                if "already exists" not in str(exc) and "database is locked" not in str(exc):
                    raise
                time.sleep(0.05)
        metadata.create_all(self.engine)

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    def save_feedback(self, service_id: str, items: list[dict[str, Any]]) -> tuple[int, int]:
        """Store each item once; return (newly stored, already known). Idempotent and deadlock-free."""
        now = datetime.now(UTC)
        rows: dict[str, dict[str, Any]] = {}
        for item in items:
            key = feedback_key(service_id, item)
            rows.setdefault(
                key,
                {
                    "dedupe_key": key,
                    "service_id": service_id,
                    "card_uuid": item["card"],
                    "outcome": item["outcome"],
                    "outcome_timestamp": item["outcomeTimestamp"],
                    "accepted_suggestions": _json_or_none(item.get("acceptedSuggestions")),
                    "override_reason": _json_or_none(item.get("overrideReason")),
                    "received_at": now,
                },
            )
        if not rows:
            return 0, 0
        ordered = [rows[key] for key in sorted(rows)]  # one lock order for every writer: no deadlock cycle

        def work(conn: Connection) -> int:
            statement = (
                self._insert(feedback)
                .values(ordered)
                .on_conflict_do_nothing(index_elements=[feedback.c.dedupe_key])
                .returning(feedback.c.dedupe_key)
            )
            return len(conn.execute(statement).fetchall())

        stored = self._write(work)
        return stored, len(items) - stored

    def feedback_for_card(self, card_uuid: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(feedback).where(feedback.c.card_uuid == card_uuid).order_by(feedback.c.id))
            return [dict(r._mapping) for r in rows]

    def remember_jti(self, issuer: str, jti: str, expires_at: float, now: float | None = None) -> bool:
        """Record a token id until it expires; False if it was already seen (a replay).

        Fails closed: when the database cannot be reached this raises :class:`StoreUnavailable` (503), so an
        unverifiable token is never accepted.
        """
        key = hashlib.sha256(f"{issuer}\n{jti}".encode()).hexdigest()
        now = time.time() if now is None else now

        def work(conn: Connection) -> bool:
            statement = (
                self._insert(jwt_replay)
                .values(key=key, expires_at=expires_at)
                .on_conflict_do_nothing(index_elements=[jwt_replay.c.key])
                .returning(jwt_replay.c.key)
            )
            return conn.execute(statement).first() is not None

        fresh = self._write(work)
        try:  # housekeeping in its own transaction: a clash here must not turn a fresh token into an error
            with self.engine.begin() as conn:
                conn.execute(delete(jwt_replay).where(jwt_replay.c.expires_at < now))
        except DBAPIError as exc:
            log.warning("store: expired jti clean-up skipped (%s)", type(exc.orig).__name__)
        return fresh


def _json_or_none(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)
