"""The test PostgreSQL database (``RISKMAP_TEST_PG_URL``, started by ``.ci/run``).

Without the variable a PostgreSQL variant is skipped locally and FAILS when ``CI=true``.
"""

from __future__ import annotations

import os

import pytest
from sqlalchemy import create_engine, make_url, text

PG_URL = os.environ.get("RISKMAP_TEST_PG_URL", "")


def require_pg(what: str = "store tests") -> str:
    """The test database URL; fail under CI, skip otherwise, when it is not configured."""
    if not PG_URL:
        if os.environ.get("CI") == "true":
            pytest.fail(f"RISKMAP_TEST_PG_URL is not set: CI must run the {what} on PostgreSQL")
        pytest.skip(f"RISKMAP_TEST_PG_URL not set (PostgreSQL {what} run in CI)")
    return PG_URL


def fresh_pg_store() -> str:
    """The test database with riskmap's tables dropped (the store recreates them on open)."""
    from riskmap.store import tables as t

    url = require_pg()
    engine = create_engine(url)
    with engine.begin() as conn:
        t.METADATA.drop_all(conn)
    engine.dispose()
    return url


def fresh_pg_schema(schema: str, what: str = "serve tests") -> str:
    """The test database URL with a fresh, empty schema of its own first on the search path (for a
    ``riskmap serve`` process, whose store a table reset in another schema must not disturb)."""
    require_pg(what)
    engine = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)
