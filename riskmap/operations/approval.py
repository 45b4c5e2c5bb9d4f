"""领导审签: approve a run and release its held messages; the approver and the wait are logged."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from riskmap.errors import InputError
from riskmap.operations.stores import find_run
from riskmap.store import Store
from riskmap.store import tables as t
from riskmap.store.db import guard

log = logging.getLogger("riskmap.operations")


@dataclass(frozen=True)
class Approval:
    """What :func:`approve` did."""

    run_id: str
    operator: str
    at: datetime
    released: int
    """Messages moved from ``held`` to ``queued``."""
    wait: timedelta | None
    """From the first held message's queueing to the approval (None when nothing was held)."""
    already: bool = False
    """This operator had approved the run before (nothing new recorded)."""
    superseded: int = 0
    """Older messages to the same phones, not sent yet, that the released ones replaced (marked
    ``superseded`` in the approval's transaction)."""


def approve(store: Store, ref: str, operator: str, at: datetime, reason: str = "") -> Approval:
    """Approve a run (领导审签) and queue its held messages in one transaction; log approver and wait.

    The wait (first held message queued → approval) is stored in the approval's reason and logged.
    In the same transaction the released messages supersede the older messages to the same phones
    that they replace and that have not gone out yet (an orange still queued when its red is
    approved); one already sent stays sent.
    """
    if not operator.strip():
        raise InputError("--by: the approver's name is required")
    run = find_run(store, ref)
    with guard(f"{store.url} approve {run.id}"), store.engine.connect() as conn:
        first = conn.execute(select(func.min(t.outbox.c.created_at))
                             .where(t.outbox.c.run_id == run.id, t.outbox.c.status == "held")).scalar()
    if isinstance(first, str):  # SQLite returns the aggregate as stored text
        first = datetime.fromisoformat(first)
    wait = at - first if first is not None else None
    already = any(a["operator"] == operator and a["kind"] == "release" for a in store.approvals(run.id))
    if already or first is None:
        return Approval(run.id, operator, at, 0, wait, already)
    note = f"waited {wait.total_seconds():.0f} s" if wait is not None else ""
    rel = store.release_run(run.id, operator, at, reason="; ".join(x for x in (reason, note) if x))
    log.info("run %s approved by %s after %s: %d held message(s) released, %d older superseded", run.id[:12],
             operator, wait, rel.released, rel.superseded)
    return Approval(run.id, operator, at, rel.released, wait, superseded=rel.superseded)
