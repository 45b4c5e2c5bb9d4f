"""Turn routed :class:`~riskmap.routing.Recipient` s into SMS text with the office's templates (pure).

Examples
--------
>>> from datetime import datetime, timezone
>>> from riskmap.routing import Alert, Recipient
>>> from riskmap.templates import load_templates
>>> r = Recipient("13800001234", "张三", "warning", ("household",), "上河村",
...               (Alert("469900100201", "mine", 3),), shelter="上河小学")
>>> text = render(r, load_templates(), signature="青山县防指", issuer="青山县防汛抗旱指挥部办公室",
...               issued_at=datetime(2026, 7, 22, 12, tzinfo=timezone.utc))
>>> "矿山暴雨灾害风险橙色预警" in text, "停产撤人" in text
(True, True)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from riskmap import sms
from riskmap.levels import Level
from riskmap.routing import Recipient
from riskmap.routing_rules import Routing
from riskmap.store.records import OutboxRow, outbox_key
from riskmap.templates import Item, TemplateSet


def render(r: Recipient, ts: TemplateSet, *, signature: str, issuer: str, issued_at: datetime) -> str:
    """The SMS text for one recipient: a warning, a duty summary or an all-clear (【演练】 in drill mode)."""
    common: dict[str, Any] = {"signature": signature, "issuer": issuer, "issued_at": issued_at,
                              "drill": r.drill}
    if r.kind == "summary":
        return ts.render_summary(**common, area=r.place, counts=dict(r.counts), internal=r.internal)
    if r.kind == "all_clear":
        return ts.render_all_clear(**common, place=r.place, hazards=[a.hazard for a in r.items()])
    items = [Item(a.hazard, Level(a.level), a.window_start, a.window_end, a.rain_mm, a.action)
             for a in r.items()]
    repeat = bool(r.alerts) and all(a.kind == "repeat" for a in r.alerts)
    return ts.render_warning(**common, place=r.place, items=items, shelter=r.shelter, repeat=repeat)


def _kind(r: Recipient) -> str:
    """The outbox ``kind``: ``repeat`` for a warning that only repeats still-active warnings."""
    if r.kind == "warning" and r.alerts and all(a.kind == "repeat" for a in r.alerts):
        return "repeat"
    return r.kind


def outbox_rows(recipients: Iterable[Recipient], ts: TemplateSet, routing: Routing, *, run_id: str,
                signature: str, issuer: str, issued_at: datetime) -> list[OutboxRow]:
    """Rendered outbox rows for a run, ready for :meth:`riskmap.store.Store.commit_decision`.

    The idempotency key is (run, the changes the message covers, phone, ``sms``), so re-running
    queues nothing twice.  A message whose level the routing file says to ``hold`` is queued
    ``held`` (released by ``riskmap approve``).  Duty summaries are never held.
    """
    rows = []
    for r in recipients:
        text = render(r, ts, signature=signature, issuer=issuer, issued_at=issued_at)
        keys = sorted(r.change_keys) or sorted(f"{a.village_code}/{a.hazard}/{a.kind}/{a.level}"
                                               for a in r.alerts)
        change = hashlib.sha256(("|".join([r.kind, *keys])).encode()).hexdigest()[:32]
        top = r.items()[0] if r.alerts and r.kind != "summary" else None
        held = r.kind == "warning" and routing.release_for(r.level) == "hold"
        rows.append(OutboxRow(
            idempotency_key=outbox_key(run_id, change, r.phone, "sms"), phone=r.phone, text=text,
            contact_name=r.name, role=",".join(r.roles), village_code=top.village_code if top else "",
            hazard=top.hazard if top else "", level=r.level, segments=sms.count_segments(text),
            change_key=change, status="held" if held else "queued", drill=r.drill, kind=_kind(r)))
    return rows
