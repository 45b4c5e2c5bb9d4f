"""Parts of ``riskmap serve`` in-process: inbox settling, fault points, config, housekeeping, recovery,
status figures, the scheduler's jobs, expiry on time."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import warnings
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from service_data import make_region, write_forecast

from riskmap.config import GatewaySettings, PathSettings, Settings
from riskmap.errors import ConfigError, DataWarning
from riskmap.lifecycle import LifecyclePolicy, decide
from riskmap.service.config import (
    ReceiverConfig,
    ServiceConfig,
    load_service_config,
    validate,
    with_overrides,
)
from riskmap.service.housekeeping import archive_outbox
from riskmap.service.inbox import Inbox
from riskmap.service.recovery import release_orphan_leases, unfinished_runs
from riskmap.service.scheduler import JOB_DEFAULTS, build_scheduler, next_runs
from riskmap.service.status import format_text, gather
from riskmap.store import OutboxRow, RunMeta, Store, run_key

T0 = datetime(2026, 7, 15, tzinfo=UTC)


def test_inbox_reads_a_file_only_after_its_size_settles(tmp_path: Path) -> None:
    t = [0.0]
    box = Inbox(tmp_path / "inbox", settle_s=1.0, clock=lambda: t[0])
    f = box.folder / "f.nc"
    f.write_bytes(b"a" * 10)
    (box.folder / "g.nc.part").write_bytes(b"being copied")
    assert box.ready() == []
    t[0] = 0.6
    with f.open("ab") as fh:  # still being copied: it grew
        fh.write(b"b" * 10)
    assert box.ready() == []
    t[0] = 1.2  # unchanged for 0.6 s only
    assert box.ready() == []
    t[0] = 1.7
    assert box.ready() == [f]
    assert box.pending() == 1
    moved = box.done(f)
    (box.folder / "f.nc").write_bytes(b"again")  # the same name again does not overwrite done/f.nc
    assert box.done(box.folder / "f.nc").name == "f.1.nc" and moved.read_bytes() == b"a" * 10 + b"b" * 10


@pytest.mark.parametrize("value, survives", [("after-commit", False), ("after-commit:2", True),
                                             ("after-levels", True)])
def test_fault_point_kills_with_sigkill_only_where_named(value: str, survives: bool) -> None:
    code = "from riskmap.service.faults import fault_point; fault_point('after-commit'); print('alive')"
    r = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, RISKMAP_FAULT=value),
                       capture_output=True, text=True, timeout=60)
    if survives:
        assert r.returncode == 0 and r.stdout.strip() == "alive"
    else:
        assert r.returncode == -9 and "SIGKILL at after-commit" in r.stderr and r.stdout == ""


def test_config_file_problems_and_overrides(tmp_path: Path) -> None:
    cfg = tmp_path / "riskmap.toml"
    cfg.write_text('[office]\nissuer = "甲县防办"\n[service]\nregion = "r.gpkg"\nhousekeeping_at = "25:00"\n'
                   '[[service.sources]]\nname = "a"\nkind = "radar"\n[[service.sources]]\nname = "a"\n'
                   'forecast_options = { variable = "tp" }\n', encoding="utf-8")
    settings, sc, problems = load_service_config(cfg)
    assert settings.office.issuer == "甲县防办" and sc.region == tmp_path / "r.gpkg"
    assert sc.inbox == tmp_path / "inbox" and sc.out == tmp_path / "out"
    assert problems == [f"{cfg}: 'service.sources[0].kind' must be forecast or observed, got 'radar'",
                        f"{cfg}: 'service.sources': the name 'a' is used twice",
                        f"{cfg}: 'service.housekeeping_at' must be HH:MM, got '25:00'"]
    sc2 = with_overrides(sc, inbox=tmp_path / "in2", db="sqlite:///x.sqlite",
                         forecast_options={"interval": "1h"})
    assert sc2.inbox == tmp_path / "in2" and sc2.db == "sqlite:///x.sqlite"
    assert sc2.sources[1].forecast_options == {"variable": "tp", "interval": "1h"}
    assert sc2.source_for("x.nc").name == "a"
    with pytest.raises(ConfigError, match="not valid TOML"):
        cfg.write_text("[service\n")
        load_service_config(cfg)


def test_validate_names_missing_paths_and_credentials(tmp_path: Path) -> None:
    s = replace(Settings(), gateway=GatewaySettings(kind="smpp", url="smpp://127.0.0.1:2775"))
    sc = ServiceConfig(region=tmp_path / "nope.gpkg", inbox=tmp_path / "a" / "b" / "inbox",
                       out=tmp_path / "out")
    problems = validate(s, sc, env={})
    assert len(problems) == 4, problems
    assert "nope.gpkg does not exist" in problems[0] and "its parent folder does not exist" in problems[1]
    assert "RISKMAP_GATEWAY_PASSWORD" in problems[2] and "RISKMAP_RECEIVER_TOKEN" in problems[3]
    (tmp_path / "nope.gpkg").write_bytes(b"")
    ok = validate(s, replace(sc, inbox=tmp_path / "inbox"),
                  env={"RISKMAP_GATEWAY_PASSWORD": "x", "RISKMAP_RECEIVER_TOKEN": "t"})
    assert ok == []


def _store_with_messages(tmp_path: Path, n: int = 3) -> tuple[Store, str]:
    store = Store.open(tmp_path / "riskmap.sqlite")
    meta = RunMeta(now=T0, source="f.nc", rules_hash="r")
    run = store.begin_run(run_key(meta), meta, at=T0)
    rows = [OutboxRow(idempotency_key=f"k{i}", phone=f"1380000{i:04d}", text=f"第{i}条", level=4)
            for i in range(n)]
    store.commit_decision(run.id, decide({}, None, T0, LifecyclePolicy()), rows, at=T0)
    return store, run.id


def test_orphan_leases_are_released_and_re_sent_unless_a_receipt_exists(tmp_path: Path) -> None:
    store, _ = _store_with_messages(tmp_path)
    leased = store.lease(T0, limit=10, lease_s=3600)
    assert len(leased) == 3 and store.lease(T0 + timedelta(seconds=1)) == []
    store.add_receipt(leased[0].id, "delivered", "status=1", T0)  # this one went out before the crash
    assert release_orphan_leases(store, T0 + timedelta(seconds=2)) == 2
    again = store.lease(T0 + timedelta(seconds=2), limit=10)
    assert [r.id for r in again] == [leased[1].id, leased[2].id]
    assert store.outbox(status="delivered")[0].id == leased[0].id


def test_status_counts_acknowledgements(tmp_path: Path) -> None:
    from riskmap.operations.acks import ACK

    store, _ = _store_with_messages(tmp_path)
    recs = store.lease(T0, limit=10)
    for r in recs:
        store.mark(r.id, "sent", T0)
    store.add_receipt(recs[0].id, ACK, "reply by sms reply", T0)
    store.add_receipt(recs[1].id, "delivered", "status=1", T0)
    st = gather(store)
    third = round(1 / 3, 3)
    assert st["rates"] == {"receipt": third, "acknowledged": 1, "ack_of_orange_red": third}
    assert st["outbox"]["sent"] == 3 and st["outbox"]["delivered"] == 1 and st["outbox"]["backlog"] == 0


def test_status_counts_backlog_held_retrying_and_failed(tmp_path: Path) -> None:
    from riskmap.dispatcher import NEVER

    store, rid = _store_with_messages(tmp_path, n=5)
    recs = store.lease(T0, limit=10)
    store.mark(recs[0].id, "sent", T0)
    store.mark(recs[1].id, "failed", T0, error="HTTP 403", next_attempt_at=NEVER)
    store.mark(recs[2].id, "failed", T0, error="HTTP 503", next_attempt_at=T0 + timedelta(seconds=10))
    store.mark(recs[3].id, "held", T0)
    st = gather(store)
    assert st["outbox"] == {"queued": 0, "leased": 1, "retrying": 1, "held": 1, "failed": 1, "sent": 1,
                            "delivered": 0, "backlog": 2}
    assert st["last_runs"]["f.nc"]["run_id"] == rid and st["runs"] == {"done": 1}
    text = format_text(st)
    assert "backlog 2 (queued 0, leased 1, retrying 1), held 1, failed 1, sent 1" in text
    assert "service: not running" in text


def test_housekeeping_archives_old_finished_rows(tmp_path: Path) -> None:
    store, _ = _store_with_messages(tmp_path, n=5)
    recs = store.lease(T0, limit=10)
    store.mark(recs[0].id, "sent", T0)
    store.mark(recs[1].id, "sent", T0)
    store.add_receipt(recs[1].id, "delivered", "status=1", T0)  # leaves with its message
    store.mark(recs[2].id, "sent", T0 + timedelta(days=95))  # too recent
    store.mark(recs[3].id, "sent", T0)
    store.add_receipt(recs[3].id, "delivered", "status=1", T0)  # the newest receipt stays (ids never reused)
    n = archive_outbox(store, tmp_path / "out", 90, T0 + timedelta(days=100))
    assert n == 2
    path = tmp_path / "out" / "archive" / "outbox-20261023.jsonl.gz"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    rows = [json.loads(x) for x in gzip.decompress(path.read_bytes()).decode().splitlines()]
    assert [(r["id"], r["phone"], r["text"]) for r in rows] == [(x.id, x.phone, x.text) for x in recs[:2]]
    assert [r["receipts"][0]["raw"] for r in rows[1:]] == ["status=1"] and rows[0]["receipts"] == []
    assert [r.id for r in store.outbox()] == [recs[2].id, recs[3].id, recs[4].id]
    assert archive_outbox(store, tmp_path / "out", 90, T0 + timedelta(days=100)) == 0


def test_scheduler_jobs_never_drop_a_late_run() -> None:
    svc = SimpleNamespace(sc=ServiceConfig(poll_s=2, expiry_check_min=5), settings=Settings(),
                          scan_inbox=lambda: None, check_expiry=lambda: None, housekeeping=lambda: None,
                          check_escalation=lambda: None,
                          write_heartbeat=lambda: None, dispatcher=SimpleNamespace(wake=lambda: None))
    sched = build_scheduler(svc)
    ids = [j["id"] for j in next_runs(sched)]
    assert set(ids) == {"inbox-scan", "dispatch-sweep", "expiry-check", "escalation-check", "housekeeping",
                        "heartbeat", "requests"}
    assert ids[0] == "inbox-scan"  # runs at once on start
    assert sched.get_job("requests").trigger.interval == timedelta(seconds=1)  # riskmap issue / lift
    assert JOB_DEFAULTS["misfire_grace_time"] >= 3600 and JOB_DEFAULTS["coalesce"]
    assert JOB_DEFAULTS["max_instances"] == 1


def _service_after_one_cycle(tmp_path: Path) -> tuple[Any, Any, list[int]]:
    """A Service (store open, packaged rules, a recording dispatcher) on a store where f1.nc ran one cycle."""
    from riskmap.cycle import CycleRequest, run_cycle
    from riskmap.rules import packaged_rules_dir
    from riskmap.service.runner import Service

    region = make_region(tmp_path / "region.gpkg")
    fc = write_forecast(tmp_path / "f1.nc")
    settings = replace(Settings(), paths=PathSettings(cache_dir=str(tmp_path / "cache")))
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        rep = run_cycle(CycleRequest(region=region, forecast=(fc,), out_dir=out, settings=settings,
                                     write_map=False))  # the file gateway sends them at once
    svc = Service(settings, ServiceConfig(region=region, inbox=tmp_path / "inbox", out=out))
    svc.store, svc.rules_dir = Store.open(rep.db_url), packaged_rules_dir()
    woken: list[int] = []
    svc.dispatcher = SimpleNamespace(wake=lambda: woken.append(1))
    return svc, rep, woken


def test_expiry_check_ends_unrenewed_warnings_on_time_and_is_idempotent(tmp_path: Path) -> None:
    svc, _rep, woken = _service_after_one_cycle(tmp_path)
    out = svc.sc.out
    active = svc.store.warnings(active=True)
    last = max(w.valid_until for w in active)
    svc.check_expiry(T0 + timedelta(minutes=1))  # nothing due yet: no run
    assert [r.source for r in svc.store.runs()] == ["f1.nc"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        svc.check_expiry(last)
        svc.check_expiry(last)  # the same minute again: nothing new
    runs = svc.store.runs()
    assert [r.source for r in runs] == ["expiry", "f1.nc"] and runs[0].status == "done"
    assert svc.store.warnings(active=True) == [] and woken
    assert (out / "cap" / "feed.atom").exists()
    assert unfinished_runs(svc.store) == []
    svc.store.close()


class _Server:
    """A tiny HTTP server on 127.0.0.1 answering with ``self.body`` and an ETag (304 when it matches)."""

    def __init__(self) -> None:
        import http.server
        import threading

        outer = self
        self.body, self.status, self.seen = b"", 200, []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                outer.seen.append(dict(self.headers))
                etag = f'"{hash(outer.body) & 0xFFFF:x}"'
                if outer.status != 200:
                    self.send_error(outer.status)
                    return
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/nwp/latest.nc"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_fetch_drops_new_content_once_into_the_inbox(tmp_path: Path, monkeypatch) -> None:
    from riskmap.errors import ServiceUnavailable
    from riskmap.service.fetch import fetch_source

    srv = _Server()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    monkeypatch.setenv("RISKMAP_QX_TOKEN", "s3cret")
    try:
        srv.body = b"forecast one"
        got = fetch_source("qx", srv.url, inbox, "RISKMAP_QX_TOKEN", now=T0)
        assert got == inbox / "qx_20260715T000000Z.nc" and got.read_bytes() == b"forecast one"
        assert srv.seen[0]["Authorization"] == "Bearer s3cret"
        assert fetch_source("qx", srv.url, inbox, now=T0 + timedelta(minutes=10)) is None  # 304
        assert srv.seen[-1]["If-None-Match"]
        srv.body = b"forecast two"
        got2 = fetch_source("qx", srv.url, inbox, now=T0 + timedelta(hours=1))
        assert got2.name == "qx_20260715T010000Z.nc" and got2.read_bytes() == b"forecast two"
        assert not list(inbox.glob("*.part"))
        srv.status = 503
        with pytest.raises(ServiceUnavailable, match=r"source qx: http://127\.0\.0\.1:\d+/nwp/latest\.nc "
                                                      r"answered HTTP 503"):
            fetch_source("qx", srv.url, inbox)
    finally:
        srv.close()
    with pytest.raises(ServiceUnavailable, match="cannot fetch"):
        fetch_source("qx", srv.url, inbox, timeout=2)


def test_url_source_gets_a_fetch_job_and_a_default_pattern(tmp_path: Path) -> None:
    from riskmap.service.config import service_from_dict

    sc, problems = service_from_dict({"region": "r", "sources": [
        {"name": "qx", "url": "https://qx.example.cn/latest.nc", "fetch_min": 15},
        {"name": "bad", "url": "ftp://x/y"}]})
    assert problems == ["'service.sources[1].url' must be an http(s) URL, got 'ftp://x/y'"]
    assert sc.sources[0].pattern == "qx_*" and sc.source_for("qx_20260715T000000Z.nc").name == "qx"
    svc = SimpleNamespace(sc=sc, settings=Settings(), scan_inbox=lambda: None, check_expiry=lambda: None,
                          housekeeping=lambda: None, write_heartbeat=lambda: None, fetch=lambda src: None,
                          check_escalation=lambda: None,
                          dispatcher=SimpleNamespace(wake=lambda: None))
    job = build_scheduler(svc).get_job("fetch-qx")
    assert job is not None and job.trigger.interval == timedelta(minutes=15) and job.args[0].name == "qx"


def test_escalation_check_sends_unacknowledged_red_to_the_township_once(tmp_path: Path) -> None:
    svc, rep, woken = _service_after_one_cycle(tmp_path)
    heads = [r for r in svc.store.outbox() if "village_head" in r.role.split(",") and r.level >= 3]
    assert heads, "the red warning went to a village head"
    sent_at = svc.store.run(rep.run_id).finished_at  # when the messages were queued
    svc.check_escalation(sent_at + timedelta(minutes=29))  # not yet due (nothing loaded)
    assert not [r for r in svc.store.outbox() if r.role == "escalation"] and not woken
    assert svc._renderer is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        svc.check_escalation(sent_at + timedelta(minutes=31))
        svc.check_escalation(sent_at + timedelta(minutes=32))  # again: nothing new
    esc = [r for r in svc.store.outbox() if r.role == "escalation"]
    assert len(esc) == len(heads) and woken == [1]
    assert {r.status for r in esc} == {"queued"} and all(r.phone == "13800000001" for r in esc)  # 李镇
    assert all("未确认" in r.text and "请立即电话叫应" in r.text for r in esc)
    svc.store.close()


def test_stop_waits_for_the_running_cycle_then_releases_the_store(tmp_path: Path, monkeypatch) -> None:
    import threading
    import time

    from riskmap.service.lock import holder
    from riskmap.service.runner import Service

    region = make_region(tmp_path / "region.gpkg")
    sc = ServiceConfig(region=region, inbox=tmp_path / "inbox", out=tmp_path / "out", poll_s=0.1,
                       settle_s=0.1, expiry_check_min=0, escalation_check_min=0,
                       receiver=ReceiverConfig(enabled=False))
    svc = Service(Settings(), sc)
    started, finished = threading.Event(), []

    def slow_cycle(path, source, now=None, observed=None):
        started.set()
        time.sleep(1.0)
        finished.append(path.name)

    monkeypatch.setattr(svc, "cycle", slow_cycle)
    svc.start()
    try:
        assert holder(svc.store) is not None
        (sc.inbox / "f1.nc").write_bytes(b"x")
        assert started.wait(20), "the cycle started"
    finally:
        t0 = time.monotonic()
        svc.stop()
    assert finished == ["f1.nc"] and time.monotonic() - t0 > 0.5, "stop waited for the cycle"
    assert (sc.inbox / "done" / "f1.nc").exists()
    from riskmap.store import Store

    store = Store.open(svc.db_url)
    assert holder(store) is None
    hb = json.loads(Path(str(store.engine.url.database) + ".serve.json").read_text())
    assert hb["state"] == "stopped"
    store.close()


def test_cycles_keep_the_region_loaded_until_its_file_changes(tmp_path: Path) -> None:
    """serve loads the region once for all forecasts (and its renderer with it); an edit reloads both."""
    from riskmap.rules import packaged_rules_dir
    from riskmap.service.config import Source
    from riskmap.service.runner import Service

    region = make_region(tmp_path / "region.gpkg")
    settings = replace(Settings(), paths=PathSettings(cache_dir=str(tmp_path / "cache")))
    svc = Service(settings, ServiceConfig(region=region, inbox=tmp_path / "inbox", out=tmp_path / "out",
                                          write_map=False))
    svc.rules_dir = packaged_rules_dir()
    svc.dispatcher = SimpleNamespace(wake=lambda: None)
    src = Source("nwp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        first = svc.cycle(write_forecast(tmp_path / "f1.nc"), src)
        loaded = svc.regions.get(region)
        renderer = svc.renderer()
        second = svc.cycle(write_forecast(tmp_path / "f2.nc", ref="2026-07-15T01:00", peak_mm=90.0), src)
        assert svc.regions.get(region) is loaded and svc.renderer() is renderer
        assert not first.already_done and not second.already_done
        st = region.stat()
        os.utime(region, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))   # the office edits the file
        svc.cycle(write_forecast(tmp_path / "f3.nc", ref="2026-07-15T02:00"), src)
        assert svc.regions.get(region) is not loaded and svc.renderer() is not renderer
    import sqlalchemy as sa

    from riskmap.store import tables

    store = Store.open(first.db_url)
    try:
        with store.engine.connect() as conn:
            hashes = dict(conn.execute(sa.select(tables.runs.c.source, tables.runs.c.region_hash)).all())
    finally:
        store.close()
    assert hashes["f1.nc"] == hashes["f2.nc"] == loaded.content_hash
