"""A higher level supersedes a lower pending one (issue #6), on SQLite and on PostgreSQL.

Two runs: the first queues an orange message that is never dispatched, the second queues red for the
same phone → the orange is marked ``superseded`` in the second run's transaction and only the red is
ever leased; ``riskmap outbox`` shows it.  Without RISKMAP_TEST_PG_URL the PostgreSQL variants are
skipped locally and FAIL when CI=true.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from cli_fixtures import jsonl, rm, use_these_commands
from pg import fresh_pg_store
from sqlalchemy import create_engine, inspect

from riskmap.lifecycle import LifecyclePolicy, decide
from riskmap.operations import delivery_rates
from riskmap.store import OutboxRow, RunMeta, Store, outbox_key, run_key
from riskmap.store import tables as t
from riskmap.store.migrations import CURRENT, schema_version
from riskmap.store.outbox import OUTBOX_STATUSES

V1, V2 = "469900100201", "469900100202"
PHONE, OTHER = "13800000000", "13900000000"
T0 = datetime(2026, 7, 1, 0, tzinfo=UTC)


def h(n: float) -> datetime:
    return T0 + timedelta(hours=n)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'riskmap.sqlite'}"
    return fresh_pg_store()


@pytest.fixture
def store(url):
    s = Store.open(url)
    yield s
    s.close()


def levels(*rows: tuple[str, int], at: datetime) -> pd.DataFrame:
    return pd.DataFrame({
        "village_code": [r[0] for r in rows], "hazard": ["rainstorm"] * len(rows),
        "level": [r[1] for r in rows], "rule": ["rainstorm.national"] * len(rows),
        "statistic": ["mean"] * len(rows), "window_h": [3.0] * len(rows),
        "value_mm": [30.0 * r[1] for r in rows], "threshold_mm": [25.0 * r[1] for r in rows],
        "window_end": [pd.Timestamp(at + timedelta(hours=3))] * len(rows),
        "reason": [f"3 h {30 * r[1]} mm" for r in rows]})


def run(store: Store, lv: pd.DataFrame, now: datetime, phones=(PHONE,), kind: str = "warning",
        drill: bool = False) -> tuple[str, dict[str, int]]:
    """A run that queues one message per change and phone (what the renderer does)."""
    meta = RunMeta(now=now, source="test.nc", forecast_hash=f"fc-{now.isoformat()}", rules_hash="r",
                   drill=drill)
    rid = run_key(meta)
    assert store.begin_run(rid, meta) is not None
    d = decide(store.current_warnings(), lv, now, LifecyclePolicy(), last_run_at=store.last_run_at())
    rows = [OutboxRow(outbox_key(rid, c.key, p, "sms"), p, f"{c.kind} {c.new_level}", "张三", "village_head",
                      c.village_code, c.hazard, c.new_level, drill=drill, kind=kind)
            for c in d.changes for p in phones]
    return rid, store.commit_decision(rid, d, rows, at=now + timedelta(seconds=5))


def by_level(store: Store) -> dict[int, str]:
    return {r.level: r.status for r in store.outbox()}


def test_red_supersedes_the_queued_orange_and_only_red_is_leased(store, url, capsys, monkeypatch):
    first, c1 = run(store, levels((V1, 3), at=h(0)), h(0))
    assert c1["outbox"] == 1 and c1["superseded"] == 0
    second, c2 = run(store, levels((V1, 4), at=h(1)), h(1))
    assert c2 == {"events": 1, "outbox": 1, "cap": 0, "superseded": 1}
    assert by_level(store) == {3: "superseded", 4: "queued"}
    orange = store.outbox(run_id=first)[0]
    leased = store.lease(h(2), limit=10) + store.lease(h(2) + timedelta(seconds=10), limit=10)
    assert [r.level for r in leased] == [4] and orange.status == "superseded"
    assert "superseded" in OUTBOX_STATUSES
    use_these_commands(monkeypatch)
    code, out = rm(capsys, "outbox", "--json", "--db", url)
    assert code == 0, out
    shown = {v["level"]: v["status"] for v in jsonl(out)}
    assert shown == {3: "superseded", 4: "leased"}, out
    code, out = rm(capsys, "outbox", "--superseded", "--json", "--db", url)
    assert code == 0 and [(v["id"], v["status"]) for v in jsonl(out)] == [(orange.id, "superseded")], out
    total = delivery_rates(store).iloc[-1]
    assert total["messages"] == 1  # the superseded orange was never meant to go out


def test_what_is_never_superseded(store):
    # a leased (in flight) orange stays leased; a lower level later does not supersede a higher one
    run(store, levels((V1, 3), at=h(0)), h(0))
    assert [r.level for r in store.lease(h(0.5))] == [3]
    run(store, levels((V1, 4), at=h(1)), h(1))
    assert by_level(store) == {3: "leased", 4: "queued"}
    _, c = run(store, levels((V1, 4), (V2, 2), at=h(2)), h(2))
    assert c["superseded"] == 0 and by_level(store)[4] == "queued"


def test_same_level_supersedes_only_the_same_village_and_hazard(store):
    run(store, levels((V1, 2), at=h(0)), h(0))
    run(store, levels((V1, 2), (V2, 2), at=h(1)), h(1))  # V2 yellow (new) to the same phone
    rows = store.outbox()
    assert [(r.village_code, r.status) for r in rows] == [(V1, "queued"), (V2, "queued")]


def test_failed_awaiting_retry_is_superseded_but_a_permanent_failure_and_other_phones_are_not(store):
    first, _ = run(store, levels((V1, 1), at=h(0)), h(0), phones=(PHONE, OTHER))
    a, b = store.lease(h(0.1))
    store.mark(a.id, "failed", h(0.2), error="timeout", next_attempt_at=h(0.5))
    never = datetime(9999, 1, 1, tzinfo=UTC)  # the dispatcher's permanent failure
    store.mark(b.id, "failed", h(0.2), error="unknown subscriber", next_attempt_at=never)
    run(store, levels((V1, 3), at=h(1)), h(1), phones=(PHONE,))
    status = {(r.phone, r.level): r.status for r in store.outbox()}
    assert status[(a.phone, 1)] == "superseded" and status[(b.phone, 1)] == "failed"
    assert status[(PHONE, 3)] == "queued"


def test_drill_never_supersedes_real_messages_and_all_clear_ends_only_its_warning(store):
    run(store, levels((V1, 3), (V2, 1), at=h(0)), h(0))
    _, c = run(store, levels((V1, 4), at=h(1)), h(1), drill=True)
    assert c["superseded"] == 0
    assert {r.level: r.status for r in store.outbox() if not r.drill} == {3: "queued", 1: "queued"}
    # an all-clear about V1 supersedes the pending V1 warning, never the one about V2
    _, c = run(store, levels((V1, 0), (V2, 1), at=h(30)), h(30), kind="all_clear")
    real = {r.village_code: r.status for r in store.outbox() if not r.drill and r.run_id != _}
    assert real == {V1: "superseded", V2: "queued"} and c["superseded"] == 1


def test_migration_v2_adds_kind_and_phone_index_to_a_v1_database(tmp_path, monkeypatch):
    from riskmap.store import migrations

    monkeypatch.setattr(migrations, "CURRENT", 2)  # this v1 database has only an outbox: stop at v2
    engine = create_engine(f"sqlite:///{tmp_path / 'v1.sqlite'}")
    with engine.begin() as conn:  # a v1 outbox without kind
        t.schema_version.create(conn)
        conn.exec_driver_sql("CREATE TABLE outbox (id INTEGER PRIMARY KEY, phone VARCHAR(32) NOT NULL)")
        conn.exec_driver_sql("INSERT INTO outbox (id, phone) VALUES (1, '13800000000')")
        conn.execute(t.schema_version.insert().values(version=1, applied_at=T0, riskmap_version="old"))
    assert schema_version(engine) == 1
    assert migrations.migrate(engine) == 2 and CURRENT >= 2
    insp = inspect(engine)
    assert "kind" in {c["name"] for c in insp.get_columns("outbox")}
    assert "ix_outbox_phone" in {i["name"] for i in insp.get_indexes("outbox")}
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT kind FROM outbox").scalar_one() == "warning"
    engine.dispose()
