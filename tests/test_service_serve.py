"""``riskmap serve`` as a real process with the file gateway: bad files quarantined while good ones are
processed, one service per store, receipts and replies through its receiver, ``riskmap status`` while it
runs, JSON-lines logs with masked numbers, graceful SIGTERM, config problems one line each.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from pg import fresh_pg_schema
from service_data import (
    RISKMAP,
    TOKEN,
    drop,
    env,
    make_region,
    query,
    start_serve,
    stop,
    wait_for,
    write_config,
    write_forecast,
)

from riskmap.operations.acks import ACK


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory):
    """One serve process (JSON logs) fed a bad file, a file no source matches, then two good forecasts."""
    d = tmp_path_factory.mktemp("serve")
    region = make_region(d / "region.gpkg")
    f1 = write_forecast(d / "f1.nc")
    f2 = write_forecast(d / "f2.nc", ref="2026-07-15T01:00", peak_mm=60.0)
    cfg = write_config(d, region, d / "cache")
    sources = ('\n[[service.sources]]\nname = "qx"\npattern = "*.nc"\n'
               '\n[[service.sources]]\nname = "sw"\npattern = "sw_*.csv"\nkind = "observed"\n')
    cfg.write_text(cfg.read_text() + sources, encoding="utf-8")
    inbox = d / "inbox"
    p = start_serve(d, env(), "serve.log", "--log-json")
    info = {"dir": d, "proc": p, "db": d / "out" / "riskmap.sqlite", "log": d / "serve.log", "inbox": inbox}
    try:
        (inbox / "bad.nc").write_bytes(b"this is not a forecast")
        (inbox / "notes.txt").write_text("hello", encoding="utf-8")
        wait_for(lambda: (inbox / "quarantine" / "bad.nc").exists(), 30, "bad.nc quarantined", p, info["log"])
        drop(f1, inbox)
        drop(f2, inbox)
        wait_for(lambda: (inbox / "done" / "f2.nc").exists(), 60, "f2.nc done", p, info["log"])
        gauges = d / "sw_0900.csv"  # 12 mm in the hour before f2's reference time (01:00 UTC = 09:00 Beijing)
        gauges.write_text("station,lon,lat,time,mm\n" + "".join(
            f"{st},{lon},30.005,2026-07-15T{hh}:00+08:00,{mm}\n" for st, lon in (("A", 120.01), ("B", 120.03))
            for hh, mm in (("08", 2), ("09", 12))), encoding="utf-8")
        drop(gauges, inbox)
        wait_for(lambda: (inbox / "done" / "sw_0900.csv").exists(), 60, "observed done", p, info["log"])
        wait_for(lambda: (d / "out" / "sms.jsonl").exists(), 20, "SMS in the file gateway", p, info["log"])
        yield info
    finally:
        if p.poll() is None:
            stop(p)


def test_bad_file_quarantined_with_reason_and_later_files_processed(running) -> None:
    q = running["inbox"] / "quarantine"
    reason = (q / "bad.nc.reason.txt").read_text(encoding="utf-8")
    assert reason.startswith("ForecastError: ") and "bad.nc" in reason
    assert "no [[service.sources]] pattern matches 'notes.txt'" in (q / "notes.txt.reason.txt").read_text()
    assert sorted(p.name for p in (running["inbox"] / "done").iterdir()) == ["f1.nc", "f2.nc", "sw_0900.csv"]
    runs = query(running["db"], "SELECT source, status, observed_hash != '' FROM runs ORDER BY started_at")
    assert runs == [("f1.nc", "done", 0), ("f2.nc", "done", 0), ("f2.nc", "done", 1)]
    assert running["proc"].poll() is None, "the service keeps running"
    sms = [json.loads(line) for line in (running["dir"] / "out" / "sms.jsonl").read_text().splitlines()]
    sent = query(running["db"], "SELECT id FROM outbox WHERE status IN ('sent', 'delivered')")
    assert len(sms) == len(sent)


def test_second_serve_on_the_same_store_is_refused_naming_the_holder(running) -> None:
    r = subprocess.run([*RISKMAP, "serve", "--config", "riskmap.toml"], cwd=running["dir"], env=env(),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 4, r.stderr
    holder = f"riskmap serve on {socket.gethostname()} pid {running['proc'].pid}"
    assert holder in r.stderr and "stop that process first" in r.stderr
    assert running["proc"].poll() is None


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def test_receipts_and_replies_reach_the_store_and_status_counts_them(running) -> None:
    hb_path = Path(str(running["db"]) + ".serve.json")
    hb = wait_for(lambda: json.loads(hb_path.read_text()) if hb_path.exists() else None, 10, "heartbeat")
    base = f"http://127.0.0.1:{hb['receiver']['port']}"
    oid, phone = query(running["db"], "SELECT id, phone FROM outbox WHERE level >= 3 ORDER BY id LIMIT 1")[0]
    tok = urllib.parse.quote(TOKEN)
    assert _get(f"{base}/dlr?token=wrong&id={oid}&status=1")[0] == 403
    for _ in range(2):  # the same report twice is one receipt
        assert _get(f"{base}/dlr?token={tok}&id={oid}&status=1")[0] == 200
    text = urllib.parse.quote("收到")
    assert _get(f"{base}/mo?token={tok}&from={urllib.parse.quote('+86' + phone)}&text={text}")[0] == 200
    rec = query(running["db"], "SELECT status FROM receipts WHERE outbox_id = ? ORDER BY id", oid)
    assert rec == [("delivered",), (ACK,)]
    r = subprocess.run([*RISKMAP, "status", "--config", "riskmap.toml", "--json"], cwd=running["dir"],
                       env=env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    sent = len(query(running["db"], "SELECT id FROM outbox WHERE status IN ('sent', 'delivered')"))
    assert st["outbox"]["delivered"] == 1 and st["outbox"]["sent"] == sent
    assert st["rates"]["receipt"] == round(1 / sent, 3) and st["rates"]["acknowledged"] == 1
    assert st["last_runs"]["f2.nc"]["status"] == "done" and st["service"]["inbox"]["quarantined"] == 2
    assert st["held_by"].endswith(f"pid {running['proc'].pid}")


def test_logs_are_json_lines_with_run_ids_and_masked_numbers(running) -> None:
    raw = running["log"].read_text(encoding="utf-8")
    lines = [json.loads(x) for x in raw.splitlines() if x.startswith("{")]
    assert lines and all({"ts", "level", "logger", "msg"} <= set(x) for x in lines)
    cycles = [x for x in lines if x["msg"].startswith("cycle ")]
    assert len(cycles) == 3 and all(x.get("run_id") and x.get("file") for x in cycles)
    assert not re.search(r"(?<!\d)1[3-9]\d{9}(?!\d)", raw), "an unmasked mobile number in the log"


def test_sigterm_stops_gracefully_and_releases_the_store(running) -> None:
    assert stop(running["proc"]) == 0
    assert json.loads(running["log"].read_text().splitlines()[-1])["msg"] == "serve: stopped"
    r = subprocess.run([*RISKMAP, "status", "--config", "riskmap.toml"], cwd=running["dir"], env=env(),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "service: not running" in r.stdout, r.stdout + r.stderr
    assert not query(running["db"], "SELECT id FROM outbox WHERE status = 'leased'")


def test_config_problems_are_listed_one_line_each_exit_2(tmp_path: Path) -> None:
    (tmp_path / "riskmap.toml").write_text(
        '[gateway]\nkind = "kannel"\n[service]\nregion = "missing.gpkg"\npoll_s = -1\ncolour = "red"\n'
        '[service.dispatch]\nlease_s = 0\n', encoding="utf-8")
    e = env()
    e.pop("RISKMAP_RECEIVER_TOKEN")
    r = subprocess.run([*RISKMAP, "serve", "--config", "riskmap.toml"], cwd=tmp_path, env=e,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert lines[0] == "riskmap: error: the service cannot start:"
    assert any("unknown key 'service.colour'" in x for x in lines)
    assert any("'service.poll_s' must be > 0" in x for x in lines)
    assert any("lease_s and sweep_s must be > 0" in x for x in lines)
    (tmp_path / "riskmap.toml").write_text('[gateway]\nkind = "kannel"\n[service]\nregion = "missing.gpkg"\n')
    r2 = subprocess.run([*RISKMAP, "serve", "--config", "riskmap.toml"], cwd=tmp_path, env=e,
                        capture_output=True, text=True, timeout=60)
    assert r2.returncode == 2
    problems = r2.stderr.strip().splitlines()[1:]
    assert len(problems) == 4, r2.stderr  # region, gateway.url, gateway password, receiver token
    assert "'service.region'" in problems[0] and "does not exist" in problems[0]
    assert any("RISKMAP_GATEWAY_PASSWORD" in x for x in problems)
    assert any("RISKMAP_RECEIVER_TOKEN" in x for x in problems)




@pytest.fixture
def pg_serve_url() -> str:
    """The test PostgreSQL database, a fresh schema of its own (``serve_test``) first on the search path."""
    return fresh_pg_schema("serve_test")


@pytest.mark.postgres
def test_postgresql_store_one_service_advisory_lock_and_a_cycle(tmp_path: Path, pg_serve_url: str) -> None:
    region = make_region(tmp_path / "region.gpkg")
    fc = write_forecast(tmp_path / "pg.nc", ref="2026-07-16T00:00")
    write_config(tmp_path, region, tmp_path / "cache")
    p = start_serve(tmp_path, env(), "serve.log", "--db", pg_serve_url)
    log = tmp_path / "serve.log"
    try:
        hb = tmp_path / "out" / "serve.json"
        wait_for(lambda: hb.exists() and json.loads(hb.read_text())["state"] == "running", 60, "running",
                 p, log)
        r = subprocess.run([*RISKMAP, "serve", "--config", "riskmap.toml", "--db", pg_serve_url],
                           cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=60)
        assert r.returncode == 4, r.stderr
        assert f"held by riskmap serve on {socket.gethostname()} pid {p.pid}" in r.stderr
        drop(fc, tmp_path / "inbox")
        wait_for(lambda: (tmp_path / "inbox" / "done" / "pg.nc").exists(), 60, "pg.nc done", p, log)
        st = subprocess.run([*RISKMAP, "status", "--config", "riskmap.toml", "--db", pg_serve_url, "--json"],
                            cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=60)
        assert st.returncode == 0, st.stderr
        data = json.loads(st.stdout)
        assert data["held_by"].endswith(f"pid {p.pid}") and data["last_runs"]["pg.nc"]["status"] == "done"
        assert data["service"]["state"] == "running"
    finally:
        assert stop(p) == 0, log.read_text()[-3000:]
    r = subprocess.run([*RISKMAP, "status", "--config", "riskmap.toml", "--db", pg_serve_url], cwd=tmp_path,
                       env=env(), capture_output=True, text=True, timeout=60)
    assert "service: not running" in r.stdout, r.stdout + r.stderr
