"""Start-up recovery and small store operations the service needs (written against the store's tables).

- :func:`release_orphan_leases`: the service holds the store (:mod:`riskmap.service.lock`), so a
  row still ``leased`` at start-up belongs to a process that died.  Its lease is ended at once;
  the next :meth:`~riskmap.store.Store.lease` re-sends it only if no delivery report exists (else
  it is counted as sent).  That is the documented duplicate window: a message accepted by the
  gateway whose ``sent`` mark was not committed.
- :func:`unfinished_runs`: runs recorded ``started`` and never finished.

Examples
--------
>>> import tempfile, pathlib
>>> from datetime import datetime, timezone
>>> from riskmap.store import Store
>>> store = Store.open(pathlib.Path(tempfile.mkdtemp()) / "riskmap.sqlite")
>>> now = datetime(2026, 7, 1, tzinfo=timezone.utc)
>>> release_orphan_leases(store, now), unfinished_runs(store)
(0, [])
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update

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
