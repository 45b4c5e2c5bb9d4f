"""CAP 1.2 messages from lifecycle changes (pure; lxml).

issue -> ``Alert``; escalate/downgrade -> ``Update`` referencing the warning's previous
message; lift/expire -> ``Cancel`` referencing it (an ``Alert`` with AllClear when no
previous message is known); drills -> status ``Exercise``.  Identifiers follow GB/T
35965.1: ``{area 6}{sector 3}{unit 3}{ext 2}_{Beijing time YYYYMMDDhhmmss}_{N}`` where
``sent`` is the decision's ``now`` and ``N`` is a number derived from the change keys,
so one decision always yields the same identifiers and a re-evaluation at the same
``now`` (a changed rule set) never reuses one.

Examples
--------
>>> from datetime import datetime, timezone
>>> from riskmap.lifecycle import Change
>>> from riskmap.cap.area import CapArea
>>> ch = Change("issue", "469900100201", "torrent", 0, 4, datetime(2026, 7, 1, tzinfo=timezone.utc),
...             datetime(2026, 7, 1, 9, tzinfo=timezone.utc), reason="3 h 120 mm")
>>> area = CapArea("469900100201", "双河村<&>", circle=(22.5, 111.0, 1.0))
>>> msg = build_message([ch], {ch.village_code: area}, CapOptions())
>>> msg.msg_type, msg.sent.isoformat(), msg.identifier[:30]
('Alert', '2026-07-01T08:00:00+08:00', '46990011000100_20260701080000_')
>>> "双河村&lt;&amp;&gt;" in msg.xml
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from lxml import etree
from lxml.builder import ElementMaker

from riskmap.cap.area import CapArea, format_circle, format_polygon
from riskmap.cap.text import CATEGORIES, EVENTS, cap_codes, description, headline, instruction
from riskmap.errors import ConfigError, InputError
from riskmap.levels import Level
from riskmap.lifecycle import Change, Key, WarningState
from riskmap.store.records import CapRow

NS = "urn:oasis:names:tc:emergency:cap:1.2"
E = ElementMaker(namespace=NS, nsmap={None: NS})
GEOCODE_NAME = "统计用区划代码"
"""``valueName`` of the 12-digit village code in ``geocode``."""
RESTRICTION = "内部预警，仅供防汛责任人，不向公众发布 (internal: flood-control staff only)"
"""``restriction`` of messages about internal levels (scope Restricted)."""


@dataclass(frozen=True)
class CapOptions:
    """Who sends and how; build it from settings with :meth:`from_settings`."""

    sender: str = "qingshan-fxb@example.invalid"
    sender_name: str = "青山县防汛抗旱指挥部办公室"
    sender_name_en: str = "Qingshan County Flood Control Office"
    area_code: str = "469900"
    sector_code: str = "110"
    unit_code: str = "001"
    ext_code: str = "00"
    timezone: str = "Asia/Shanghai"
    languages: tuple[str, ...] = ("zh-CN",)
    group_by_township: bool = False

    @classmethod
    def from_settings(cls, settings: Any) -> CapOptions:
        """From :class:`riskmap.config.Settings`; en-US is added when ``cap.languages`` or the office asks."""
        src = getattr(settings, "source", "<settings>")
        if not settings.cap.sender or any(ch in settings.cap.sender for ch in " \t\n,<&"):
            raise ConfigError(f"{src}: 'cap.sender' {settings.cap.sender!r} must be non-empty without "
                              "spaces, commas, '<' or '&' (CAP 1.2)")
        for key in ("sector_code", "unit_code"):
            value = getattr(settings.cap, key)
            if not (len(value) == 3 and value.isdigit()):
                raise ConfigError(f"{src}: 'cap.{key}' must be 3 digits (GB/T 35965.1), got {value!r}")
        langs = tuple(getattr(settings.cap, "languages", ()) or ())
        if not langs:
            langs = ("zh-CN", "en-US") if settings.office.language == "en-US" else ("zh-CN",)
        return cls(sender=settings.cap.sender, sender_name=settings.office.issuer,
                   sender_name_en=settings.office.issuer_en, area_code=settings.office.area_code,
                   sector_code=settings.cap.sector_code, unit_code=settings.cap.unit_code,
                   timezone=settings.office.timezone, languages=langs,
                   group_by_township=settings.cap.group_by_township)


@dataclass(frozen=True)
class CapRef:
    """A previous message: the ``sender,identifier,sent`` triple of ``references``."""

    sender: str
    identifier: str
    sent: datetime

    def text(self, tz: ZoneInfo) -> str:
        """The triple as CAP writes it."""
        return f"{self.sender},{self.identifier},{_time(self.sent, tz)}"


@dataclass(frozen=True)
class CapMessage:
    """One built message; :meth:`as_row` gives the store's record."""

    identifier: str
    msg_type: str
    status: str
    sent: datetime
    village_codes: tuple[str, ...]
    hazard: str
    xml: str
    change_keys: tuple[str, ...]
    references: str = ""

    def as_row(self) -> CapRow:
        """The :class:`~riskmap.store.CapRow` to pass to ``Store.commit_decision``."""
        return CapRow(self.identifier, self.msg_type, self.status, self.sent, self.village_codes, self.hazard,
                      self.xml, self.change_keys, self.references)


def _time(t: datetime, tz: ZoneInfo) -> str:
    if t.tzinfo is None:
        raise InputError(f"CAP: time {t!r} has no time zone")
    return t.astimezone(tz).replace(microsecond=0).isoformat()


def previous_refs(states: Mapping[Key, WarningState], sender: str) -> dict[Key, CapRef]:
    """References to each warning's last message, from the store's states."""
    return {k: CapRef(sender, s.cap_identifier, s.cap_sent) for k, s in states.items()
            if s.cap_identifier and s.cap_sent is not None}


def identifier(options: CapOptions, sent: datetime, change_keys: Sequence[str]) -> str:
    """A GB/T 35965.1-style identifier, deterministic for the changes it carries."""
    tz = ZoneInfo(options.timezone)
    digest = hashlib.sha256("|".join(sorted(change_keys)).encode()).hexdigest()
    n = int(digest[:12], 16)
    stamp = sent.astimezone(tz).strftime("%Y%m%d%H%M%S")
    return f"{options.area_code}{options.sector_code}{options.unit_code}{options.ext_code}_{stamp}_{n}"


def _msg_type(kind: str, has_ref: bool) -> str:
    if not has_ref or kind == "issue":
        return "Alert"
    return "Cancel" if kind in ("lift", "expire") else "Update"


def _area(a: CapArea) -> etree._Element:
    desc = f"{a.township}{a.name}" if a.township else a.name
    el = E.area(E.areaDesc(desc))
    for ring in a.polygons:
        el.append(E.polygon(format_polygon(ring)))
    if a.circle is not None:
        el.append(E.circle(format_circle(a.circle)))
    el.append(E.geocode(E.valueName(GEOCODE_NAME), E.value(a.code)))
    return el


def _param(name: str, value: object) -> etree._Element:
    return E.parameter(E.valueName(name), E.value(str(value)))


def _info(lang: str, changes: Sequence[Change], areas: Sequence[CapArea], options: CapOptions,
          sent: datetime, drill: bool) -> etree._Element:
    tz = ZoneInfo(options.timezone)
    c = changes[0]
    ended = c.kind in ("lift", "expire")
    shown = 0 if ended else c.new_level
    severity, urgency, responses = cap_codes(shown, c.hazard)
    observed = c.window_end is not None and c.window_end <= sent
    certainty = "Observed" if ended or observed else "Likely"
    zh = lang == "zh-CN"
    issuer = options.sender_name if zh else options.sender_name_en
    names = [a.name for a in areas]
    more = ("等" if zh else " and others") if len(names) > 3 else ""
    place = ("、" if zh else ", ").join(names[:3]) + more
    head = headline(lang, c.kind, c.hazard, c.old_level, c.new_level, place, issuer)
    if drill:
        head = ("【演练】" if zh else "[DRILL] ") + head
    desc = " ".join(dict.fromkeys(description(lang, x.reason, x.window_h, x.value_mm, x.threshold_mm)
                                  for x in changes))
    el = E.info(E.language(lang))
    for cat in CATEGORIES[c.hazard]:
        el.append(E.category(cat))
    el.append(E.event(EVENTS[c.hazard][0 if zh else 1]))
    for r in ("AllClear",) if ended else responses:
        el.append(E.responseType(r))
    el.extend([E.urgency(urgency), E.severity(severity), E.certainty(certainty),
               E.eventCode(E.valueName("riskmap:hazard"), E.value(c.hazard)),
               E.effective(_time(sent, tz))])
    valid = [x.valid_until for x in changes if x.valid_until is not None]
    if valid and not ended:
        el.append(E.expires(_time(max(valid), tz)))
    el.extend([E.senderName(issuer), E.headline(head)])
    if desc:
        el.append(E.description(desc))
    actions = " ".join(dict.fromkeys(x.action for x in changes if x.action and not ended))
    guide = instruction(lang, shown, c.hazard)
    el.append(E.instruction(f"{actions}{'：' if zh else ': '}{guide}" if actions else guide))
    lv = Level(shown)
    el.extend([_param("level", shown), _param("color", lv.color), _param("change", c.kind)])
    if lv.grade:
        el.append(_param("grade", lv.grade))
    rules = sorted({x.rule for x in changes if x.rule})
    if rules:
        el.append(_param("rule", ";".join(rules)))
    operators = sorted({x.operator for x in changes if x.operator})
    if operators:
        el.append(_param("operator", ";".join(operators)))
    for a in areas:
        el.append(_area(a))
    return el


def build_message(changes: Sequence[Change], areas: Mapping[str, CapArea], options: CapOptions, *,
                  previous: Mapping[Key, CapRef] | None = None, drill: bool = False) -> CapMessage:
    """One CAP message for changes of the same kind, hazard and level (one village or a township group)."""
    if not changes:
        raise InputError("CAP: no change to build a message from")
    c = changes[0]
    for x in changes[1:]:
        if (x.kind, x.hazard, x.old_level, x.new_level) != (c.kind, c.hazard, c.old_level, c.new_level):
            raise InputError(f"CAP: changes of one message must share kind, hazard and level "
                             f"({x.village_code})")
    tz = ZoneInfo(options.timezone)
    sent = c.at
    keys = tuple(x.key for x in changes)
    ident = identifier(options, sent, keys)
    previous = previous or {}
    refs = list(dict.fromkeys(previous[(x.village_code, x.hazard)] for x in changes
                              if (x.village_code, x.hazard) in previous))
    msg_type = "Alert" if c.kind == "issue" else _msg_type(c.kind, bool(refs))
    ref_text = " ".join(r.text(tz) for r in refs) if msg_type != "Alert" else ""
    status = "Exercise" if drill else "Actual"
    missing = [x.village_code for x in changes if x.village_code not in areas]
    if missing:
        raise InputError(f"CAP: no area for village(s) {', '.join(missing)}")
    cap_areas = [areas[x.village_code] for x in changes]
    internal = any(x.internal for x in changes)
    root = E.alert(E.identifier(ident), E.sender(options.sender), E.sent(_time(sent, tz)), E.status(status),
                   E.msgType(msg_type), E.source("riskmap"), E.scope("Restricted" if internal else "Public"))
    if internal:
        root.append(E.restriction(RESTRICTION))
    if drill:
        root.append(E.note("演练 drill: not a real warning"))
    if ref_text:
        root.append(E.references(ref_text))
    for lang in options.languages:
        root.append(_info(lang, changes, cap_areas, options, sent, drill))
    xml = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True).decode("utf-8")
    return CapMessage(ident, msg_type, status, sent.astimezone(tz), tuple(x.village_code for x in changes),
                      c.hazard, xml, keys, ref_text)


def _group_key(c: Change, areas: Mapping[str, CapArea], by_township: bool) -> tuple[Any, ...]:
    town = areas[c.village_code].township if by_township and c.village_code in areas else None
    if not by_township or not town:
        return (c.village_code, c.hazard, c.kind)
    return (town, c.hazard, c.kind, c.old_level, c.new_level, c.internal)


def build_messages(changes: Sequence[Change], areas: Mapping[str, CapArea], options: CapOptions, *,
                   previous: Mapping[Key, CapRef] | None = None, drill: bool = False) -> list[CapMessage]:
    """CAP messages for a decision's changes: one per change, or grouped per township when configured."""
    groups: dict[tuple[Any, ...], list[Change]] = {}
    for c in changes:
        groups.setdefault(_group_key(c, areas, options.group_by_township), []).append(c)
    return [build_message(g, areas, options, previous=previous, drill=drill) for g in groups.values()]


def cap_filename(identifier: str) -> str:
    """The file name of a message in ``OUT/cap/``."""
    return f"{identifier}.xml"
