"""Plain records the store takes and returns (frozen dataclasses), and the run id.

Examples
--------
>>> from datetime import datetime, timezone
>>> meta = RunMeta(now=datetime(2026, 7, 1, tzinfo=timezone.utc), forecast_hash="f1", rules_hash="r1")
>>> run_key(meta) == run_key(meta), run_key(meta) == run_key(RunMeta(meta.now, rules_hash="r2"))
(True, False)
>>> outbox_key("run1", "abc", "13800000000", "sms")
'run1:abc:13800000000:sms'
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class RunMeta:
    """What a run was computed from: input content hashes, rule-set hash and ``now``."""

    now: datetime
    source: str = ""
    """A readable name of the run's source (e.g. the forecast file name, ``manual``)."""
    forecast_hash: str = ""
    observed_hash: str = ""
    rules_hash: str = ""
    region_hash: str = ""
    drill: bool = False
    operator: str = ""
    act_hash: str = ""
    """For manual acts: a hash of the act, so each act is its own run."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Free metadata stored as JSON (not part of the run id)."""

    def input_hashes(self) -> dict[str, str]:
        """The input hashes as a mapping (stored with every event)."""
        return {"forecast": self.forecast_hash, "observed": self.observed_hash,
                "rules": self.rules_hash, "region": self.region_hash}


def run_key(meta: RunMeta) -> str:
    """The run id: a hash of forecast, observed input, rule set, region, ``now`` and drill flag."""
    text = json.dumps([meta.forecast_hash, meta.observed_hash, meta.rules_hash, meta.region_hash,
                       meta.now.astimezone(UTC).isoformat(), meta.drill, meta.act_hash])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def row_dict(row: Any) -> dict[str, Any]:
    """A record or mapping as a plain dict (shallow; ``dataclasses.asdict`` deep-copies and is slow)."""
    if isinstance(row, Mapping):
        return dict(row)
    return {f: getattr(row, f) for f in row.__dataclass_fields__}


def outbox_key(run_id: str, change_key: str, contact: str, channel: str) -> str:
    """The outbox idempotency key: one message per run, change, contact and channel."""
    return f"{run_id}:{change_key}:{contact}:{channel}"


@dataclass(frozen=True)
class RunRecord:
    """A row of ``runs``."""

    id: str
    status: str
    now: datetime
    source: str
    drill: bool
    attempts: int
    started_at: datetime
    finished_at: datetime | None
    failure_reason: str
    hashes: Mapping[str, str]


@dataclass(frozen=True)
class OutboxRow:
    """One message to queue (``idempotency_key`` from :func:`outbox_key`)."""

    idempotency_key: str
    phone: str
    text: str
    contact_name: str = ""
    role: str = ""
    village_code: str = ""
    hazard: str = ""
    level: int = 0
    segments: int = 1
    channel: str = "sms"
    change_key: str = ""
    status: str = "queued"
    """``queued``, or ``held`` when it waits for an approval."""
    drill: bool = False
    next_attempt_at: datetime | None = None
    kind: str = "warning"
    """``warning``, ``repeat``, ``summary``, ``all_clear`` or ``escalation``: which older pending
    messages this one supersedes (see :func:`riskmap.store.outbox.supersede`)."""


@dataclass(frozen=True)
class CapRow:
    """One CAP message to store (see :class:`riskmap.cap.build.CapMessage`)."""

    identifier: str
    msg_type: str
    status: str
    sent: datetime
    village_codes: tuple[str, ...]
    hazard: str
    xml: str
    change_keys: tuple[str, ...] = ()
    references: str = ""


@dataclass(frozen=True)
class EventRecord:
    """One entry of a village's audit trail."""

    at: datetime
    kind: str
    village_code: str
    hazard: str
    old_level: int
    new_level: int
    reason: str
    rule: str = ""
    run_id: str = ""
    operator: str = ""
    manual: bool = False
    suppressed: bool = False
    rules_hash: str = ""
    input_hashes: Mapping[str, str] = field(default_factory=dict)
    valid_until: datetime | None = None
    drill: bool = False
    """The event belongs to a drill run (it did not change the warning)."""


@dataclass(frozen=True)
class OutboxRecord:
    """A row of ``outbox`` as the dispatcher sees it."""

    id: int
    idempotency_key: str
    run_id: str
    phone: str
    text: str
    contact_name: str
    role: str
    village_code: str
    hazard: str
    level: int
    segments: int
    channel: str
    status: str
    attempts: int
    lease_until: datetime | None
    next_attempt_at: datetime | None
    gateway_id: str
    drill: bool
    kind: str = "warning"
    """``warning``, ``repeat``, ``summary``, ``all_clear`` or ``escalation`` (schema v2)."""
    last_error: str = ""
    """The gateway's last error; for a ``superseded`` message, by which run (and approval) it was."""
