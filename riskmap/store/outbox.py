"""Outbox operations for the dispatcher (#6): lease, mark, receipts.

Rows are queued by :meth:`riskmap.store.Store.commit_decision` in the decision's
transaction.  A dispatcher leases due rows (``queued``/``failed`` with
``next_attempt_at`` due, or ``leased`` whose lease ran out), sends them, then marks them
``sent``/``failed``; delivery reports become receipts (a repeated report is one receipt).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, case, func, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from riskmap.errors import StoreError
from riskmap.store import tables as t
from riskmap.store.db import guard, insert_ignore
from riskmap.store.records import OutboxRecord, OutboxRow, row_dict

OUTBOX_STATUSES = ("queued", "held", "leased", "sent", "delivered", "failed", "superseded")
RETRY_BEFORE = datetime(9000, 1, 1, tzinfo=UTC)
"""A ``failed`` message whose next attempt is before this awaits a retry (the dispatcher parks a
permanent failure at year 9999)."""
NEVER = datetime(9999, 1, 1, tzinfo=UTC)
"""``next_attempt_at`` of a permanently failed message: never due again."""


def final_status(status: str) -> dict[str, Any]:
    """The outbox columns a ``delivered``/``failed`` delivery report sets.

    A ``failed`` report (the SMSC gave up: UNDELIV, EXPIRED, REJECTD) is final for the message:
    it is parked (:data:`NEVER`) rather than sent again at once by the next lease; an orange or
    red message nobody acknowledged is escalated instead (:mod:`riskmap.escalation`).
    """
    return {"status": status, "next_attempt_at": NEVER} if status == "failed" else {"status": status}
_FIELDS = [f for f in OutboxRecord.__dataclass_fields__]


def _record(row: Any) -> OutboxRecord:
    m = row._mapping
    return OutboxRecord(**{k: m[k] for k in _FIELDS})



def _keep_delivered(new: Any) -> Any:
    """The new status, except that a message already ``delivered`` (a delivery report can arrive before
    the dispatcher records the gateway's acceptance) is never moved back to ``sent``."""
    return case((and_(t.outbox.c.status == "delivered", new == "sent"), t.outbox.c.status), else_=new)

def supersede(conn: Connection, run_id: str, rows: Sequence[Mapping[str, Any]], at: datetime,
              how: str = "") -> int:
    """Mark older pending messages that ``rows`` (messages of run ``run_id`` now due to go out) make
    obsolete ``superseded``.

    Runs inside the transaction that queues ``rows``: the run's commit for its ``queued`` messages, the
    approval (:meth:`OutboxMixin.release_run`) for its ``held`` ones.  A ``held`` row supersedes
    nothing — a message waiting for a leader's approval never takes away one that would go out
    meanwhile (the older message is superseded when, and if, the held one is released).  Each row
    needs its ``id``: only messages queued before it (smaller id) are superseded.

    An older message to the same phone, from another run, still ``queued``, ``held`` or ``failed``
    awaiting a retry (never a leased, sent or delivered one), with the same drill flag, is superseded
    by a new

    - ``warning``/``repeat``: a ``warning``/``repeat`` of a lower level, or of the same level about the
      same village and hazard;
    - ``summary``: a ``summary`` of a lower or the same level;
    - ``all_clear``: a ``warning``/``repeat`` about the same village and hazard (the warning ended).

    Escalations are never superseded and supersede nothing.  A superseded row's ``last_error`` says by
    which run (and ``how``, e.g. ``approved by 李主任``).  Returns how many messages were superseded.
    """
    o = t.outbox.c
    # plain comparisons: IN (…) renders as an expanding parameter, which executemany refuses
    pending = or_(o.status == "queued", o.status == "held",
                  and_(o.status == "failed", o.next_attempt_at.is_not(None),
                       o.next_attempt_at < RETRY_BEFORE))
    same = and_(o.village_code == bindparam("s_village"), o.hazard == bindparam("s_hazard"))
    base = and_(o.phone == bindparam("s_phone"), o.run_id != run_id, o.drill == bindparam("s_drill"),
                o.id < bindparam("s_id"), pending)
    lower = or_(o.level < bindparam("s_level"), and_(o.level == bindparam("s_level"), same))
    warnings = or_(o.kind == "warning", o.kind == "repeat")
    by_kind = {"warning": and_(warnings, lower), "repeat": and_(warnings, lower),
               "summary": and_(o.kind == "summary", o.level <= bindparam("s_level")),
               "all_clear": and_(warnings, same)}
    marker = f"superseded by run {run_id}" + (f", {how}" if how else "")
    due = [r for r in rows if r.get("status", "queued") != "held"]
    for kind, cond in by_kind.items():
        params = [{"s_phone": r["phone"], "s_drill": bool(r.get("drill", False)), "s_id": int(r["id"]),
                   "s_level": int(r.get("level", 0)), "s_village": r.get("village_code", ""),
                   "s_hazard": r.get("hazard", "")}
                  for r in due if r.get("kind", "warning") == kind]
        if not params:
            continue
        stmt = (update(t.outbox).where(base, cond)
                .values(status="superseded", updated_at=at, next_attempt_at=None, last_error=marker))
        conn.execute(stmt, params)
    if not any(r.get("kind", "warning") in by_kind for r in due):
        return 0
    # executemany's rowcount is not reliable on every driver: count the rows this call marked
    return int(conn.execute(select(func.count()).select_from(t.outbox)
                            .where(o.status == "superseded", o.last_error == marker, o.updated_at == at)
                            ).scalar() or 0)


@dataclass(frozen=True)
class Release:
    """What releasing a run's held messages did (:meth:`OutboxMixin.release_run`)."""

    released: int
    """Messages moved from ``held`` to ``queued``."""
    superseded: int = 0
    """Older pending messages to the same phones the released ones replaced."""


def _release(conn: Connection, run_id: str, at: datetime, how: str) -> Release:
    """Queue the run's held messages and supersede what they replace (one transaction: ``conn``'s)."""
    o = t.outbox.c
    res = conn.execute(update(t.outbox).where(o.run_id == run_id, o.status == "held")
                       .values(status="queued", updated_at=at)
                       .returning(o.id, o.phone, o.drill, o.level, o.village_code, o.hazard, o.kind))
    rows = [dict(r._mapping) for r in res]
    return Release(len(rows), supersede(conn, run_id, rows, at, how) if rows else 0)


class OutboxMixin:
    """Outbox methods of :class:`~riskmap.store.Store`."""

    engine: Engine

    @property
    def url(self) -> str:
        """The database URL with the password hidden."""
        return self.engine.url.render_as_string(hide_password=True)

    def lease(self, now: datetime, limit: int = 100, lease_s: float = 60.0,
              max_attempts: int = 5) -> list[OutboxRecord]:
        """Lease up to ``limit`` due messages until ``now + lease_s``; attempts are counted."""
        due = or_(t.outbox.c.next_attempt_at.is_(None), t.outbox.c.next_attempt_at <= now)
        cond = or_(and_(t.outbox.c.status.in_(("queued", "failed")), due,
                        t.outbox.c.attempts < max_attempts),
                   and_(t.outbox.c.status == "leased", t.outbox.c.lease_until < now))
        until = now + timedelta(seconds=lease_s)
        with guard(f"{self.url} lease"), self.engine.begin() as conn:
            # an expired lease whose message already has a receipt was sent: never send it again
            has_receipt = select(t.receipts.c.id).where(t.receipts.c.outbox_id == t.outbox.c.id).exists()
            conn.execute(update(t.outbox).where(t.outbox.c.status == "leased", t.outbox.c.lease_until < now,
                                                has_receipt)
                         .values(status="sent", lease_until=None, updated_at=now))
            q = (select(t.outbox.c.id).where(cond).order_by(t.outbox.c.level.desc(), t.outbox.c.id)
                 .limit(limit))
            if conn.dialect.name == "postgresql":
                q = q.with_for_update(skip_locked=True)
            ids = [r.id for r in conn.execute(q)]
            if not ids:
                return []
            conn.execute(update(t.outbox).where(t.outbox.c.id.in_(ids)).values(
                status="leased", lease_until=until, attempts=t.outbox.c.attempts + 1, updated_at=now))
            rows = conn.execute(select(t.outbox).where(t.outbox.c.id.in_(ids))
                                .order_by(t.outbox.c.level.desc(), t.outbox.c.id))
            return [_record(r) for r in rows]

    def mark(self, outbox_id: int, status: str, at: datetime, gateway_id: str = "", error: str = "",
             next_attempt_at: datetime | None = None) -> None:
        """Set a message's status (``sent``, ``failed`` with a retry time, ``delivered`` …)."""
        if status not in OUTBOX_STATUSES:
            raise StoreError(f"store: unknown outbox status {status!r} (known: {', '.join(OUTBOX_STATUSES)})")
        values: dict[str, Any] = {"status": _keep_delivered(literal(status)), "updated_at": at,
                                  "lease_until": None, "next_attempt_at": next_attempt_at,
                                  "last_error": error}
        if gateway_id:
            values["gateway_id"] = gateway_id
        with guard(f"{self.url} mark {outbox_id}"), self.engine.begin() as conn:
            res = conn.execute(update(t.outbox).where(t.outbox.c.id == outbox_id).values(**values))
            if not res.rowcount:
                raise StoreError(f"store {self.url}: no outbox message {outbox_id}")

    def mark_many(self, marks: Sequence[Mapping[str, Any]], at: datetime) -> int:
        """Set many statuses in one transaction (one fsync): each mapping has ``id`` and ``status``, and
        optionally ``gateway_id``, ``error``, ``next_attempt_at``.  Returns how many rows changed."""
        if not marks:
            return 0
        bad = [m["status"] for m in marks if m["status"] not in OUTBOX_STATUSES]
        if bad:
            raise StoreError(f"store: unknown outbox status {bad[0]!r} (known: {', '.join(OUTBOX_STATUSES)})")
        rows = [{"m_id": m["id"], "m_status": m["status"], "m_gw": m.get("gateway_id") or "",
                 "m_error": m.get("error") or "", "m_next": m.get("next_attempt_at"), "m_at": at}
                for m in marks]
        stmt = (update(t.outbox).where(t.outbox.c.id == bindparam("m_id"))
                .values(status=_keep_delivered(bindparam("m_status")), updated_at=bindparam("m_at"),
                        lease_until=None,
                        next_attempt_at=bindparam("m_next"), last_error=bindparam("m_error"),
                        gateway_id=func.coalesce(func.nullif(bindparam("m_gw"), ""), t.outbox.c.gateway_id)))
        with guard(f"{self.url} mark_many"), self.engine.begin() as conn:
            return int(conn.execute(stmt, rows).rowcount or 0)

    def queue(self, run_id: str, rows: Sequence[OutboxRow | Mapping[str, Any]], at: datetime) -> int:
        """Queue messages outside a decision (escalations, summaries) idempotently; returns the new count."""
        data = [{**row_dict(r), "run_id": run_id,
                 "created_at": at, "updated_at": at} for r in rows]
        with guard(f"{self.url} queue {run_id}"), self.engine.begin() as conn:
            return insert_ignore(conn, t.outbox, data, "idempotency_key")

    def approve_run(self, run_id: str, operator: str, at: datetime, reason: str = "") -> int:
        """Record the approval (领导审签) of a run and queue its held messages, in one transaction.

        Returns how many messages were released (0 when this operator had already approved it);
        :meth:`release_run` also says how many older messages they superseded.
        """
        return self.release_run(run_id, operator, at, reason).released

    def release_run(self, run_id: str, operator: str, at: datetime, reason: str = "") -> Release:
        """Record the approval (领导审签) of a run, queue its held messages and supersede the older
        pending messages they replace (:func:`supersede`), all in one transaction.

        Idempotent: a second approval by the same operator records and releases nothing
        (``Release(0, 0)``); once released, nothing is held any more.
        """
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        with guard(f"{self.url} approve {run_id}"), self.engine.begin() as conn:
            if conn.dialect.name == "sqlite":  # the write lock now: the release and the supersede are serial
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            if conn.execute(select(t.runs.c.id).where(t.runs.c.id == run_id)).first() is None:
                raise StoreError(f"store {self.url}: no run {run_id!r} to approve")
            stmt = dialect.insert(t.approvals).values(subject=run_id, kind="release", decision="approved",
                                                      operator=operator, reason=reason, at=at)
            if not conn.execute(stmt.on_conflict_do_nothing()).rowcount:
                return Release(0)
            return _release(conn, run_id, at, f"approved by {operator}")

    def release_held(self, run_id: str, at: datetime) -> int:
        """Queue the held messages of a run (after an approval) and supersede what they replace;
        returns how many were released."""
        with guard(f"{self.url} release_held {run_id}"), self.engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            return _release(conn, run_id, at, "released").released

    def add_receipt(self, outbox_id: int, status: str, raw: str, at: datetime) -> bool:
        """Record a delivery report; False when the same report was already recorded.

        A ``delivered`` or ``failed`` report also updates the message's status.
        """
        digest = hashlib.sha256(f"{outbox_id}|{status}|{raw}".encode()).hexdigest()
        with guard(f"{self.url} receipt {outbox_id}"), self.engine.begin() as conn:
            if conn.execute(select(t.outbox.c.id).where(t.outbox.c.id == outbox_id)).first() is None:
                raise StoreError(f"store: receipt for outbox message {outbox_id}: no such message "
                                 "(archived, or not sent from this store)")
            new = insert_ignore(conn, t.receipts, [{"outbox_id": outbox_id, "status": status, "raw": raw,
                                                    "digest": digest, "at": at}], "digest")
            if new and status in ("delivered", "failed"):
                conn.execute(update(t.outbox).where(t.outbox.c.id == outbox_id)
                             .values(updated_at=at, **final_status(status)))
            return bool(new)

    def outbox(self, run_id: str | None = None, status: str | None = None,
               phone: str | None = None) -> list[OutboxRecord]:
        """Outbox messages, optionally of one run, status and/or phone number, oldest first."""
        q = select(t.outbox).order_by(t.outbox.c.id)
        if run_id:
            q = q.where(t.outbox.c.run_id == run_id)
        if status:
            q = q.where(t.outbox.c.status == status)
        if phone:
            q = q.where(t.outbox.c.phone == phone)
        with guard(f"{self.url} outbox"), self.engine.connect() as conn:
            return [_record(r) for r in conn.execute(q)]

    def last_sent(self, drill: bool = False) -> dict[tuple[str, str], datetime]:
        """The ``now`` of the last run that queued a warning or repeat about each ``(village_code, hazard)``.

        Measured in run time (``runs.now``), not wall-clock time, so it compares with a run's ``now``.
        Counts every message of kind ``warning``/``repeat`` whatever its status (a queued or held one
        will be sent; a superseded one was replaced by a newer message).
        """
        o = t.outbox.c
        q = (select(o.village_code, o.hazard, func.max(t.runs.c.now).label("at"))
             .join_from(t.outbox, t.runs, t.runs.c.id == o.run_id)
             .where(or_(o.kind == "warning", o.kind == "repeat"), o.drill == drill, o.village_code != "")
             .group_by(o.village_code, o.hazard))
        with guard(f"{self.url} last_sent"), self.engine.connect() as conn:
            return {(r.village_code, r.hazard): r.at for r in conn.execute(q)}

    def receipts(self, outbox_id: int) -> list[dict[str, Any]]:
        """Receipts of one message, oldest first."""
        with guard(f"{self.url} receipts"), self.engine.connect() as conn:
            rows = conn.execute(select(t.receipts).where(t.receipts.c.outbox_id == outbox_id)
                                .order_by(t.receipts.c.at, t.receipts.c.id))
            return [dict(r._mapping) for r in rows]
