"""A still-active warning is repeated only after its level's interval (issue #6), on SQLite and PostgreSQL.

The tiny region (tests/cli_fixtures.py): village 330110001001 has one village head (张村, 13800000002);
its township duty officer (李镇, 13800000001) gets a summary.  The packaged routing repeats red after
3 h.  Lifecycle: red issued at t0 → red at t0+1h (nothing: too soon) → red at t0+4h (one repeat per
recipient, worded 预警持续) → the same run again (nothing new) → t0+5h (nothing: repeated at t0+4h).
Without RISKMAP_TEST_PG_URL the PostgreSQL variant is skipped locally and FAILS when CI=true.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from cli_fixtures import write_region
from pg import fresh_pg_store
from region_data import CODES

from riskmap.config import Settings
from riskmap.lifecycle import LifecyclePolicy
from riskmap.region import load_region
from riskmap.render import Renderer, repeat_alerts
from riskmap.routing_rules import load_routing
from riskmap.store import RunMeta, Store
from riskmap.store.apply import apply_run
from riskmap.templates import load_templates

pytestmark = pytest.mark.filterwarnings("ignore:.*landline cannot receive SMS")
V0, V1 = CODES[0], CODES[1]
HEAD, TOWNSHIP = "13800000002", "13800000001"
T0 = datetime(2026, 7, 1, 0, tzinfo=UTC)


def h(n: float) -> datetime:
    return T0 + timedelta(hours=n)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'riskmap.sqlite'}"
    else:
        url = fresh_pg_store()
    s = Store.open(url)
    yield s
    s.close()


@pytest.fixture(scope="module")
def renderer(tmp_path_factory) -> Renderer:
    region = load_region(write_region(tmp_path_factory.mktemp("region")))
    return Renderer(region, load_routing(), load_templates(), Settings())


def levels(level: int, at: datetime, rain: float = 120.0) -> pd.DataFrame:
    return pd.DataFrame({
        "village_code": [V0], "hazard": ["rainstorm"], "level": [level], "rule": ["rainstorm.national"],
        "statistic": ["mean"], "window_h": [3.0], "value_mm": [rain], "threshold_mm": [100.0],
        "window_end": [pd.Timestamp(at + timedelta(hours=3))], "reason": [f"3 h {rain} mm"]})


def cycle(store: Store, renderer: Renderer, now: datetime, level: int = 4, rain: float = 120.0):
    meta = RunMeta(now=now, source="test.nc", forecast_hash=f"fc-{now.isoformat()}", rules_hash="r")
    return apply_run(store, meta, levels(level, now, rain), LifecyclePolicy(), renderer, at=now)


def messages(store: Store, run_id: str) -> dict[str, str]:
    return {r.phone: r.text for r in store.outbox(run_id=run_id)}


def test_repeat_after_the_levels_interval_once_per_run(store, renderer):
    assert renderer.routing.repeat_after(4) == timedelta(hours=3)
    first = cycle(store, renderer, h(0))
    assert [c.kind for c in first.decision.changes] == ["issue"]
    assert set(messages(store, first.run_id)) == {HEAD, TOWNSHIP}
    assert store.last_sent() == {(V0, "rainstorm"): h(0)}

    soon = cycle(store, renderer, h(1))
    assert soon.decision.changes == () and messages(store, soon.run_id) == {}

    later = cycle(store, renderer, h(4), rain=150.0)
    assert later.decision.changes == () and later.counts["outbox"] == 2
    sent = messages(store, later.run_id)
    assert set(sent) == {HEAD, TOWNSHIP}  # one repeat per recipient
    head = sent[HEAD]
    assert "红色预警" in head and "预警持续,危险区人员请立即转移" in head and "预计降雨150毫米" in head
    assert "01日12时至01日15时" in head  # this run's window (t0+4h .. t0+7h), Beijing time
    assert [r.kind for r in store.outbox(run_id=later.run_id, phone=HEAD)] == ["repeat"]
    assert store.last_sent() == {(V0, "rainstorm"): h(4)}

    again = cycle(store, renderer, h(4), rain=150.0)  # the same run: done, nothing new
    assert again.decision is None
    assert Counter(r.run_id for r in store.outbox()) == {first.run_id: 2, later.run_id: 2}

    assert messages(store, cycle(store, renderer, h(5)).run_id) == {}  # repeated at t0+4h
    assert set(messages(store, cycle(store, renderer, h(7)).run_id)) == {HEAD, TOWNSHIP}


def test_a_change_is_not_also_a_repeat_and_drill_runs_never_repeat(store, renderer):
    cycle(store, renderer, h(0), level=3)
    up = cycle(store, renderer, h(10), level=4)  # escalation long after the orange: one message, a warning
    assert [c.kind for c in up.decision.changes] == ["escalate"]
    assert [r.kind for r in store.outbox(run_id=up.run_id, phone=HEAD)] == ["warning"]
    assert "预警持续" not in store.outbox(run_id=up.run_id, phone=HEAD)[0].text
    previous = store.current_warnings()
    assert len(repeat_alerts(up.decision, previous, renderer.routing, h(20), {})) == 0  # it changed
    drill = Renderer(renderer.region, renderer.routing, renderer.templates, renderer.settings, drill=True)
    meta = RunMeta(now=h(20), source="test.nc", forecast_hash="fc-drill", rules_hash="r", drill=True)
    out = apply_run(store, meta, levels(4, h(20)), LifecyclePolicy(), drill, at=h(20))
    assert out.decision.changes == () and store.outbox(run_id=out.run_id) == []
