"""What the SMS commands show: delivery rates per township, outbox rows with masked phone numbers."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd
from sqlalchemy import select

from riskmap.operations.acks import ACK
from riskmap.phones import mask_phone
from riskmap.store import Store
from riskmap.store import tables as t
from riskmap.store.db import guard
from riskmap.store.records import OutboxRecord

_MOBILE_IN_TEXT = re.compile(r"(?<!\d)(1[3-9]\d)(\d{4})(\d{4})(?!\d)")


def delivery_rates(store: Store, run_id: str | None = None, townships: Mapping[str, str] | None = None,
                   drill: bool = False, archived: Iterable[Mapping[str, Any]] = ()) -> pd.DataFrame:
    """Delivery and acknowledgement rates per township (the 9-digit prefix of the message's village).

    Columns ``township, name, messages, held, sent, delivered, failed, acknowledged, delivery_rate,
    ack_rate``: ``messages`` counts every message not held; ``sent`` those the gateway accepted (sent
    or delivered); ``delivery_rate = delivered / messages`` and ``ack_rate = acknowledged / messages``
    (NaN when no message).  Messages without a village (duty summaries) are under township ``""``.
    A last row ``total`` sums all.  Drill messages are counted only with ``drill=True`` (and then only
    they).  ``townships`` maps codes to names.  ``archived`` adds messages housekeeping moved out of
    the store (:func:`riskmap.store.archive.archived_messages`: rows with their ``receipts``).
    """
    ack = select(t.receipts.c.outbox_id).where(t.receipts.c.status == ACK).distinct().subquery()
    dlv = select(t.receipts.c.outbox_id).where(t.receipts.c.status == "delivered").distinct().subquery()
    q = (select(t.outbox.c.village_code, t.outbox.c.status, ack.c.outbox_id.label("ack"),
                dlv.c.outbox_id.label("dlv"))
         .outerjoin(ack, ack.c.outbox_id == t.outbox.c.id).outerjoin(dlv, dlv.c.outbox_id == t.outbox.c.id)
         .where(t.outbox.c.drill.is_(drill)))
    if run_id:
        q = q.where(t.outbox.c.run_id == run_id)
    with guard(f"{store.url} receipts"), store.engine.connect() as conn:
        rows = pd.DataFrame(conn.execute(q).all(), columns=["village_code", "status", "ack", "dlv"])
    old = [(m["village_code"], m["status"], _first(m, ACK), _first(m, "delivered")) for m in archived
           if bool(m["drill"]) == drill and (not run_id or m["run_id"] == run_id)]
    if old:
        rows = pd.concat([rows, pd.DataFrame(old, columns=rows.columns)], ignore_index=True)
    cols = ["township", "name", "messages", "held", "sent", "delivered", "failed", "acknowledged",
            "delivery_rate", "ack_rate"]
    names = dict(townships or {})
    rows["township"] = rows["village_code"].fillna("").str[:9]
    rows["held"] = rows["status"] == "held"
    rows["messages"] = ~rows["held"] & (rows["status"] != "superseded")  # replaced before it was sent
    rows["delivered"] = (rows["status"] == "delivered") | rows["dlv"].notna()
    rows["sent"] = rows["status"].isin(["sent", "delivered"]) | rows["delivered"]
    rows["failed"] = (rows["status"] == "failed") & ~rows["delivered"]
    rows["acknowledged"] = rows["ack"].notna()
    counts = ["messages", "held", "sent", "delivered", "failed", "acknowledged"]
    table = rows.groupby("township", sort=True)[counts].sum().astype(int).reset_index()
    table.loc[len(table)] = ["total", *[int(table[c].sum()) for c in counts]]
    table["name"] = [names.get(c, "合计" if c == "total" else "") for c in table["township"]]
    m = table["messages"].where(table["messages"] > 0)
    table["delivery_rate"] = table["delivered"] / m
    table["ack_rate"] = table["acknowledged"] / m
    return table[cols]


def _first(message: Mapping[str, Any], status: str) -> int | None:
    """The message's id when one of its archived receipts has ``status``, else None."""
    return message["id"] if any(r["status"] == status for r in message.get("receipts", ())) else None


def mask_text(text: str) -> str:
    """Mask every mainland mobile number inside a text (a message may quote a duty phone).

    >>> mask_text("请拨13800001234或0571-87654321")
    '请拨138****1234或0571-87654321'
    """
    return _MOBILE_IN_TEXT.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)


def outbox_view(records: Sequence[OutboxRecord]) -> list[dict[str, Any]]:
    """Outbox rows as plain dicts for display or JSON; phone numbers masked (138****0000)."""
    out = []
    for r in records:
        out.append({"id": r.id, "run": r.run_id, "status": r.status, "attempts": r.attempts,
                    "contact": r.contact_name, "phone": mask_phone(r.phone), "role": r.role,
                    "village": r.village_code, "hazard": r.hazard, "level": r.level, "segments": r.segments,
                    "drill": r.drill, "next_attempt_at": r.next_attempt_at, "text": mask_text(r.text)})
    return out


OutboxFilter = str
"""``pending`` (queued, leased, or failed with a retry scheduled), ``failed`` (every failed message),
``held`` (waiting for approval), ``sent``, ``delivered``, or ``""`` for all."""
_NEVER_YEAR = 9999  # riskmap.dispatcher.NEVER: next_attempt_at of a permanent failure


def list_outbox(store: Store, which: OutboxFilter = "", run_id: str | None = None,
                limit: int | None = None) -> tuple[int, list[dict[str, Any]]]:
    """Outbox messages for display: ``(how many match, the newest ``limit`` of them as masked dicts)``.

    Each dict is an :func:`outbox_view` row plus ``error`` (the last gateway error, numbers masked) and
    ``permanent`` (a failure that will not be retried).
    """
    q = select(t.outbox)
    if which == "pending":
        retry = (t.outbox.c.status == "failed") & t.outbox.c.next_attempt_at.is_not(None)
        q = q.where(t.outbox.c.status.in_(("queued", "leased")) | retry)
    elif which:
        q = q.where(t.outbox.c.status == which)
    if run_id:
        q = q.where(t.outbox.c.run_id == run_id)
    with guard(f"{store.url} outbox"), store.engine.connect() as conn:
        rows = list(conn.execute(q.order_by(t.outbox.c.id)))
    if which == "pending":  # a permanent failure is parked at NEVER
        rows = [r for r in rows if r.status != "failed" or r.next_attempt_at.year < _NEVER_YEAR]
    shown = rows[-limit:] if limit else rows
    records = [OutboxRecord(**{k: r._mapping[k] for k in OutboxRecord.__dataclass_fields__}) for r in shown]
    out = []
    for rec, r in zip(records, shown, strict=True):
        never = r.next_attempt_at is not None and r.next_attempt_at.year >= _NEVER_YEAR
        permanent = r.status == "failed" and (r.next_attempt_at is None or never)
        view = outbox_view([rec])[0]
        if never:
            view["next_attempt_at"] = None
        out.append({**view, "error": mask_text(r.last_error or ""), "permanent": permanent})
    return len(rows), out
