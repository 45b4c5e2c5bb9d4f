"""Database helpers shared by the store modules: error translation and insert-or-ignore."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError

from riskmap.errors import ServiceUnavailable, StoreError, StoreLocked


def _first_line(exc: object) -> str:
    """A driver's message on one line (psycopg2 adds hints on further lines)."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


@contextlib.contextmanager
def guard(where: str) -> Iterator[None]:
    """Translate database errors: connection -> ServiceUnavailable, locked -> StoreLocked."""
    try:
        yield
    except OperationalError as exc:
        msg = _first_line(exc.orig)
        if "locked" in msg.lower():
            raise StoreLocked(f"store {where}: the database is locked by another process ({msg})") from None
        raise ServiceUnavailable(f"store {where}: database unavailable: {msg}") from None
    except IntegrityError as exc:
        raise StoreError(f"store {where}: integrity error: {_first_line(exc.orig)}") from None
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise ServiceUnavailable(f"store {where}: connection lost: {_first_line(exc.orig)}") from None
        raise StoreError(f"store {where}: {_first_line(exc.orig)}") from None
    except SQLAlchemyError as exc:
        raise StoreError(f"store {where}: {_first_line(exc)}") from None


def insert_ignore(conn: Connection, table: Any, rows: list[dict[str, Any]], unique: str) -> int:
    """Insert rows in batches, skipping those whose ``unique`` column exists; return how many were new."""
    if not rows:
        return 0
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    new = 0
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:  # executemany needs the same keys in every row
        groups.setdefault(tuple(sorted(row)), []).append(row)
    for batch in groups.values():
        stmt = (dialect.insert(table).on_conflict_do_nothing(index_elements=[unique])
                .returning(table.c[unique]))
        new += len(conn.execute(stmt, batch).all())
    return new
