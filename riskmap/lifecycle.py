"""Warning lifecycle: previous state + new levels + now -> new state + changes (pure).

A level computed from one forecast is not yet a warning.  :func:`decide` turns the
levels of one run into the office's warnings:

* level > 0 where nothing is active -> ``issue``;
* higher than the current level -> ``escalate`` at once;
* lower -> ``downgrade`` only after the hold of the current level
  (``hold_h[level-1]`` hours, or ``hold_runs`` consecutive lower runs when set),
  to the highest level seen during the hold;
* 0 through the hold -> ``lift`` (解除);
* past validity (end of the triggering window + ``validity_margin_h``) without
  renewal -> ``expire`` when the level is 0 now, else an immediate downgrade.

The same run processed twice changes nothing; a run older than the last applied one
(``now < last_run_at``) changes nothing.  Manual acts (:class:`ManualIssue`,
:class:`ManualLift`) and silences (:class:`Silence`) are inputs too: a silence
suppresses automatic issue and escalation (reported in ``Decision.suppressed``);
a manual warning is not lowered by automatic runs until it expires or is lifted.

Examples
--------
>>> import pandas as pd
>>> from datetime import datetime, timezone
>>> t0 = datetime(2026, 7, 1, 0, tzinfo=timezone.utc)
>>> lv = pd.DataFrame({"village_code": ["469900100200"], "hazard": ["rainstorm"], "level": [3],
...     "rule": ["rainstorm.orange"], "window_h": [3.0], "value_mm": [62.0], "threshold_mm": [50.0],
...     "window_end": [pd.Timestamp("2026-07-01 03:00", tz="UTC")], "reason": ["3 h 62 mm >= 50 mm"]})
>>> d = decide({}, lv, t0, LifecyclePolicy())
>>> [(c.kind, c.old_level, c.new_level) for c in d.changes]
[('issue', 0, 3)]
>>> d.new_states[("469900100200", "rainstorm")].valid_until.isoformat()
'2026-07-01T09:00:00+00:00'
>>> decide(d.new_states, lv, t0, LifecyclePolicy()).changes    # the same run again: nothing
()
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import pandas as pd

from riskmap.errors import InputError
from riskmap.manual import ManualIssue, ManualLift, Silence
from riskmap.warning_state import (
    HAZARDS,
    KINDS,
    LEVEL_COLUMNS,
    Change,
    Decision,
    Key,
    LifecyclePolicy,
    WarningState,
    as_utc,
)

__all__ = ["HAZARDS", "KINDS", "LEVEL_COLUMNS", "Change", "Decision", "Key", "LifecyclePolicy", "ManualIssue",
           "ManualLift", "Silence", "WarningState", "decide", "expire_due"]


@dataclass(frozen=True)
class _Row:
    level: int
    rule: str
    reason: str
    value_mm: float
    threshold_mm: float
    window_h: float
    window_end: datetime | None
    internal: bool = False
    action: str = ""


def _rows(levels: pd.DataFrame | None) -> dict[Key, _Row]:
    if levels is None or len(levels) == 0:
        return {}
    missing = [c for c in LEVEL_COLUMNS if c not in levels.columns]
    if missing:
        raise InputError(f"lifecycle: levels frame lacks column(s) {', '.join(missing)}")
    out: dict[Key, _Row] = {}
    has_internal, has_action = "internal" in levels.columns, "action" in levels.columns
    for i, r in enumerate(levels.itertuples(index=False)):
        code, hazard = str(r.village_code), str(r.hazard)
        if hazard not in HAZARDS:
            raise InputError(f"lifecycle: levels row {i} village {code}: unknown hazard {hazard!r}")
        if pd.isna(r.level):
            raise InputError(f"lifecycle: levels row {i} village {code} {hazard}: level is missing")
        lv = int(r.level)
        if not 0 <= lv <= 4:
            raise InputError(f"lifecycle: levels row {i} village {code} {hazard}: level {lv} outside 0-4")
        we = r.window_end
        end = None if we is None or pd.isna(we) else as_utc(pd.Timestamp(we).to_pydatetime(), "window_end")
        action = str(r.action) if has_action and isinstance(r.action, str) else ""
        row = _Row(lv, str(r.rule), str(r.reason), float(r.value_mm), float(r.threshold_mm),
                   float(r.window_h), end, bool(r.internal) if has_internal else False, action)
        old = out.get((code, hazard))
        if old is None or row.level > old.level:
            out[(code, hazard)] = row
    return out


_ZERO = _Row(0, "", "", math.nan, math.nan, math.nan, None)


def _change(kind: str, key: Key, old: int, new: int, now: datetime, valid: datetime | None,
            row: _Row, reason: str = "", manual: bool = False, operator: str = "",
            internal: bool | None = None) -> Change:
    return Change(kind, key[0], key[1], old, new, now, valid, row.rule, reason or row.reason,
                  row.value_mm, row.threshold_mm, row.window_h, row.window_end, manual, operator,
                  row.internal if internal is None else internal, row.action)


def _valid(row: _Row, now: datetime, policy: LifecyclePolicy) -> datetime:
    return (row.window_end or now) + timedelta(hours=policy.validity_margin_h)


def _step(key: Key, prev: WarningState | None, row: _Row, now: datetime, policy: LifecyclePolicy,
          silenced: bool) -> tuple[WarningState | None, Change | None, Change | None]:
    """One key: returns (new state, change, suppressed change)."""
    active = prev is not None and prev.active
    if not active:
        if row.level == 0:
            return prev, None, None
        valid = _valid(row, now, policy)
        ch = _change("issue", key, 0, row.level, now, valid, row)
        if silenced:
            return prev, None, ch
        st = WarningState(key[0], key[1], row.level, "active", now, valid, now, row.rule, row.reason,
                          cap_identifier=prev.cap_identifier if prev else "",
                          cap_sent=prev.cap_sent if prev else None, internal=row.internal)
        return st, ch, None
    assert prev is not None
    cur = prev.level
    if row.level > cur:
        valid = _valid(row, now, policy)
        ch = _change("escalate", key, cur, row.level, now, valid, row)
        if silenced:
            return replace(prev, last_run_at=now), None, ch
        st = replace(prev, level=row.level, since=now, valid_until=valid, last_run_at=now, rule=row.rule,
                     reason=row.reason, pending_level=None, pending_since=None, pending_runs=0,
                     manual=False, operator="", internal=row.internal)
        return st, ch, None
    if row.level == cur:
        valid = max(prev.valid_until or now, _valid(row, now, policy))
        return replace(prev, valid_until=valid, last_run_at=now, pending_level=None, pending_since=None,
                       pending_runs=0), None, None
    # lower than current
    if prev.manual and prev.valid_until is not None and now < prev.valid_until:
        return replace(prev, last_run_at=now), None, None
    expired = prev.valid_until is not None and now >= prev.valid_until
    new_run = now > prev.last_run_at or prev.pending_since is None
    pend = row.level if prev.pending_level is None else max(prev.pending_level, row.level)
    since = prev.pending_since or now
    runs = prev.pending_runs + (1 if new_run else 0)
    held = now - since >= policy.hold(cur) or (policy.hold_runs > 0 and runs >= policy.hold_runs)
    if expired:
        target = row.level
        why = f"validity of the {cur} warning ended {prev.valid_until:%Y-%m-%d %H:%M} UTC"
    elif held:
        target = pend
        why = f"below level {cur} since {since:%Y-%m-%d %H:%M} UTC ({runs} run(s))"
    else:
        return replace(prev, last_run_at=now, pending_level=pend, pending_since=since,
                       pending_runs=runs), None, None
    if target == 0:
        kind = "expire" if expired else "lift"
        ch = _change(kind, key, cur, 0, now, None, row, reason=why, internal=prev.internal)
        st = replace(prev, level=0, state="expired" if expired else "lifted", since=now, valid_until=None,
                     last_run_at=now, reason=why, pending_level=None, pending_since=None, pending_runs=0,
                     manual=False, operator="")
        return st, ch, None
    valid = _valid(row, now, policy)
    reason = f"{row.reason}; {why}" if row.reason else why
    internal = row.internal if target == row.level else False
    ch = _change("downgrade", key, cur, target, now, valid, row, reason=reason, internal=internal)
    st = replace(prev, level=target, since=now, valid_until=valid, last_run_at=now, rule=row.rule,
                 reason=reason, pending_level=None, pending_since=None, pending_runs=0, manual=False,
                 operator="", internal=internal)
    return st, ch, None


def _sort_key(c: Change) -> tuple[str, str, int]:
    return (c.village_code, c.hazard, KINDS.index(c.kind))


def decide(previous: Mapping[Key, WarningState], levels: pd.DataFrame | None, now: datetime,
           policy: LifecyclePolicy, *, silences: Iterable[Silence] = (),
           manual: Iterable[ManualIssue | ManualLift] = (),
           last_run_at: datetime | None = None, decided_at: datetime | None = None) -> Decision:
    """Apply one run's levels (and manual acts) to the previous warnings.

    Parameters
    ----------
    previous
        Current warnings by ``(village_code, hazard)`` (e.g. ``Store.current_warnings()``).
    levels
        The rules engine's frame (columns :data:`LEVEL_COLUMNS`); absent rows mean level 0.
        ``None`` means "no evaluation in this run": only ``manual`` acts are applied.
    now
        The run time (timezone-aware).  Keys last touched after ``now`` are left alone.
    policy
        Hold times and validity.
    silences
        Silences in force; they suppress automatic issue and escalation.
    manual
        Operator acts, applied after the automatic levels.
    last_run_at
        Time of the last applied run; an older ``now`` returns the previous state unchanged.
    decided_at
        When the decision is taken (the wall clock of the run's commit; default ``now``): a
        silence set after ``now`` but before this covers the run (:meth:`Silence.covers`).

    Returns
    -------
    Decision
        ``new_states`` holds every key of ``previous`` plus new ones; ``changes`` are sorted
        by village, hazard and kind.
    """
    now = as_utc(now, "now")
    states: dict[Key, WarningState] = dict(previous)
    sil = tuple(silences)
    if last_run_at is not None and now < as_utc(last_run_at, "last_run_at"):
        return Decision(states, (), (), now, sil)
    changes: list[Change] = []
    suppressed: list[Change] = []
    if levels is not None:
        rows = _rows(levels)
        for key in sorted(set(rows) | {k for k, s in previous.items() if s.active}):
            prev = previous.get(key)
            if prev is not None and now < as_utc(prev.last_run_at, "last_run_at"):
                continue
            silenced = any(s.covers(key[0], key[1], now, decided_at) for s in sil)
            st, ch, sup = _step(key, prev, rows.get(key, _ZERO), now, policy, silenced)
            if st is not None:
                states[key] = st
            if ch is not None:
                changes.append(ch)
            if sup is not None:
                suppressed.append(sup)
    for act in manual:
        changes.extend(_manual(states, act, now, policy))
    changes.sort(key=_sort_key)
    suppressed.sort(key=_sort_key)
    return Decision(states, tuple(changes), tuple(suppressed), now, sil)


def expire_due(previous: Mapping[Key, WarningState], now: datetime) -> Decision:
    """Expire every active warning whose validity ended by ``now`` (no new levels needed).

    For a service between forecasts: a warning nobody renewed ends at ``valid_until``.
    """
    now = as_utc(now, "now")
    states = dict(previous)
    changes = []
    for key, st in sorted(previous.items()):
        if st.active and st.valid_until is not None and st.valid_until <= now and now >= st.last_run_at:
            why = f"validity ended {st.valid_until:%Y-%m-%d %H:%M} UTC without renewal"
            changes.append(Change("expire", key[0], key[1], st.level, 0, now, None, st.rule, why,
                                  internal=st.internal))
            states[key] = replace(st, level=0, state="expired", since=now, valid_until=None, last_run_at=now,
                                  reason=why, pending_level=None, pending_since=None, pending_runs=0,
                                  manual=False, operator="")
    return Decision(states, tuple(changes), (), now)


def _manual(states: dict[Key, WarningState], act: ManualIssue | ManualLift, now: datetime,
            policy: LifecyclePolicy) -> list[Change]:
    out: list[Change] = []
    row = replace(_ZERO, rule=f"manual:{act.target}", reason=act.reason)
    if isinstance(act, ManualIssue):
        if act.hazard not in HAZARDS:
            raise InputError(f"manual issue {act.target}: unknown hazard {act.hazard!r}")
        if not 1 <= act.level <= 4:
            raise InputError(f"manual issue {act.target}: level {act.level} outside 1-4")
        valid = (as_utc(act.valid_until, "valid_until") if act.valid_until
                 else now + timedelta(hours=policy.manual_validity_h))
        for code in sorted(set(act.village_codes)):
            key = (code, act.hazard)
            prev = states.get(key)
            cur = prev.level if prev is not None and prev.active else 0
            if cur >= act.level:
                continue
            kind = "escalate" if cur else "issue"
            out.append(_change(kind, key, cur, act.level, now, valid, row, manual=True,
                               operator=act.operator))
            base = prev or WarningState(code, act.hazard, 0, "lifted", now, None, now)
            states[key] = replace(base, level=act.level, state="active", since=now, valid_until=valid,
                                  last_run_at=max(now, base.last_run_at), rule=row.rule, reason=act.reason,
                                  pending_level=None, pending_since=None, pending_runs=0, manual=True,
                                  operator=act.operator, internal=False)
        return out
    for key, prev in sorted(states.items()):
        if key[0] in act.village_codes and (not act.hazard or key[1] == act.hazard) and prev.active:
            out.append(_change("lift", key, prev.level, 0, now, None, row, manual=True,
                               operator=act.operator, internal=prev.internal))
            states[key] = replace(prev, level=0, state="lifted", since=now, valid_until=None,
                                  last_run_at=max(now, prev.last_run_at), rule=row.rule, reason=act.reason,
                                  pending_level=None, pending_since=None, pending_runs=0, manual=True,
                                  operator=act.operator)
    return out
