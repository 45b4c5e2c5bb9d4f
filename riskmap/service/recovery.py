"""Start-up recovery and small store operations the service needs (written against the store's tables).

- :func:`release_orphan_leases`: the service holds the store (:mod:`riskmap.service.lock`), so a
  row still ``leased`` at start-up belongs to a process that died.  Its lease is ended at once;
  the next :meth:`~riskmap.store.Store.lease` re-sends it only if no delivery report exists (else
  it is counted as sent).  That is the documented duplicate window: a message accepted by the
  gateway whose ``sent`` mark was not committed.
- :func:`unfinished_runs`: runs recorded ``started`` and never finished.
- :func:`acknowledge`: a reply 1 / 收到 from a phone becomes an ``ack`` receipt on the latest
  message sent to that phone.

Examples
--------
>>> import tempfile, pathlib
>>> from datetime import datetime, timezone
>>> from riskmap.store import Store
>>> store = Store.open(pathlib.Path(tempfile.mkdtemp()) / "riskmap.sqlite")
>>> now = datetime(2026, 7, 1, tzinfo=timezone.utc)
>>> release_orphan_leases(store, now), unfinished_runs(store)
(0, [])
>>> acknowledge(store, "13800001234", "收到", now) is None
True
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from riskmap.store import RunRecord
from riskmap.store import tables as t


def release_orphan_leases(store: Any, now: datetime) -> int:
    """End the leases of rows leased by a dead process (call only while holding the store)."""
    with store.engine.begin() as conn:
        res = conn.execute(update(t.outbox).where(t.outbox.c.status == "leased")
                           .values(lease_until=now - timedelta(microseconds=1), updated_at=now))
        return int(res.rowcount or 0)


def unfinished_runs(store: Any) -> list[RunRecord]:
    """Runs still ``started`` (their process died or was stopped mid-cycle), oldest first."""
    return [r for r in reversed(store.runs(limit=10_000)) if r.status == "started"]


def acknowledge(store: Any, phone: str, text: str, at: datetime) -> int | None:
    """Record a reply as an ``ack`` receipt on the latest message sent to ``phone``; its outbox id or None."""
    digits = "".join(c for c in phone if c.isdigit())[-11:]
    if len(digits) < 7:
        return None
    q = (select(t.outbox.c.id).where(t.outbox.c.phone.like(f"%{digits}"),
                                     t.outbox.c.status.in_(("sent", "delivered", "leased")),
                                     t.outbox.c.level > 0)
         .order_by(t.outbox.c.id.desc()).limit(1))
    with store.engine.connect() as conn:
        row = conn.execute(q).first()
    if row is None:
        return None
    store.add_receipt(int(row.id), "ack", f"reply={text}", at)
    return int(row.id)
