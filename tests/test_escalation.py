"""Escalation of unacknowledged orange/red messages to the township duty officer (riskmap.escalation),
with a real SQLite store, the acknowledgement records of riskmap.operations.acks, and the dispatcher."""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from test_routing import SIGN, V1, V2, make_region

from riskmap.dispatcher import Dispatcher, DispatchPolicy
from riskmap.errors import DataWarning
from riskmap.escalation import DEFAULT_TEXT, escalation_rows
from riskmap.gateways.file import FileGateway
from riskmap.lifecycle import LifecyclePolicy, decide
from riskmap.messages import outbox_rows
from riskmap.operations.acks import acknowledge, unacknowledged
from riskmap.routing import Alert, prepare_contacts, route
from riskmap.routing_rules import load_routing
from riskmap.store import RunMeta, Store, run_key
from riskmap.templates import load_templates

T0 = datetime(2026, 7, 22, 12, tzinfo=UTC)


@pytest.fixture
def setup(tmp_path):
    region, routing, ts = make_region(), load_routing(), load_templates()
    store = Store.open(f"sqlite:///{tmp_path / 'e.sqlite'}")
    levels = pd.DataFrame({
        "village_code": [V1, V2], "hazard": ["torrent", "rainstorm"], "level": [4, 2],
        "rule": ["torrent.red", "rainstorm.yellow"], "window_h": [3.0, 6.0], "value_mm": [130.0, 60.0],
        "threshold_mm": [120.0, 50.0], "window_end": [pd.Timestamp(T0 + timedelta(hours=3))] * 2,
        "reason": ["3 h 130 mm", "6 h 60 mm"]})
    decision = decide({}, levels, T0, LifecyclePolicy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        contacts = prepare_contacts(region)
        recips = route([Alert.from_change(c) for c in decision.changes], region, routing, contacts=contacts)
    meta = RunMeta(now=T0, source="test", rules_hash="r")
    run = store.begin_run(run_key(meta), meta)
    rows = outbox_rows(recips, ts, routing, run_id=run.id, **SIGN)
    store.commit_decision(run.id, decision, rows, at=T0)
    out = tmp_path / "sms.jsonl"
    d = Dispatcher(store, FileGateway(out), DispatchPolicy(rate_per_s=0), clock=lambda: T0)
    d.drain()
    d.stop()
    names = dict(zip(region.villages["code"], region.villages["name"], strict=True))
    yield store, contacts, names, routing, ts, out
    store.close()


def test_unacknowledged_red_goes_to_township_duty_once(setup):
    store, contacts, names, routing, ts, out = setup
    due = unacknowledged(store, T0 + timedelta(minutes=31), timedelta(minutes=30))
    assert {r.village_code for r in due} == {V1}  # the yellow V2 warning is not escalated
    rows = escalation_rows(due, contacts.itertuples(), names, routing, ts, signature="青山县防指")
    assert [(r.phone, r.role, r.level) for r in rows] == [("13900000002", "escalation", 4)]
    text = rows[0].text
    assert text.startswith("【青山县防指】上河村村责任人上河村主任未确认山洪灾害风险红色预警")
    assert "请立即电话叫应" in text and "13800000001" not in text
    run_id = due[0].run_id
    assert store.queue(run_id, rows, T0) == 1
    again = escalation_rows(due, contacts.itertuples(), names, routing, ts, signature="青山县防指")
    assert store.queue(run_id, again, T0) == 0  # escalating twice queues nothing new
    d = Dispatcher(store, FileGateway(out), DispatchPolicy(rate_per_s=0), clock=lambda: T0)
    assert d.drain().sent == 1
    d.stop()
    last = json.loads(out.read_text(encoding="utf-8").splitlines()[-1])
    assert last["to"] == "13900000002" and last["text"] == text


def test_acknowledged_message_is_not_escalated(setup):
    store, contacts, names, routing, ts, _ = setup
    acknowledge(store, "13800000001", "值班员王五", T0 + timedelta(minutes=5))
    due = unacknowledged(store, T0 + timedelta(minutes=31), timedelta(minutes=30))
    assert escalation_rows(due, contacts.itertuples(), names, routing, ts, signature="青山县防指") == []


def test_county_duty_when_the_township_has_none(setup):
    store, contacts, names, routing, ts, _ = setup
    no_town = contacts[contacts["role"] != "township_duty"]
    due = unacknowledged(store, T0 + timedelta(minutes=31), timedelta(minutes=30))
    rows = escalation_rows(due, no_town.itertuples(), names, routing, ts, signature="青山县防指")
    assert [r.phone for r in rows] == []  # routing says township_duty: nobody else is invented
    import dataclasses

    to_county = dataclasses.replace(routing, escalation=dataclasses.replace(routing.escalation,
                                                                             to_role="county_duty"))
    rows = escalation_rows(due, contacts.itertuples(), names, to_county, ts, signature="青山县防指")
    assert [r.phone for r in rows] == ["13900000001"]


def test_default_text_without_template(setup):
    store, contacts, names, routing, _, _ = setup
    en = load_templates(language="en-US")  # has no escalation template
    due = unacknowledged(store, T0 + timedelta(minutes=31), timedelta(minutes=30))
    rows = escalation_rows(due, contacts.itertuples(), names, routing, en, signature="QS")
    assert rows and rows[0].text.startswith(DEFAULT_TEXT.split("{")[0] + "QS")
