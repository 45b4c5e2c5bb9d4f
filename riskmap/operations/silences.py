"""Silences named by a prefix of their id, and ending one early with the operator and the reason.

Examples
--------
>>> import tempfile, pathlib
>>> from datetime import datetime, timedelta, timezone
>>> from riskmap.manual import Silence
>>> from riskmap.store import Store
>>> store = Store.open(pathlib.Path(tempfile.mkdtemp()) / "riskmap.sqlite")
>>> t0 = datetime(2026, 7, 1, tzinfo=timezone.utc)
>>> sid = store.add_silence(Silence("village:469900100200", ("469900100200",), t0 + timedelta(hours=12),
...                                 "已转移", "王工", t0))
>>> u = unsilence(store, sid[:6], "李主任", "险情加重", t0 + timedelta(hours=1))
>>> u.outcome, u.record.cleared_by, u.record.cleared_reason
('cleared', '李主任', '险情加重')
>>> unsilence(store, sid[:6], "李主任", "险情加重", t0 + timedelta(hours=2)).outcome
'already cleared'
>>> store.silences(t0 + timedelta(hours=2))
[]
>>> store.close()
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from riskmap.errors import InputError
from riskmap.store import SilenceRecord, Store

log = logging.getLogger("riskmap.operations")

MIN_PREFIX = 4
"""Characters of a silence id a command needs at the least (as for run ids)."""


def find_silence(store: Store, ref: str) -> SilenceRecord:
    """The silence whose id is ``ref`` or starts with it (the CLI shows 12 characters).

    Raises
    ------
    InputError
        When ``ref`` is shorter than :data:`MIN_PREFIX`, matches no silence, or matches several.
    """
    ref = ref.strip().lower()
    if len(ref) < MIN_PREFIX:
        raise InputError(f"ID {ref!r}: give at least {MIN_PREFIX} characters of the silence id "
                         "(riskmap silences --all lists them)")
    found = store.silence_records(prefix=ref)
    if not found:
        raise InputError(f"ID {ref!r}: no such silence in the store {store.url} (riskmap silences --all "
                         "lists them)")
    if len(found) > 1:
        raise InputError(f"ID {ref!r}: ambiguous ({', '.join(r.id[:12] for r in found[:3])}"
                         f"{' …' if len(found) > 3 else ''}); give more characters")
    return found[0]


@dataclass(frozen=True)
class Unsilenced:
    """What :func:`unsilence` did: ``outcome`` is ``cleared``, ``already cleared`` (nothing recorded:
    ``record`` says by whom and why) or ``expired`` (it had ended by itself; nothing recorded)."""

    outcome: str
    record: SilenceRecord


def unsilence(store: Store, ref: str, operator: str, reason: str, at: datetime) -> Unsilenced:
    """End the silence named by ``ref`` (an id or a prefix of it) at ``at``, recording who and why.

    Clearing is recorded once: a silence already cleared, or already past its end, is left as it is.
    """
    if not operator.strip() or not reason.strip():
        raise InputError("--by and --reason must not be empty")
    rec = find_silence(store, ref)
    state = rec.state(at)
    if state in ("cleared", "expired"):
        return Unsilenced(f"already {state}" if state == "cleared" else state, rec)
    if not store.clear_silence(rec.id, operator, at, reason):  # cleared meanwhile by someone else
        return Unsilenced("already cleared", store.silence_records(prefix=rec.id)[0])
    log.info("silence %s (%s, %d villages) cleared by %s: %s", rec.id[:12], rec.silence.target,
             len(rec.silence.village_codes), operator, reason)
    return Unsilenced("cleared", store.silence_records(prefix=rec.id)[0])
