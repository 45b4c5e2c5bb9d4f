"""A higher level supersedes a lower pending one (issue #6), on SQLite and on PostgreSQL.

Two runs: the first queues an orange message that is never dispatched, the second queues red for the
same phone → the orange is marked ``superseded`` in the second run's transaction and only the red is
ever leased; ``riskmap outbox`` shows it.  A message held for approval (领导审签) supersedes nothing until
it is released: the queued orange still goes out while the red waits; approving the red before the
orange went out supersedes the orange in the approval's transaction; approving it after the orange was
sent takes nothing back.  Without RISKMAP_TEST_PG_URL the PostgreSQL variants are skipped locally and
FAIL when CI=true.
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


@pytest.fixture(name="url", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url_fixture(request, tmp_path) -> str:
    """A fresh store's URL, SQLite and PostgreSQL (also used by tests/test_archive.py)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'riskmap.sqlite'}"
    return fresh_pg_store()


@pytest.fixture(name="store")
def store_fixture(url):
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


# -- a held message supersedes nothing until it is released (领导审签) --------------------------------------

def queue_run(store: Store, now: datetime, *msgs: dict) -> str:
    """A run without changes that queues the given messages (phone, level, village, status, kind, drill)."""
    meta = RunMeta(now=now, source="test.nc", forecast_hash=f"q-{now.isoformat()}", rules_hash="r")
    rid = run_key(meta)
    assert store.begin_run(rid, meta) is not None
    d = decide(store.current_warnings(), None, now, LifecyclePolicy())
    rows = [OutboxRow(outbox_key(rid, f"c{i}", m.get("phone", PHONE), "sms"), m.get("phone", PHONE),
                      f"level {m['level']}", "张三", m.get("role", "household"), m.get("village", V1),
                      "rainstorm", m["level"], status=m.get("status", "queued"),
                      kind=m.get("kind", "warning"), drill=m.get("drill", False))
            for i, m in enumerate(msgs)]
    store.commit_decision(rid, d, rows, at=now + timedelta(seconds=5))
    return rid


def statuses(store: Store) -> list[tuple[int, str]]:
    return [(r.level, r.status) for r in store.outbox()]


def test_a_held_red_leaves_the_queued_orange_to_go_out_and_then_supersedes_nothing_sent(store):
    orange = queue_run(store, h(0), {"level": 3})
    red = queue_run(store, h(1), {"level": 4, "status": "held"})
    assert statuses(store) == [(3, "queued"), (4, "held")]  # 3 a.m.: the household still gets the orange
    leased = store.lease(h(1.1))
    assert [(r.run_id, r.level) for r in leased] == [(orange, 3)]
    store.mark(leased[0].id, "sent", h(1.2), gateway_id="gw-1")
    rel = store.release_run(red, "李主任", h(2), "同意")
    assert (rel.released, rel.superseded) == (1, 0)  # the orange went out: nothing to take back
    assert statuses(store) == [(3, "sent"), (4, "queued")]
    assert [r.level for r in store.lease(h(2.1))] == [4]
    assert store.release_run(red, "李主任", h(3)).released == 0  # approving twice releases nothing


def test_approving_the_red_before_the_orange_went_out_supersedes_it_in_the_same_transaction(
        store, url, capsys, monkeypatch):
    orange = queue_run(store, h(0), {"level": 3}, {"level": 3, "phone": OTHER})
    red = queue_run(store, h(1), {"level": 4, "status": "held"})
    store.close()  # the CLI opens its own
    use_these_commands(monkeypatch)
    code, out = rm(capsys, "approve", red[:12], "--by", "李主任", "--now", "2026-07-01T10:00+08:00",
                   "--db", url)
    assert code == 0, out
    assert "1 message(s) released, 1 older message(s) not yet sent superseded" in out, out
    s = Store.open(url)
    try:
        rows = {(r.phone, r.level): r for r in s.outbox()}
        assert rows[(PHONE, 3)].status == "superseded" and rows[(PHONE, 3)].run_id == orange
        assert rows[(PHONE, 3)].last_error == f"superseded by run {red}, approved by 李主任"
        assert rows[(OTHER, 3)].status == "queued"  # another phone keeps its orange
        assert rows[(PHONE, 4)].status == "queued"
        assert sorted(r.level for r in s.lease(h(2.1), limit=10)) == [3, 4]
        assert [(a["operator"], a["decision"]) for a in s.approvals(red)] == [("李主任", "approved")]
    finally:
        s.close()
    code, out = rm(capsys, "approve", red[:12], "--by", "李主任", "--db", url)
    assert code == 0 and "already approved" in out
    code, out = rm(capsys, "approve", red[:12], "--by", "王书记", "--db", url)
    assert code == 0 and "holds no messages" in out
    code, out = rm(capsys, "outbox", "--superseded", "--db", url)
    assert code == 0 and "approved by 李主任" in out, out


def test_a_rejected_or_never_approved_red_changes_nothing(store):
    queue_run(store, h(0), {"level": 3})
    red = queue_run(store, h(1), {"level": 4, "status": "held"})
    assert store.add_approval(red, "release", "rejected", "李主任", "雨势减弱", at=h(1.5))
    (orange,) = store.lease(h(2))
    store.mark(orange.id, "delivered", h(2.1))
    assert statuses(store) == [(3, "delivered"), (4, "held")]
    assert store.lease(h(30)) == []  # the held red never goes out by itself


def test_release_supersedes_only_older_same_drill_warnings_never_escalations_or_newer_messages(store):
    queue_run(store, h(0), {"level": 3}, {"level": 3, "kind": "escalation", "role": "escalation"},
              {"level": 2, "drill": True})
    red = queue_run(store, h(1), {"level": 4, "status": "held"})
    newer = queue_run(store, h(2), {"level": 3, "village": V2})  # a later orange about another village
    rel = store.release_run(red, "李主任", h(3))
    assert (rel.released, rel.superseded) == (1, 1)
    by = {(r.run_id == newer, r.kind, r.drill, r.level): r.status for r in store.outbox()}
    assert by == {(False, "warning", False, 3): "superseded", (False, "escalation", False, 3): "queued",
                  (False, "warning", True, 2): "queued", (False, "warning", False, 4): "queued",
                  (True, "warning", False, 3): "queued"}


def test_a_released_run_supersedes_an_older_held_run_and_release_held_does_too(store):
    first = queue_run(store, h(0), {"level": 4, "status": "held", "village": V1})
    second = queue_run(store, h(1), {"level": 4, "status": "held", "village": V1},
                       {"level": 2, "village": V2})  # the yellow goes out, the red waits
    assert statuses(store) == [(4, "held"), (4, "held"), (2, "queued")]
    assert store.release_held(second, h(2)) == 1  # the newer red replaces the older, still held one
    rows = store.outbox()
    assert [(r.run_id, r.status) for r in rows if r.level == 4] == [(first, "superseded"), (second, "queued")]
    assert rows[0].last_error == f"superseded by run {second}, released"
    assert store.release_run(first, "李主任", h(3)).released == 0  # nothing left to release


class Recording:
    """A gateway that accepts everything and records the texts it was given."""

    name = "recording"

    def __init__(self) -> None:
        self.texts: list[str] = []

    def send(self, msg):
        from riskmap.gateways.base import SendResult

        self.texts.append(msg.text)
        return SendResult.ok(f"gw-{len(self.texts)}")

    def close(self) -> None:
        pass


@pytest.mark.parametrize("approve_first", [False, True])
def test_the_dispatcher_sends_the_orange_while_the_red_waits_and_only_the_red_once_approved_first(
        store, approve_first):
    from riskmap.dispatcher import Dispatcher, DispatchPolicy

    queue_run(store, h(0), {"level": 3})
    red = queue_run(store, h(1), {"level": 4, "status": "held"})
    if approve_first:
        assert store.release_run(red, "李主任", h(1.5)).superseded == 1
    gw = Recording()
    d = Dispatcher(store, gw, DispatchPolicy(rate_per_s=0, concurrency=1), clock=lambda: h(2))
    try:
        d.drain()
        assert gw.texts == (["level 4"] if approve_first else ["level 3"])
        if not approve_first:
            assert store.release_run(red, "李主任", h(2.5)).superseded == 0
            d.drain()
            assert gw.texts == ["level 3", "level 4"]
    finally:
        d.stop()
