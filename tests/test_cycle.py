"""The whole chain on the demo county: `riskmap demo`/`riskmap run` end to end (issue #2's slice)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from lxml import etree

from riskmap.cap import validate
from riskmap.config import PathSettings, Settings
from riskmap.cycle import CycleRequest, run_cycle
from riskmap.demo import write_demo
from riskmap.maps import offline_violations
from riskmap.timeutil import parse_instant

RISKMAP = [sys.executable, "-m", "riskmap.cli"]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COLUMNS="120")
    return subprocess.run([*RISKMAP, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory: pytest.TempPathFactory):
    return write_demo(tmp_path_factory.mktemp("demo") / "data")


@pytest.fixture(scope="module")
def first_run(demo_files, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("out")
    settings = replace(Settings(), paths=PathSettings(cache_dir=str(out / "cache")))
    req = CycleRequest(region=demo_files.region, forecast=(demo_files.forecast,),
                       observed=demo_files.observed, out_dir=out, settings=settings)
    return req, run_cycle(req)


def _events(db: Path) -> int:
    with sqlite3.connect(db) as con:
        return int(con.execute("select count(*) from events").fetchone()[0])


def test_demo_cycle_produces_all_four_levels_and_every_output(first_run) -> None:
    req, report = first_run
    assert not report.already_done
    assert all(report.per_level[lv] > 0 for lv in (1, 2, 3, 4)), report.per_level
    assert {"rainstorm", "torrent", "geohazard", "reservoir", "waterlogging", "mine"} <= set(report.hazards)
    levels = pd.read_csv(req.out_dir / "levels.csv", dtype={"village_code": str, "grade": str},
                         keep_default_na=False)
    assert list(levels.columns) == ["village_code", "village_name", "level", "color", "grade", "hazards",
                                    "score", "reasons"]
    assert (req.out_dir / "levels.csv").read_bytes()[:3] != b"\xef\xbb\xbf"  # no BOM
    assert levels["village_code"].str.fullmatch(r"\d{12}").all()
    assert sum(report.per_level.values()) == len(levels)
    red = levels[levels["level"] == 4].iloc[0]
    assert red["color"] == "red" and red["grade"] == "Ⅰ" and red["hazards"].split(";")[0].endswith(":4")
    assert set(levels.loc[levels["level"] == 0, "grade"]) == {""}


def test_demo_cycle_sends_sms_and_writes_valid_cap(first_run) -> None:
    req, report = first_run
    lines = (req.out_dir / "sms.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == report.sms_sent == report.messages_queued > 0
    msgs = [json.loads(x) for x in lines]
    heads = [m for m in msgs if "village_head" in m["role"] and m["level"] == "4"]
    assert heads and all(m["text"].startswith("【青山县防指】") and "红色" in m["text"] for m in heads)
    assert any("household" in m["role"] for m in msgs)
    caps = sorted((req.out_dir / "cap").glob("*.xml"))
    assert len(caps) == report.cap_messages > 0
    for path in caps[:: max(1, len(caps) // 25)]:
        validate(path.read_bytes())  # raises CapError naming every problem
        root = etree.fromstring(path.read_bytes())
        assert root.tag == "{urn:oasis:names:tc:emergency:cap:1.2}alert"
    html = (req.out_dir / "map.html").read_text(encoding="utf-8")
    levels = pd.read_csv(req.out_dir / "levels.csv", dtype={"village_code": str}, keep_default_na=False)
    red_name = levels.loc[levels["level"] == 4, "village_name"].iloc[0]
    assert red_name in html and "L.map" in html
    assert offline_violations(html) == []


def test_same_inputs_twice_write_no_new_events(first_run) -> None:
    req, report = first_run
    db = req.out_dir / "riskmap.sqlite"
    before = _events(db)
    sms_before = (req.out_dir / "sms.jsonl").read_bytes()
    again = run_cycle(replace(req, now=report.now))
    assert again.already_done and again.run_id == report.run_id
    assert _events(db) == before
    assert (req.out_dir / "sms.jsonl").read_bytes() == sms_before
    assert oct(db.stat().st_mode & 0o777) == "0o600"


def test_later_run_keeps_warnings_and_sends_nothing_new_for_unchanged_levels(first_run) -> None:
    req, report = first_run
    later = run_cycle(replace(req, now=parse_instant("2024-07-15T01:00+00:00"), write_map=False))
    assert not later.already_done and later.run_id != report.run_id
    assert later.changes.get("issue", 0) < report.changes["issue"]


def test_cli_demo_and_check(tmp_path: Path) -> None:
    res = _cli("demo", "--out", str(tmp_path / "d"), "--no-map", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "villages per level" in res.stdout and "Traceback" not in res.stderr
    res2 = _cli("check", "--region", str(tmp_path / "d" / "data" / "region.gpkg"), cwd=tmp_path)
    assert res2.returncode == 0, res2.stdout + res2.stderr


def test_cli_bad_inputs_exit_2_with_one_line(tmp_path: Path, demo_files) -> None:
    bad_now = _cli("run", "--region", str(demo_files.region), "--forecast", str(demo_files.forecast),
                   "--now", "2024-07-15T08:00", "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert bad_now.returncode == 2
    assert "no UTC offset" in bad_now.stderr and "Traceback" not in bad_now.stderr
    broken = tmp_path / "broken.nc"
    broken.write_bytes(demo_files.forecast.read_bytes()[:5000])
    res = _cli("run", "--region", str(demo_files.region), "--forecast", str(broken), "--out",
               str(tmp_path / "o2"), cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "broken.nc" in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    db = tmp_path / "o2" / "riskmap.sqlite"
    assert not db.exists() or _events(db) == 0
    debug = _cli("--debug", "run", "--region", str(demo_files.region), "--forecast", str(broken), "--out",
                 str(tmp_path / "o3"), cwd=tmp_path)
    assert debug.returncode != 0 and "Traceback" in debug.stderr
