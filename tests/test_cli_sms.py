"""`riskmap approve / outbox / receipts / confirm` (riskmap/cli/sms_cmd.py, riskmap/operations.py).

A manual red issue over the tiny region's detention area (villages 330110001001 and 330110001002,
township 330110001; see tests/cli_fixtures.py) with a routing file that holds red for approval gives
held messages; the tests release them, deliver some, confirm a call-back and read the rates — on
SQLite and on PostgreSQL.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cli_fixtures import NOW, PG_DOWN, db_url, jsonl, rm
from cli_fixtures import cli_commands_fixture as cli_commands_fixture  # autouse: these commands
from cli_fixtures import region_fixture as region_fixture  # region: the tiny one, per module
from region_data import CODES

from riskmap.operations import ACK, acknowledge_reply, acknowledged_ids, delivery_rates
from riskmap.store import Store

pytestmark = pytest.mark.filterwarnings("ignore:.*landline cannot receive SMS")
V0, V1, V2, V3 = CODES
TOWNSHIP = V0[:9]
MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")


@pytest.fixture(scope="module")
def rules_hold_red(tmp_path_factory) -> Path:
    """The packaged rules with ``release: red: hold`` (领导审签 for red)."""
    from riskmap.rules import packaged_rules_dir

    folder = tmp_path_factory.mktemp("rules")
    for entry in packaged_rules_dir().iterdir():
        if entry.name.endswith((".yaml", ".yml")):
            (folder / entry.name).write_bytes(entry.read_bytes())
    routing = folder / "routing.yaml"
    text = routing.read_text(encoding="utf-8")
    old = "release: {blue: auto, yellow: auto, orange: auto, red: auto}"
    assert old in text
    routing.write_text(text.replace(old, "release: {blue: auto, yellow: auto, orange: auto, red: hold}"),
                       encoding="utf-8")
    return folder


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def issued(request, capsys, tmp_path, region, rules_hold_red) -> tuple[str, str]:
    """A store with a red manual issue over D02 whose village messages are held; (db URL, run id)."""
    db = db_url(request.param, tmp_path)
    code, out = rm(capsys, "issue", "--feature", "detention_areas:D02", "--region", str(region),
                   "--rules", str(rules_hold_red), "--hazard", "torrent", "--level", "red",
                   "--reason", "开闸分洪", "--by", "李主任", "--now", NOW, "--db", db)
    assert code == 0 and "held for approval" in out, out
    store = Store.open(db)
    try:
        run_id = store.runs(1)[0].id
    finally:
        store.close()
    assert f"riskmap approve {run_id[:12]}" in out
    return db, run_id


def test_outbox_lists_held_messages_with_masked_phones(capsys, issued):
    db, run_id = issued
    store = Store.open(db)
    try:
        rows = store.outbox(run_id=run_id)
    finally:
        store.close()
    held = [r for r in rows if r.status == "held"]
    # village messages are held; the duty officer's summary is never held
    assert held and all(r.village_code for r in held)
    assert {r.phone for r in held} >= {"13800000002", "13800000004"}
    assert any(r.status == "queued" and r.village_code == "" for r in rows)
    code, out = rm(capsys, "outbox", "--held", "--db", db)
    assert code == 0 and f"held: {len(held)}" in out
    assert "138****0002" in out and "张村" in out
    assert not MOBILE.search(out), "a full phone number in the output"
    code, out = rm(capsys, "outbox", "--held", "--json", "--run", run_id[:12], "--db", db)
    view = jsonl(out)
    assert code == 0 and [v["id"] for v in view] == [r.id for r in held]
    assert all(v["status"] == "held" and "****" in v["phone"] for v in view)
    assert not MOBILE.search(out)
    code, out = rm(capsys, "outbox", "--db", db)
    assert code == 0 and f"all: {len(rows)}" in out and not MOBILE.search(out)


def test_approve_releases_held_messages_and_logs_approver_and_wait(capsys, issued):
    db, run_id = issued
    store = Store.open(db)
    try:
        n_held = len(store.outbox(run_id=run_id, status="held"))
    finally:
        store.close()
    code, out = rm(capsys, "approve", run_id[:12], "--by", "张县长", "--now", "2026-07-01T08:20+08:00",
                   "--db", db)
    assert code == 0, out
    assert f"{n_held} message(s) released" in out and "张县长" in out and "20 min 00 s" in out
    store = Store.open(db)
    try:
        assert store.outbox(run_id=run_id, status="held") == []
        approvals = store.approvals(run_id)
    finally:
        store.close()
    assert [(a["operator"], a["decision"]) for a in approvals] == [("张县长", "approved")]
    assert "waited 1200 s" in approvals[0]["reason"]
    assert approvals[0]["at"] == datetime(2026, 7, 1, 0, 20, tzinfo=UTC)
    code, out = rm(capsys, "outbox", "--pending", "--json", "--db", db)
    assert code == 0 and len(jsonl(out)) >= n_held
    code, out = rm(capsys, "outbox", "--held", "--json", "--db", db)
    assert code == 0 and jsonl(out) == []
    code, out = rm(capsys, "approve", run_id, "--by", "张县长", "--db", db)
    assert code == 0 and "already approved" in out


@pytest.mark.parametrize(("run", "needle"), [("ffff0000", "no such run"), ("ab", "at least 4")])
def test_approve_unknown_run_is_exit_2(capsys, issued, run, needle):
    db, _ = issued
    code, out = rm(capsys, "approve", run, "--by", "张县长", "--db", db)
    assert code == 2 and needle in out and "RUN" in out


def test_receipts_and_confirm_count_acknowledgements(capsys, issued, region):
    db, run_id = issued
    at = datetime(2026, 7, 1, 0, 30, tzinfo=UTC)
    store = Store.open(db)
    try:
        store.approve_run(run_id, "张县长", at)
        rows = store.outbox(run_id=run_id)
        store.mark_many([{"id": r.id, "status": "sent"} for r in rows], at)
        head = next(r for r in rows if r.phone == "13800000002")  # 张村, village head of V0
        assert store.add_receipt(head.id, "delivered", "id=1&status=1", at)
    finally:
        store.close()
    in_township = [r for r in rows if r.village_code.startswith(TOWNSHIP)]

    code, out = rm(capsys, "receipts", "--json", "--db", db)
    assert code == 0, out
    table = {r["township"]: r for r in jsonl(out)}
    t = table[TOWNSHIP]
    assert (t["messages"], t["sent"], t["delivered"], t["acknowledged"]) == (len(in_township),
                                                                             len(in_township), 1, 0)
    assert t["delivery_rate"] == pytest.approx(1 / len(in_township)) and t["ack_rate"] == 0
    assert table["total"]["messages"] == len(rows)

    code, out = rm(capsys, "confirm", "+86 138 0000 0002", "--by", "值班员小王", "--now",
                   "2026-07-01T08:40+08:00", "--db", db)
    assert code == 0 and "值班员小王" in out and "138****0002" in out and not MOBILE.search(out), out
    code, again = rm(capsys, "confirm", "13800000002", "--by", "值班员小王", "--db", db)
    assert code == 0 and "already recorded" in again
    code, out = rm(capsys, "confirm", "钱户", "--by", "值班员小王", "--db", db)  # by contact name
    assert code == 0 and "138****0004" in out
    code, out = rm(capsys, "receipts", "--json", "--db", db)
    t = {r["township"]: r for r in jsonl(out)}[TOWNSHIP]
    assert t["acknowledged"] == 2 and t["ack_rate"] == pytest.approx(2 / len(in_township))
    code, out = rm(capsys, "history", V0, "--db", db)  # the call-back is in the village's audit trail
    assert code == 0 and "acknowledged" in out and "值班员小王" in out
    assert "张村 138****0002 (callback)" in out and not MOBILE.search(out)
    code, out = rm(capsys, "receipts", "--region", str(region), "--db", db)
    assert code == 0 and "甲镇" in out and "合计" in out and f"{round(100 * 2 / len(in_township))}%" in out

    store = Store.open(db)
    try:
        acked = acknowledged_ids(store)
        head_receipts = [r["status"] for r in store.receipts(head.id)]
        # a reply of 1 from the household counts too; a reply of 2 does not
        assert acknowledge_reply(store, "13800000004", "2", at) is None
        reply = acknowledge_reply(store, "13800000004", "收到！", at)
        assert reply is not None and reply.via == "reply" and reply.new
        # the duty officer's reply to the summary counts too (township "" = duty summaries)
        assert acknowledge_reply(store, "13800000001", "1", at) is not None
        table = delivery_rates(store).set_index("township")
        assert table.loc["", "acknowledged"] == 1 and table.loc["total", "acknowledged"] == 3
    finally:
        store.close()
    assert head.id in acked and len(acked) == 2
    assert head_receipts == ["delivered", ACK]


def test_confirm_bad_contacts_are_exit_2(capsys, issued):
    db, _ = issued
    code, out = rm(capsys, "confirm", "13900000000", "--by", "x", "--db", db)
    assert code == 2 and "139****0000" in out and "no warning message" in out and not MOBILE.search(out)
    code, out = rm(capsys, "confirm", "1380000", "--by", "x", "--db", db)
    assert code == 2 and "not a valid phone number" in out
    # after the lift, nothing is active to acknowledge
    code, out = rm(capsys, "lift", "--village", V0, "--village", V1, "--hazard", "all", "--reason", "退水",
                   "--by", "王工", "--now", "2026-07-01T12:00+08:00", "--db", db)
    assert code == 0, out
    code, out = rm(capsys, "confirm", "13800000002", "--by", "x", "--db", db)
    assert code == 2 and "still active" in out


def test_delivery_rates_without_messages_are_nan(tmp_path):
    store = Store.open(tmp_path / "empty.sqlite")
    try:
        table = delivery_rates(store)
    finally:
        store.close()
    assert list(table["township"]) == ["total"] and int(table["messages"].iloc[0]) == 0
    assert table["delivery_rate"].isna().all()


@pytest.mark.parametrize("args", [["outbox"], ["receipts"], ["approve", "abcd1234", "--by", "x"],
                                  ["confirm", "13800000002", "--by", "x"]])
def test_unreachable_store_is_exit_3(capsys, args):
    code, out = rm(capsys, *args, "--db", PG_DOWN)
    assert code == 3 and "unavailable" in out and "Traceback" not in out


def test_missing_sqlite_store_is_exit_2(capsys, tmp_path):
    code, out = rm(capsys, "outbox", "--db", f"sqlite:///{tmp_path / 'none.sqlite'}")
    assert code == 2 and "no store at" in out
    assert not (tmp_path / "none.sqlite").exists()


def test_outbox_pending_and_failed(capsys, issued):
    from datetime import timedelta

    from riskmap.dispatcher import NEVER

    db, run_id = issued
    at = datetime(2026, 7, 1, 0, 30, tzinfo=UTC)
    store = Store.open(db)
    try:
        store.approve_run(run_id, "张县长", at)
        rows = store.outbox(run_id=run_id)
        retry, dead = rows[0], rows[1]
        store.mark_many([
            {"id": retry.id, "status": "failed", "error": "HTTP 503 for 13800000009",
             "next_attempt_at": at + timedelta(minutes=1)},
            {"id": dead.id, "status": "failed", "error": "rejected [bold]", "next_attempt_at": NEVER}], at)
    finally:
        store.close()
    code, out = rm(capsys, "outbox", "--pending", "--json", "--db", db)
    assert code == 0 and {v["id"] for v in jsonl(out)} == {r.id for r in rows} - {dead.id}
    code, out = rm(capsys, "outbox", "--failed", "--json", "--db", db)
    failed = {v["id"]: v for v in jsonl(out)}
    assert set(failed) == {retry.id, dead.id}
    assert failed[dead.id]["permanent"] and not failed[retry.id]["permanent"]
    assert failed[retry.id]["error"] == "HTTP 503 for 138****0009"
    assert failed[dead.id]["next_attempt_at"] is None and failed[retry.id]["next_attempt_at"]
    code, out = rm(capsys, "outbox", "--failed", "--db", db)
    assert code == 0 and "(permanent)" in out and "rejected [bold]" in out and not MOBILE.search(out)
    code, out = rm(capsys, "outbox", "--limit", "1", "--db", db)
    assert code == 0 and f"all: {len(rows)}, newest 1" in out


def test_unacknowledged_messages_are_due_for_escalation(capsys, issued):
    """Red messages to village heads not acknowledged within 30 min (from the approval) are due."""
    from datetime import timedelta

    from riskmap.operations import unacknowledged

    db, run_id = issued
    approved = datetime(2026, 7, 1, 1, 0, tzinfo=UTC)  # 09:00 Beijing, an hour after the issue
    after = timedelta(minutes=30)
    store = Store.open(db)
    try:
        store.approve_run(run_id, "张县长", approved)
        rows = store.outbox(run_id=run_id)
        store.mark_many([{"id": r.id, "status": "sent"} for r in rows], approved)
        heads = [r.id for r in rows if "village_head" in r.role.split(",")]
        assert heads  # 张村 heads V0
        assert unacknowledged(store, approved + timedelta(minutes=29), after) == []  # clock starts 09:00
        due = unacknowledged(store, approved + timedelta(minutes=31), after)
        assert [r.id for r in due] == heads and due[0].phone == "13800000002"
        assert unacknowledged(store, approved + timedelta(minutes=31), after, role="household") != []
        assert unacknowledged(store, approved + timedelta(minutes=31), after, levels=(3,)) == []
    finally:
        store.close()
    code, out = rm(capsys, "confirm", "张村", "--by", "值班员", "--now", "2026-07-01T09:20+08:00", "--db", db)
    assert code == 0, out
    store = Store.open(db)
    try:
        assert unacknowledged(store, approved + timedelta(minutes=31), after) == []
    finally:
        store.close()
