"""Operator acts handed to a running ``riskmap serve`` through the store (the ``requests`` table).

While ``serve`` holds the store, ``riskmap issue`` and ``riskmap lift`` must not decide themselves:
two deciders would each read the warnings and overwrite each other's decision.  They record a
request instead, and the service applies it under its cycle lock by the same code path
(:func:`riskmap.operations.acts.perform_act` → :func:`riskmap.store.apply_manual`).  The table lives
in the store, so this works as well when the CLI runs on another machine against the same PostgreSQL.

The life of a request::

    queued ─► working ─► applied ─► done
      │          └─► failed    (the one-line error and its exit code; nothing was applied)
      └─► expired              (not taken up within MAX_AGE: the service was down; nothing applied)

- ``working``: the service took it up and fixed the act's time (``act_at``), so a retry after a crash
  is the same manual run (its id derives from the act and its time): applied once, never twice.
- ``applied``: written by :func:`mark_applied` *inside the act's transaction* (the ``on_commit`` of
  :meth:`~riskmap.store.Store.commit_decision`), with the summary the CLI prints: the act and the
  request's outcome commit together.  ``done`` follows once the service wrote the CAP files; a crash
  in between leaves ``applied`` and the restarted service writes them then.

**Idempotency.** :func:`submit` records a request under an idempotency key given by the caller
(``--request-key``: never applied twice), or by default under the act's own key (command, targets,
hazard, level, until, operator, reason, drill, ``--now``): the same command again while its request
is pending, or within :data:`RETRY_WINDOW` after it was applied, is the same request — a retried CLI
waits for (or reports) the first one instead of acting twice.

Examples
--------
>>> import tempfile, pathlib
>>> from datetime import datetime, timezone
>>> from riskmap.store import Store
>>> store = Store.open(pathlib.Path(tempfile.mkdtemp()) / "riskmap.sqlite")
>>> t0 = datetime(2026, 7, 15, 3, tzinfo=timezone.utc)
>>> req, new = submit(store, "lift", "李主任", "险情排除", {"villages": ["469900100201"]}, "k1", t0)
>>> new, req.status, len(req.id)
(True, 'queued', 24)
>>> again, new = submit(store, "lift", "李主任", "险情排除", {"villages": ["469900100201"]}, "k1", t0)
>>> again.id == req.id, new                      # the same command again: the same request
(True, False)
>>> [r.id for r in pending(store)] == [req.id]
True
>>> claim(store, req.id, t0).status, mark_failed(store, req.id, "no such village", 2, t0)
('working', True)
>>> get(store, req.id).status, pending(store)
('failed', [])
>>> store.close()
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from riskmap.errors import InputError
from riskmap.store import tables as t
from riskmap.store.db import guard

STATUSES = ("queued", "working", "applied", "done", "failed", "expired")
PENDING = ("queued", "working", "applied")
"""Statuses the service still has work for (``applied``: the CAP files)."""
APPLIED = ("applied", "done")
"""Statuses of a request whose act is committed."""
RETRY_WINDOW = timedelta(minutes=10)
"""The same act again within this time after it was applied is a retry (the first is reported)."""
MAX_AGE = timedelta(minutes=30)
"""A request the service has not taken up this long after it was made expires, unapplied."""
SUMMARY_CHANGES = 30
"""A summary lists at most this many changes (and counts them all)."""

_R = t.requests.c


@dataclass(frozen=True)
class RequestRecord:
    """A stored request; ``result`` is the act's summary (:func:`run_summary`) once applied."""

    id: str
    idempotency_key: str
    act_key: str
    kind: str
    operator: str
    reason: str
    params: Mapping[str, Any]
    villages: tuple[str, ...]
    origin: str
    status: str
    attempts: int
    created_at: datetime
    picked_at: datetime | None
    act_at: datetime | None
    run_id: str
    finished_at: datetime | None
    result: Mapping[str, Any]
    error: str
    exit_code: int

    @property
    def pending(self) -> bool:
        """The service has not finished with it."""
        return self.status in PENDING

    @property
    def applied(self) -> bool:
        """Its act is committed."""
        return self.status in APPLIED


def _record(row: Any) -> RequestRecord:
    m = dict(row._mapping)
    m["params"] = json.loads(m["params"])
    m["result"] = json.loads(m["result"] or "{}")
    m["villages"] = tuple(json.loads(m["villages"] or "[]"))
    return RequestRecord(**{k: m[k] for k in RequestRecord.__dataclass_fields__})


def request_id(key: str) -> str:
    """The id of the request with idempotency key ``key`` (24 hex characters of its sha256).

    >>> request_id("act:k1:1") == request_id("act:k1:1") != request_id("act:k1:2")
    True
    """
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def _by_key(conn: Connection, key: str) -> RequestRecord | None:
    row = conn.execute(select(t.requests).where(_R.idempotency_key == key)).first()
    return None if row is None else _record(row)


def _repeats(latest: RequestRecord | None, at: datetime) -> bool:
    """Whether a new request for the same act at ``at`` is a retry of ``latest``."""
    if latest is None:
        return False
    if latest.pending:
        return True
    return (latest.status == "done" and latest.finished_at is not None
            and at - latest.finished_at <= RETRY_WINDOW)


def submit(store: Any, kind: str, operator: str, reason: str, params: Mapping[str, Any], act_key: str,
           at: datetime, *, key: str = "", villages: Sequence[str] = (), origin: str = ""
           ) -> tuple[RequestRecord, bool]:
    """Record a request for the service, or find the one it repeats: ``(request, whether it is new)``.

    In one transaction.  ``key`` is the caller's idempotency key (a request under it is never made
    twice; it must name the same act); without it, a pending request for the same act (``act_key``)
    or one applied within :data:`RETRY_WINDOW` is returned instead of a new one.

    Raises
    ------
    InputError
        When ``key`` was used for another act.
    """
    with guard(f"{store.url} request {kind}"), store.engine.begin() as conn:
        if conn.dialect.name == "sqlite":  # the look-up and the insert are one serial step
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        if key:
            idem = f"key:{key}"
            found = _by_key(conn, idem)
            if found is not None and found.act_key != act_key:
                raise InputError(f"--request-key {key}: already used for another act (request "
                                 f"{found.id[:12]}: {found.kind} by {found.operator}, {found.status})")
            if found is not None:
                return found, False
        else:
            row = conn.execute(select(t.requests).where(_R.act_key == act_key)
                               .order_by(_R.created_at.desc(), _R.id).limit(1)).first()
            latest = None if row is None else _record(row)
            if latest is not None and _repeats(latest, at):
                return latest, False
            n = conn.execute(select(func.count()).where(_R.act_key == act_key)).scalar() or 0
            idem = f"act:{act_key}:{n + 1}"
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        values = {"id": request_id(idem), "idempotency_key": idem, "act_key": act_key, "kind": kind,
                  "operator": operator, "reason": reason,
                  "params": json.dumps(dict(params), ensure_ascii=False, sort_keys=True, default=str),
                  "villages": json.dumps(list(villages)), "origin": origin[:200], "status": "queued",
                  "attempts": 0, "created_at": at, "run_id": "", "result": "{}", "error": "", "exit_code": 0}
        # no conflict target: a concurrent twin (same key, hence same id) makes this insert nothing
        stmt = dialect.insert(t.requests).values(**values).on_conflict_do_nothing()
        new = bool(conn.execute(stmt).rowcount)
        rec = _by_key(conn, idem)
        assert rec is not None
        return rec, new


def get(store: Any, request: str) -> RequestRecord | None:
    """One request by id, or None."""
    with guard(f"{store.url} request {request}"), store.engine.connect() as conn:
        row = conn.execute(select(t.requests).where(_R.id == request)).first()
        return None if row is None else _record(row)


def pending(store: Any) -> list[RequestRecord]:
    """Requests the service still has work for, oldest first."""
    with guard(f"{store.url} pending requests"), store.engine.connect() as conn:
        q = select(t.requests).where(_R.status.in_(PENDING)).order_by(_R.created_at, _R.id)
        return [_record(r) for r in conn.execute(q)]


def has_pending(store: Any) -> bool:
    """Whether any request waits (one indexed look-up: the service asks every second)."""
    with guard(f"{store.url} pending requests"), store.engine.connect() as conn:
        return conn.execute(select(_R.id).where(_R.status.in_(PENDING)).limit(1)).first() is not None


def claim(store: Any, request: str, at: datetime, act_at: datetime | None = None) -> RequestRecord | None:
    """Take a ``queued`` (or interrupted ``working``) request up: ``working``, one more attempt, and the
    act's time fixed (``act_at``, else ``at``) unless an earlier attempt fixed it.  None when it is not
    pending any more."""
    with guard(f"{store.url} claim request {request}"), store.engine.begin() as conn:
        res = conn.execute(update(t.requests).where(_R.id == request, _R.status.in_(("queued", "working")))
                           .values(status="working", attempts=_R.attempts + 1, picked_at=at,
                                   act_at=func.coalesce(_R.act_at, act_at or at)))
        if not res.rowcount:
            return None
        return _record(conn.execute(select(t.requests).where(_R.id == request)).one())


def release(store: Any, request: str, error: str) -> bool:
    """Put a ``working`` request back to ``queued`` after a passing failure (the database was away), the
    attempt not counted; False when it was not working."""
    with guard(f"{store.url} release request {request}"), store.engine.begin() as conn:
        res = conn.execute(update(t.requests).where(_R.id == request, _R.status == "working")
                           .values(status="queued", attempts=_R.attempts - 1, error=error))
        return bool(res.rowcount)


def run_summary(conn: Connection, run_id: str, *, already: bool = False) -> dict[str, Any]:
    """What a manual run did, as ``riskmap issue`` / ``lift`` print it: its changes (the first
    :data:`SUMMARY_CHANGES`, and how many), its messages (queued, held) and CAP messages, drill or not.

    ``already``: the act had been recorded before (nothing new was written)."""
    e, o = t.events.c, t.outbox.c
    changes = conn.execute(select(e.kind, e.village_code, e.hazard, e.old_level, e.new_level, e.operator)
                           .where(e.run_id == run_id, e.suppressed.is_(False)).order_by(e.id)).all()
    by_status: dict[str, int] = dict(conn.execute(select(o.status, func.count()).where(o.run_id == run_id)
                                  .group_by(o.status)).all())
    held = int(by_status.get("held", 0))
    cap = conn.execute(select(func.count()).select_from(t.cap_messages)
                       .where(t.cap_messages.c.run_id == run_id)).scalar() or 0
    drill = conn.execute(select(t.runs.c.drill).where(t.runs.c.id == run_id)).scalar()
    return {"run_id": run_id, "already": already, "drill": bool(drill), "n_changes": len(changes),
            "changes": [list(c) for c in changes[:SUMMARY_CHANGES]],
            "messages": {"queued": int(sum(by_status.values())) - held, "held": held}, "cap": int(cap)}


def summary_of(store: Any, run_id: str, *, already: bool = False) -> dict[str, Any]:
    """:func:`run_summary` on a connection of its own."""
    with guard(f"{store.url} summary {run_id}"), store.engine.connect() as conn:
        return run_summary(conn, run_id, already=already)


def mark_applied(conn: Connection, request: str, run_id: str, villages: Sequence[str], at: datetime, *,
                 already: bool = False) -> None:
    """Record, on ``conn`` (the act's own transaction), that the request's act is committed: its run,
    the villages it reached and its summary."""
    conn.execute(update(t.requests).where(_R.id == request).values(
        status="applied", run_id=run_id, finished_at=at, villages=json.dumps(list(villages)), error="",
        result=json.dumps(run_summary(conn, run_id, already=already), ensure_ascii=False)))


def mark_applied_alone(store: Any, request: str, run_id: str, villages: Sequence[str], at: datetime) -> None:
    """:func:`mark_applied` for an act found already recorded (the same act and time, applied before)."""
    with guard(f"{store.url} request {request} applied"), store.engine.begin() as conn:
        mark_applied(conn, request, run_id, villages, at, already=True)


def mark_done(store: Any, request: str, error: str = "") -> bool:
    """``applied`` → ``done`` (its outputs written, or ``error`` says why not); False when it was not
    applied."""
    with guard(f"{store.url} request {request} done"), store.engine.begin() as conn:
        return bool(conn.execute(update(t.requests).where(_R.id == request, _R.status == "applied")
                                 .values(status="done", error=error)).rowcount)


def mark_failed(store: Any, request: str, error: str, exit_code: int, at: datetime,
                status: str = "failed") -> bool:
    """End a request that was not applied (``failed`` or ``expired``) with its one-line error and the exit
    code the CLI gives; False when it was applied or ended meanwhile."""
    line = " ".join(error.split())
    with guard(f"{store.url} request {request} {status}"), store.engine.begin() as conn:
        res = conn.execute(update(t.requests).where(_R.id == request, _R.status.in_(("queued", "working")))
                           .values(status=status, error=line, exit_code=exit_code, finished_at=at))
        return bool(res.rowcount)


def for_village(store: Any, code: str) -> list[RequestRecord]:
    """Requests that name or reached a village, oldest first (for its history)."""
    with guard(f"{store.url} requests of {code}"), store.engine.connect() as conn:
        q = select(t.requests).where(_R.villages.contains(f'"{code}"')).order_by(_R.created_at, _R.id)
        return [_record(r) for r in conn.execute(q)]


def recent(store: Any, since: datetime) -> list[RequestRecord]:
    """Pending requests and those made since ``since``, oldest first (for ``riskmap status``)."""
    with guard(f"{store.url} recent requests"), store.engine.connect() as conn:
        q = (select(t.requests).where((_R.status.in_(PENDING)) | (_R.created_at >= since))
             .order_by(_R.created_at, _R.id))
        return [_record(r) for r in conn.execute(q)]
