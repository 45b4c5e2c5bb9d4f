"""Figures for ``riskmap status``: read-only aggregate queries (safe while ``serve`` runs).

Examples
--------
>>> import tempfile, pathlib
>>> from riskmap.store import Store
>>> s = summary(Store.open(pathlib.Path(tempfile.mkdtemp()) / "r.sqlite"))
>>> s.active_per_level, s.outbox_per_status, s.last_runs
({}, {}, ())
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from riskmap.store import tables as t
from riskmap.store.db import guard
from riskmap.store.records import RunRecord
from riskmap.store.store import Store, _run


@dataclass(frozen=True)
class StoreSummary:
    """What the store holds right now."""

    last_runs: tuple[RunRecord, ...]
    """The newest run of each source (status, timings, failure reason)."""
    active_per_level: Mapping[int, int]
    """Active warnings (village × hazard) per level."""
    active_villages_per_level: Mapping[int, int]
    """Villages per their highest active level."""
    outbox_per_status: Mapping[str, int]
    receipts_per_status: Mapping[str, int]
    failed_runs: int


def summary(store: Store) -> StoreSummary:
    """Aggregate counts in a few queries."""
    w = t.warnings
    with guard(f"{store.url} summary"), store.engine.connect() as conn:
        newest = (select(t.runs.c.source, func.max(t.runs.c.started_at).label("m"))
                  .group_by(t.runs.c.source).subquery())
        runs = conn.execute(select(t.runs).join(newest, (t.runs.c.source == newest.c.source)
                                                & (t.runs.c.started_at == newest.c.m))
                            .order_by(t.runs.c.started_at.desc())).all()
        active = w.c.state == "active"

        def counts(q: Any) -> dict[Any, int]:
            return {r[0]: int(r[1]) for r in conn.execute(q)}

        per_level = counts(select(w.c.level, func.count()).where(active, w.c.level > 0).group_by(w.c.level))
        top = (select(w.c.village_code, func.max(w.c.level).label("lv")).where(active, w.c.level > 0)
               .group_by(w.c.village_code).subquery())
        villages = counts(select(top.c.lv, func.count()).group_by(top.c.lv))
        outbox = counts(select(t.outbox.c.status, func.count()).group_by(t.outbox.c.status))
        receipts = counts(select(t.receipts.c.status, func.count()).group_by(t.receipts.c.status))
        failed = conn.execute(select(func.count()).select_from(t.runs).where(t.runs.c.status == "failed")
                              ).scalar_one()
    return StoreSummary(tuple(_run(r) for r in runs), per_level, villages, outbox, receipts, int(failed))
