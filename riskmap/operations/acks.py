"""Acknowledgements: a reply of 1/收到 or a phone call-back (叫应).

They are stored as receipts with status :data:`ACK` on the acknowledged outbox message (no schema
change): idempotent per message, channel and operator, and counted by ``riskmap receipts``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from riskmap.errors import InputError, PhoneNumberError
from riskmap.phones import mask_phone, normalize_phone
from riskmap.store import Store
from riskmap.store import tables as t
from riskmap.store.db import guard
from riskmap.store.records import OutboxRecord

log = logging.getLogger("riskmap.operations")

ACK = "ack"
"""The receipt status of an acknowledgement (reply 1/收到, or a call-back 叫应); the same status
:func:`riskmap.service.recovery.acknowledge` writes for replies and ``riskmap status`` counts."""


@dataclass(frozen=True)
class Acknowledgement:
    """One acknowledged message."""

    outbox_id: int
    contact_name: str
    phone_masked: str
    village_code: str
    hazard: str
    level: int
    run_id: str
    via: str
    new: bool
    """False when the same acknowledgement was recorded before."""


def _phone_or_none(text: str) -> str | None:
    try:
        return normalize_phone(text)
    except PhoneNumberError:
        return None


def _latest_warning_message(store: Store, phone: str | None, name: str | None) -> OutboxRecord:
    with guard(f"{store.url} acknowledge"), store.engine.connect() as conn:
        q = select(t.outbox).where(t.outbox.c.level > 0, t.outbox.c.drill.is_(False))
        q = q.where(t.outbox.c.phone == phone) if phone else q.where(t.outbox.c.contact_name == name)
        rows = list(conn.execute(q.order_by(t.outbox.c.id.desc()).limit(500)))
        active = {(r.village_code, r.hazard) for r in conn.execute(
            select(t.warnings.c.village_code, t.warnings.c.hazard)
            .where(t.warnings.c.state == "active", t.warnings.c.level > 0))}
    who = mask_phone(phone) if phone else name
    if not rows:
        raise InputError(f"CONTACT {who}: no warning message to this contact in the store")
    if not phone and len({r.phone for r in rows}) > 1:
        raise InputError(f"CONTACT {who}: several phone numbers have this name; give the phone number")
    for r in rows:  # newest first: the most recent message about a warning still in force
        if (r.village_code, r.hazard) in active or (not r.village_code and active):
            return OutboxRecord(**{k: r._mapping[k] for k in OutboxRecord.__dataclass_fields__})
    raise InputError(f"CONTACT {who}: none of the warnings sent to this contact is still active")


def acknowledge(store: Store, contact: str, operator: str, at: datetime,
                via: str = "callback") -> Acknowledgement:
    """Record that ``contact`` (a phone number or a contact name) acknowledged their latest active warning.

    ``via`` is ``callback`` (叫应: ``operator`` phoned and confirmed) or ``reply`` (an SMS 1/收到).  The
    acknowledgement is a receipt with status :data:`ACK` on that outbox message, so it is idempotent
    per message, channel and operator and counts in :func:`delivery_rates`.
    """
    if not operator.strip():
        raise InputError("--by: the name of who confirmed is required")
    text = contact.strip()
    if not text:
        raise InputError("CONTACT: give a phone number or a contact name")
    phone = _phone_or_none(text) if any(c.isdigit() for c in text) else None
    if phone is None and sum(c.isdigit() for c in text) >= 7:
        raise InputError(f"CONTACT {mask_phone(text)}: not a valid phone number")
    rec = _latest_warning_message(store, phone, None if phone else text)
    new = store.add_receipt(rec.id, ACK, f"{via} by {operator}", at)
    log.info("%s acknowledged outbox %d (%s %s level %d) via %s by %s", mask_phone(rec.phone), rec.id,
             rec.village_code, rec.hazard, rec.level, via, operator)
    return Acknowledgement(rec.id, rec.contact_name, mask_phone(rec.phone), rec.village_code, rec.hazard,
                           rec.level, rec.run_id, via, new)


def acknowledge_reply(store: Store, phone: str, text: str, at: datetime) -> Acknowledgement | None:
    """For the receiver's ``on_reply``: a reply meaning 收到 acknowledges; None when it does not or when
    the number has no active warning."""
    from riskmap.receiver import is_acknowledgement

    if not is_acknowledgement(text):
        return None
    try:
        return acknowledge(store, phone, "sms reply", at, via="reply")
    except InputError as exc:
        log.info("reply not counted: %s", exc)
        return None


def acknowledged_ids(store: Store, outbox_ids: Sequence[int] | None = None) -> set[int]:
    """Outbox ids with an acknowledgement (for escalation: who has not answered)."""
    q = select(t.receipts.c.outbox_id).where(t.receipts.c.status == ACK).distinct()
    if outbox_ids is not None:
        q = q.where(t.receipts.c.outbox_id.in_(list(outbox_ids)))
    with guard(f"{store.url} acknowledged"), store.engine.connect() as conn:
        return {int(r[0]) for r in conn.execute(q)}


def acknowledgements(store: Store, village_code: str) -> list[dict[str, Any]]:
    """The acknowledgements of messages about one village, oldest first (for its audit trail).

    Each: ``at``, ``outbox_id``, ``run_id``, ``contact``, ``phone`` (masked), ``hazard``, ``level`` and
    ``how`` (e.g. ``callback by 王工``, ``reply by sms reply``).
    """
    q = (select(t.receipts.c.at, t.receipts.c.raw, t.outbox.c.id, t.outbox.c.run_id, t.outbox.c.contact_name,
                t.outbox.c.phone, t.outbox.c.hazard, t.outbox.c.level)
         .join(t.outbox, t.outbox.c.id == t.receipts.c.outbox_id)
         .where(t.receipts.c.status == ACK, t.outbox.c.village_code == village_code)
         .order_by(t.receipts.c.at, t.receipts.c.id))
    with guard(f"{store.url} acknowledgements {village_code}"), store.engine.connect() as conn:
        return [{"at": r.at, "outbox_id": r.id, "run_id": r.run_id, "contact": r.contact_name,
                 "phone": mask_phone(r.phone), "hazard": r.hazard, "level": r.level, "how": r.raw}
                for r in conn.execute(q)]


def unacknowledged(store: Store, now: datetime, after: timedelta, levels: Sequence[int] = (3, 4),
                   role: str = "village_head") -> list[OutboxRecord]:
    """Messages due for escalation (#6): nobody answered within ``after``.

    Messages to ``role`` at ``levels`` that the gateway accepted (``sent``/``delivered``), about a
    warning still active, whose clock (queued, or for held messages the approval) started at least
    ``after`` before ``now``, and with no acknowledgement from the same phone since then (a reply or
    call-back for a later message counts).  Drill messages are never escalated.  Oldest first.
    """
    q = (select(t.outbox).where(t.outbox.c.status.in_(("sent", "delivered")), t.outbox.c.drill.is_(False),
                                t.outbox.c.level.in_([int(x) for x in levels]),
                                t.outbox.c.role.contains(role), t.outbox.c.created_at <= now - after)
         .order_by(t.outbox.c.id))
    with guard(f"{store.url} unacknowledged"), store.engine.connect() as conn:
        rows = [r for r in conn.execute(q) if role in str(r.role).split(",")]
        if not rows:
            return []
        runs = sorted({r.run_id for r in rows})
        released = dict(conn.execute(
            select(t.approvals.c.subject, func.min(t.approvals.c.at))
            .where(t.approvals.c.subject.in_(runs), t.approvals.c.kind == "release")
            .group_by(t.approvals.c.subject)).all())
        active = {(r.village_code, r.hazard) for r in conn.execute(
            select(t.warnings.c.village_code, t.warnings.c.hazard)
            .where(t.warnings.c.state == "active", t.warnings.c.level > 0))}
        acks: dict[str, list[datetime]] = {}
        for phone, at in conn.execute(select(t.outbox.c.phone, t.receipts.c.at)
                                      .join(t.outbox, t.outbox.c.id == t.receipts.c.outbox_id)
                                      .where(t.receipts.c.status == ACK,
                                             t.outbox.c.phone.in_({r.phone for r in rows}))):
            acks.setdefault(phone, []).append(at)
    out = []
    for r in rows:
        approved = released.get(r.run_id)
        if isinstance(approved, str):  # SQLite returns the aggregate as stored text
            approved = datetime.fromisoformat(approved)
        start = max(r.created_at, approved) if approved is not None else r.created_at
        if start > now - after or (r.village_code, r.hazard) not in active:
            continue
        if any(at >= start for at in acks.get(r.phone, ())):
            continue
        out.append(OutboxRecord(**{k: r._mapping[k] for k in OutboxRecord.__dataclass_fields__}))
    return out
