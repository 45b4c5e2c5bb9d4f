"""The durable warning store (SQLAlchemy 2; SQLite by default, PostgreSQL by URL).

>>> from riskmap.store import Store, RunMeta, run_key
"""

from riskmap.store.apply import Applied, apply_expiry, apply_manual, apply_run
from riskmap.store.hold import ServiceHold, ensure_not_held, held_by, hold_store
from riskmap.store.migrations import CURRENT as SCHEMA_VERSION
from riskmap.store.records import (
    CapRow,
    EventRecord,
    OutboxRecord,
    OutboxRow,
    RunMeta,
    RunRecord,
    outbox_key,
    run_key,
)
from riskmap.store.silences import SilenceRecord
from riskmap.store.store import Store

__all__ = ["SCHEMA_VERSION", "Applied", "CapRow", "EventRecord", "OutboxRecord", "OutboxRow", "RunMeta",
           "RunRecord", "ServiceHold", "SilenceRecord", "Store", "apply_expiry", "apply_manual", "apply_run",
           "ensure_not_held", "held_by", "hold_store", "outbox_key", "run_key"]
