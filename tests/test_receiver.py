"""The delivery-report / reply receiver over real HTTP on 127.0.0.1, with a real SQLite store."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime

import pytest

from riskmap.lifecycle import LifecyclePolicy, decide
from riskmap.receiver import Receiver, is_acknowledgement, kannel_status
from riskmap.store import OutboxRow, RunMeta, Store, run_key

T0 = datetime(2026, 7, 22, 12, tzinfo=UTC)


@pytest.fixture
def store(tmp_path):
    s = Store.open(f"sqlite:///{tmp_path / 'r.sqlite'}")
    meta = RunMeta(now=T0, source="test", rules_hash="r")
    run = s.begin_run(run_key(meta), meta)
    rows = [OutboxRow(idempotency_key=f"k{i}", phone=f"1380000{i:04d}", text="雨", level=4) for i in range(2)]
    s.commit_decision(run.id, decide({}, None, T0, LifecyclePolicy()), rows, at=T0)
    yield s
    s.close()


@pytest.fixture
def receiver(store):
    replies: list[tuple[str, str]] = []
    r = Receiver(store, token="s3cr3t", on_reply=lambda p, t: replies.append((p, t)), clock=lambda: T0)
    r.start()
    r.replies = replies
    yield r
    r.stop()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def dlr(receiver, outbox_id, status, ts="1784700000", token=None):
    base = receiver.dlr_url().replace("{id}", str(outbox_id))
    if token is not None:
        base = base.replace("token=s3cr3t", f"token={token}")
    return get(base + f"&status={status}&answer=ACK%2F&ts={ts}&smsc=FAKE&mid=abc")


def test_delivery_report_updates_the_outbox_once(store, receiver):
    assert dlr(receiver, 1, 8) == (200, "ok")
    assert dlr(receiver, 1, 1) == (200, "ok")
    assert dlr(receiver, 1, 1) == (200, "ok")  # the same report again
    assert [r["status"] for r in store.receipts(1)] == ["smsc", "delivered"]
    assert receiver.counts == {"receipts": 2, "duplicates": 1, "unknown": 0, "replies": 0, "refused": 0}
    statuses = {r.id: r.status for r in store.outbox()}
    assert statuses == {1: "delivered", 2: "queued"}
    assert "token" not in store.receipts(1)[0]["raw"]


def test_undelivered_report_marks_failed_for_good(store, receiver):
    """The SMSC gave up: the message is not leased and sent again (escalation handles red/orange)."""
    from riskmap.store.outbox import NEVER

    leased = store.lease(T0, limit=10)
    for rec in leased:
        store.mark(rec.id, "sent", T0, gateway_id=f"g{rec.id}")
    assert dlr(receiver, 2, 16) == (200, "ok")
    row = {r.id: r for r in store.outbox()}[2]
    assert row.status == "failed" and row.next_attempt_at == NEVER
    later = datetime(2026, 7, 23, tzinfo=UTC)
    assert store.lease(later, limit=10) == []
    assert store.add_receipt(1, "failed", "stat:UNDELIV", T0)        # the store's own path parks too
    assert {r.id: r.next_attempt_at for r in store.outbox()}[1] == NEVER


def test_reports_about_unknown_messages_do_not_stop_the_batch(store, receiver):
    """A late report for an archived message (or a stray id) is answered 200 and not recorded."""
    import concurrent.futures

    from riskmap.errors import StoreError
    from riskmap.receiver import add_receipts

    assert add_receipts(store, [(1, "smsc", "a", T0), (999, "delivered", "x", T0), (2, "smsc", "b", T0)]) \
        == [True, None, True]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda i: dlr(receiver, 999 if i % 3 == 0 else 1, 8, ts=str(i)), range(30)))
    assert sorted(set(got)) == [(200, "ok"), (200, "unknown message")]
    assert receiver.counts["unknown"] == 10 and receiver.counts["receipts"] == 20
    assert len(store.receipts(1)) == 21 and store.receipts(999) == []
    with pytest.raises(StoreError, match="no such message"):
        store.add_receipt(999, "delivered", "y", T0)


def test_wrong_token_and_bad_requests_are_refused(store, receiver):
    assert dlr(receiver, 1, 1, token="guess")[0] == 403
    assert get(f"http://127.0.0.1:{receiver.port}/dlr?id=1&status=1")[0] == 403
    assert get(receiver.dlr_url().replace("{id}", "abc") + "&status=1")[0] == 400
    assert get(f"http://127.0.0.1:{receiver.port}/other?token=s3cr3t")[0] == 404
    assert store.receipts(1) == []
    assert receiver.counts["refused"] == 2


def test_replies_reach_the_callback(receiver):
    url = receiver.mo_url().replace("%p", "13800000001").replace("%a", urllib.parse.quote("收到"))
    assert get(url)[0] == 200
    assert receiver.replies == [("13800000001", "收到")]
    assert is_acknowledgement(receiver.replies[0][1])


def test_receiver_binds_loopback_by_default(receiver):
    assert receiver.host == "127.0.0.1"


@pytest.mark.parametrize(("text", "ack"), [("1", True), ("１", True), (" 收到。", True), ("OK", True),
                                           ("2", False), ("不收", False), ("", False)])
def test_acknowledgement_words(text, ack):
    assert is_acknowledgement(text) is ack


def test_kannel_status_bits():
    got = [kannel_status(str(b)) for b in (1, 2, 4, 8, 16)]
    assert got == ["delivered", "failed", "queued", "smsc", "failed"]
    assert kannel_status("x") == "kannel:x"


def test_add_receipts_batches_in_one_transaction_and_dedupes(store):
    from riskmap.receiver import add_receipts

    items = [(1, "smsc", "a", T0), (1, "delivered", "b", T0), (1, "delivered", "b", T0),
             (2, "failed", "c", T0)]
    assert add_receipts(store, items) == [True, True, False, True]
    assert add_receipts(store, items[:2]) == [False, False]
    assert {r.id: r.status for r in store.outbox()} == {1: "delivered", 2: "failed"}
    assert len(store.receipts(1)) == 2


def test_many_concurrent_reports_are_all_recorded(store, receiver):
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(lambda i: dlr(receiver, 1 + i % 2, 8, ts=str(i))[0], range(200)))
    assert codes == [200] * 200
    assert len(store.receipts(1)) + len(store.receipts(2)) == 200
