"""The databases the store tests run on: SQLite always, PostgreSQL when ``OPIOID_CDS_TEST_DATABASE_URL`` names one.

Each PostgreSQL test gets its own fresh schema (dropped afterwards), so parallel runs never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ENV = "OPIOID_CDS_TEST_DATABASE_URL"
SKIP_REASON = f"PostgreSQL not tested: {ENV} is not set (.ci/run sets it when a server answers on 127.0.0.1:5432)"


def fresh_database_url(kind: str, tmp_path: Path) -> Iterator[str]:
    """Yield a URL for an empty database of this kind; clean it up afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path}/store.sqlite3"
        return
    base = os.environ.get(ENV)
    if not base:
        pytest.skip(SKIP_REASON)
    schema = f"t_{uuid.uuid4().hex}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: SQLite, and PostgreSQL when the environment names a server."""
    yield from fresh_database_url(request.param, tmp_path)
