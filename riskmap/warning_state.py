"""The data of warnings: state, change, decision and policy (frozen dataclasses).

:mod:`riskmap.lifecycle` computes them; everything here is re-exported there.

Examples
--------
>>> from datetime import datetime, timezone
>>> t = datetime(2026, 7, 1, tzinfo=timezone.utc)
>>> c = Change("issue", "469900100201", "torrent", 0, 3, t, None)
>>> c.key == Change("issue", "469900100201", "torrent", 0, 3, t, None).key, len(c.key)
(True, 32)
>>> LifecyclePolicy().hold(3)
datetime.timedelta(seconds=21600)
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from riskmap.errors import InputError
from riskmap.manual import Silence

HAZARDS = ("rainstorm", "torrent", "geohazard", "reservoir", "waterlogging", "mine")
"""Hazard ids a level row may carry."""
KINDS = ("issue", "escalate", "downgrade", "lift", "expire")
"""Change kinds."""
LEVEL_COLUMNS = ("village_code", "hazard", "level", "rule", "window_h", "value_mm", "threshold_mm",
                 "window_end", "reason")
"""Required columns of the levels frame (``statistic`` is optional)."""

Key = tuple[str, str]
"""``(village_code, hazard)``."""


def as_utc(t: datetime, what: str) -> datetime:
    """``t`` in UTC; :class:`InputError` naming ``what`` when it has no offset."""
    if t.tzinfo is None or t.utcoffset() is None:
        raise InputError(f"lifecycle: {what} {t!r} has no time zone; every time must carry an offset")
    return t.astimezone(UTC)


@dataclass(frozen=True)
class WarningState:
    """The current warning of one village for one hazard."""

    village_code: str
    hazard: str
    level: int
    """Current level 0-4 (0 once lifted or expired)."""
    state: str
    """``active``, ``lifted`` or ``expired``."""
    since: datetime
    """When the current level (or the lift/expiry) began."""
    valid_until: datetime | None
    last_run_at: datetime
    """``now`` of the last run or act applied to this warning."""
    rule: str = ""
    reason: str = ""
    pending_level: int | None = None
    """Highest lower level seen while a downgrade/lift is held back, else None."""
    pending_since: datetime | None = None
    pending_runs: int = 0
    manual: bool = False
    operator: str = ""
    cap_identifier: str = ""
    """Identifier of the last CAP message about this warning (set by the store)."""
    cap_sent: datetime | None = None
    internal: bool = False
    """The current level is for internal use only (e.g. blue geohazard risk), not the public."""

    @property
    def active(self) -> bool:
        """Whether the warning is in force."""
        return self.state == "active" and self.level > 0


@dataclass(frozen=True)
class Change:
    """One transition of one warning; ``key`` is its deterministic idempotency key."""

    kind: str
    village_code: str
    hazard: str
    old_level: int
    new_level: int
    at: datetime
    valid_until: datetime | None
    rule: str = ""
    reason: str = ""
    value_mm: float = math.nan
    threshold_mm: float = math.nan
    window_h: float = math.nan
    window_end: datetime | None = None
    manual: bool = False
    operator: str = ""
    internal: bool = False
    """For internal use only (never to the public); from the rules' ``internal`` column."""
    action: str = ""
    """A required action from the rule (e.g. 停产撤人 for mines)."""

    @property
    def key(self) -> str:
        """A stable hash of what changed, where and when (same change -> same key)."""
        text = "|".join([self.kind, self.village_code, self.hazard, str(self.old_level),
                         str(self.new_level), self.at.astimezone(UTC).isoformat()])
        return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class LifecyclePolicy:
    """Hold times and validity; build it with :meth:`from_settings`."""

    hold_h: tuple[float, float, float, float] = (3.0, 3.0, 6.0, 6.0)
    validity_margin_h: float = 6.0
    hold_runs: int = 0
    """If > 0, a downgrade/lift also happens after this many consecutive lower runs."""
    manual_validity_h: float = 24.0

    @classmethod
    def from_settings(cls, lifecycle: Any) -> LifecyclePolicy:
        """From ``Settings.lifecycle`` (optional keys ``hold_runs``, ``manual_validity_h``)."""
        return cls(hold_h=tuple(lifecycle.hold_h),
                   validity_margin_h=float(lifecycle.validity_margin_h),
                   hold_runs=int(getattr(lifecycle, "hold_runs", 0)),
                   manual_validity_h=float(getattr(lifecycle, "manual_validity_h", 24.0)))

    def hold(self, level: int) -> timedelta:
        """Hold before a warning at ``level`` may be lowered."""
        return timedelta(hours=self.hold_h[max(1, min(4, level)) - 1])


@dataclass(frozen=True)
class Decision:
    """The outcome of one run: every state after it and the changes, in a stable order."""

    new_states: Mapping[Key, WarningState]
    changes: tuple[Change, ...] = ()
    suppressed: tuple[Change, ...] = ()
    """Changes a silence held back (kept for the audit trail)."""
    now: datetime | None = None
    silences: tuple[Silence, ...] = field(default=())
