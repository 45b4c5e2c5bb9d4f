"""The warning store on SQLite and on a real PostgreSQL (RISKMAP_TEST_PG_URL).

Without RISKMAP_TEST_PG_URL the PostgreSQL variants are skipped locally and FAIL when CI=true.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from pg import fresh_pg_store
from sqlalchemy import func, insert, select

from riskmap.errors import ServiceUnavailable, StoreError
from riskmap.lifecycle import LifecyclePolicy, ManualIssue, ManualLift, Silence, decide
from riskmap.store import CapRow, OutboxRow, RunMeta, Store, outbox_key, run_key
from riskmap.store import tables as t
from riskmap.store.migrations import CURRENT

V1, V2 = "469900100201", "469900100202"
T0 = datetime(2026, 7, 1, 0, tzinfo=UTC)
POLICY = LifecyclePolicy()


def h(n: float) -> datetime:
    return T0 + timedelta(hours=n)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'riskmap.sqlite'}"
    return fresh_pg_store()


@pytest.fixture
def store(url):
    s = Store.open(url)
    yield s
    s.close()


def levels(*rows: tuple[str, int], at: datetime, hazard: str = "rainstorm") -> pd.DataFrame:
    return pd.DataFrame({
        "village_code": [r[0] for r in rows], "hazard": [hazard] * len(rows), "level": [r[1] for r in rows],
        "rule": ["rainstorm.national"] * len(rows), "statistic": ["mean"] * len(rows),
        "window_h": [3.0] * len(rows), "value_mm": [30.0 * r[1] for r in rows],
        "threshold_mm": [25.0 * r[1] for r in rows],
        "window_end": [pd.Timestamp(at + timedelta(hours=3))] * len(rows),
        "reason": [f"3 h {30 * r[1]} mm" for r in rows]})


def cycle(store: Store, lv, now: datetime, rules_hash: str = "rules-v1", outbox=True, **kw):
    """What the pipeline does: begin the run, decide, queue one SMS per change, commit."""
    meta = RunMeta(now=now, source="test.nc", forecast_hash="fc-1", rules_hash=rules_hash, region_hash="rg-1")
    rid = run_key(meta)
    run = store.begin_run(rid, meta)
    if run is None:
        return None, None
    d = decide(store.current_warnings(), lv, now, POLICY, last_run_at=store.last_run_at(), **kw)
    rows = [OutboxRow(outbox_key(rid, c.key, "13800000000", "sms"), "13800000000", f"{c.kind} {c.new_level}",
                      "张三", "village_head", c.village_code, c.hazard, c.new_level)
            for c in d.changes] if outbox else []
    counts = store.commit_decision(rid, d, rows, at=now + timedelta(seconds=5))
    return d, counts


def count(store: Store, table) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_sequence_through_the_store(store):
    d, c = cycle(store, levels((V1, 1), at=h(0)), h(0))
    assert [ch.kind for ch in d.changes] == ["issue"]
    assert c == {"events": 1, "outbox": 1, "cap": 0, "superseded": 0}
    cycle(store, levels((V1, 3), at=h(1)), h(1))
    cycle(store, levels((V1, 1), at=h(2)), h(2))
    w = store.current_warnings()[(V1, "rainstorm")]
    assert (w.level, w.pending_level, w.pending_since) == (3, 1, h(2))  # the hold survives the round trip
    cycle(store, levels((V1, 1), at=h(8)), h(8))
    cycle(store, levels(at=h(9)), h(9))
    d, _ = cycle(store, levels(at=h(12)), h(12))
    assert [ch.kind for ch in d.changes] == ["lift"]
    d, _ = cycle(store, levels((V1, 2), at=h(13)), h(13))
    assert [ch.kind for ch in d.changes] == ["issue"]
    hist = store.history(V1)
    assert [(e.kind, e.old_level, e.new_level) for e in hist] == [
        ("issue", 0, 1), ("escalate", 1, 3), ("downgrade", 3, 1), ("lift", 1, 0), ("issue", 0, 2)]
    assert hist[0].rules_hash == "rules-v1" and hist[0].input_hashes["forecast"] == "fc-1"
    assert all(e.at.tzinfo is not None and e.at.utcoffset() == timedelta(0) for e in hist)
    assert [w.village_code for w in store.warnings(active=True)] == [V1]


def test_repeated_run_writes_nothing_new(store):
    lv = levels((V1, 2), (V2, 4), at=h(0))
    cycle(store, lv, h(0))
    before = (count(store, t.events), count(store, t.outbox), count(store, t.warnings))
    assert cycle(store, lv, h(0)) == (None, None)  # begin_run: already done
    # re-applying the same decision under another run id writes no new event or message either
    meta = RunMeta(now=h(0), source="again", act_hash="x")
    rid = run_key(meta)
    store.begin_run(rid, meta)
    d = decide({}, lv, h(0), POLICY)
    rows = [OutboxRow(outbox_key("r", c.key, "13800000000", "sms"), "13800000000", "x") for c in d.changes]
    store.commit_decision(rid, d, rows)
    store.commit_decision(rid, d, rows)
    assert (count(store, t.events), count(store, t.warnings)) == before[0::2]
    assert count(store, t.outbox) == before[1] + 2  # new run id -> new idempotency keys, once
    store.commit_decision(rid, d, rows)
    assert count(store, t.outbox) == before[1] + 2


def test_older_run_does_not_roll_back(store):
    cycle(store, levels((V1, 3), at=h(5)), h(5))
    d, c = cycle(store, levels((V2, 2), at=h(2)), h(2))
    assert d.changes == () and c["events"] == 0
    assert set(store.current_warnings()) == {(V1, "rainstorm")}


def test_changed_rule_set_is_a_new_run(store):
    cycle(store, levels((V1, 1), at=h(0)), h(0), rules_hash="rules-v1")
    d, c = cycle(store, levels((V1, 3), at=h(0)), h(0), rules_hash="rules-v2")
    assert d is not None and [ch.kind for ch in d.changes] == ["escalate"]
    assert [e.rules_hash for e in store.history(V1)] == ["rules-v1", "rules-v2"]
    assert len(store.runs()) == 2


def test_failure_mid_commit_writes_nothing(store):
    meta = RunMeta(now=h(0), source="test.nc", forecast_hash="fc")
    rid = run_key(meta)
    store.begin_run(rid, meta)
    d = decide({}, levels((V1, 2), at=h(0)), h(0), POLICY)
    good = OutboxRow(outbox_key(rid, d.changes[0].key, "13800000000", "sms"), "13800000000", "ok")
    bad = {"idempotency_key": "k2", "phone": None, "text": "x"}  # NOT NULL fails after state and events
    with pytest.raises(StoreError, match="integrity"):
        store.commit_decision(rid, d, [good, bad])
    assert (count(store, t.warnings), count(store, t.events), count(store, t.outbox)) == (0, 0, 0)
    assert store.run(rid).status == "started"
    store.fail_run(rid, "outbox row without phone")
    r = store.run(rid)
    assert (r.status, r.failure_reason) == ("failed", "outbox row without phone")
    assert (count(store, t.warnings), count(store, t.events)) == (0, 0)
    assert store.begin_run(rid, meta).attempts == 2  # a failed run may be retried


def test_manual_acts_and_silence_are_audited(store):
    s = Silence(f"village:{V2}", (V2,), h(6), "村民已转移", "王工", h(0))
    store.add_silence(s)
    store.add_silence(s)
    assert store.silences(h(1)) == [s] and store.silences(h(7)) == []
    d, _ = cycle(store, levels((V1, 2), (V2, 2), at=h(0)), h(0), silences=store.silences(h(0)))
    assert [ch.village_code for ch in d.changes] == [V1]
    act = ManualIssue("detention_areas:D1", (V1, V2), "torrent", 4, "开闸分洪 <紧急> & 转移", "李主任")
    meta = RunMeta(now=h(1), source="manual", operator="李主任", act_hash="issue-1")
    rid = run_key(meta)
    store.begin_run(rid, meta)
    store.commit_decision(rid, decide(store.current_warnings(), None, h(1), POLICY, manual=[act]))
    lift = ManualLift(f"village:{V1}", (V1,), "险情排除", "王工", hazard="torrent")
    meta = RunMeta(now=h(2), source="manual", operator="王工", act_hash="lift-1")
    store.begin_run(run_key(meta), meta)
    store.commit_decision(run_key(meta), decide(store.current_warnings(), None, h(2), POLICY, manual=[lift]))
    hv1 = store.history(V1)
    assert [(e.kind, e.hazard, e.operator, e.manual) for e in hv1] == [
        ("issue", "rainstorm", "", False), ("issue", "torrent", "李主任", True),
        ("lift", "torrent", "王工", True)]
    assert hv1[1].reason == "开闸分洪 <紧急> & 转移"
    hv2 = store.history(V2)
    kinds = [(e.kind, e.suppressed, e.operator) for e in hv2]
    assert kinds == [("silence", False, "王工"), ("issue", True, ""), ("issue", False, "李主任")]
    assert store.last_run_at() == h(0)  # manual acts do not count as automatic runs


def test_cap_rows_are_stored_and_linked(store):
    meta = RunMeta(now=h(0), source="t")
    rid = run_key(meta)
    store.begin_run(rid, meta)
    d = decide({}, levels((V1, 2), at=h(0)), h(0), POLICY)
    cap = CapRow("46990011000100_x", "Alert", "Actual", h(0), (V1,), "rainstorm", "<alert/>",
                 (d.changes[0].key,))
    c = store.commit_decision(rid, d, cap_rows=[cap])
    assert c["cap"] == 1
    w = store.current_warnings()[(V1, "rainstorm")]
    assert (w.cap_identifier, w.cap_sent) == (cap.identifier, h(0))
    assert store.cap_messages(rid) == [cap]


def test_outbox_lease_mark_and_receipts(store):
    cycle(store, levels((V1, 2), (V2, 4), at=h(0)), h(0))
    leased = store.lease(h(1), limit=10, lease_s=60)
    assert [m.level for m in leased] == [4, 2] and all(m.status == "leased" for m in leased)
    assert store.lease(h(1)) == []  # leased already
    store.mark(leased[0].id, "sent", h(1), gateway_id="gw-1")
    store.mark(leased[1].id, "failed", h(1), error="timeout", next_attempt_at=h(2))
    assert store.lease(h(1.5)) == []
    again = store.lease(h(2))
    assert [(m.id, m.attempts) for m in again] == [(leased[1].id, 2)]
    assert store.add_receipt(leased[0].id, "delivered", "id:gw-1 stat:DELIVRD", h(1.1))
    assert not store.add_receipt(leased[0].id, "delivered", "id:gw-1 stat:DELIVRD", h(1.2))
    assert store.outbox(status="delivered")[0].id == leased[0].id
    assert len(store.receipts(leased[0].id)) == 1


def test_approvals(store):
    assert store.add_approval("run-1", "send", "approved", "李主任", at=h(0))
    assert not store.add_approval("run-1", "send", "approved", "李主任", at=h(1))
    assert [a["operator"] for a in store.approvals("run-1")] == ["李主任"]
    with pytest.raises(StoreError):
        store.add_approval("run-1", "send", "maybe", "x")


def test_times_round_trip_as_utc(store):
    bj = timezone(timedelta(hours=8))
    meta = RunMeta(now=datetime(2026, 7, 1, 8, 0, tzinfo=bj), source="t")
    run = store.begin_run(run_key(meta), meta, at=datetime(2026, 7, 1, 8, 0, 1, 250000, tzinfo=bj))
    assert run.now == T0 and run.now.tzinfo == UTC
    assert run.started_at == datetime(2026, 7, 1, 0, 0, 1, 250000, tzinfo=UTC)
    with pytest.raises(StoreError):
        store.begin_run("naive", RunMeta(now=datetime(2026, 7, 1)))


def test_newer_schema_is_refused(url):
    s = Store.open(url)
    with s.engine.begin() as conn:
        conn.execute(insert(t.schema_version).values(version=CURRENT + 1, applied_at=T0, riskmap_version="9"))
    s.close()
    with pytest.raises(StoreError, match=f"schema v{CURRENT + 1} is newer"):
        Store.open(url)


def test_sqlite_file_is_private_and_wal(tmp_path):
    path = tmp_path / "sub" / "riskmap.sqlite"
    s = Store.open(path)
    assert path.stat().st_mode & 0o777 == 0o600
    meta = RunMeta(now=T0)
    s.begin_run(run_key(meta), meta)  # a write creates -wal and -shm: private too
    assert {p.name: p.stat().st_mode & 0o777 for p in path.parent.iterdir()} == {
        "riskmap.sqlite": 0o600, "riskmap.sqlite-wal": 0o600, "riskmap.sqlite-shm": 0o600}
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert Store.open(f"sqlite:///{path}").url.endswith("riskmap.sqlite")
    s.close()


def test_unreachable_database_is_service_unavailable():
    with pytest.raises(ServiceUnavailable) as err:
        Store.open("postgresql+psycopg2://riskmap:secret@127.0.0.1:9/none")
    assert err.value.exit_code == 3 and "secret" not in str(err.value)


def test_sqlite_path_that_cannot_be_created_is_service_unavailable(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ServiceUnavailable, match="cannot create the database file"):
        Store.open(tmp_path / "file" / "riskmap.sqlite")


def test_apply_run_is_idempotent_and_records_failures(store):
    from riskmap.store.apply import apply_manual, apply_run

    meta = RunMeta(now=h(0), source="fc.nc", forecast_hash="f", rules_hash="r")
    lv = levels((V1, 2), at=h(0))
    first = apply_run(store, meta, lv, POLICY)
    assert [c.kind for c in first.decision.changes] == ["issue"] and first.counts["events"] == 1
    assert apply_run(store, meta, lv, POLICY).decision is None  # `riskmap run` twice: no new events
    assert count(store, t.events) == 1

    def broken(run_id, decision, previous):
        raise RuntimeError("template 'x' missing")

    meta2 = RunMeta(now=h(1), source="fc.nc", forecast_hash="f2", rules_hash="r")
    with pytest.raises(RuntimeError):
        apply_run(store, meta2, levels((V1, 4), at=h(1)), POLICY, broken)
    failed = store.run(run_key(meta2))
    assert failed.status == "failed" and "template 'x' missing" in failed.failure_reason
    assert store.current_warnings()[(V1, "rainstorm")].level == 2 and count(store, t.events) == 1
    # silences stored in the store are applied by apply_run
    store.add_silence(Silence(f"village:{V2}", (V2,), h(9), "已转移", "王工", h(0)))
    done = apply_run(store, RunMeta(now=h(2), forecast_hash="f3"), levels((V1, 2), (V2, 3), at=h(2)), POLICY)
    assert done.decision.changes == () and [c.village_code for c in done.decision.suppressed] == [V2]
    lifted = apply_manual(store, [ManualLift(f"village:{V1}", (V1,), "险情排除", "王工")], h(3), POLICY)
    assert [(c.kind, c.operator) for c in lifted.decision.changes] == [("lift", "王工")]
    assert store.run(lifted.run_id).source == "manual"


def test_drill_run_writes_messages_but_never_changes_warnings(store):
    cycle(store, levels((V1, 1), at=h(0)), h(0))
    before = store.current_warnings()
    meta = RunMeta(now=h(1), source="drill", forecast_hash="fc-1", drill=True)
    rid = run_key(meta)
    assert rid != run_key(replace_drill(meta))
    store.begin_run(rid, meta)
    d = decide(before, levels((V1, 4), at=h(1)), h(1), POLICY)
    rows = [OutboxRow(outbox_key(rid, c.key, "13800000000", "sms"), "13800000000", "【演练】", drill=True)
            for c in d.changes]
    cap = CapRow("46990011000100_20260701090000_7", "Update", "Exercise", h(1), (V1,), "rainstorm",
                 "<alert/>")
    counts = store.commit_decision(rid, d, rows, [cap])
    assert counts == {"events": 1, "outbox": 1, "cap": 1, "superseded": 0}
    assert store.current_warnings() == before
    assert [(e.kind, e.drill) for e in store.history(V1)] == [("issue", False), ("escalate", True)]
    assert store.outbox(run_id=rid)[0].drill
    assert store.last_run_at() == h(0)
    # the real run at the same time still records its own escalation
    d2, c2 = cycle(store, levels((V1, 4), at=h(1)), h(1))
    assert [c.kind for c in d2.changes] == ["escalate"] and c2["events"] == 1


def replace_drill(meta: RunMeta) -> RunMeta:
    from dataclasses import replace

    return replace(meta, drill=False)


def test_event_log_is_append_only(store):
    from sqlalchemy import delete, update

    cycle(store, levels((V1, 2), at=h(0)), h(0))
    for stmt in (update(t.events).values(reason="rewritten"), delete(t.events)):
        with pytest.raises(StoreError, match="append-only"):
            with guard_store(store) as conn:
                conn.execute(stmt)
    assert count(store, t.events) == 1 and store.history(V1)[0].reason == "3 h 60 mm"


def guard_store(store: Store):
    import contextlib

    from riskmap.store.db import guard

    @contextlib.contextmanager
    def ctx():
        with guard("test"), store.engine.begin() as conn:
            yield conn

    return ctx()


def test_only_one_service_holds_a_store_and_the_hold_dies_with_its_process(url, store):
    import signal
    import subprocess
    import sys
    import time

    from riskmap.errors import StoreLocked
    from riskmap.store.hold import held_by, hold_store

    with hold_store(store, "serve test-host pid 1"):
        assert held_by(store) == "serve test-host pid 1"
        with pytest.raises(StoreLocked, match="held by serve test-host pid 1") as err:
            hold_store(Store.open(url), "second")
        assert err.value.exit_code == 4
    assert held_by(store) is None
    code = ("import sys, time\nfrom riskmap.store import Store\nfrom riskmap.store.hold import hold_store\n"
            "h = hold_store(Store.open(sys.argv[1]), 'child serve')\n"
            "print('held', flush=True)\ntime.sleep(60)\n")
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    child = subprocess.Popen([sys.executable, "-c", code, url], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout.readline().strip() == "held"
        assert held_by(store) == "child serve"
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        for _ in range(50):  # the server notices the dead session within moments
            if held_by(store) is None:
                break
            time.sleep(0.1)
        hold_store(store, "after crash").release()
    finally:
        if child.poll() is None:
            child.kill()


def test_held_messages_approval_queue_and_receipt_reconciliation(store):
    meta = RunMeta(now=h(0), source="t")
    rid = run_key(meta)
    store.begin_run(rid, meta)
    d = decide({}, levels((V1, 4), at=h(0)), h(0), POLICY)
    held = OutboxRow(outbox_key(rid, d.changes[0].key, "13800000001", "sms"), "13800000001", "红色预警",
                     level=4, status="held")
    store.commit_decision(rid, d, [held])
    assert store.lease(h(0)) == []  # held messages wait for an approval
    assert store.approve_run(rid, "李主任", h(0.5), "同意发布") == 1
    assert store.approve_run(rid, "李主任", h(0.6)) == 0  # once
    assert store.approvals(rid)[0]["operator"] == "李主任"
    with pytest.raises(StoreError, match="no run"):
        store.approve_run("nope", "x", h(1))
    # an escalation queued outside a decision, idempotently
    esc = OutboxRow("esc:" + d.changes[0].key + ":13800000002", "13800000002", "未确认，请核实", level=4)
    assert store.queue(rid, [esc], h(1)) == 1 and store.queue(rid, [esc], h(1)) == 0
    msgs = store.lease(h(1), lease_s=60)
    assert {m.phone for m in msgs} == {"13800000001", "13800000002"}
    # the process dies after the gateway accepted one message and its receipt arrived: never re-sent
    store.add_receipt(msgs[0].id, "accepted", "id:gw-9", h(1.001))
    again = store.lease(h(2), lease_s=60)
    assert [m.id for m in again] == [msgs[1].id]
    assert store.outbox(phone=msgs[0].phone)[0].status == "sent"


def test_a_later_migration_is_applied_once_in_order(url, monkeypatch):
    from sqlalchemy import inspect, text

    from riskmap.store import migrations

    Store.open(url).close()  # a v1 database

    def v2(conn):
        conn.execute(text("ALTER TABLE runs ADD COLUMN note_v2 TEXT"))

    monkeypatch.setitem(migrations.MIGRATIONS, CURRENT + 1, v2)
    monkeypatch.setattr(migrations, "CURRENT", CURRENT + 1)
    s = Store.open(url)
    with s.engine.connect() as conn:
        q = select(t.schema_version.c.version).order_by(t.schema_version.c.version)
        assert list(conn.execute(q).scalars()) == list(range(1, CURRENT + 2))
        assert "note_v2" in {c["name"] for c in inspect(conn).get_columns("runs")}
    s.close()
    Store.open(url).close()  # nothing left to apply: no error from re-adding the column


def test_mark_many_in_one_transaction(store):
    cycle(store, levels((V1, 2), (V2, 3), at=h(0)), h(0))
    a, b = store.lease(h(1))
    n = store.mark_many([{"id": a.id, "status": "sent", "gateway_id": "gw-a"},
                         {"id": b.id, "status": "failed", "error": "busy", "next_attempt_at": h(2)}], h(1))
    assert n == 2
    got = {m.id: (m.status, m.gateway_id, m.next_attempt_at) for m in store.outbox()}
    assert got == {a.id: ("sent", "gw-a", None), b.id: ("failed", "", h(2))}
    with pytest.raises(StoreError, match="unknown outbox status"):
        store.mark_many([{"id": a.id, "status": "lost"}], h(1))


def test_summary_for_status(store):
    from riskmap.store.summary import summary

    cycle(store, levels((V1, 2), (V2, 4), at=h(0)), h(0))
    cycle(store, levels((V1, 3), at=h(1), hazard="torrent"), h(1))
    m = store.outbox()[0]
    store.add_receipt(m.id, "delivered", "ok", h(1))
    meta = RunMeta(now=h(2), source="bad.nc", forecast_hash="bad")
    store.begin_run(run_key(meta), meta)
    store.fail_run(run_key(meta), "unreadable")
    s = summary(store)
    assert s.active_per_level == {2: 1, 3: 1, 4: 1}
    assert s.active_villages_per_level == {3: 1, 4: 1}
    assert s.outbox_per_status == {"queued": 2, "delivered": 1} and s.receipts_per_status == {"delivered": 1}
    assert [(r.source, r.status) for r in s.last_runs] == [("bad.nc", "failed"), ("test.nc", "done")]
    assert s.failed_runs == 1 and s.last_runs[0].failure_reason == "unreadable"


def test_apply_expiry_between_forecasts(store):
    from riskmap.store import apply_expiry

    cycle(store, levels((V1, 2), at=h(0)), h(0))  # valid until h(9)
    assert apply_expiry(store, h(5)).decision.changes == ()
    out = apply_expiry(store, h(10))
    assert [c.kind for c in out.decision.changes] == ["expire"] and out.counts["events"] == 1
    assert apply_expiry(store, h(10)).decision is None
    assert store.warnings(active=True) == [] and store.run(out.run_id).source == "expiry"


def test_concurrent_commits_of_one_run_write_once(url, store):
    import threading

    meta = RunMeta(now=h(0), source="t", forecast_hash="c")
    rid = run_key(meta)
    store.begin_run(rid, meta)
    d = decide({}, levels((V1, 2), (V2, 3), at=h(0)), h(0), POLICY)
    rows = [OutboxRow(outbox_key(rid, c.key, "13800000000", "sms"), "13800000000", "x") for c in d.changes]
    other = Store.open(url)
    barrier = threading.Barrier(2)
    results: list = []

    def commit(s: Store) -> None:
        barrier.wait()
        results.append(s.commit_decision(rid, d, rows))

    threads = [threading.Thread(target=commit, args=(s,)) for s in (store, other)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    other.close()
    assert sorted(r["events"] for r in results) == [0, 2]
    assert (count(store, t.events), count(store, t.outbox), count(store, t.warnings)) == (2, 2, 2)


def test_bad_store_urls_are_bad_input():
    from riskmap.errors import InputError

    with pytest.raises(InputError, match="only sqlite"):
        Store.open("mysql://u:secret@127.0.0.1/x")
    with pytest.raises(InputError, match="not a database URL"):
        Store.open("::nonsense://")
    for plain in ("postgres://riskmap:secret@127.0.0.1:9/none", "postgresql://riskmap:secret@127.0.0.1:9/none"):
        with pytest.raises(ServiceUnavailable):  # understood, with the installed driver; the port is closed
            Store.open(plain)


def test_a_delivery_report_before_the_acceptance_is_not_overwritten(tmp_path) -> None:
    from datetime import UTC, datetime

    from riskmap.store import OutboxRow, RunMeta, Store, run_key

    store = Store.open(tmp_path / "s.sqlite")
    at = datetime(2026, 7, 1, tzinfo=UTC)
    meta = RunMeta(now=at, source="test")
    rid = run_key(meta)
    store.begin_run(rid, meta, at=at)
    store.queue(rid, [OutboxRow(idempotency_key="k1", phone="13800000001", text="测试", contact_name="甲",
                                    role="village_head", village_code="469900100201", hazard="rainstorm",
                                    level=4, segments=1, change_key="c1")], at)
    (rec,) = store.lease(at, limit=10)
    store.mark(rec.id, "delivered", at)  # the report raced ahead of the dispatcher
    store.mark(rec.id, "sent", at, gateway_id="gw-1")
    store.mark_many([{"id": rec.id, "status": "sent"}], at)
    (row,) = store.outbox(run_id=rid)
    assert row.status == "delivered" and row.gateway_id == "gw-1"
    store.close()


def test_a_silence_set_after_the_forecast_time_covers_the_cycle_applied_later(store):
    """03:00 forecast, silence set at 03:10, the cycle applied at 03:40: the village stays silent.

    A silence that ended before the forecast's time does not; nor does one set after the cycle.
    """
    from riskmap.store import apply_run

    t0 = h(0)
    store.add_silence(Silence(f"village:{V2}", (V2,), t0 + timedelta(hours=3), "已转移", "王工",
                              t0 + timedelta(minutes=10)))
    store.add_silence(Silence(f"village:{V1}", (V1,), t0 - timedelta(minutes=5), "昨夜", "李工",
                              t0 - timedelta(hours=2)))
    meta = RunMeta(now=t0, source="fc-0300.nc", forecast_hash="f0300")
    done = apply_run(store, meta, levels((V1, 3), (V2, 3), at=t0), POLICY, at=t0 + timedelta(minutes=40))
    assert [c.village_code for c in done.decision.changes] == [V1]
    assert [c.village_code for c in done.decision.suppressed] == [V2]
    # a silence set after the cycle was decided does not rewrite it; it covers the next one
    late = Silence(f"village:{V1}", (V1,), t0 + timedelta(hours=3), "补充", "王工",
                   t0 + timedelta(minutes=50))
    store.add_silence(late)
    assert store.current_warnings()[(V1, "rainstorm")].level == 3
    nxt = apply_run(store, RunMeta(now=h(1), source="fc-0400.nc", forecast_hash="f0400"),
                    levels((V1, 4), (V2, 4), at=h(1)), POLICY, at=h(1) + timedelta(minutes=40))
    assert nxt.decision.changes == () and {c.village_code for c in nxt.decision.suppressed} == {V1, V2}
