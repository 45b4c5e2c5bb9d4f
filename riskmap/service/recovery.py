"""Start-up recovery and small store operations the service needs (written against the store's tables).

- :func:`release_orphan_leases`: the service holds the store (:mod:`riskmap.service.lock`), so a
  row still ``leased`` at start-up belongs to a process that died.  Its lease is ended at once;
  the next :meth:`~riskmap.store.Store.lease` re-sends it only if no delivery report exists (else
  it is counted as sent).  That is the documented duplicate window: a message accepted by the
  gateway whose ``sent`` mark was not committed.
- :func:`unfinished_runs`: runs recorded ``started`` and never finished; :func:`recover_runs`
  re-processes them at start-up.

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

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update

from riskmap.service.logging import run_context
from riskmap.store import RunRecord
from riskmap.store import tables as t

log = logging.getLogger("riskmap.service")


def release_orphan_leases(store: Any, now: datetime) -> int:
    """End the leases of rows leased by a dead process (call only while holding the store)."""
    with store.engine.begin() as conn:
        res = conn.execute(update(t.outbox).where(t.outbox.c.status == "leased")
                           .values(lease_until=now - timedelta(microseconds=1), updated_at=now))
        return int(res.rowcount or 0)


def unfinished_runs(store: Any) -> list[RunRecord]:
    """Runs still ``started`` (their process died or was stopped mid-cycle), oldest first."""
    return [r for r in reversed(store.runs(limit=10_000)) if r.status == "started"]


def recover_runs(svc: Any) -> None:
    """Re-process runs left ``started`` by a crash (``svc`` is the :class:`~riskmap.service.runner.Service`).

    A run whose file is still in the inbox is left to the inbox scan; one whose file is in ``done/``
    (an observed re-run) is run again at its own ``now``; an expiry check is repeated at its minute.
    Runs that cannot be repeated (input gone or changed) are marked failed with the reason: the next
    run decides instead.
    """
    waiting = {p.name for p in svc.inbox.candidates()}
    for run in unfinished_runs(svc.store):
        with run_context(run_id=run.id[:12], file=run.source):
            if run.source == "expiry":
                log.warning("recovery: re-running the expiry check at %s", run.now.isoformat())
                svc.check_expiry(run.now)
                if (svc.store.run(run.id) or run).status != "started":
                    continue
            if run.source in waiting:
                log.warning("recovery: run %s (%s) was interrupted; its file is re-processed from the "
                            "inbox", run.id[:12], run.source)
                continue
            path = svc.inbox.processed / run.source
            src = svc.sc.source_for(run.source)
            if path.is_file() and src is not None and src.kind == "forecast":
                log.warning("recovery: re-running interrupted run %s (%s at %s)", run.id[:12], run.source,
                            run.now.isoformat())
                try:
                    with svc.cycle_lock:
                        rep = svc.cycle(path, src, now=run.now,
                                        observed=svc.observed if run.hashes.get("observed") else None)
                except Exception as exc:  # noqa: BLE001 - recovery must not stop the service
                    log.error("recovery: run %s failed again: %s: %s", run.id[:12],
                              type(exc).__name__, exc)
                    continue
                if rep.run_id == run.id:
                    continue
            why = "interrupted by a restart; its input is gone or changed (a later run decides instead)"
            svc.store.fail_run(run.id, why)
            log.warning("recovery: run %s marked failed: %s", run.id[:12], why)
