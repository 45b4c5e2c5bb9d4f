"""`riskmap map` and `riskmap report` on a finished demo run."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from riskmap.config import PathSettings, Settings
from riskmap.cycle import CycleRequest, run_cycle
from riskmap.demo import write_demo
from riskmap.maps import offline_violations


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("run")
    demo = write_demo(out / "data")
    settings = replace(Settings(), paths=PathSettings(cache_dir=str(out / "cache")))
    run_cycle(CycleRequest(region=demo.region, forecast=(demo.forecast,), observed=demo.observed,
                           out_dir=out, settings=settings,
                           write_map=False))
    return demo, out


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "riskmap.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_map_command_writes_an_offline_page(finished, tmp_path: Path) -> None:
    demo, out = finished
    res = _cli("map", "--region", str(demo.region), "--levels", str(out / "levels.csv"), "--forecast",
               str(demo.forecast), "--now", "2024-07-15T08:00+08:00", "--out", str(tmp_path / "m.html"),
               cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    html = (tmp_path / "m.html").read_text(encoding="utf-8")
    assert offline_violations(html) == [] and "2024-07-15 08:00" in html
    assert "19900" not in html  # no phone number of the demo range reaches the page


def test_report_command_counts_messages_per_township(finished, tmp_path: Path) -> None:
    demo, out = finished
    res = _cli("report", "--region", str(demo.region), "--levels", str(out / "levels.csv"), "--db",
               f"sqlite:///{out / 'riskmap.sqlite'}", "--now", "2024-07-15T08:00+08:00", "--out",
               str(tmp_path / "rep"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "rep" / "report.png").stat().st_size > 10_000
    assert (tmp_path / "rep" / "report.pdf").read_bytes()[:4] == b"%PDF"
    towns = pd.read_csv(tmp_path / "rep" / "townships.csv")
    levels = pd.read_csv(out / "levels.csv")
    total = towns[towns["township"].str.contains("Total")].iloc[0]
    body = towns[~towns["township"].str.contains("Total")]
    assert len(body) >= 10
    assert int(total["red"]) == int((levels["level"] == 4).sum()) == int(body["red"].sum())
    assert int(total["sent"]) > 0 and int(total["sent"]) == int(body["sent"].sum())
