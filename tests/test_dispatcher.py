"""The dispatcher: outbox (a real SQLite store) → gateway, retries, permanent failures, the duplicate window,
throttling, wake-up, and the whole path through real Kannel with delivery reports."""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from kannel_fixture import kannel  # noqa: F401
from test_routing import ROOT, SIGN, V1, V2, make_region

from riskmap.dispatcher import NEVER, Dispatcher, DispatchPolicy, backoff
from riskmap.gateways.base import SendResult
from riskmap.gateways.file import FileGateway
from riskmap.gateways.kannel import KannelGateway
from riskmap.lifecycle import LifecyclePolicy, decide
from riskmap.messages import outbox_rows
from riskmap.receiver import Receiver
from riskmap.routing import Alert, route
from riskmap.routing_rules import load_routing, routing_from_dict
from riskmap.store import OutboxRow, RunMeta, Store, run_key
from riskmap.templates import load_templates

T0 = datetime(2026, 7, 22, 12, tzinfo=UTC)


class Clock:
    def __init__(self, t: datetime = T0) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


class Scripted:
    """A gateway answering from a script, recording what it was asked to send."""

    name = "scripted"

    def __init__(self, *answers: SendResult) -> None:
        self.answers = list(answers)
        self.sent: list[str] = []

    def send(self, msg):
        self.sent.append(msg.outbox_id)
        return self.answers.pop(0) if self.answers else SendResult.ok("g")

    def close(self):
        pass


def open_store(tmp_path, name="riskmap.sqlite") -> Store:
    return Store.open(f"sqlite:///{tmp_path / name}")


def commit(store: Store, rows, now=T0, source="test"):
    meta = RunMeta(now=now, source=source, rules_hash="r")
    run = store.begin_run(run_key(meta), meta)
    if run is None:
        return run_key(meta), {"outbox": 0}
    rows = rows(run.id) if callable(rows) else rows
    return run.id, store.commit_decision(run.id, decide({}, None, now, LifecyclePolicy()), rows, at=now)


def simple_rows(n: int, level: int = 4):
    return [OutboxRow(idempotency_key=f"k{i}", phone=f"1380000{i:04d}", text=f"第{i}条", level=level)
            for i in range(n)]


def test_routed_run_reaches_the_file_gateway_once(tmp_path):
    store = open_store(tmp_path)
    region, routing, ts = make_region(), load_routing(), load_templates()
    with pytest.warns(UserWarning):
        recips = route([Alert(V1, "rainstorm", 4, change_key="c1"), Alert(V2, "torrent", 2, change_key="c2")],
                       region, routing)

    def rows(run_id):
        return outbox_rows(recips, ts, routing, run_id=run_id, **SIGN)

    run_id, counts = commit(store, rows)
    assert counts["outbox"] == len(recips)
    gw = FileGateway(tmp_path / "OUT" / "sms.jsonl")
    d = Dispatcher(store, gw, DispatchPolicy(rate_per_s=0), clock=Clock())
    stats = d.drain()
    d.stop()
    gw.close()
    lines = [json.loads(x) for x in (tmp_path / "OUT" / "sms.jsonl").read_text(encoding="utf-8").splitlines()]
    assert stats.sent == len(recips) == len(lines)
    assert {x["to"] for x in lines} == {r.phone for r in recips}
    assert {r.status for r in store.outbox()} == {"sent"}
    household = next(x for x in lines if x["to"] == "13800000101")
    assert "暴雨洪涝风险红色预警" in household["text"] and household["run"] == run_id
    # the same run again queues and sends nothing
    assert commit(store, rows)[1]["outbox"] == 0
    again = store.commit_decision(run_id, decide({}, None, T0, LifecyclePolicy()), rows(run_id), at=T0)
    assert again["outbox"] == 0
    assert Dispatcher(store, Scripted(), clock=Clock()).drain().sent == 0


def test_transient_failures_retry_with_exponential_backoff_and_jitter(tmp_path):
    store = open_store(tmp_path)
    commit(store, simple_rows(1))
    gw = Scripted(SendResult.retry("HTTP 503"), SendResult.retry("HTTP 503"), SendResult.ok("G7"))
    clock = Clock()
    pol = DispatchPolicy(rate_per_s=0, backoff_base_s=10, jitter=0.5, concurrency=1)
    d = Dispatcher(store, gw, pol, clock=clock, rng=random.Random(3))
    assert d.dispatch_once().retry == 1
    rec = store.outbox()[0]
    assert rec.status == "failed" and rec.attempts == 1
    wait1 = (rec.next_attempt_at - T0).total_seconds()
    assert 5.0 <= wait1 <= 10.0
    assert d.dispatch_once().leased == 0  # not due yet
    clock.t = rec.next_attempt_at
    assert d.dispatch_once().retry == 1
    rec = store.outbox()[0]
    assert 10.0 <= (rec.next_attempt_at - clock.t).total_seconds() <= 20.0  # doubled
    clock.t = rec.next_attempt_at
    assert d.dispatch_once().sent == 1
    rec = store.outbox()[0]
    assert (rec.status, rec.gateway_id, rec.attempts) == ("sent", "G7", 3)
    assert gw.sent == ["1", "1", "1"]
    d.stop()


def test_jitter_spreads_retries():
    pol = DispatchPolicy(backoff_base_s=10, jitter=0.5)
    rng = random.Random(0)
    waits = {backoff(2, pol, rng).total_seconds() for _ in range(50)}
    assert len(waits) > 40 and min(waits) >= 10 and max(waits) <= 20


def test_permanent_failure_is_never_retried(tmp_path):
    store = open_store(tmp_path)
    commit(store, simple_rows(1))
    clock = Clock()
    d = Dispatcher(store, Scripted(SendResult.fail("HTTP 403")), DispatchPolicy(rate_per_s=0), clock=clock)
    s = d.dispatch_once()
    assert s.failed == 1 and "HTTP 403" in s.errors[0] and "138****0000" in s.errors[0]
    rec = store.outbox()[0]
    assert rec.status == "failed" and rec.next_attempt_at == NEVER
    clock.t = T0 + timedelta(days=365)
    assert d.dispatch_once().leased == 0
    d.stop()


def test_gives_up_after_max_attempts(tmp_path):
    store = open_store(tmp_path)
    commit(store, simple_rows(1))
    clock = Clock()
    gw = Scripted(*[SendResult.retry("refused")] * 10)
    d = Dispatcher(store, gw, DispatchPolicy(rate_per_s=0, max_attempts=3, backoff_base_s=1), clock=clock)
    for _ in range(6):
        d.dispatch_once()
        clock.t += timedelta(hours=1)
    assert len(gw.sent) == 3
    rec = store.outbox()[0]
    assert rec.status == "failed" and rec.next_attempt_at == NEVER
    assert "gave up after 3 attempts" in d.totals.errors[0]
    d.stop()


class Crash(BaseException):
    pass


class CrashingStore:
    """Dies (like a killed process) right after the gateway accepted, before 'sent' is committed."""

    def __init__(self, store):
        self.store = store

    def lease(self, *a, **k):
        return self.store.lease(*a, **k)

    def mark_many(self, marks, at):
        if any(m["status"] == "sent" for m in marks):
            raise Crash()
        return self.store.mark_many(marks, at)


def test_duplicate_window_is_one_lease(tmp_path):
    store = open_store(tmp_path)
    commit(store, simple_rows(1))
    out = tmp_path / "sms.jsonl"
    pol = DispatchPolicy(rate_per_s=0, lease_s=30, concurrency=1)
    d1 = Dispatcher(CrashingStore(store), FileGateway(out), pol, clock=Clock())
    with pytest.raises(Crash):
        d1.dispatch_once()  # the SMS went out, the process "died" before recording it
    assert len(out.read_text(encoding="utf-8").splitlines()) == 1
    assert store.outbox()[0].status == "leased"
    d2 = Dispatcher(store, FileGateway(out), pol, clock=Clock(T0 + timedelta(seconds=10)))
    assert d2.dispatch_once().leased == 0  # the lease still holds: nobody else sends it
    d3 = Dispatcher(store, FileGateway(out), pol, clock=Clock(T0 + timedelta(seconds=31)))
    assert d3.dispatch_once().sent == 1  # lease ran out: sent again — the documented duplicate
    assert d3.dispatch_once().leased == 0
    ids = [json.loads(x)["id"] for x in out.read_text(encoding="utf-8").splitlines()]
    assert ids == ["1", "1"]
    for d in (d1, d2, d3):
        d.stop()


def test_throttle_bounds_the_rate(tmp_path):
    store = open_store(tmp_path)
    commit(store, simple_rows(21))
    d = Dispatcher(store, Scripted(), DispatchPolicy(rate_per_s=50, concurrency=4), clock=Clock())
    d.throttle.burst = d.throttle._tokens = 1.0
    t = time.monotonic()
    assert d.drain().sent == 21
    assert time.monotonic() - t >= 0.39  # 20 intervals of 20 ms
    d.stop()


def test_highest_level_first_and_held_rows_wait_for_approval(tmp_path):
    store = open_store(tmp_path)
    rows = [OutboxRow(idempotency_key="a", phone="13800000001", text="蓝", level=1),
            OutboxRow(idempotency_key="b", phone="13800000002", text="红", level=4),
            OutboxRow(idempotency_key="c", phone="13800000003", text="待审", level=4, status="held")]
    run_id, _ = commit(store, rows)
    gw = Scripted()
    d = Dispatcher(store, gw, DispatchPolicy(rate_per_s=0, concurrency=1), clock=Clock())
    d.drain()
    assert gw.sent == ["2", "1"]
    assert store.release_held(run_id, T0) == 1
    d.drain()
    assert gw.sent == ["2", "1", "3"]
    d.stop()


def test_hold_policy_from_routing_marks_rows_held():
    raw = yaml.safe_load((ROOT / "riskmap/rules_default/routing.yaml").read_text(encoding="utf-8"))
    raw["release"]["red"] = "hold"
    routing = routing_from_dict(raw)
    with pytest.warns(UserWarning):
        recips = route([Alert(V1, "rainstorm", 4, change_key="c")], make_region(), routing)
    rows = outbox_rows(recips, load_templates(), routing, run_id="r", **SIGN)
    by_kind = {(r.role, r.status) for r in rows}
    assert ("village_head", "held") in by_kind
    assert ("county_duty", "queued") in by_kind  # summaries to officials are not held


def test_wake_starts_a_pass_at_once(tmp_path):
    store = open_store(tmp_path)
    gw = Scripted()
    d = Dispatcher(store, gw, DispatchPolicy(rate_per_s=0, sweep_s=30))
    d.start()
    try:
        time.sleep(0.2)
        commit(store, simple_rows(3), now=datetime.now(UTC))
        t = time.monotonic()
        d.wake()
        while len(gw.sent) < 3 and time.monotonic() - t < 5:
            time.sleep(0.01)
        assert len(gw.sent) == 3 and time.monotonic() - t < 1.0
    finally:
        d.stop()


@pytest.mark.kannel
def test_through_real_kannel_with_delivery_reports(tmp_path, kannel):  # noqa: F811
    store = open_store(tmp_path)
    receiver = Receiver(store, token="t0k3n").start()
    try:
        long_text = "【青山县防指】" + "张家村暴雨洪涝风险红色预警请立即转移" * 8  # 151 characters: 3 parts
        texts = [long_text] + [f"【青山县防指】第{i}条测试" for i in range(1, 5)]
        rows = [OutboxRow(idempotency_key=f"k{i}", phone=f"1380000{i:04d}", text=t, level=4)
                for i, t in enumerate(texts)]
        commit(store, rows, now=datetime.now(UTC))
        gw = KannelGateway(kannel.sendsms_url, kannel.username, kannel.password, sender="10690001",
                           dlr_url=receiver.dlr_url())
        d = Dispatcher(store, gw, DispatchPolicy(rate_per_s=100))
        assert d.drain().sent == 5
        msgs = kannel.wait_messages(5)
        assert sorted(t for _, t, _ in msgs) == sorted(r.text for r in rows)
        assert [n for _, t, n in msgs if t == long_text] == [3]
        ids = [r.id for r in store.outbox()]

        def delivered() -> set[int]:
            return {i for i in ids if any(x["status"] == "delivered" for x in store.receipts(i))}

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and delivered() != set(ids):
            time.sleep(0.05)
        assert delivered() == set(ids)
        # a report may beat the dispatcher's own 'sent' mark: the store never moves delivered back
        assert {r.status for r in store.outbox()} == {"delivered"}
        # a repeated report is one receipt
        first = store.receipts(1)[0]
        assert store.add_receipt(1, first["status"], first["raw"], datetime.now(UTC)) is False
        d.stop()
        assert receiver.counts["refused"] == 0 and receiver.counts["receipts"] >= len(ids)
    finally:
        receiver.stop()


class MarkOnlyStore:
    """A store without mark_many: the dispatcher falls back to one mark per message."""

    def __init__(self, store):
        self.store = store
        self.marks = 0

    def lease(self, *a, **k):
        return self.store.lease(*a, **k)

    def mark(self, *a, **k):
        self.marks += 1
        return self.store.mark(*a, **k)


def test_store_without_mark_many_is_marked_row_by_row(tmp_path):
    store = open_store(tmp_path)
    commit(store, simple_rows(3))
    wrapped = MarkOnlyStore(store)
    d = Dispatcher(wrapped, Scripted(SendResult.ok("a"), SendResult.fail("bad"), SendResult.retry("busy")),
                   DispatchPolicy(rate_per_s=0, concurrency=1), clock=Clock())
    s = d.dispatch_once()
    d.stop()
    assert (s.sent, s.failed, s.retry, wrapped.marks) == (1, 1, 1, 3)
    assert [r.status for r in store.outbox()] == ["sent", "failed", "failed"]
