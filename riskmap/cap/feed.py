"""An Atom feed of the current CAP alerts, written beside the messages in ``OUT/cap/``.

Current = for each (village, hazard) the newest message, unless it is a ``Cancel``.

Examples
--------
>>> from datetime import datetime, timezone
>>> from riskmap.store.records import CapRow
>>> xml = ('<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><info><language>zh-CN</language>'
...        '<headline>双河村山洪灾害红色预警</headline><severity>Extreme</severity></info></alert>')
>>> row = CapRow("46990011000100_20260701080000_1", "Alert", "Actual",
...              datetime(2026, 7, 1, tzinfo=timezone.utc), ("469900100201",), "torrent", xml)
>>> feed = atom_feed(current_alerts([row]), title="青山县预警", updated=row.sent, author="青山县防指")
>>> b"<title>\\xe5\\x8f\\x8c" in feed, feed.count(b"<entry>")
(True, 1)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime

from lxml import etree
from lxml.builder import ElementMaker

from riskmap.cap.build import cap_filename
from riskmap.store.records import CapRow

ATOM = "http://www.w3.org/2005/Atom"
A = ElementMaker(namespace=ATOM, nsmap={None: ATOM})
_CAP = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}


def current_alerts(messages: Iterable[CapRow], public_only: bool = True) -> list[CapRow]:
    """The newest message per (village, hazard), without Cancels (nor Restricted ones if ``public_only``)."""
    latest: dict[tuple[str, str], CapRow] = {}
    for m in sorted(messages, key=lambda m: (m.sent, m.identifier)):
        for code in m.village_codes:
            latest[(code, m.hazard)] = m
    seen: dict[str, CapRow] = {}
    for m in latest.values():
        if m.msg_type != "Cancel" and not (public_only and _restricted(m)):
            seen[m.identifier] = m
    return sorted(seen.values(), key=lambda m: (m.sent, m.identifier), reverse=True)


def _restricted(m: CapRow) -> bool:
    scope = etree.fromstring(m.xml.encode("utf-8")).findtext("cap:scope", default="Public", namespaces=_CAP)
    return scope != "Public"


def _entry_id(m: CapRow) -> str:
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'cap:' + m.identifier)}"


def atom_feed(alerts: Sequence[CapRow], *, title: str, updated: datetime, author: str,
              feed_id: str = "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, "riskmap:feed")),
              href: str = "") -> bytes:
    """The Atom document (UTF-8 bytes); each entry links ``{href}{identifier}.xml`` as application/cap+xml."""
    feed = A.feed(A.id(feed_id), A.title(title), A.updated(updated.isoformat(timespec="seconds")),
                  A.author(A.name(author)))
    for m in alerts:
        root = etree.fromstring(m.xml.encode("utf-8"))
        info = root.find("cap:info", _CAP)
        info = info if info is not None else etree.Element("info")
        head = info.findtext("cap:headline", default="", namespaces=_CAP)
        summary = info.findtext("cap:description", default="", namespaces=_CAP)
        severity = info.findtext("cap:severity", default="", namespaces=_CAP)
        entry = A.entry(A.id(_entry_id(m)), A.title(head or m.identifier),
                        A.updated(m.sent.isoformat(timespec="seconds")),
                        A.link(rel="alternate", type="application/cap+xml",
                               href=href + cap_filename(m.identifier)))
        if severity:
            entry.append(A.category(term=severity))
        if summary:
            entry.append(A.summary(summary))
        feed.append(entry)
    return etree.tostring(feed, xml_declaration=True, encoding="UTF-8", pretty_print=True)
