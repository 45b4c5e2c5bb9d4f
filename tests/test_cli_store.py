"""`riskmap warnings / history / issue / lift / silence` (riskmap/cli/store_cmd.py) on SQLite and PostgreSQL.

The region (tests/cli_fixtures.py) is the tiny one of ``tests/region_data.py`` (four 0.01° villages in a
row, two townships) with a detention area over the east half of village 0 and the west half of
village 1, so ``detention_areas:D02`` covers exactly villages 0 and 1; reservoir 002's downstream zone
lies inside village 1.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import pandas as pd
import pytest
from cli_fixtures import NOW, PG_DOWN, db_url, rm
from cli_fixtures import cli_commands_fixture as cli_commands_fixture  # autouse: these commands
from cli_fixtures import db_fixture as db_fixture  # db: SQLite and PostgreSQL
from cli_fixtures import region_fixture as region_fixture  # region: the tiny one, per module
from region_data import CODES

from riskmap.lifecycle import LifecyclePolicy
from riskmap.store import RunMeta, Store, apply_run, hold_store

pytestmark = pytest.mark.filterwarnings("ignore:.*landline cannot receive SMS")
V0, V1, V2, V3 = CODES


@pytest.fixture
def sqlite_db(tmp_path) -> str:
    return db_url("sqlite", tmp_path)


def active(capsys, db: str) -> dict[str, dict]:
    code, out = rm(capsys, "warnings", "--active", "--json", "--db", db)
    assert code == 0, out
    return {(w := json.loads(line))["village"]: w for line in out.splitlines() if line.strip()}


def test_issue_warnings_history_lift(capsys, db):
    code, out = rm(capsys, "issue", "--village", V0, "--village", V1, "--hazard", "torrent", "--level", "red",
                   "--reason", "开闸分洪 <&>", "--by", "李主任", "--now", NOW, "--db", db)
    assert code == 0, out
    assert out.count("issue") == 2 and "李主任" in out and "no --region" in out
    w = active(capsys, db)
    assert set(w) == {V0, V1}
    assert w[V0]["level"] == 4 and w[V0]["color"] == "red" and w[V0]["operator"] == "李主任"
    assert w[V0]["manual"] is True and w[V0]["since"] == "2026-07-01T08:00:00+08:00"
    assert w[V0]["reason"] == "开闸分洪 <&>"
    # the same act again changes nothing
    code, again = rm(capsys, "issue", "--village", V0, "--village", V1, "--hazard", "torrent", "--level",
                     "red", "--reason", "开闸分洪 <&>", "--by", "李主任", "--now", NOW, "--db", db)
    assert code == 0 and "nothing new" in again
    code, out = rm(capsys, "warnings", "--active", "--db", db)
    assert code == 0 and V0 in out and V1 in out and "李主任" in out and "红色Ⅰ" in out
    code, out = rm(capsys, "history", V0, "--db", db)
    assert code == 0 and "issue" in out and "李主任" in out and "2026-07-01 08:00" in out

    code, out = rm(capsys, "lift", "--village", V0, "--hazard", "torrent", "--reason", "险情排除",
                   "--by", "王工", "--now", "2026-07-01T09:00+08:00", "--db", db)
    assert code == 0 and "lift" in out and "王工" in out
    assert set(active(capsys, db)) == {V1}
    code, out = rm(capsys, "history", V0, "--db", db)
    assert code == 0 and "lift" in out and "王工" in out and "险情排除" in out
    store = Store.open(db)
    try:
        assert [(e.kind, e.operator, e.new_level) for e in store.history(V0)] == [
            ("issue", "李主任", 4), ("lift", "王工", 0)]
    finally:
        store.close()
    code, out = rm(capsys, "warnings", "--village", V0, "--json", "--db", db)
    assert code == 0 and json.loads(out)["state"] == "lifted"


def test_feature_targets_with_region_queue_sms_and_cap(capsys, db, region):
    code, out = rm(capsys, "issue", "--feature", "detention_areas:D02", "--region", str(region), "--hazard",
                   "torrent", "--level", "red", "--reason", "开闸分洪", "--by", "李主任", "--now", NOW,
                   "--db", db)
    assert code == 0, out
    assert set(active(capsys, db)) == {V0, V1}
    store = Store.open(db)
    try:
        run_id = store.runs(1)[0].id
        rows = store.outbox(run_id=run_id)
        caps = store.cap_messages(run_id)
    finally:
        store.close()
    # red → village head of V0 (张村), household of V1 (钱户) and the township duty officer's summary
    assert {r.phone for r in rows} >= {"13800000002", "13800000004", "13800000001"}
    assert caps and all(c.msg_type == "Alert" for c in caps)
    assert {v for c in caps for v in c.village_codes} == {V0, V1}
    assert f"SMS queued {len(rows)}" in out and f"CAP {len(caps)}" in out
    # a dam 险情: reservoir 002's downstream zone lies in V1 only
    code, out = rm(capsys, "issue", "--feature", "reservoirs:002", "--region", str(region), "--hazard",
                   "reservoir", "--level", "orange", "--reason", "坝体渗漏", "--by", "赵工",
                   "--now", "2026-07-01T08:10+08:00", "--db", db)
    assert code == 0, out
    store = Store.open(db)
    try:
        res = [w.village_code for w in store.warnings(active=True) if w.hazard == "reservoir"]
    finally:
        store.close()
    assert res == [V1]
    # lift by feature, every hazard
    code, out = rm(capsys, "lift", "--feature", "detention_areas:D02", "--region", str(region), "--hazard",
                   "all", "--reason", "退水", "--by", "王工", "--now", "2026-07-01T12:00+08:00", "--db", db)
    assert code == 0 and out.count("lift ") == 3, out
    assert active(capsys, db) == {}


def test_silence_suppresses_a_later_automatic_issue(capsys, db, region):
    code, out = rm(capsys, "silence", "--village", V2, "--until", "2026-07-01T20:00+08:00", "--reason",
                   "已全部转移 [bold]", "--by", "王工", "--now", NOW, "--db", db)
    assert code == 0 and "silenced 1 village" in out and "2026-07-01 20:00" in out, out
    code, out = rm(capsys, "silence", "--feature", "reservoirs:002", "--region", str(region), "--hazard",
                   "reservoir", "--until", "2026-07-01T20:00+08:00", "--reason", "检修", "--by", "王工",
                   "--now", NOW, "--db", db)
    assert code == 0 and "silenced 1 village" in out

    levels = pd.DataFrame({"village_code": [V2, V3], "hazard": ["torrent", "torrent"], "level": [3, 3],
                           "rule": ["t/1", "t/1"], "window_h": [3.0, 3.0], "value_mm": [80.0, 80.0],
                           "threshold_mm": [70.0, 70.0],
                           "window_end": [datetime(2026, 7, 1, 3, tzinfo=UTC)] * 2,
                           "reason": ["3 h 80 mm", "3 h 80 mm"]})
    store = Store.open(db)
    try:
        meta = RunMeta(now=datetime(2026, 7, 1, 1, tzinfo=UTC), source="test", forecast_hash="f1")
        apply_run(store, meta, levels, LifecyclePolicy())
    finally:
        store.close()
    assert set(active(capsys, db)) == {V3}
    code, out = rm(capsys, "history", V2, "--db", db)
    assert code == 0 and "silence" in out and "(silenced)" in out and "王工" in out
    assert "已全部转移 [bold]" in out  # names and reasons are shown as written, never as markup


def test_drill_issue_leaves_warnings_unchanged(capsys, db, region):
    code, out = rm(capsys, "issue", "--village", V0, "--region", str(region), "--hazard", "torrent",
                   "--level", "4", "--reason", "演练", "--by", "李主任", "--drill", "--now", NOW, "--db", db)
    assert code == 0 and "(drill)" in out, out
    assert active(capsys, db) == {}
    store = Store.open(db)
    try:
        rows = store.outbox()
    finally:
        store.close()
    assert [r.phone for r in rows] == ["13800000002"]  # only the contact flagged for drills
    assert rows[0].drill and "演练" in rows[0].text


@pytest.mark.parametrize(("args", "needle"), [
    (["issue", "--village", "12345", "--hazard", "torrent", "--level", "red"], "--village '12345'"),
    (["issue", "--village", V0, "--hazard", "torrent", "--level", "purple"], "unknown level 'purple'"),
    (["issue", "--village", V0, "--hazard", "torrent", "--level", "none"], "--level"),
    (["issue", "--hazard", "torrent", "--level", "red"], "--village / --feature"),
    (["issue", "--feature", "detention_areas:D02", "--hazard", "torrent", "--level", "red"], "--region"),
    (["issue", "--feature", "D02", "--hazard", "torrent", "--level", "red"], "LAYER:ID"),
    (["issue", "--village", V0, "--hazard", "flood", "--level", "red"], "--hazard"),
    (["issue", "--village", V0, "--hazard", "torrent", "--level", "red", "--now", "2026-07-01T08:00"],
     "--now"),
    (["issue", "--village", V0, "--hazard", "torrent", "--level", "red", "--until", "2026-07-01T07:00+08:00"],
     "--until"),
    (["lift", "--village", V0, "--hazard", "torrent"], "--reason"),
    (["silence", "--village", V0, "--until", "2026-06-30T08:00+08:00"], "--until"),
])
def test_bad_input_is_exit_2_naming_the_field(capsys, sqlite_db, args, needle):
    extra = [] if "--reason" in needle else ["--reason", "x", "--by", "x"]
    if args[0] != "issue" or "--now" not in args:
        extra += ["--now", NOW]
    code, out = rm(capsys, *args, *extra, "--db", sqlite_db)
    assert code == 2, out
    assert needle in out and "Traceback" not in out
    errors = [line for line in out.splitlines() if line.startswith(("Error:", "riskmap: error:"))]
    assert len(errors) == 1 and needle in errors[0]  # one clear line naming the field


def test_feature_unknown_in_region_is_exit_2(capsys, db, region):
    code, out = rm(capsys, "issue", "--feature", "detention_areas:NOPE", "--region", str(region), "--hazard",
                   "torrent", "--level", "red", "--reason", "x", "--by", "x", "--now", NOW, "--db", db)
    assert code == 2 and "--feature" in out and "NOPE" in out
    code, out = rm(capsys, "issue", "--village", "330110009009", "--region", str(region), "--hazard",
                   "torrent", "--level", "red", "--reason", "x", "--by", "x", "--now", NOW, "--db", db)
    assert code == 2 and "330110009009" in out


def test_store_errors_exit_codes(capsys, db, tmp_path):
    code, out = rm(capsys, "history", "33011000100", "--db", db)
    assert code == 2 and "12 digits" in out
    code, out = rm(capsys, "warnings", "--db", f"sqlite:///{tmp_path / 'nothing.sqlite'}")
    assert code == 2 and "no store at" in out
    assert not (tmp_path / "nothing.sqlite").exists()
    for args in (["warnings"], ["history", V0], ["issue", "--village", V0, "--hazard", "torrent", "--level",
                                                  "red", "--reason", "x", "--by", "x"]):
        code, out = rm(capsys, *args, "--db", PG_DOWN)
        assert code == 3 and "unavailable" in out and "Traceback" not in out, out
    # while a service holds the store, an act is handed to it (tests/test_service_requests.py: the service's
    # side): one that is not applied in time stays queued (exit 3), the same act again waits for that request;
    # reading still works
    store = Store.open(db)
    act = ("issue", "--village", V0, "--hazard", "torrent", "--level", "red", "--reason", "x", "--by", "x",
           "--now", NOW, "--db", db)
    try:
        with hold_store(store, "riskmap serve pid 99"):
            code, out = rm(capsys, *act, "--wait", "0.2")
            assert code == 3 and "riskmap serve pid 99" in out and "queued" in out, out
            assert "riskmap status" in out and "Traceback" not in out
            code, again = rm(capsys, *act, "--no-wait")
            assert code == 0 and "not requested again" in again and "queued" in again, again
            assert rm(capsys, "warnings", "--db", db)[0] == 0 and store.warnings() == []
    finally:
        store.close()


def test_default_store_is_the_config_url_else_local_file(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Store.open(tmp_path / "riskmap-demo" / "riskmap.sqlite").close()
    code, out = rm(capsys, "warnings")  # no ./riskmap.sqlite yet: say so, and where the demo's store is
    assert code == 2 and "no store at" in out and "--db sqlite:///riskmap-demo/riskmap.sqlite" in out
    code, out = rm(capsys, "issue", "--village", V0, "--hazard", "torrent", "--level", "blue",
                   "--reason", "x", "--by", "x", "--now", NOW)
    assert code == 0 and (tmp_path / "riskmap.sqlite").is_file(), out
    other = tmp_path / "office.sqlite"
    (tmp_path / "riskmap.toml").write_text(f'[store]\nurl = "sqlite:///{other}"\n', encoding="utf-8")
    code, out = rm(capsys, "issue", "--village", V1, "--hazard", "torrent", "--level", "blue",
                   "--reason", "x", "--by", "x", "--now", NOW)
    assert code == 0 and other.is_file()
    code, out = rm(capsys, "warnings", "--json")
    assert code == 0 and [json.loads(x)["village"] for x in out.splitlines()] == [V1]
    code, out = rm(capsys, "warnings", "--help")
    assert "./riskmap.sqlite" in out and "store.url" in out


def test_console_script_runs_these_commands(tmp_path):
    """In a fresh process (no test-side registration): the group carries these commands and exit codes."""
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "riskmap.cli", *args], capture_output=True, text=True,
                              cwd=tmp_path, timeout=120, check=False)

    db = f"sqlite:///{tmp_path / 'riskmap.sqlite'}"
    for name, option in (("issue", "--feature"), ("lift", "--village"), ("silence", "--until"),
                         ("warnings", "--json"), ("history", "--db"), ("silences", "--all"),
                         ("unsilence", "--reason")):
        res = run(name, "--help")
        assert res.returncode == 0 and option in res.stdout, (name, res.stderr)
    res = run("issue", "--village", V0, "--hazard", "torrent", "--level", "red", "--reason", "开闸分洪",
              "--by", "李主任", "--now", NOW, "--db", db)
    assert res.returncode == 0 and "李主任" in res.stdout, res.stderr
    res = run("warnings", "--active", "--json", "--db", db)
    assert res.returncode == 0 and json.loads(res.stdout)["village"] == V0
    res = run("issue", "--village", V0, "--hazard", "torrent", "--level", "purple", "--reason", "x", "--by",
              "x", "--db", db)
    assert res.returncode == 2 and res.stderr.strip() == (
        "riskmap: error: unknown level 'purple': use none, blue, yellow, orange or red "
        "(or 蓝色/黄色/橙色/红色, Ⅳ-Ⅰ)")
    res = run("history", V0, "--db", PG_DOWN)
    assert res.returncode == 3 and "Traceback" not in res.stderr
    assert res.stderr.startswith("riskmap: error: store ") and "unavailable" in res.stderr.splitlines()[0]


def test_paths_region_setting_stands_in_for_region(capsys, db, region, tmp_path, monkeypatch):
    """``paths.region`` in riskmap.toml: issue and lift without --region still queue SMS and CAP."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "region.gpkg").write_bytes(region.read_bytes())
    (tmp_path / "riskmap.toml").write_text('[paths]\nregion = "data/region.gpkg"\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # ./riskmap.toml is the default config; the relative path is taken from here
    code, out = rm(capsys, "issue", "--feature", "detention_areas:D02", "--hazard", "torrent", "--level",
                   "red", "--reason", "开闸分洪", "--by", "李主任", "--now", NOW, "--db", db)
    assert code == 0 and "no --region" not in out, out
    code, out2 = rm(capsys, "lift", "--village", V0, "--hazard", "all", "--reason", "退水", "--by", "王工",
                    "--now", "2026-07-01T12:00+08:00", "--db", db)
    assert code == 0 and "no --region" not in out2, out2
    store = Store.open(db)
    try:
        lift_run, issue_run = (r.id for r in store.runs(2))
        queued = {run: (store.outbox(run_id=run), store.cap_messages(run)) for run in (issue_run, lift_run)}
    finally:
        store.close()
    (rows, caps), (lift_rows, lift_caps) = queued[issue_run], queued[lift_run]
    assert {r.phone for r in rows} >= {"13800000002", "13800000004", "13800000001"}
    assert {v for c in caps for v in c.village_codes} == {V0, V1}
    assert f"SMS queued {len(rows)}" in out and f"CAP {len(caps)}" in out
    assert lift_rows and {v for c in lift_caps for v in c.village_codes} == {V0}
    assert f"SMS queued {len(lift_rows)}" in out2 and f"CAP {len(lift_caps)}" in out2
    # a --region given on the command line wins; a region set but missing is one line naming the key
    (tmp_path / "riskmap.toml").write_text('[paths]\nregion = "data/gone.gpkg"\n', encoding="utf-8")
    code, out = rm(capsys, "issue", "--village", V2, "--region", str(region), "--hazard", "torrent",
                   "--level", "blue", "--reason", "x", "--by", "x", "--now", NOW, "--db", db)
    assert code == 0 and "SMS queued" in out, out
    code, out = rm(capsys, "lift", "--village", V2, "--hazard", "all", "--reason", "x", "--by", "x",
                   "--now", NOW, "--db", db)
    assert code == 2 and out.strip() == (
        f"riskmap: error: riskmap.toml: 'paths.region' {tmp_path / 'data' / 'gone.gpkg'} does not exist")


def test_commands_needing_a_region_take_the_setting(capsys, region, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./riskmap.toml
    config = tmp_path / "office.toml"
    config.write_text(f"[paths]\nregion = {str(region)!r}\n", encoding="utf-8")
    code, out = rm(capsys, "check", "--config", str(config))
    assert code == 0 and "villages" in out, out
    code, out = rm(capsys, "run", "--forecast", str(region), "--out", str(tmp_path / "out"))
    assert code == 2 and "--region: a region is needed (pass --region PATH or set paths.region" in out
    code, out = rm(capsys, "check")
    assert code == 2 and "--region: a region is needed" in out
