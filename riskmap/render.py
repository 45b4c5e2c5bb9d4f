"""Turn a lifecycle decision into outbox rows (SMS) and CAP rows — pure, given the region and the rules.

:class:`Renderer` is the ``render`` callable of :func:`riskmap.store.apply.apply_run`: it is called
inside the run, with the run id, the decision and the warning states before it, and its rows are
committed in the same transaction as the decision.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from riskmap.cap import CapOptions, build_messages, previous_refs, village_areas
from riskmap.config import Settings
from riskmap.lifecycle import Change, Decision, Key, WarningState
from riskmap.messages import outbox_rows
from riskmap.region import Region
from riskmap.routing import Alert, nearest_shelters, prepare_contacts, route
from riskmap.routing_rules import Routing
from riskmap.rules import RuleSet
from riskmap.store.records import CapRow, OutboxRow
from riskmap.templates import TemplateSet


def is_internal(change: Change, ruleset: RuleSet | None) -> bool:
    """Whether a change concerns a level the rules mark internal (never sent to the public).

    The change carries the flag of the level it raises; a lift or expiry is internal when the
    level it ends is internal by the rules.
    """
    if change.internal and change.kind not in ("lift", "expire"):
        return True
    if ruleset is None:
        return False
    rule = next((r for r in ruleset.rules if r.hazard == change.hazard), None)
    if rule is None:
        return False
    lifted = change.kind in ("lift", "expire")
    spec = rule.level_spec(change.old_level if lifted else change.new_level)
    return bool(spec is not None and spec.internal)


def _level_internal(hazard: str, level: int, ruleset: RuleSet | None) -> bool:
    rule = None if ruleset is None else next((r for r in ruleset.rules if r.hazard == hazard), None)
    spec = None if rule is None else rule.level_spec(level)
    return bool(spec is not None and spec.internal)


def _forecast(levels: pd.DataFrame | None, keys: set[Key]) -> dict[Key, tuple[Any, Any, Any, Any]]:
    """``(level, window end, window hours, rain mm)`` of this run's levels for ``keys``."""
    if levels is None or not len(levels) or not keys:
        return {}
    cols = [levels[c] if c in levels else [math.nan] * len(levels)
            for c in ("village_code", "hazard", "level", "window_end", "window_h", "value_mm")]
    return {(str(v), str(hz)): (lv, we, wh, mm) for v, hz, lv, we, wh, mm in zip(*cols, strict=True)
            if (str(v), str(hz)) in keys}


def _utc(value: Any) -> datetime | None:
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    ts = pd.Timestamp(value)
    return (ts.tz_localize(UTC) if ts.tzinfo is None else ts.tz_convert(UTC)).to_pydatetime()


def repeat_alerts(decision: Decision, previous: Mapping[Key, WarningState], routing: Routing, now: datetime,
                  last_sent: Mapping[Key, datetime], levels: pd.DataFrame | None = None,
                  ruleset: RuleSet | None = None) -> list[Alert]:
    """Alerts (kind ``repeat``) for warnings still active at the same level, last announced at least
    :meth:`Routing.repeat_after` ago.

    A warning is repeated when this run changed nothing about it (no change, nothing suppressed, no
    silence covers it), it was and stays active at the same public level, and the last warning or
    repeat message about its village and hazard (``last_sent``; the level's start when there is
    none) is ``repeat_after(level)`` or more before ``now``.  The window and expected rain come from
    this run's ``levels`` when they give the same level.
    """
    touched = {(c.village_code, c.hazard) for c in (*decision.changes, *decision.suppressed)}
    due: list[tuple[Key, WarningState]] = []
    for key, st in sorted(decision.new_states.items()):
        old = previous.get(key)
        if (key in touched or not st.active or old is None or not old.active or old.level != st.level
                or st.internal or _level_internal(st.hazard, st.level, ruleset)
                or any(si.covers(st.village_code, st.hazard, now) for si in decision.silences)):
            continue
        if now - (last_sent.get(key) or st.since) >= routing.repeat_after(st.level):
            due.append((key, st))
    rows = _forecast(levels, {k for k, _ in due})
    out = []
    for key, st in due:
        start = end = rain = None
        row = rows.get(key)
        if row is not None and int(row[0]) == st.level:
            end, wh, mm = _utc(row[1]), float(row[2]), float(row[3])
            start = end - timedelta(hours=wh) if end is not None and math.isfinite(wh) else None
            rain = mm if math.isfinite(mm) else None
        out.append(Alert(st.village_code, st.hazard, st.level, "repeat", False, start, end, rain))
    return out


class Renderer:
    """``render(run_id, decision, previous) -> (outbox rows, CAP rows)`` for one region and rule set.

    Internal levels go neither to CAP nor to the public (routing sends them to duty officers only).
    Contacts, shelters and CAP areas are prepared once per renderer.  Called with ``now`` and
    ``last_sent`` (as :func:`riskmap.store.apply.apply_run` does, see ``repeats``), it also repeats
    still-active warnings whose interval has passed (:func:`repeat_alerts`; never in a drill).
    """

    repeats = True
    """:func:`riskmap.store.apply.apply_run` passes ``now``, ``last_sent`` and ``levels``."""

    def __init__(self, region: Region, routing: Routing, templates: TemplateSet, settings: Settings, *,
                 ruleset: RuleSet | None = None, drill: bool = False) -> None:
        self.region, self.routing, self.templates, self.settings = region, routing, templates, settings
        self.ruleset, self.drill = ruleset, drill
        self.contacts = prepare_contacts(region, drill)
        self.shelters = nearest_shelters(region)
        self.areas = village_areas(region.villages)
        self.cap_options = CapOptions.from_settings(settings)

    def __call__(self, run_id: str, decision: Decision, previous: Mapping[Key, WarningState], *,
                 now: datetime | None = None, last_sent: Mapping[Key, datetime] | None = None,
                 levels: pd.DataFrame | None = None) -> tuple[Sequence[OutboxRow | Mapping[str, Any]],
                                                              Sequence[CapRow]]:
        changes = list(decision.changes)
        internal = {c.key for c in changes if is_internal(c, self.ruleset)}
        alerts = [Alert.from_change(c, internal=c.key in internal) for c in changes]
        if now is not None and last_sent is not None and not self.drill:
            alerts += repeat_alerts(decision, previous, self.routing, now, last_sent, levels, self.ruleset)
        recipients = route(alerts, self.region, self.routing, drill=self.drill, shelters=self.shelters,
                           contacts=self.contacts)
        issued_at = changes[0].at if changes else (now if alerts else None)
        rows: list[OutboxRow] = []
        if issued_at is not None:
            rows = outbox_rows(recipients, self.templates, self.routing, run_id=run_id,
                               signature=self.settings.office.signature, issuer=self.settings.office.issuer,
                               issued_at=issued_at)
        public = [c for c in changes if c.key not in internal]
        refs = previous_refs(previous, self.cap_options.sender)
        caps = build_messages(public, self.areas, self.cap_options, previous=refs, drill=self.drill)
        return rows, [m.as_row() for m in caps]
