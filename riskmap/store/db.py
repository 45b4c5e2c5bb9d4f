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
    return len(insert_ignore_returning(conn, table, rows, unique))


def insert_ignore_returning(conn: Connection, table: Any, rows: list[dict[str, Any]], unique: str,
                            *columns: str) -> list[Any]:
    """:func:`insert_ignore` returning, for each new row, ``unique`` and ``columns`` (e.g. the ``id``)."""
    if not rows:
        return []
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    new: list[Any] = []
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:  # executemany needs the same keys in every row
        groups.setdefault(tuple(sorted(row)), []).append(row)
    cols = [table.c[unique], *(table.c[c] for c in columns if c != unique)]
    for batch in groups.values():
        stmt = dialect.insert(table).on_conflict_do_nothing(index_elements=[unique]).returning(*cols)
        new += conn.execute(stmt, batch).all()
    return new
