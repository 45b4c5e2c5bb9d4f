"""Silences as stored: the rows with their clearing, their state at a time, and their audit entries.

A silence (:class:`riskmap.manual.Silence`) holds back automatic issue and escalation for some
villages until a time.  An operator may end it early (``riskmap unsilence``): the row keeps who
cleared it, when and why (``cleared_at``, ``cleared_by``, ``cleared_reason`` — the last since
schema v3), so nothing is deleted and a village's history shows the silence and its clearing.

Examples
--------
>>> from datetime import datetime, timedelta, timezone
>>> from riskmap.manual import Silence
>>> t0 = datetime(2026, 7, 1, tzinfo=timezone.utc)
>>> s = Silence("village:469900100200", ("469900100200",), t0 + timedelta(hours=12), "已转移", "王工", t0)
>>> rec = SilenceRecord(s.id, s)
>>> [rec.state(t0 + timedelta(hours=h)) for h in (-1, 1, 12)]
['scheduled', 'active', 'expired']
>>> done = SilenceRecord(s.id, s, t0 + timedelta(hours=2), "李主任", "险情加重")
>>> done.state(t0 + timedelta(hours=1)), [e.kind for e in audit_entries(done, "469900100200")]
('cleared', ['silence', 'unsilence'])
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from riskmap.manual import Silence
from riskmap.store import tables as t
from riskmap.store.records import EventRecord

STATES = ("active", "scheduled", "expired", "cleared")
"""What :meth:`SilenceRecord.state` answers: in force, not yet begun, past its end, ended early."""


@dataclass(frozen=True)
class SilenceRecord:
    """A stored silence and, once an operator ended it early, who did so, when and why."""

    id: str
    silence: Silence
    cleared_at: datetime | None = None
    cleared_by: str = ""
    cleared_reason: str = ""

    def state(self, now: datetime) -> str:
        """``cleared``, ``scheduled`` (begins after ``now``), ``expired`` or ``active`` at ``now``."""
        if self.cleared_at is not None:
            return "cleared"
        if now < self.silence.created_at:
            return "scheduled"
        return "expired" if now >= self.silence.until else "active"


def silence_row(silence: Silence) -> dict[str, Any]:
    """The ``silences`` row of a new silence."""
    return {"id": silence.id, "target": silence.target, "village_codes": json.dumps(silence.village_codes),
            "hazards": json.dumps(silence.hazards), "until": silence.until, "reason": silence.reason,
            "operator": silence.operator, "created_at": silence.created_at}


def read_silences(conn: Connection, *, village: str | None = None, prefix: str = "",
                  cleared: bool = True) -> list[SilenceRecord]:
    """Stored silences, oldest first: covering ``village``, with an id starting with ``prefix``
    (lowercase hex, else nothing matches), and without the cleared ones unless ``cleared``."""
    q = select(t.silences).order_by(t.silences.c.created_at, t.silences.c.id)
    if not cleared:
        q = q.where(t.silences.c.cleared_at.is_(None))
    if village is not None:
        q = q.where(t.silences.c.village_codes.contains(f'"{village}"'))
    if prefix:
        if not all(c in "0123456789abcdef" for c in prefix):
            return []  # ids are hex: no LIKE wildcard can slip in
        q = q.where(t.silences.c.id.startswith(prefix))
    return [SilenceRecord(r.id, Silence(r.target, tuple(json.loads(r.village_codes)), r.until, r.reason,
                                        r.operator, r.created_at, tuple(json.loads(r.hazards))),
                          r.cleared_at, r.cleared_by, r.cleared_reason)
            for r in conn.execute(q)]


def audit_entries(rec: SilenceRecord, village_code: str) -> list[EventRecord]:
    """A village's history entries of one silence: ``silence`` when it was set, ``unsilence`` when it
    was cleared (by whom and why)."""
    s = rec.silence
    hazards = ",".join(s.hazards)
    out = [EventRecord(s.created_at, "silence", village_code, hazards, 0, 0,
                       f"{s.reason} (until {s.until.isoformat()}; {s.target}; silence {rec.id[:12]})",
                       operator=s.operator, manual=True, valid_until=s.until)]
    if rec.cleared_at is not None:
        out.append(EventRecord(rec.cleared_at, "unsilence", village_code, hazards, 0, 0,
                               f"{rec.cleared_reason} (silence {rec.id[:12]} cleared)",
                               operator=rec.cleared_by, manual=True, valid_until=s.until))
    return out
