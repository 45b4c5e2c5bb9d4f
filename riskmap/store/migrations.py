"""Versioned schema migrations of the warning store (v1 onwards).

The ``schema_version`` table records every applied version.  :func:`migrate` applies
the missing ones, each in its own transaction, and refuses a database whose schema is
newer than this riskmap knows (:class:`~riskmap.errors.StoreError`), so an older
riskmap never writes a newer schema.

To change the schema: append a function to :data:`MIGRATIONS` that alters the tables
(``ALTER TABLE …`` through ``conn.execute``) and update :mod:`riskmap.store.tables` to
the new shape; never edit an applied migration.

Examples
--------
>>> from sqlalchemy import create_engine
>>> engine = create_engine("sqlite://")
>>> migrate(engine)
5
>>> migrate(engine)  # idempotent
5
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, func, inspect, select, text

from riskmap.errors import StoreError
from riskmap.store import tables as t

APPEND_ONLY = ("events", "receipts")
"""Tables whose rows may never be updated or deleted (database triggers refuse it).  From v4 a receipt
may be deleted only together with its message, when housekeeping archives both (:func:`_v4`)."""


def _append_only(conn: Connection, table: str) -> None:
    msg = f"{table} is append-only"
    if conn.dialect.name == "sqlite":
        for op in ("UPDATE", "DELETE"):
            conn.exec_driver_sql(
                f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{msg}'); END")
    elif conn.dialect.name == "postgresql":
        conn.execute(text(
            "CREATE OR REPLACE FUNCTION riskmap_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$"))
        conn.execute(text(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION riskmap_append_only()"))


def _v1(conn: Connection) -> None:
    """Schema v1: runs, warnings, events, silences, approvals, outbox, receipts, cap_messages."""
    names = [n for n in t.METADATA.tables if n != "schema_version"]
    t.METADATA.create_all(conn, tables=[t.METADATA.tables[n] for n in names])
    for table in APPEND_ONLY:
        _append_only(conn, table)


def _v2(conn: Connection) -> None:
    """Schema v2: ``outbox.kind`` (warning, repeat, summary, all_clear, escalation) and an index on
    ``outbox.phone``, so a new message can supersede an older pending one to the same phone.

    ``_v1`` creates the tables from the current :mod:`~riskmap.store.tables`, so a database created
    from scratch already has both: each step is skipped when present.
    """
    cols = {c["name"] for c in inspect(conn).get_columns("outbox")}
    if "kind" not in cols:
        conn.execute(text("ALTER TABLE outbox ADD COLUMN kind VARCHAR(16) NOT NULL DEFAULT 'warning'"))
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_outbox_phone ON outbox (phone)"))


def _v3(conn: Connection) -> None:
    """Schema v3: ``silences.cleared_reason``, why an operator ended a silence early
    (``riskmap unsilence ID --by NAME --reason TEXT``); silences cleared before v3 keep an empty reason.

    Skipped when present (a database created from scratch by ``_v1`` already has it).
    """
    cols = {c["name"] for c in inspect(conn).get_columns("silences")}
    if "cleared_reason" not in cols:
        conn.execute(text("ALTER TABLE silences ADD COLUMN cleared_reason TEXT NOT NULL DEFAULT ''"))


_RECEIPT_GONE = "receipts is append-only (a receipt leaves the store only with its archived message)"


def _v4(conn: Connection) -> None:
    """Schema v4: housekeeping archives finished outbox rows together with their receipts.

    - ``archive_batches`` (append-only): one row per archived batch — the file in ``OUT/archive/``, the
      byte range of its gzip member and that range's sha256, how many messages and receipts, the
      first and last outbox id — so the store says where every archived message went.
    - ``receipts`` stay append-only, except that a receipt may be deleted while its message is being
      archived (the archive transaction marks the message ``archived``, deletes its receipts, then
      the message).  Updates are refused as before; any other DELETE still fails.

    The table is skipped where present (``_v1`` creates it in a database made from scratch); the
    triggers are replaced, so the step can run on either.
    """
    t.archive_batches.create(conn, checkfirst=True)
    if conn.dialect.name == "sqlite":
        for op in ("UPDATE", "DELETE"):
            name = f"archive_batches_no_{op.lower()}"
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
            conn.exec_driver_sql(f"CREATE TRIGGER {name} BEFORE {op} ON archive_batches "
                                 "BEGIN SELECT RAISE(ABORT, 'archive_batches is append-only'); END")
        conn.exec_driver_sql("DROP TRIGGER IF EXISTS receipts_no_delete")
        conn.exec_driver_sql(
            "CREATE TRIGGER receipts_no_delete BEFORE DELETE ON receipts WHEN NOT EXISTS (SELECT 1 "
            "FROM outbox WHERE id = OLD.outbox_id AND status = 'archived') "
            f"BEGIN SELECT RAISE(ABORT, '{_RECEIPT_GONE}'); END")
    elif conn.dialect.name == "postgresql":
        conn.execute(text(
            "CREATE OR REPLACE FUNCTION riskmap_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$"))
        conn.execute(text("DROP TRIGGER IF EXISTS archive_batches_append_only ON archive_batches"))
        conn.execute(text("CREATE TRIGGER archive_batches_append_only BEFORE UPDATE OR DELETE ON "
                          "archive_batches FOR EACH ROW EXECUTE FUNCTION riskmap_append_only()"))
        conn.execute(text(
            "CREATE OR REPLACE FUNCTION riskmap_receipts_guard() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN IF TG_OP = 'DELETE' AND EXISTS (SELECT 1 FROM outbox WHERE id = OLD.outbox_id "
            f"AND status = 'archived') THEN RETURN OLD; END IF; RAISE EXCEPTION '{_RECEIPT_GONE}'; END $$"))
        conn.execute(text("DROP TRIGGER IF EXISTS receipts_append_only ON receipts"))
        conn.execute(text("CREATE TRIGGER receipts_append_only BEFORE UPDATE OR DELETE ON receipts "
                          "FOR EACH ROW EXECUTE FUNCTION riskmap_receipts_guard()"))


def _v5(conn: Connection) -> None:
    """Schema v5: ``requests``, operator acts (``riskmap issue`` / ``lift``) handed to a running
    ``riskmap serve`` through the store, applied by it under its cycle lock (:mod:`riskmap.store.requests`).

    Skipped when present (a database created from scratch by ``_v1`` already has it).
    """
    t.requests.create(conn, checkfirst=True)


MIGRATIONS: dict[int, Callable[[Connection], None]] = {1: _v1, 2: _v2, 3: _v3, 4: _v4, 5: _v5}
"""Version -> migration function; the highest key is the version this riskmap writes."""
CURRENT = max(MIGRATIONS)


def schema_version(engine: Engine) -> int:
    """The database's schema version (0 for an empty database)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("schema_version"):
            return 0
        return int(conn.execute(select(func.max(t.schema_version.c.version))).scalar() or 0)


def migrate(engine: Engine, riskmap_version: str = "") -> int:
    """Bring the schema to :data:`CURRENT`; return the version.

    Raises
    ------
    StoreError
        When the database's schema is newer than :data:`CURRENT`.
    """
    with engine.begin() as conn:
        t.schema_version.create(conn, checkfirst=True)
    found = schema_version(engine)
    if found > CURRENT:
        raise StoreError(
            f"store {engine.url.render_as_string(hide_password=True)}: schema v{found} is newer than this "
            f"riskmap knows (v{CURRENT}); upgrade riskmap before writing to it")
    for version in range(found + 1, CURRENT + 1):
        with engine.begin() as conn:
            MIGRATIONS[version](conn)
            conn.execute(t.schema_version.insert().values(
                version=version, applied_at=datetime.now(UTC), riskmap_version=riskmap_version))
    return CURRENT
