"""``riskmap serve`` applies the operator acts handed to it (:mod:`riskmap.store.requests`).

While the service holds the store, ``riskmap issue`` and ``riskmap lift`` record a request and wait;
the ``requests`` job (every :data:`POLL_S`, and first at start) finds it with one indexed query and
applies it under the cycle lock, exactly as the CLI would have: :func:`~riskmap.operations.acts.perform_act`
(targets resolved on the service's region, :func:`~riskmap.store.apply_manual`, SMS and CAP rendered
by :func:`~riskmap.operations.acts.manual_renderer` from the service's rules), the request marked
``applied`` with its summary in the act's own transaction, then the CAP files written, the request
``done`` and the dispatcher woken.

The job never waits for the cycle lock: while a cycle runs it returns at once (a job that waited
would make APScheduler skip and log every later tick), and the inbox scan applies pending requests
between its files, so an act waits for one cycle at the most.

Crash safety: a request taken up (``working``) has its act's time fixed, so after a crash the
retry is the same manual run — applied once.  A request killed :data:`MAX_ATTEMPTS` times while
being applied fails (no crash loop); one the service did not take up within
:data:`~riskmap.store.requests.MAX_AGE` of its making (the service was down) expires unapplied.

Fault points (``RISKMAP_FAULT``, :mod:`riskmap.service.faults`): ``request-before-commit`` — inside
the act's transaction, before it commits; ``request-after-commit`` — the act and the ``applied`` mark
committed, the CAP files not yet written.

Examples
--------
>>> from datetime import datetime, timezone
>>> format_requests({"pending": [], "failed": [], "counts": {}}, timezone.utc)
[]
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from riskmap.errors import RiskmapError, ServiceUnavailable, StoreLocked
from riskmap.service.faults import fault_point
from riskmap.service.logging import run_context, set_context
from riskmap.store import requests as rq

log = logging.getLogger("riskmap.service")

POLL_S = 1.0
"""How often the ``requests`` job looks (at most; ``poll_s`` when that is shorter)."""
MAX_ATTEMPTS = 3
"""A request being applied when the service died this many times fails instead of being tried again."""
_quiet_until: dict[int, float] = {}


def _now() -> datetime:
    return datetime.now(UTC)


def take_requests(svc: Any) -> int:
    """The ``requests`` job: apply pending requests if the cycle lock is free; how many were handled."""
    if svc.stopping.is_set():
        return 0
    try:
        if not rq.has_pending(svc.store):
            return 0
    except RiskmapError as exc:  # the database is away: say so once a minute, not every second
        if time.monotonic() >= _quiet_until.get(id(svc), 0.0):
            log.error("requests: %s", exc)
            _quiet_until[id(svc)] = time.monotonic() + 60
        return 0
    if not svc.cycle_lock.acquire(blocking=False):
        return 0  # a cycle runs: the inbox scan takes the requests between its files
    try:
        return apply_requests(svc)
    finally:
        svc.cycle_lock.release()


def apply_requests(svc: Any) -> int:
    """Apply every pending request, oldest first (the caller holds the cycle lock)."""
    n = 0
    try:
        todo = rq.pending(svc.store)
    except RiskmapError as exc:
        log.error("requests: %s", exc)
        return 0
    for rec in todo:
        if svc.stopping.is_set():
            break
        with run_context(job="request", request=rec.id[:12]):
            apply_request(svc, rec, _now())
        n += 1
    if n:
        svc.dispatcher.wake()
    return n


def apply_request(svc: Any, rec: rq.RequestRecord, now: datetime) -> None:
    """Apply one request (or publish one already applied); its outcome is recorded on it."""
    from riskmap.operations.acts import ActParams, manual_renderer, perform_act

    store = svc.store
    try:
        if rec.status == "applied":  # committed before a crash: write its CAP files now
            _publish(svc, rec)
            return
        if now - rec.created_at > rq.MAX_AGE:
            made = rec.created_at.isoformat(timespec="seconds")
            why = (f"not applied: riskmap serve did not take it up within {_minutes(rq.MAX_AGE)} of the "
                   f"request (made {made}); request it again if still needed")
            if rq.mark_failed(store, rec.id, why, ServiceUnavailable.exit_code, now, status="expired"):
                log.warning("request %s (%s by %s) expired: %s", rec.id[:12], rec.kind, rec.operator, why)
            return
        if rec.attempts >= MAX_ATTEMPTS:
            why = (f"gave up after {rec.attempts} attempts: the service stopped while applying it each time"
                   + (f" (last error: {rec.error})" if rec.error else ""))
            _fail(store, rec, why, 1, now)
            return
        params = ActParams.from_json(rec.params)
        claimed = rq.claim(store, rec.id, now, act_at=params.now)
        if claimed is None:
            return
        at = claimed.act_at or now
        loaded = svc.regions.get(svc.sc.region or Path("."))
        # the renderer of the service's region and rules (the one it keeps, unless the act is a drill)
        render = (manual_renderer(loaded.region, svc.settings, svc.rules_dir, True) if params.drill
                  else svc.renderer())

        def on_commit(conn: Any, run_id: str, codes: tuple[str, ...]) -> None:
            rq.mark_applied(conn, rec.id, run_id, codes, _now())
            fault_point("request-before-commit")  # fault point: the act's transaction is still open

        applied, codes = perform_act(store, params, at, svc.settings, loaded.region, render, on_commit)
        set_context(run_id=applied.run_id[:12])
        if applied.decision is None:  # the same act at the same time was recorded before
            rq.mark_applied_alone(store, rec.id, applied.run_id, codes, _now())
        fault_point("request-after-commit")  # fault point: committed, CAP files not written
        done = rq.get(store, rec.id)
        assert done is not None
        summary = done.result
        log.info("request %s: %s by %s applied in run %s: %d change(s), %d SMS queued, %d held (%s)",
                 rec.id[:12], rec.kind, rec.operator, applied.run_id[:12], summary.get("n_changes", 0),
                 summary.get("messages", {}).get("queued", 0), summary.get("messages", {}).get("held", 0),
                 rec.reason)
        _publish(svc, done)
    except (ServiceUnavailable, StoreLocked) as exc:  # passing: try again at the next tick
        log.error("request %s: %s (it is tried again)", rec.id[:12], exc)
        try:
            rq.release(store, rec.id, str(exc))
        except RiskmapError:
            pass
    except RiskmapError as exc:
        _fail(store, rec, str(exc), exc.exit_code, now)
    except Exception as exc:  # noqa: BLE001 - the service keeps running; the operator gets the one line
        _fail(store, rec, f"{type(exc).__name__}: {exc}", 1, now, trace=True)


def _fail(store: Any, rec: rq.RequestRecord, error: str, exit_code: int, now: datetime,
          trace: bool = False) -> None:
    """Record that a request failed (logged; a store error here leaves it for the next tick)."""
    log.error("request %s (%s by %s) failed: %s", rec.id[:12], rec.kind, rec.operator, error, exc_info=trace)
    try:
        rq.mark_failed(store, rec.id, error, exit_code, now)
    except RiskmapError as exc:
        log.error("request %s: %s", rec.id[:12], exc)


def _publish(svc: Any, rec: rq.RequestRecord) -> None:
    """The outputs of an applied request: its CAP files and the feed; then ``done`` — also when the files
    cannot be written (the act stands and its messages go out; the error is kept on the request)."""
    from riskmap.outputs import write_cap_files

    error = ""
    try:
        write_cap_files(svc.sc.out, svc.store, rec.run_id, svc.settings, rec.act_at or _now())
    except (OSError, RiskmapError) as exc:
        error = f"CAP files not written: {exc}"
        log.error("request %s: %s", rec.id[:12], error)
    rq.mark_done(svc.store, rec.id, error)
    svc.dispatcher.wake()


def _minutes(d: timedelta) -> str:
    return f"{d.total_seconds() / 60:g} min"


# -- riskmap status -------------------------------------------------------------------------------
def request_figures(store: Any, now: datetime | None = None) -> dict[str, Any]:
    """Pending requests and those that failed or expired in the last day, as JSON-able data."""
    now = now or _now()
    out: dict[str, Any] = {"pending": [], "failed": [], "counts": {}}
    for r in rq.recent(store, now - timedelta(days=1)):
        out["counts"][r.status] = out["counts"].get(r.status, 0) + 1
        item = {"id": r.id, "kind": r.kind, "status": r.status, "operator": r.operator, "reason": r.reason,
                "target": ",".join([*(f"village:{v}" for v in r.params.get("villages", ())),
                                    *r.params.get("features", ())]),
                "hazard": r.params.get("hazard") or "all", "level": r.params.get("level", 0),
                "created_at": r.created_at.isoformat(), "attempts": r.attempts, "error": r.error,
                "age_s": round((now - r.created_at).total_seconds())}
        if r.pending:
            out["pending"].append(item)
        elif r.status in ("failed", "expired"):
            out["failed"].append(item)
    return out


def format_requests(fig: dict[str, Any], tz: tzinfo) -> list[str]:
    """``riskmap status`` lines for :func:`request_figures` (none when there is nothing to say)."""
    from riskmap.levels import Level

    def line(r: dict[str, Any]) -> str:
        what = r["kind"] + (f" {Level(r['level']).color}" if r["kind"] == "issue" and r["level"] else "")
        at = datetime.fromisoformat(r["created_at"]).astimezone(tz).strftime("%m-%d %H:%M:%S")
        tail = f": {r['error']}" if r["error"] and r["status"] != "queued" else ""
        return (f"  {r['id'][:12]} {r['status']} {what} {r['hazard']} {r['target']} by {r['operator']} "
                f"(made {at}, {r['age_s']} s ago){tail}")

    lines: list[str] = []
    if fig["pending"]:
        lines.append(f"requests (riskmap issue/lift handed to the service): {len(fig['pending'])} pending")
        lines += [line(r) for r in fig["pending"]]
    if fig["failed"]:
        lines.append(f"requests failed or expired in the last 24 h: {len(fig['failed'])}")
        lines += [line(r) for r in fig["failed"]]
    return lines
