"""Escalation: an unacknowledged orange/red message to a village head goes to the next person up (pure).

Given the messages nobody acknowledged in time (e.g. from
:func:`riskmap.operations.acks.unacknowledged`), :func:`escalation_rows` builds one outbox row
per message and officer of ``routing.escalation.to_role`` for the village's township (or county,
by the officer's ``admin_code`` prefix).  Each row's idempotency key names the escalated message,
so escalating twice queues nothing new.  The text (``templates.yaml`` template ``escalation`` if
present, else :data:`DEFAULT_TEXT`) names the village, the person and the warning — not the phone
number.  Drill messages are escalated as drills.

Examples
--------
>>> from types import SimpleNamespace as NS
>>> from datetime import datetime, timezone
>>> from riskmap.routing_rules import load_routing
>>> from riskmap.templates import load_templates
>>> rec = NS(id=7, run_id="r1", phone="13800000001", contact_name="张三", role="village_head",
...          village_code="469900100201", hazard="torrent", level=4, drill=False,
...          created_at=datetime(2026, 7, 22, 12, tzinfo=timezone.utc))
>>> officer = NS(name="李四", phone="13900000002", role="township_duty", admin_code="469900100")
>>> rows = escalation_rows([rec], [officer], {"469900100201": "上河村"}, load_routing(), load_templates(),
...                        signature="青山县防指")
>>> rows[0].phone, rows[0].role, rows[0].level
('13900000002', 'escalation', 4)
>>> rows[0].text
'【青山县防指】上河村村责任人张三未确认山洪灾害风险红色预警(22日20时00分发送),请立即电话叫应并落实转移。'
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from riskmap import sms
from riskmap.gateways.base import mask
from riskmap.levels import Level
from riskmap.routing_rules import Routing
from riskmap.schema import ROLES
from riskmap.store.records import OutboxRow, outbox_key
from riskmap.templates import TemplateSet, clean_name

log = logging.getLogger("riskmap.escalation")

DEFAULT_TEXT = "【{signature}】{place}{role}{name}未确认{hazard}{color}预警{sent},请立即电话叫应并落实转移。"
"""Used when ``templates.yaml`` has no ``escalation`` template."""

__all__ = ["DEFAULT_TEXT", "escalation_rows"]


def _sent(at: Any, ts: TemplateSet) -> str:
    return at.astimezone(ts.tz).strftime("(%d日%H时%M分发送)") if at is not None else ""


def _officers(officers: Iterable[Any], role: str, village_code: str) -> list[Any]:
    out = []
    for o in officers:
        admin = str(getattr(o, "admin_code", "") or "")
        if str(o.role) == role and admin and village_code.startswith(admin) and len(admin) in (6, 9):
            out.append(o)
    nine = [o for o in out if len(str(o.admin_code)) == 9]
    return nine or out  # the township's officers first; the county's when the township has none


def escalation_rows(unacked: Sequence[Any], officers: Iterable[Any], village_names: Mapping[str, str],
                    routing: Routing, ts: TemplateSet, *, signature: str) -> list[OutboxRow]:
    """Outbox rows escalating each unacknowledged message (see the module docstring).

    ``unacked`` are outbox records (``id``, ``run_id``, ``contact_name``, ``role``, ``village_code``,
    ``hazard``, ``level``, ``drill``, ``created_at``); ``officers`` are contacts (``name``, ``phone``
    normalised, ``role`` id, ``admin_code``) — e.g. :func:`riskmap.routing.prepare_contacts` rows.
    Messages not from ``routing.escalation.from_role`` or below its levels are ignored.
    """
    esc = routing.escalation
    officers = list(officers)
    template = getattr(ts, "texts", {}).get("escalation", DEFAULT_TEXT)
    rows: list[OutboxRow] = []
    for rec in unacked:
        roles = str(rec.role).split(",")
        if esc.from_role not in roles or Level(int(rec.level)) not in esc.levels:
            continue
        targets = _officers(officers, esc.to_role, str(rec.village_code))
        if not targets:
            log.warning("escalation of outbox %s (%s): no %s for village %s", rec.id, mask(str(rec.phone)),
                        esc.to_role, rec.village_code)
            continue
        lv = Level(int(rec.level))
        text = template.format(
            signature=clean_name(signature), place=clean_name(village_names.get(str(rec.village_code), "")),
            role=ROLES.get(esc.from_role, esc.from_role), name=clean_name(rec.contact_name),
            hazard=ts.hazard_name(str(rec.hazard)), color=ts.color(lv), grade=lv.grade,
            sent=_sent(getattr(rec, "created_at", None), ts))
        if rec.drill:
            text = ts.drill_prefix + text
        for o in targets:
            rows.append(OutboxRow(
                idempotency_key=outbox_key(str(rec.run_id), f"escalate-{rec.id}", str(o.phone), "sms"),
                phone=str(o.phone), text=text, contact_name=str(o.name), role="escalation",
                village_code=str(rec.village_code), hazard=str(rec.hazard), level=int(rec.level),
                segments=sms.count_segments(text), change_key=f"escalate-{rec.id}", status="queued",
                drill=bool(rec.drill), kind="escalation"))
            log.info("escalation: outbox %s (%s, %s) not acknowledged → %s %s", rec.id, rec.village_code,
                     mask(str(rec.phone)), esc.to_role, mask(str(o.phone)))
    return rows
