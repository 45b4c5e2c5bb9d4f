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

from datetime import datetime

from riskmap.levels import Level
from riskmap.routing import Recipient
from riskmap.templates import Item, TemplateSet


def render(r: Recipient, ts: TemplateSet, *, signature: str, issuer: str, issued_at: datetime) -> str:
    """The SMS text for one recipient: a warning, a duty summary or an all-clear (【演练】 in drill mode)."""
    common = {"signature": signature, "issuer": issuer, "issued_at": issued_at, "drill": r.drill}
    if r.kind == "summary":
        return ts.render_summary(**common, area=r.place, counts=dict(r.counts), internal=r.internal)
    if r.kind == "all_clear":
        return ts.render_all_clear(**common, place=r.place, hazards=[a.hazard for a in r.items()])
    items = [Item(a.hazard, Level(a.level), a.window_start, a.window_end, a.rain_mm, a.action)
             for a in r.items()]
    return ts.render_warning(**common, place=r.place, items=items, shelter=r.shelter)
