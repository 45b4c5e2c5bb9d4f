"""Operator acts handed to a running ``riskmap serve`` (riskmap/store/requests.py, riskmap/cli/handover.py,
riskmap/service/requests.py), on SQLite and PostgreSQL.

- the ``requests`` table: idempotency (a pending act is joined, ``--request-key``), and its migration on an
  older store;
- in-process: ``riskmap issue`` queues while a service holds the store, the service's job applies it exactly
  as the CLI would have (same run id, messages and CAP as the direct path), failures and expiry come back
  to the CLI with their exit code; a whole :class:`~riskmap.service.runner.Service` with its scheduler;
- real processes: ``riskmap serve`` running and ``riskmap issue`` / ``lift`` / ``unsilence`` / ``status``
  from the CLI in other processes; SIGKILL at the request fault points, restart, count.

The region is tests/cli_fixtures.py's: four villages; ``detention_areas:D02`` covers villages 0 and 1.
"""

from __future__ import annotations

import json
import subprocess
import threading
import warnings
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cli_fixtures import NOW, rm, write_region
from cli_fixtures import cli_commands_fixture as cli_commands_fixture  # autouse: these commands
from cli_fixtures import db_fixture as db_fixture  # db: SQLite and PostgreSQL
from pg import fresh_pg_schema
from region_data import CODES
from service_data import RISKMAP, env, query, start_serve, stop, wait_for, write_config, write_forecast
from sqlalchemy import create_engine, select, text

from riskmap.config import PathSettings, Settings
from riskmap.errors import DataWarning, InputError
from riskmap.operations import ActParams
from riskmap.rules import find_rules_dir
from riskmap.service.config import ReceiverConfig, ServiceConfig
from riskmap.service.heartbeat import heartbeat_path
from riskmap.service.requests import MAX_ATTEMPTS, take_requests
from riskmap.store import Store, hold_store
from riskmap.store import requests as rq
from riskmap.store import tables as t
from riskmap.store.migrations import CURRENT, MIGRATIONS, schema_version

pytestmark = pytest.mark.filterwarnings("ignore:.*landline cannot receive SMS")
V0, V1, V2, V3 = CODES
T0 = datetime(2026, 7, 15, 3, tzinfo=UTC)
ISSUE = ("issue", "--feature", "detention_areas:D02", "--hazard", "torrent", "--level", "red",
         "--reason", "开闸分洪", "--by", "李主任")
REQUESTS_V = next(v for v, f in MIGRATIONS.items() if "``requests``" in (f.__doc__ or ""))


# -- the table ------------------------------------------------------------------------------------
def test_a_pending_act_is_joined_and_a_request_key_is_one_act(db) -> None:
    store = Store.open(db)
    try:
        p = ActParams("issue", (V0,), (), "torrent", "开闸分洪", "李主任", level=4)
        first, new = rq.submit(store, "issue", p.operator, p.reason, p.to_json(), p.key, T0, villages=(V0,))
        again, new2 = rq.submit(store, "issue", p.operator, p.reason, p.to_json(), p.key,
                                T0 + timedelta(hours=1))
        assert new and not new2 and again.id == first.id and again.status == "queued"
        other = ActParams("issue", (V0,), (), "torrent", "开闸分洪", "李主任", level=3)  # another act
        assert rq.submit(store, "issue", "李主任", "开闸分洪", other.to_json(), other.key, T0)[1]
        # applied and done: the same act within the retry window is the same request, later a new one
        assert rq.claim(store, first.id, T0).status == "working"
        with store.engine.begin() as conn:
            rq.mark_applied(conn, first.id, "no-such-run", (V0,), T0)
        assert rq.mark_done(store, first.id) and not rq.mark_failed(store, first.id, "x", 1, T0)
        joined, new3 = rq.submit(store, "issue", "李主任", "开闸分洪", p.to_json(), p.key,
                                 T0 + timedelta(minutes=5))
        assert joined.id == first.id and not new3 and joined.status == "done"
        later, new4 = rq.submit(store, "issue", "李主任", "开闸分洪", p.to_json(), p.key,
                                T0 + rq.RETRY_WINDOW + timedelta(minutes=1))
        assert new4 and later.id != first.id and later.idempotency_key.endswith(":2")
        # an explicit key: one act, ever; a key names one act
        k1, n1 = rq.submit(store, "issue", "李主任", "开闸分洪", p.to_json(), p.key, T0, key="ops-7")
        k2, n2 = rq.submit(store, "issue", "李主任", "开闸分洪", p.to_json(), p.key, T0 + timedelta(days=1),
                           key="ops-7")
        assert n1 and not n2 and k1.id == k2.id
        with pytest.raises(InputError, match="--request-key ops-7: already used for another act"):
            rq.submit(store, "issue", "李主任", "开闸分洪", other.to_json(), other.key, T0, key="ops-7")
        assert [r.villages for r in rq.for_village(store, V0)][:1] == [(V0,)]
        assert rq.has_pending(store) and len(rq.pending(store)) == 3
    finally:
        store.close()


def test_an_older_store_gains_the_requests_table(db) -> None:
    """A store written before the requests table (schema v{REQUESTS_V - 1}) gains it when opened."""
    Store.open(db).close()
    engine = create_engine(db)
    with engine.begin() as conn:  # back to the shape before the requests table
        conn.execute(text("DROP TABLE requests"))
        conn.execute(text(f"DELETE FROM schema_version WHERE version >= {REQUESTS_V}"))
    assert schema_version(engine) == REQUESTS_V - 1 and CURRENT >= REQUESTS_V
    engine.dispose()
    store = Store.open(db)  # migrates
    try:
        assert schema_version(store.engine) == CURRENT
        p = ActParams("lift", (V1,), (), "", "退水", "王工")
        req, new = rq.submit(store, "lift", "王工", "退水", p.to_json(), p.key, T0)
        assert new and rq.get(store, req.id).params["kind"] == "lift"
    finally:
        store.close()


# -- in-process: the CLI queues, the service's job applies ---------------------------------------
def _service(tmp_path: Path, db: str, **sc: object):
    from riskmap.service.runner import Service

    tmp_path.mkdir(parents=True, exist_ok=True)
    region = write_region(tmp_path)
    settings = replace(Settings(), paths=PathSettings(cache_dir=str(tmp_path / "cache")))
    config = ServiceConfig(region=region, inbox=tmp_path / "inbox", out=tmp_path / "out", poll_s=0.1,
                           settle_s=0.1, expiry_check_min=0, escalation_check_min=0, write_map=False,
                           receiver=ReceiverConfig(enabled=False), db=db, **sc)  # type: ignore[arg-type]
    return Service(settings, config)


class _Woken:
    def __init__(self) -> None:
        self.n = 0

    def wake(self) -> None:
        self.n += 1


def _attach(svc) -> None:
    """The parts of a started service the requests job needs (store, rules, dispatcher), without start."""
    svc.store = Store.open(svc.db_url)
    svc.rules_dir = find_rules_dir(None, None, Path.cwd())
    svc.dispatcher = _Woken()


def test_issue_is_queued_then_applied_by_the_service_exactly_as_the_cli_would(capsys, db, tmp_path) -> None:
    svc = _service(tmp_path / "svc", db)
    _attach(svc)
    hold = hold_store(svc.store, "riskmap serve on test pid 1")
    try:
        code, out = rm(capsys, *ISSUE, "--now", NOW, "--no-wait", "--db", db)
        assert code == 0, out
        assert "riskmap serve on test pid 1 holds the store" in out and "queued" in out
        (req,) = rq.pending(svc.store)
        assert (req.status, req.operator, req.reason, req.kind) == ("queued", "李主任", "开闸分洪", "issue")
        assert req.params["features"] == ["detention_areas:D02"] and svc.store.history(V0) == []
        code, out = rm(capsys, "status", "--db", db)
        assert code == 0 and "1 pending" in out and req.id[:12] in out and "李主任" in out, out
        code, out = rm(capsys, "history", V0, "--db", db)
        assert "no events" in out  # named by a feature: its villages are known once it is applied
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            assert take_requests(svc) == 1
        assert svc.dispatcher.n >= 1 and rq.pending(svc.store) == []
        done = rq.get(svc.store, req.id)
        assert done.status == "done" and done.villages == (V0, V1) and done.attempts == 1
        # the same command again: the same request, its summary printed as the CLI prints its own acts
        code, again = rm(capsys, *ISSUE, "--now", NOW, "--db", db)
        assert code == 0, again
        assert f"as request {req.id[:12]} (done): not requested again" in again
        assert again.count("issue    ") == 2 and "2 change(s) in run" in again and "by 李主任" in again
        assert "SMS queued 3, held for approval 0; CAP 2 (files written by riskmap serve)" in again
        assert len(svc.store.runs()) == 1
        served = _decisions(svc.store)
        caps = {m.identifier for m in svc.store.cap_messages()}
        assert caps and {p.stem for p in (tmp_path / "svc" / "out" / "cap").glob("*.xml")} == caps
    finally:
        hold.release()
        svc.store.close()
    # the same act applied by the CLI itself, on a store nobody holds: the same run, messages and CAP
    direct = f"sqlite:///{tmp_path / 'direct.sqlite'}"
    code, out = rm(capsys, *ISSUE, "--now", NOW, "--region", str(svc.sc.region), "--db", direct)
    assert code == 0 and "2 change(s) in run" in out, out
    store = Store.open(direct)
    try:
        assert _decisions(store) == served
    finally:
        store.close()


def _decisions(store: Store) -> dict:
    """What an act decided: its run, events, messages and CAP (everything but the times of writing)."""
    with store.engine.connect() as conn:
        e = t.events.c
        events = conn.execute(select(e.key, e.run_id, e.kind, e.village_code, e.new_level, e.operator,
                                     e.reason).order_by(e.key)).all()
        outbox = conn.execute(select(t.outbox.c.idempotency_key, t.outbox.c.phone, t.outbox.c.text,
                                     t.outbox.c.status).order_by(t.outbox.c.idempotency_key)).all()
    caps = sorted((m.identifier, m.xml) for m in store.cap_messages())
    return {"runs": [(r.id, r.status) for r in store.runs()], "events": events, "outbox": outbox, "cap": caps}


def test_a_failed_or_expired_request_reaches_the_cli_with_its_exit_code(capsys, db, tmp_path) -> None:
    svc = _service(tmp_path / "svc", db)
    _attach(svc)
    hold = hold_store(svc.store, "riskmap serve on test pid 1")
    try:
        bad = ("issue", "--feature", "detention_areas:NOPE", "--hazard", "torrent", "--level", "red",
               "--reason", "x", "--by", "李主任", "--db", db)
        worker = threading.Thread(target=_apply_soon, args=(svc,))
        worker.start()
        code, out = rm(capsys, *bad, "--wait", "20")  # the worker applies it while the CLI waits
        worker.join()
        assert code == 2, out
        errors = [line for line in out.splitlines() if line.startswith("riskmap: error")]
        assert len(errors) == 1, out
        assert "failed in riskmap serve: --feature target 'detention_areas:NOPE': no feature" in errors[0]
        # not taken up in time: exit 3, still queued; the same command again waits for the same request
        code, out = rm(capsys, "lift", "--village", V2, "--hazard", "all", "--reason", "退水", "--by", "王工",
                       "--wait", "0.3", "--db", db)
        assert code == 3 and "was not applied within 0.3 s" in out and "riskmap status" in out, out
        (req,) = rq.pending(svc.store)
        code, out = rm(capsys, "history", V2, "--db", db)
        assert code == 0 and "lift request queued" in out and "王工" in out, out
        code, out = rm(capsys, "lift", "--village", V2, "--hazard", "all", "--reason", "退水", "--by", "王工",
                       "--no-wait", "--db", db)
        assert code == 0 and f"as request {req.id[:12]} (queued)" in out and len(rq.pending(svc.store)) == 1
        with svc.store.engine.begin() as conn:  # the service was away longer than a request may wait
            conn.execute(t.requests.update().values(created_at=datetime.now(UTC) - rq.MAX_AGE - timedelta(1)))
        take_requests(svc)
        expired = rq.get(svc.store, req.id)
        assert expired.status == "expired" and "did not take it up within 30 min" in expired.error
        assert expired.exit_code == 3 and expired.run_id == "" and svc.store.history(V2) == []
        code, out = rm(capsys, "history", V2, "--db", db)
        assert "lift request expired" in out
        # a request the service was killed while applying, MAX_ATTEMPTS times, fails instead of looping
        p = ActParams("lift", (V3,), (), "", "退水", "王工")
        stuck, _ = rq.submit(svc.store, "lift", "王工", "退水", p.to_json(), p.key, datetime.now(UTC))
        with svc.store.engine.begin() as conn:
            conn.execute(t.requests.update().where(t.requests.c.id == stuck.id)
                         .values(status="working", attempts=MAX_ATTEMPTS))
        take_requests(svc)
        assert rq.get(svc.store, stuck.id).status == "failed" and "gave up after 3 attempts" in rq.get(
            svc.store, stuck.id).error
    finally:
        hold.release()
        svc.store.close()


def _apply_soon(svc) -> None:
    """Stand in for the service's job: apply the request the CLI is about to queue."""
    import time

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not take_requests(svc):
        time.sleep(0.05)


def test_a_started_service_applies_an_act_while_the_cli_waits(capsys, db, tmp_path) -> None:
    """The whole Service in-process (scheduler, dispatcher, file gateway) and the CLI in this thread."""
    svc = _service(tmp_path / "svc", db)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        svc.start()
        try:
            assert "requests" in {j["id"] for j in svc.jobs}
            code, out = rm(capsys, *ISSUE, "--db", db)
            assert code == 0, out
            assert "handed to it" in out and "issue    " in out and "2 change(s) in run" in out
            (req,) = rq.recent(svc.store, T0 - timedelta(days=3650))
            assert req.status == "done" and req.act_at is not None and req.params["now"] is None
            # silence / unsilence write directly while the service runs
            code, out = rm(capsys, "silence", "--village", V2, "--until", "2099-01-01T00:00+08:00",
                           "--reason", "已转移", "--by", "王工", "--db", db)
            assert code == 0, out
            sid = out.rsplit("(silence ", 1)[1].split(")")[0]
            code, out = rm(capsys, "unsilence", sid, "--by", "李主任", "--reason", "险情加重", "--db", db)
            assert code == 0 and "cleared by 李主任" in out, out
            code, out = rm(capsys, "lift", "--feature", "detention_areas:D02", "--hazard", "torrent",
                           "--reason", "退水", "--by", "王工", "--db", db)
            assert code == 0 and out.count("lift     ") == 2, out
            sms = tmp_path / "svc" / "out" / "sms.jsonl"
            wait_for(lambda: sms.exists() and not svc.store.outbox(status="queued"), 20, "SMS sent")
        finally:
            svc.stop()
    store = Store.open(db)
    try:
        assert [w.state for w in store.warnings(village=V0)] == ["lifted"]
        assert [(e.kind, e.operator) for e in store.history(V0)] == [("issue", "李主任"), ("lift", "王工")]
    finally:
        store.close()


# -- real processes --------------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def served(request, tmp_path: Path):
    """A folder with a serve configuration and the store URL it uses (SQLite, or a PostgreSQL schema)."""
    region = write_region(tmp_path)
    write_config(tmp_path, region, tmp_path / "cache", expiry_check_min=0, escalation_check_min=0)
    if request.param == "sqlite":
        return tmp_path, f"sqlite:///{tmp_path / 'out' / 'riskmap.sqlite'}"
    return tmp_path, fresh_pg_schema("requests_test", "serve request tests")


def _cli(d: Path, *args: str, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*RISKMAP, *args], cwd=d, env=env(**(extra_env or {})), capture_output=True,
                          text=True, timeout=120)


def _running(d: Path, p: subprocess.Popen, db: str) -> None:
    hb = heartbeat_path(db, d / "out")
    wait_for(lambda: hb.exists() and json.loads(hb.read_text())["state"] == "running", 60, "serve running", p,
             d / "serve.log")


def _rows(db: str, sql: str) -> list[tuple]:
    engine = create_engine(db)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


def test_serve_applies_issue_and_lift_from_cli_processes(served) -> None:
    d, db = served
    p = start_serve(d, env(), "serve.log", "--db", db)
    try:
        _running(d, p, db)
        r = _cli(d, *ISSUE, "--db", db)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "holds the store: the issue is handed to it" in r.stdout and f"pid {p.pid}" in r.stdout
        assert r.stdout.count("issue    ") == 2 and "2 change(s) in run" in r.stdout
        assert "SMS queued 3, held for approval 0; CAP 2" in r.stdout
        status, run_id = _rows(db, "SELECT status, run_id FROM requests")[0]
        assert status == "done"
        identifiers = {i for (i,) in _rows(db, "SELECT identifier FROM cap_messages WHERE run_id = "
                                           f"'{run_id}'")}
        assert identifiers and identifiers <= {f.stem for f in (d / "out" / "cap").glob("*.xml")}
        r = _cli(d, "lift", "--village", V0, "--hazard", "all", "--reason", "退水", "--by", "王工",
                 "--no-wait", "--db", db)
        assert r.returncode == 0 and "queued" in r.stdout, r.stdout + r.stderr
        wait_for(lambda: not _rows(db, "SELECT id FROM requests WHERE status <> 'done'"), 30, "lift applied",
                 p, d / "serve.log")
        st = _cli(d, "status", "--config", "riskmap.toml", "--db", db, "--json")
        assert st.returncode == 0 and json.loads(st.stdout)["requests"]["pending"] == [], st.stderr
        fc = write_forecast(d / "f.nc")  # a cycle by hand on the service's store: still refused
        r = _cli(d, "run", "--region", "region.gpkg", "--forecast", str(fc), "--out", "o", "--db", db)
        assert r.returncode == 4 and "put the forecast into its inbox, or stop it first" in r.stderr, r.stderr
        assert _rows(db, "SELECT kind, village_code, operator FROM events ORDER BY id") == [
            ("issue", V0, "李主任"), ("issue", V1, "李主任"), ("lift", V0, "王工")]
        wait_for(lambda: (d / "out" / "sms.jsonl").exists() and not _rows(
            db, "SELECT id FROM outbox WHERE status NOT IN ('sent', 'delivered')"), 30, "SMS sent", p,
            d / "serve.log")
    finally:
        assert stop(p) == 0, (d / "serve.log").read_text()[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["request-before-commit", "request-after-commit"])
def test_kill_while_applying_a_request_loses_and_repeats_nothing(fault, tmp_path) -> None:
    d = tmp_path
    write_config(d, write_region(d), d / "cache", expiry_check_min=0, escalation_check_min=0)
    db, log = d / "out" / "riskmap.sqlite", d / "serve.log"
    url = f"sqlite:///{db}"
    p = start_serve(d, env(RISKMAP_FAULT=fault))
    _running(d, p, url)
    r = _cli(d, *ISSUE, "--no-wait", "--db", url)
    assert r.returncode == 0, r.stdout + r.stderr
    assert p.wait(timeout=60) == -9 and f"SIGKILL at {fault}" in log.read_text()
    (req_id, status, attempts), = query(db, "SELECT id, status, attempts FROM requests")
    events = query(db, "SELECT count(*) FROM events")[0][0]
    manual = query(db, "SELECT id, status, attempts FROM runs WHERE source = 'manual'")
    if fault == "request-before-commit":  # the act's transaction never committed
        assert (status, attempts, events) == ("working", 1, 0) and [m[1] for m in manual] == ["started"]
    else:  # committed with its request's mark; the CAP files not written yet
        assert (status, events) == ("applied", 2) and [m[1:] for m in manual] == [("done", 1)]
        assert not list((d / "out" / "cap").glob("*.xml"))
    p = start_serve(d, env())
    try:
        wait_for(lambda: query(db, "SELECT status FROM requests") == [("done",)], 60, "request done", p, log)
        rows = query(db, "SELECT id FROM outbox")
        wait_for(lambda: not query(db, "SELECT id FROM outbox WHERE status NOT IN ('sent', 'delivered')"), 30,
                 "SMS sent", p, log)
        again = _cli(d, *ISSUE, "--db", url)  # the operator runs the command again: the same request
        assert again.returncode == 0 and "not requested again" in again.stdout, again.stdout + again.stderr
    finally:
        assert stop(p) == 0, log.read_text()[-3000:]
    assert query(db, "SELECT id FROM requests") == [(req_id,)]
    assert query(db, "SELECT kind, village_code FROM events ORDER BY id") == [("issue", V0), ("issue", V1)]
    runs = query(db, "SELECT id, status, attempts FROM runs WHERE source = 'manual'")
    assert len(runs) == 1 and runs[0][1] == "done"
    if fault == "request-before-commit":
        assert runs[0][0] == manual[0][0] and runs[0][2] == 2, "the same run, taken up again"
    caps = {i for (i,) in query(db, "SELECT identifier FROM cap_messages")}
    assert caps and caps == {f.stem for f in (d / "out" / "cap").glob("*.xml")}
    sms = (d / "out" / "sms.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(sms) == len(rows) > 0, "every SMS of the act sent once"
