"""One store cycle: begin the run, decide, render messages, commit in one transaction (or record the failure).

These are the guts of ``riskmap run`` (automatic levels) and of ``riskmap issue`` /
``riskmap lift`` (manual acts) minus argument parsing.  ``render`` turns the decision into
outbox and CAP rows (SMS routing/templates and :func:`riskmap.cap.build_messages`); it
receives the run id and the states before the decision (for CAP references).

Examples
--------
>>> import tempfile, pathlib
>>> from datetime import datetime, timezone
>>> from riskmap.lifecycle import LifecyclePolicy, ManualIssue
>>> from riskmap.store import Store
>>> store = Store.open(pathlib.Path(tempfile.mkdtemp()) / "riskmap.sqlite")
>>> act = ManualIssue("detention_areas:D1", ("469900100201",), "torrent", 4, "开闸分洪", "李主任")
>>> now = datetime(2026, 7, 1, 8, tzinfo=timezone.utc)
>>> out = apply_manual(store, [act], now, LifecyclePolicy())
>>> [(c.kind, c.new_level, c.operator) for c in out.decision.changes], out.counts["events"]
([('issue', 4, '李主任')], 1)
>>> apply_manual(store, [act], now, LifecyclePolicy()).decision is None   # the same act again: done
True
>>> store.close()
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from riskmap.lifecycle import (
    Decision,
    Key,
    LifecyclePolicy,
    ManualIssue,
    ManualLift,
    WarningState,
    decide,
    expire_due,
)
from riskmap.service.faults import fault_point  # fault injection (#7)
from riskmap.store.records import CapRow, OutboxRow, RunMeta, run_key
from riskmap.store.store import Store

Render = Callable[..., tuple[Sequence[OutboxRow | Mapping[str, Any]], Sequence[CapRow]]]
"""``render(run_id, decision, previous_states) -> (outbox_rows, cap_rows)``.

A renderer whose attribute ``repeats`` is true (:class:`riskmap.render.Renderer`) is called by
:func:`apply_run` with the keywords ``now`` (the run's), ``last_sent`` (:meth:`Store.last_sent`,
read before the run's transaction like ``previous``) and ``levels``, to repeat still-active
warnings after their interval."""


@dataclass(frozen=True)
class Applied:
    """What a cycle did; ``decision`` is None when the run was already done (nothing written)."""

    run_id: str
    decision: Decision | None
    counts: Mapping[str, int] = field(default_factory=dict)


def _no_messages(_run: str, _d: Decision, _p: Mapping[Key, WarningState]) -> tuple[list[Any], list[Any]]:
    return [], []


def apply_run(store: Store, meta: RunMeta, levels: pd.DataFrame | None, policy: LifecyclePolicy,
              render: Render = _no_messages, *, at: datetime | None = None) -> Applied:
    """Run one automatic cycle idempotently; a failure is recorded as a failed run and re-raised.

    The silences (in force for a run about ``meta.now`` decided at ``at``, the wall clock by
    default: :meth:`riskmap.manual.Silence.covers`) and the time of the last applied run come
    from the store.
    """
    rid = run_key(meta)
    if store.begin_run(rid, meta, at=at) is None:
        return Applied(rid, None)
    try:
        previous = store.current_warnings()
        decided_at = at or datetime.now(UTC)     # silences set after the forecast's time still count
        silences = [s for s in store.silences() if s.in_force(meta.now, decided_at)]
        decision = decide(previous, levels, meta.now, policy, silences=silences,
                          last_run_at=store.last_run_at(), decided_at=decided_at)
        if getattr(render, "repeats", False):
            outbox, caps = render(rid, decision, previous, now=meta.now, levels=levels,
                                  last_sent=store.last_sent(drill=meta.drill))
        else:
            outbox, caps = render(rid, decision, previous)
        fault_point("before-commit")  # fault point (#7)
        counts = store.commit_decision(rid, decision, outbox, caps, at=at)
    except BaseException as exc:
        store.fail_run(rid, f"{type(exc).__name__}: {exc}", at=at)
        raise
    return Applied(rid, decision, counts)


def act_hash(acts: Iterable[ManualIssue | ManualLift], now: datetime) -> str:
    """A stable hash of manual acts at a time (their run's ``act_hash``)."""
    text = repr(sorted(repr(a) for a in acts)) + now.isoformat()
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def apply_manual(store: Store, acts: Sequence[ManualIssue | ManualLift], now: datetime,
                 policy: LifecyclePolicy, render: Render = _no_messages, *, drill: bool = False,
                 at: datetime | None = None, on_commit: Callable[[Any, str], None] | None = None) -> Applied:
    """Apply operator acts as their own run (source ``manual``); every change carries the operator.

    ``on_commit(conn, run_id)`` runs inside the decision's transaction
    (:meth:`~riskmap.store.Store.commit_decision`): ``riskmap serve`` marks the request it applies
    there, so an act handed to it and the request's outcome commit together.
    """
    operators = ",".join(sorted({a.operator for a in acts}))
    meta = RunMeta(now=now, source="manual", operator=operators, act_hash=act_hash(acts, now), drill=drill,
                   extra={"acts": [repr(a) for a in acts]})
    rid = run_key(meta)
    if store.begin_run(rid, meta, at=at) is None:
        return Applied(rid, None)
    try:
        previous = store.current_warnings()
        decision = decide(previous, None, now, policy, manual=acts)
        outbox, caps = render(rid, decision, previous)
        counts = store.commit_decision(rid, decision, outbox, caps, at=at, on_commit=on_commit)
    except BaseException as exc:
        store.fail_run(rid, f"{type(exc).__name__}: {exc}", at=at)
        raise
    return Applied(rid, decision, counts)


def apply_expiry(store: Store, now: datetime, render: Render = _no_messages, *,
                 at: datetime | None = None) -> Applied:
    """Expire warnings whose validity ended by ``now`` (source ``expiry``); idempotent per ``now``."""
    meta = RunMeta(now=now, source="expiry", act_hash="expiry")
    rid = run_key(meta)
    if store.begin_run(rid, meta, at=at) is None:
        return Applied(rid, None)
    try:
        previous = store.current_warnings()
        decision = expire_due(previous, now)
        outbox, caps = render(rid, decision, previous)
        counts = store.commit_decision(rid, decision, outbox, caps, at=at)
    except BaseException as exc:
        store.fail_run(rid, f"{type(exc).__name__}: {exc}", at=at)
        raise
    return Applied(rid, decision, counts)
