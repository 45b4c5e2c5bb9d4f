"""``riskmap status``: what the service is doing, read from the store (works while ``serve`` runs).

Figures: who holds the store, the last run per source with its timings, active warnings per
level, the outbox (backlog, held, retrying, failed for good), delivery-receipt and
acknowledgement rates, and — from the heartbeat (:mod:`riskmap.service.heartbeat`) — the
stage timings of each source's last cycle and the next scheduled jobs.  Read-only: plain
``SELECT`` statements that SQLite's WAL lets run beside the service's writes.

Examples
--------
>>> import tempfile, pathlib
>>> from riskmap.store import Store
>>> store = Store.open(pathlib.Path(tempfile.mkdtemp()) / "riskmap.sqlite")
>>> st = gather(store)
>>> st["outbox"]["backlog"], st["warnings_per_level"], st["held_by"]
(0, {'1': 0, '2': 0, '3': 0, '4': 0}, None)
>>> "outbox" in format_text(st)
True
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, select

from riskmap.operations.acks import ACK
from riskmap.service.heartbeat import read_heartbeat
from riskmap.service.housekeeping import FINAL_FAILURE
from riskmap.store import held_by
from riskmap.store import tables as t


def _iso(v: Any) -> str | None:
    return v.isoformat() if isinstance(v, datetime) else v


def gather(store: Any, heartbeat_file: Any = None) -> dict[str, Any]:
    """Every figure ``riskmap status`` shows, as plain JSON-able data."""
    out: dict[str, Any] = {"store": store.url, "held_by": held_by(store),
                           "at": datetime.now(UTC).isoformat(timespec="seconds")}
    with store.engine.connect() as conn:
        runs: dict[str, dict[str, Any]] = {}
        q = select(t.runs).order_by(t.runs.c.started_at.desc()).limit(500)
        for r in conn.execute(q):
            if r.source not in runs and len(runs) < 20:
                runs[r.source] = {"run_id": r.id, "status": r.status, "now": _iso(r.now),
                                  "started_at": _iso(r.started_at), "finished_at": _iso(r.finished_at),
                                  "duration_s": r.duration_s, "attempts": r.attempts,
                                  "failure_reason": r.failure_reason}
        out["last_runs"] = runs
        out["runs"] = dict(conn.execute(select(t.runs.c.status, func.count())
                                        .group_by(t.runs.c.status)).all())
        levels = dict(conn.execute(select(t.warnings.c.level, func.count())
                                   .where(t.warnings.c.state == "active", t.warnings.c.level > 0)
                                   .group_by(t.warnings.c.level)).all())
        out["warnings_per_level"] = {str(lv): int(levels.get(lv, 0)) for lv in (1, 2, 3, 4)}
        by_status = dict(conn.execute(select(t.outbox.c.status, func.count())
                                      .group_by(t.outbox.c.status)).all())
        failed_final = conn.execute(select(func.count()).where(
            t.outbox.c.status == "failed", t.outbox.c.next_attempt_at >= FINAL_FAILURE)).scalar() or 0
        retrying = int(by_status.get("failed", 0)) - int(failed_final)
        sent = int(by_status.get("sent", 0)) + int(by_status.get("delivered", 0))

        def with_receipt(status: str) -> int:
            return int(conn.execute(select(func.count(func.distinct(t.receipts.c.outbox_id)))
                                    .where(t.receipts.c.status == status)).scalar() or 0)

        delivered, acked = with_receipt("delivered"), with_receipt(ACK)
        urgent = int(conn.execute(select(func.count()).where(
            and_(t.outbox.c.status.in_(("sent", "delivered")), t.outbox.c.level >= 3))).scalar() or 0)
        a = t.archive_batches.c
        batches, messages, receipts, last_at = conn.execute(
            select(func.count(), func.sum(a.messages), func.sum(a.receipts), func.max(a.at))).one()
    out["archive"] = {"batches": int(batches or 0), "messages": int(messages or 0),
                      "receipts": int(receipts or 0), "last_at": _iso(last_at)}
    out["outbox"] = {"queued": int(by_status.get("queued", 0)), "leased": int(by_status.get("leased", 0)),
                     "retrying": retrying, "held": int(by_status.get("held", 0)), "failed": int(failed_final),
                     "sent": sent, "delivered": delivered,
                     "backlog": int(by_status.get("queued", 0)) + int(by_status.get("leased", 0)) + retrying}
    out["rates"] = {"receipt": round(delivered / sent, 3) if sent else None,
                    "acknowledged": acked, "ack_of_orange_red": round(acked / urgent, 3) if urgent else None}
    hb = read_heartbeat(heartbeat_file) if heartbeat_file else None
    out["service"] = hb
    return out


def format_text(st: dict[str, Any]) -> str:
    """The human-readable report."""
    lines = [f"store {st['store']}",
             f"service: {'running — ' + st['held_by'] if st['held_by'] else 'not running'}"]
    hb = st.get("service") or {}
    if hb:
        inbox = hb.get("inbox", {})
        lines.append(f"  heartbeat {hb.get('updated_at')} state {hb.get('state')}; "
                     f"inbox {inbox.get('folder')}: {inbox.get('pending')} waiting, "
                     f"{inbox.get('quarantined')} quarantined")
    lines.append("last run per source:")
    for src, r in st["last_runs"].items():
        dur = f"{r['duration_s']:.1f} s" if r["duration_s"] is not None else "-"
        why = f" — {r['failure_reason']}" if r["failure_reason"] else ""
        lines.append(f"  {src}: {r['status']} run {r['run_id'][:12]} now={r['now']} "
                     f"finished={r['finished_at']} ({dur}, attempt {r['attempts']}){why}")
    for name, s in (hb.get("sources") or {}).items():
        stages = ", ".join(f"{k} {v:.2f}" for k, v in s.get("seconds", {}).items())
        lines.append(f"  cycle [{name}] {s.get('file')}: {s.get('total_s')} s ({stages})")
    w = st["warnings_per_level"]
    lines.append(f"active warnings: red {w['4']}, orange {w['3']}, yellow {w['2']}, blue {w['1']}")
    o = st["outbox"]
    lines.append(f"outbox: backlog {o['backlog']} (queued {o['queued']}, leased {o['leased']}, retrying "
                 f"{o['retrying']}), held {o['held']}, failed {o['failed']}, sent {o['sent']}")
    r = st["rates"]
    rate = "n/a" if r["receipt"] is None else f"{r['receipt']:.0%}"
    ack = "n/a" if r["ack_of_orange_red"] is None else f"{r['ack_of_orange_red']:.0%}"
    lines.append(f"receipts: delivered {o['delivered']} of {o['sent']} sent ({rate}); acknowledged "
                 f"{r['acknowledged']} ({ack} of orange/red messages)")
    arc = st.get("archive") or {}
    if arc.get("batches"):
        lines.append(f"archived (OUT/archive): {arc['messages']} messages with {arc['receipts']} receipts in "
                     f"{arc['batches']} batch(es), the last at {arc['last_at']}")
    jobs = hb.get("jobs") or []
    if jobs:
        lines.append("next jobs:")
        lines += [f"  {j['next_run_time']}  {j['id']} ({j['name']})" for j in jobs]
    return "\n".join(lines)
