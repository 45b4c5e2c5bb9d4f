"""Housekeeping archives finished outbox rows together with their receipts (riskmap/store/archive.py), on
SQLite and on PostgreSQL: what moves and what stays, one transaction per batch, idempotent, exactly once in
the file after a crash between the write and the commit, receipts still append-only otherwise, the
schema v4 upgrade of an older store, and ``riskmap receipts --archive``.  Without RISKMAP_TEST_PG_URL the
PostgreSQL variants are skipped locally and FAIL when CI=true.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from cli_fixtures import jsonl, rm, use_these_commands
from sqlalchemy import create_engine, delete, func, select, text, update
from test_store import guard_store as guard
from test_supersede import T0, V1, V2, h, levels, store_fixture, url_fixture  # noqa: F401 - fixtures

from riskmap.errors import InputError, StoreError
from riskmap.lifecycle import LifecyclePolicy, decide
from riskmap.operations import ACK, delivery_rates
from riskmap.service.housekeeping import archive_outbox as housekeeping_archive
from riskmap.store import OutboxRow, RunMeta, Store, migrations, outbox_key, run_key
from riskmap.store import archive as arch
from riskmap.store import tables as t
from riskmap.store.archive import archive_outbox, archived_messages

V3 = "469900100203"
LATER = T0 + timedelta(days=100)
CUTOFF = LATER - timedelta(days=90)


def run(store: Store, now: datetime, lv: pd.DataFrame | None, *msgs: dict) -> str:
    """A run deciding ``lv`` (None: no change) and queueing ``msgs`` (phone, village, level, kind, …)."""
    meta = RunMeta(now=now, source="t.nc", forecast_hash=f"f-{now.isoformat()}", rules_hash="r")
    rid = run_key(meta)
    assert store.begin_run(rid, meta) is not None
    d = decide(store.current_warnings(), lv, now, LifecyclePolicy(), last_run_at=store.last_run_at())
    rows = [OutboxRow(outbox_key(rid, m.get("change", f"c{i}"), m["phone"], "sms"), m["phone"],
                      f"{m.get('kind', 'warning')} {m.get('level', 3)}", "张三",
                      m.get("role", "village_head"), m.get("village", ""),
                      "rainstorm" if m.get("village") else "", m.get("level", 3),
                      kind=m.get("kind", "warning"), change_key=m.get("change", f"c{i}"),
                      drill=m.get("drill", False))
            for i, m in enumerate(msgs)]
    store.commit_decision(rid, d, rows, at=now)
    return rid


def send_all(store: Store, at: datetime) -> list:
    sent = store.lease(at, limit=1000)
    store.mark_many([{"id": r.id, "status": "sent", "gateway_id": f"gw-{r.id}"} for r in sent], at)
    return sent


def count(store: Store, table) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def by_phone(store: Store) -> dict[str, str]:
    return {r.phone: r.status for r in store.outbox()}


def test_finished_rows_leave_with_their_receipts_and_what_is_still_needed_stays(store, tmp_path):
    run(store, h(0), levels((V1, 3), (V2, 3), at=h(0)),
        {"phone": "13800000001", "village": V1}, {"phone": "13800000002", "village": V2},
        {"phone": "13800000009", "village": V3, "level": 1},
        {"phone": "13800000010", "kind": "summary"})  # its run issued V2, still in force: it stays
    first = send_all(store, h(0.1))
    ids = {r.phone: r.id for r in first}
    store.add_receipt(ids["13800000001"], "delivered", "stat:DELIVRD", h(0.2))
    store.add_receipt(ids["13800000001"], ACK, "reply by sms reply", h(0.3))
    store.add_receipt(ids["13800000002"], "delivered", "stat:DELIVRD", h(0.2))
    # V1 ends; V2 stays in force (its message, receipts and all, must stay)
    run(store, h(30), levels((V2, 3), at=h(30)), {"phone": "13800000003"})  # a summary of the lift run
    send_all(store, h(30.1))
    run(store, h(31), None, {"phone": "13800000004", "village": V3, "level": 1},  # failed for good
        {"phone": "13800000005", "village": V3, "level": 1},  # failed, retry due: still pending
        {"phone": "13800000006", "village": V3, "level": 1})
    a, b, c = store.lease(h(31.1))
    never = datetime(9999, 1, 1, tzinfo=UTC)  # the dispatcher's permanent failure
    store.mark(a.id, "failed", h(31.2), error="unknown subscriber", next_attempt_at=never)
    store.mark(b.id, "failed", h(31.2), error="timeout", next_attempt_at=h(31.5))
    store.mark(c.id, "sent", LATER - timedelta(days=10))  # finished too recently
    run(store, LATER - timedelta(days=1), None, {"phone": "13800000007", "village": V3, "level": 1})
    before = {p: s for p, s in by_phone(store).items()}

    done = archive_outbox(store, tmp_path / "archive", CUTOFF, LATER)
    assert done == arch.Archived(messages=4, receipts=2, files=("outbox-20261009.jsonl.gz",))
    left = by_phone(store)
    assert set(before) - set(left) == {"13800000001", "13800000009", "13800000003", "13800000004"}
    assert left == {p: before[p] for p in left}  # what stayed is untouched
    assert count(store, t.receipts) == 1  # V2's delivery report, with its message
    path = tmp_path / "archive" / "outbox-20261009.jsonl.gz"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    lines = [json.loads(x) for x in gzip.decompress(path.read_bytes()).decode().splitlines()]
    assert [m["phone"] for m in lines] == ["13800000001", "13800000009", "13800000003", "13800000004"]
    v1 = lines[0]
    assert (v1["status"], v1["gateway_id"], v1["village_code"]) == ("delivered", f"gw-{ids['13800000001']}",
                                                                     V1)
    assert [(r["status"], r["raw"]) for r in v1["receipts"]] == [("delivered", "stat:DELIVRD"),
                                                                 (ACK, "reply by sms reply")]
    assert datetime.fromisoformat(v1["receipts"][0]["at"]) == h(0.2)
    assert archived_messages(store, tmp_path / "archive") == lines
    with store.engine.connect() as conn:
        (b_row,) = conn.execute(select(t.archive_batches)).all()
    assert (b_row.file, b_row.messages, b_row.receipts, b_row.start_offset) == (path.name, 4, 2, 0)
    assert b_row.end_offset == path.stat().st_size and b_row.at == LATER
    # idempotent: a second housekeeping moves nothing and the file is unchanged
    size = path.stat().st_size
    assert archive_outbox(store, tmp_path / "archive", CUTOFF, LATER) == arch.Archived()
    assert path.stat().st_size == size and count(store, t.archive_batches) == 1
    from riskmap.service.status import format_text, gather

    st = gather(store)
    assert st["archive"] == {"batches": 1, "messages": 4, "receipts": 2, "last_at": LATER.isoformat()}
    assert "archived (OUT/archive): 4 messages with 2 receipts in 1 batch(es)" in format_text(st)


def test_escalations_and_acknowledgements_keep_what_they_still_need(store, tmp_path):
    # an orange to a village head, escalated; the warning ended, the original was touched recently
    run(store, h(0), levels((V1, 3), at=h(0)), {"phone": "13800000001", "village": V1})
    (orig,) = send_all(store, h(0.1))
    esc = OutboxRow(outbox_key("x", f"escalate-{orig.id}", "13900000001", "sms"), "13900000001", "未确认",
                    role="escalation", village_code=V1, hazard="rainstorm", level=3, kind="escalation",
                    change_key=f"escalate-{orig.id}")
    store.queue(orig.run_id, [esc], h(1))
    send_all(store, h(1.1))
    store.mark(orig.id, "sent", LATER - timedelta(days=1))  # e.g. a late answer of the gateway
    # a yellow to another phone, acknowledged by a reply; the same phone has a red about V2 in force,
    # sent before that reply: the reply still answers the red
    run(store, h(2), levels((V2, 4), at=h(2)), {"phone": "13800000002", "village": V2, "level": 4})
    run(store, h(2.5), None, {"phone": "13800000002", "village": V3, "level": 2})
    send_all(store, h(2.6))
    yellow = next(r for r in store.outbox() if r.village_code == V3)
    store.add_receipt(yellow.id, ACK, "callback by 王工", h(3))
    run(store, h(40), levels((V2, 4), at=h(40)), {"phone": "13800000003", "village": V3, "level": 1})
    assert archive_outbox(store, tmp_path / "a", CUTOFF, LATER).messages == 0
    kinds = {(r.phone, r.kind) for r in store.outbox()}
    assert {("13800000001", "warning"), ("13900000001", "escalation"), ("13800000002", "warning")} <= kinds
    assert len([r for r in store.outbox() if r.phone == "13800000002"]) == 2
    # once the original is old enough it leaves together with its escalation (same batch, in id order)
    store.mark(orig.id, "sent", T0 + timedelta(days=1))
    done = archive_outbox(store, tmp_path / "a", CUTOFF, LATER)
    assert done.messages == 2
    assert [m["kind"] for m in archived_messages(store, tmp_path / "a")] == ["warning", "escalation"]


def test_receipts_stay_append_only_and_archive_batches_too(store, tmp_path):
    run(store, h(0), None, {"phone": "13800000001"}, {"phone": "13800000002"})
    a, _ = send_all(store, h(0.1))
    store.add_receipt(a.id, "delivered", "stat:DELIVRD", h(0.2))
    for stmt in (delete(t.receipts), update(t.receipts).values(raw="rewritten")):
        with pytest.raises(StoreError, match="append-only"), guard(store) as conn:
            conn.execute(stmt)
    # even a finished message may not be deleted with its receipt by hand
    with pytest.raises(StoreError, match="append-only"), guard(store) as conn:
        conn.execute(delete(t.receipts).where(t.receipts.c.outbox_id == a.id))
        conn.execute(delete(t.outbox).where(t.outbox.c.id == a.id))
    assert count(store, t.receipts) == 1
    run(store, h(1), None, {"phone": "13800000003"})  # a newer message and receipt: a may leave
    (c,) = send_all(store, h(1.1))
    store.add_receipt(c.id, "delivered", "stat:DELIVRD", h(1.2))
    assert archive_outbox(store, tmp_path, CUTOFF, LATER).messages == 2
    for stmt in (delete(t.archive_batches), update(t.archive_batches).values(file="x")):
        with pytest.raises(StoreError, match="append-only"), guard(store) as conn:
            conn.execute(stmt)


def test_one_transaction_per_batch_and_a_crash_before_the_commit_leaves_each_message_once(
        store, tmp_path, monkeypatch):
    run(store, h(0), None, *({"phone": f"1380000000{i}"} for i in range(7)))
    for r in send_all(store, h(0.1)):
        store.add_receipt(r.id, "delivered", f"id:{r.id}", h(0.2))
    real_insert = arch.insert
    calls = []

    def dies_at_the_second_batch(table):
        calls.append(table)
        if len(calls) == 2:
            raise RuntimeError("power cut")
        return real_insert(table)

    monkeypatch.setattr(arch, "insert", dies_at_the_second_batch)
    with pytest.raises(RuntimeError, match="power cut"):
        archive_outbox(store, tmp_path, CUTOFF, LATER, batch=2)
    monkeypatch.setattr(arch, "insert", real_insert)
    path = tmp_path / "outbox-20261009.jsonl.gz"
    assert count(store, t.archive_batches) == 1 and len(store.outbox()) == 5  # the first batch committed
    assert len(gzip.decompress(path.read_bytes()).splitlines()) == 4  # the second was written, not committed
    done = archive_outbox(store, tmp_path, CUTOFF, LATER, batch=2)
    assert (done.messages, done.receipts) == (4, 4)  # the newest message and receipt stay
    lines = [json.loads(x) for x in gzip.decompress(path.read_bytes()).splitlines()]
    assert [m["phone"] for m in lines] == [f"1380000000{i}" for i in range(6)]  # each once, in order
    assert archived_messages(store, tmp_path) == lines and count(store, t.archive_batches) == 3
    assert [r.phone for r in store.outbox()] == ["13800000006"] and count(store, t.receipts) == 1


def test_a_changed_archive_file_is_refused_on_reading_and_left_alone_on_writing(store, tmp_path):
    run(store, h(0), None, *({"phone": f"1380000000{i}"} for i in range(3)))
    send_all(store, h(0.1))
    assert archive_outbox(store, tmp_path, CUTOFF, LATER, batch=1).messages == 2
    path = tmp_path / "outbox-20261009.jsonl.gz"
    path.write_bytes(path.read_bytes()[:-5])  # someone cut it short
    with pytest.raises(InputError, match=r"outbox-20261009.jsonl.gz: batch 2 .*sha256"):
        archived_messages(store, tmp_path)
    run(store, h(1), None, {"phone": "13800000009"})
    send_all(store, h(1.1))
    done = archive_outbox(store, tmp_path, CUTOFF, LATER)
    assert done.files == ("outbox-20261009.1.jsonl.gz",) and len(path.read_bytes()) > 0


def test_housekeeping_and_riskmap_receipts_with_the_archive(url, store, tmp_path, capsys, monkeypatch):
    run(store, h(0), None, {"phone": "13800000001", "village": V1}, {"phone": "13800000002", "village": V2},
        {"phone": "13800000003", "village": V2})
    a, b, _ = send_all(store, h(0.1))
    store.add_receipt(a.id, "delivered", "stat:DELIVRD", h(0.2))
    store.add_receipt(a.id, ACK, "callback by 王工", h(0.3))
    store.add_receipt(b.id, "delivered", "stat:DELIVRD", h(0.2))
    before = delivery_rates(store).set_index("township")
    assert housekeeping_archive(store, tmp_path, 0, LATER) == 0  # 0 days: off
    assert housekeeping_archive(store, tmp_path, 90, LATER) == 1  # b holds the newest receipt, c is newest
    assert (tmp_path / "archive" / "outbox-20261009.jsonl.gz").exists()
    after = delivery_rates(store).set_index("township")
    assert after.loc["total", "messages"] == 2
    use_these_commands(monkeypatch)
    code, out = rm(capsys, "receipts", "--json", "--archive", str(tmp_path / "archive"), "--db", url)
    assert code == 0, out
    total = {r["township"]: r for r in jsonl(out)}["total"]
    for col in ("messages", "sent", "delivered", "acknowledged"):
        assert total[col] == before.loc["total", col], col
    code, out = rm(capsys, "receipts", "--json", "--db", url)
    assert code == 0 and {r["township"]: r for r in jsonl(out)}["total"]["acknowledged"] == 0
    code, out = rm(capsys, "receipts", "--archive", str(tmp_path / "nowhere"), "--db", url)
    assert code == 2 and "nowhere/outbox-20261009.jsonl.gz: cannot read batch 1" in out, out


def test_an_older_store_is_upgraded_to_v4_and_can_then_archive(url, tmp_path):
    """A store written before v4 (receipts that no DELETE may touch, no archive_batches) gains both."""
    store = Store.open(url)
    run(store, h(0), None, {"phone": "13800000001"}, {"phone": "13800000002"})
    a, _ = send_all(store, h(0.1))
    store.add_receipt(a.id, "delivered", "stat:DELIVRD", h(0.2))
    run(store, h(1), None, {"phone": "13800000003"})
    (c,) = send_all(store, h(1.1))
    store.add_receipt(c.id, "delivered", "stat:DELIVRD", h(1.2))
    store.close()
    engine = create_engine(url)
    with engine.begin() as conn:  # back to the v3 shape
        t.archive_batches.drop(conn)
        if conn.dialect.name == "sqlite":
            conn.execute(text("DROP TRIGGER receipts_no_delete"))
        else:
            conn.execute(text("DROP TRIGGER receipts_append_only ON receipts"))
        migrations._append_only(conn, "receipts")
        conn.execute(text("DELETE FROM schema_version WHERE version >= 4"))
    assert migrations.schema_version(engine) == 3
    with pytest.raises(Exception, match="append-only"), engine.begin() as conn:  # v3: never deleted
        conn.execute(text("UPDATE outbox SET status = 'archived' WHERE id = :i"), {"i": a.id})
        conn.execute(text("DELETE FROM receipts WHERE outbox_id = :i"), {"i": a.id})
    engine.dispose()

    store = Store.open(url)  # migrates
    try:
        assert migrations.schema_version(store.engine) == migrations.CURRENT >= 4
        with pytest.raises(StoreError, match="append-only"), guard(store) as conn:
            conn.execute(delete(t.receipts))
        done = archive_outbox(store, tmp_path, CUTOFF, LATER)
        assert (done.messages, done.receipts) == (2, 1)
        assert [m["phone"] for m in archived_messages(store, tmp_path)] == ["13800000001", "13800000002"]
    finally:
        store.close()


def test_archive_path_names_the_day_in_utc(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.sqlite")
    try:
        run(store, h(0), None, {"phone": "13800000001"}, {"phone": "13800000002"})
        send_all(store, h(0.1))
        late = datetime(2026, 10, 9, 23, 30, tzinfo=UTC)  # 07:30 on the 10th in Beijing
        assert archive_outbox(store, tmp_path, CUTOFF, late).files == ("outbox-20261009.jsonl.gz",)
    finally:
        store.close()
