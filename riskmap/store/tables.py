"""Table definitions of the warning store (SQLAlchemy Core), in the shape of the current schema version.

Times are :class:`UTCDateTime`: timezone-aware UTC in Python, ``timestamptz`` on
PostgreSQL and fixed-width ISO 8601 text (sortable) on SQLite.

Examples
--------
>>> sorted(METADATA.tables)[:4]
['approvals', 'archive_batches', 'cap_messages', 'events']
>>> from datetime import datetime, timedelta, timezone
>>> bj = timezone(timedelta(hours=8))
>>> UTCDateTime().process_bind_param(datetime(2026, 7, 1, 8, tzinfo=bj), SQLITE)
'2026-07-01T00:00:00.000000+00:00'
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

SQLITE = sqlite.dialect()


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored in UTC; naive values are refused."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(32))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"store: time {value!r} must be a timezone-aware datetime")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.isoformat(timespec="microseconds")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:  # pragma: no cover - a foreign writer
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


METADATA = MetaData()

schema_version = Table(
    "schema_version", METADATA,
    Column("version", Integer, primary_key=True),
    Column("applied_at", UTCDateTime, nullable=False),
    Column("riskmap_version", String(32), nullable=False, default=""),
)

runs = Table(
    "runs", METADATA,
    Column("id", String(64), primary_key=True),
    Column("source", String(200), nullable=False, default=""),
    Column("status", String(16), nullable=False),  # started / done / failed
    Column("failure_reason", Text, nullable=False, default=""),
    Column("now", UTCDateTime, nullable=False),
    Column("forecast_hash", String(64), nullable=False, default=""),
    Column("observed_hash", String(64), nullable=False, default=""),
    Column("rules_hash", String(64), nullable=False, default=""),
    Column("region_hash", String(64), nullable=False, default=""),
    Column("drill", Boolean, nullable=False, default=False),
    Column("operator", String(100), nullable=False, default=""),
    Column("attempts", Integer, nullable=False, default=1),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("duration_s", Float),
    Column("meta", Text, nullable=False, default="{}"),
)

warnings = Table(
    "warnings", METADATA,
    Column("village_code", String(12), primary_key=True),
    Column("hazard", String(32), primary_key=True),
    Column("level", Integer, nullable=False),
    Column("state", String(16), nullable=False),  # active / lifted / expired
    Column("since", UTCDateTime, nullable=False),
    Column("valid_until", UTCDateTime),
    Column("last_run_at", UTCDateTime, nullable=False),
    Column("last_run", String(64), ForeignKey("runs.id"), nullable=False),
    Column("rule", String(200), nullable=False, default=""),
    Column("reason", Text, nullable=False, default=""),
    Column("pending_level", Integer),
    Column("pending_since", UTCDateTime),
    Column("pending_runs", Integer, nullable=False, default=0),
    Column("manual", Boolean, nullable=False, default=False),
    Column("operator", String(100), nullable=False, default=""),
    Column("cap_identifier", String(200), nullable=False, default=""),
    Column("cap_sent", UTCDateTime),
    Column("internal", Boolean, nullable=False, default=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

events = Table(
    "events", METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(64), nullable=False, unique=True),
    Column("run_id", String(64), ForeignKey("runs.id"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("suppressed", Boolean, nullable=False, default=False),
    Column("village_code", String(12), nullable=False, index=True),
    Column("hazard", String(32), nullable=False),
    Column("old_level", Integer, nullable=False),
    Column("new_level", Integer, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("valid_until", UTCDateTime),
    Column("rule", String(200), nullable=False, default=""),
    Column("reason", Text, nullable=False, default=""),
    Column("value_mm", Float),
    Column("threshold_mm", Float),
    Column("window_h", Float),
    Column("window_end", UTCDateTime),
    Column("rules_hash", String(64), nullable=False, default=""),
    Column("input_hashes", Text, nullable=False, default="{}"),
    Column("manual", Boolean, nullable=False, default=False),
    Column("operator", String(100), nullable=False, default=""),
    Column("internal", Boolean, nullable=False, default=False),
    Column("action", Text, nullable=False, default=""),
    Column("recorded_at", UTCDateTime, nullable=False),
)

silences = Table(
    "silences", METADATA,
    Column("id", String(64), primary_key=True),
    Column("target", String(200), nullable=False),
    Column("village_codes", Text, nullable=False),  # JSON list
    Column("hazards", Text, nullable=False, default="[]"),  # JSON list, empty = all
    Column("until", UTCDateTime, nullable=False),
    Column("reason", Text, nullable=False),
    Column("operator", String(100), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("cleared_at", UTCDateTime),
    Column("cleared_by", String(100), nullable=False, default=""),
    # v3: why the silence was ended early (``riskmap unsilence --reason``)
    Column("cleared_reason", Text, nullable=False, default="", server_default=""),
)

approvals = Table(
    "approvals", METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subject", String(200), nullable=False),  # e.g. a run id or change key
    Column("kind", String(32), nullable=False),  # e.g. send, issue
    Column("decision", String(16), nullable=False),  # approved / rejected
    Column("operator", String(100), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("at", UTCDateTime, nullable=False),
    UniqueConstraint("subject", "kind", "operator", name="uq_approvals_subject_kind_operator"),
)

outbox = Table(
    "outbox", METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("idempotency_key", String(200), nullable=False, unique=True),  # run, change, contact, channel
    Column("run_id", String(64), ForeignKey("runs.id"), nullable=False),
    Column("change_key", String(64), nullable=False, default=""),
    Column("channel", String(16), nullable=False, default="sms"),
    Column("contact_name", String(200), nullable=False, default=""),
    Column("phone", String(32), nullable=False, index=True),  # index: v2 (supersede by phone)
    Column("role", String(32), nullable=False, default=""),
    Column("village_code", String(12), nullable=False, default=""),
    Column("hazard", String(32), nullable=False, default=""),
    Column("level", Integer, nullable=False, default=0),
    Column("text", Text, nullable=False),
    Column("segments", Integer, nullable=False, default=1),
    Column("status", String(16), nullable=False, default="queued", index=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("lease_until", UTCDateTime),
    Column("next_attempt_at", UTCDateTime),
    Column("gateway_id", String(200), nullable=False, default=""),
    Column("last_error", Text, nullable=False, default=""),
    Column("drill", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # v2: warning, repeat, summary, all_clear or escalation (what may supersede what)
    Column("kind", String(16), nullable=False, default="warning", server_default="warning"),
)

receipts = Table(
    "receipts", METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("outbox_id", Integer, ForeignKey("outbox.id"), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("raw", Text, nullable=False, default=""),
    Column("digest", String(64), nullable=False, unique=True),  # sha256(outbox_id, status, raw)
    Column("at", UTCDateTime, nullable=False),
)

cap_messages = Table(
    "cap_messages", METADATA,
    Column("identifier", String(200), primary_key=True),
    Column("run_id", String(64), ForeignKey("runs.id"), nullable=False),
    Column("msg_type", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("sent", UTCDateTime, nullable=False),
    Column("village_codes", Text, nullable=False),  # JSON list
    Column("hazard", String(32), nullable=False),
    Column("change_keys", Text, nullable=False, default="[]"),  # JSON list
    Column("references", Text, nullable=False, default=""),
    Column("xml", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

requests = Table(
    "requests", METADATA,
    # v5: operator acts (riskmap issue / lift) handed to a running ``riskmap serve`` (riskmap.store.requests)
    Column("id", String(32), primary_key=True),  # a hash of the idempotency key
    Column("idempotency_key", String(200), nullable=False, unique=True),
    Column("act_key", String(64), nullable=False, index=True),  # a hash of the act's parameters
    Column("kind", String(16), nullable=False),  # issue / lift
    Column("operator", String(100), nullable=False),
    Column("reason", Text, nullable=False),
    Column("params", Text, nullable=False),  # JSON: targets, hazard, level, until, drill, now
    Column("villages", Text, nullable=False, default="[]"),  # JSON list: named, then resolved, codes
    Column("origin", String(200), nullable=False, default=""),  # the CLI's host and pid
    Column("status", String(16), nullable=False, index=True),  # queued/working/applied/done/failed/expired
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime, nullable=False),
    Column("picked_at", UTCDateTime),
    Column("act_at", UTCDateTime),  # the act's time, fixed when the service first takes it up
    Column("run_id", String(64), nullable=False, default=""),
    Column("finished_at", UTCDateTime),
    Column("result", Text, nullable=False, default="{}"),  # JSON: the summary the CLI prints
    Column("error", Text, nullable=False, default=""),
    Column("exit_code", Integer, nullable=False, default=0),
)

archive_batches = Table(  # v4: where housekeeping archived finished outbox rows with their receipts
    "archive_batches", METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("file", String(200), nullable=False, index=True),  # its name in OUT/archive/
    Column("start_offset", BigInteger, nullable=False),  # the batch's gzip member: bytes [start, end)
    Column("end_offset", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),  # of those bytes
    Column("messages", Integer, nullable=False),
    Column("receipts", Integer, nullable=False),
    Column("first_id", Integer, nullable=False),  # outbox ids
    Column("last_id", Integer, nullable=False),
)
