"""Operator acts on warnings: manual issue, manual lift, silence (plain frozen data).

They are inputs of :func:`riskmap.lifecycle.decide`; the store keeps silences and logs
every act with the operator's name.

Examples
--------
>>> from datetime import datetime, timezone
>>> t = datetime(2026, 7, 1, tzinfo=timezone.utc)
>>> s = Silence("village:469900100200", ("469900100200",), t.replace(day=2), "drill", "王工", t)
>>> s.covers("469900100200", "torrent", t), s.covers("469900100201", "torrent", t)
(True, False)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Silence:
    """Suppress automatic issue/escalation for villages until a time.

    ``target`` is what the operator named (``village:CODE`` or ``LAYER:ID`` for a
    feature); ``village_codes`` are the villages it covers (resolved by the caller);
    an empty ``hazards`` means every hazard.
    """

    target: str
    village_codes: tuple[str, ...]
    until: datetime
    reason: str
    operator: str
    created_at: datetime
    hazards: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        """Deterministic id of this silence."""
        text = "|".join([self.target, ",".join(self.village_codes), ",".join(self.hazards),
                         self.until.isoformat(), self.created_at.isoformat(), self.operator])
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def in_force(self, now: datetime, decided_at: datetime | None = None) -> bool:
        """Whether this silence holds for a decision about ``now`` taken at ``decided_at``.

        The silence must have been set before the decision was taken (``decided_at``, the wall
        clock when the run is applied; default ``now``) and ``now`` must be before its end.  A
        cycle's ``now`` is the forecast's reference time, which lags the clock: a silence set at
        03:10 covers the 03:00 forecast that arrives at 03:40.
        """
        return self.created_at <= max(now, decided_at or now) and now < self.until

    def covers(self, code: str, hazard: str, now: datetime, decided_at: datetime | None = None) -> bool:
        """Whether this silence applies to a village and hazard in a decision (:meth:`in_force`)."""
        return (self.in_force(now, decided_at) and code in self.village_codes
                and (not self.hazards or hazard in self.hazards))


@dataclass(frozen=True)
class ManualIssue:
    """An operator issues (or raises) a warning for villages, e.g. every village of a detention area."""

    target: str
    village_codes: tuple[str, ...]
    hazard: str
    level: int
    reason: str
    operator: str
    valid_until: datetime | None = None
    """None means ``now + LifecyclePolicy.manual_validity_h``."""


@dataclass(frozen=True)
class ManualLift:
    """An operator lifts warnings of villages (all hazards when ``hazard`` is empty)."""

    target: str
    village_codes: tuple[str, ...]
    reason: str
    operator: str
    hazard: str = ""
