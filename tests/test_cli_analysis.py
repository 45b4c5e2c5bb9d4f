"""`riskmap rainfall` and `riskmap explain` on the demo county."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from riskmap.demo import write_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    return write_demo(tmp_path_factory.mktemp("demo"))


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "riskmap.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_rainfall_writes_long_table_and_window_summary(demo, tmp_path: Path) -> None:
    out = tmp_path / "rain.csv"
    res = _cli("rainfall", "--region", str(demo.region), "--forecast", str(demo.forecast), "--out", str(out),
               cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    table = pd.read_csv(out, dtype={"village": str})
    assert list(table.columns) == ["village", "time", "stat", "mm"]
    assert table["village"].str.fullmatch(r"\d{12}").all()
    assert set(table["stat"]) == {"mean", "max"}
    assert table.groupby("stat").size().nunique() == 1  # every village × time for each stat
    # per village: the cell maximum is never below the coverage-weighted mean
    wide = table.pivot_table(index=["village", "time"], columns="stat", values="mm")
    assert (wide["max"] + 1e-4 >= wide["mean"]).all()
    win = pd.read_csv(tmp_path / "rain.windows.csv", dtype={"village": str})
    assert set(win["duration_h"]) == {1, 3, 6, 12, 24}
    one = win[(win["village"] == win["village"].iloc[0]) & (win["stat"] == "mean")].sort_values("duration_h")
    assert one["mm"].is_monotonic_increasing  # longer windows hold at least as much rain


def test_rainfall_rejects_unknown_output_format(demo, tmp_path: Path) -> None:
    res = _cli("rainfall", "--region", str(demo.region), "--forecast", str(demo.forecast), "--out",
               str(tmp_path / "rain.txt"), cwd=tmp_path)
    assert res.returncode == 2 and ".csv or .parquet" in res.stderr


def test_explain_prints_the_chain_for_a_red_village(demo, tmp_path: Path) -> None:
    res = _cli("explain", "469900001001", "--region", str(demo.region), "--forecast", str(demo.forecast),
               "--lang", "en-US", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    first = res.stdout.splitlines()[0]
    assert first.startswith("Village 469900001001") and "red" in first
    assert "≥" in res.stdout and "✓" in res.stdout


def test_explain_unknown_village_is_bad_input(demo, tmp_path: Path) -> None:
    res = _cli("explain", "123", "--region", str(demo.region), "--forecast", str(demo.forecast), cwd=tmp_path)
    assert res.returncode == 2 and "'123'" in res.stderr and "Traceback" not in res.stderr
