"""The engine: soil state, lead-time cap, reservoir zone and 病险, several hazards, output frames, speed."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from rules_fixtures import NOW, codes, context_frame, flat_features, hourly_windows

from riskmap.errors import DataWarning
from riskmap.levels_csv import LEVELS_CSV_COLUMNS, read_levels_csv, to_levels_csv
from riskmap.rules import build_features, evaluate, features_from_windows, load_rules, packaged_rules_dir
from riskmap.rules.engine import HAZARD_COLUMNS
from riskmap.rules.features import antecedent_rainfall

RULES = load_rules(packaged_rules_dir())


def _features_from_hourly(ctx: pd.DataFrame, hourly: np.ndarray, **kw):
    durations = sorted({w for _, w, _ in RULES.rain_keys()})
    horizons = sorted({h for _, _, h in RULES.rain_keys()})
    kw.setdefault(
        "effective",
        xr.DataArray(np.zeros(len(ctx)), coords={"village": ctx.index.to_numpy()}, dims="village"),
    )
    return features_from_windows(
        RULES, ctx, now=NOW, windows=hourly_windows(hourly, durations, horizons), **kw
    )


def _burst(n_hours: int, lead_end_h: int, mm: float, hours: int = 3) -> np.ndarray:
    """Hourly series from NOW-24 h: ``mm`` spread over ``hours`` hours ending ``lead_end_h`` after NOW."""
    s = np.zeros(n_hours)
    last = 24 + lead_end_h - 1
    s[last - hours + 1 : last + 1] = mm / hours
    return s


def _level(a, code: str, hazard: str) -> int:
    hl = a.hazard_levels
    row = hl[(hl.village_code == code) & (hl.hazard == hazard)]
    return int(row.level.iloc[0]) if len(row) else 0


@pytest.mark.parametrize(
    ("lead_h", "expected"),
    [(10, 4), (12, 4), (13, 3), (25, 3), (26, 2), (49, 2), (50, 1), (60, 1), (73, 1), (74, 0)],
)
def test_lead_time_caps_the_level(lead_h: int, expected: int) -> None:
    # 120 mm in 3 h: red by amount; the window's end lead decides how high it may go
    # (red ≤ 12 h, orange ≤ 24 h, yellow ≤ 48 h, blue ≤ 72 h). The burst's hours end at lead-2,
    # lead-1 and lead: two of them (80 mm) still reach 50 mm, so orange holds to lead 25 h,
    # yellow to 49 h and blue to 73 h.
    ctx = context_frame(1)
    f = _features_from_hourly(ctx, _burst(24 + 96, lead_h, 120.0)[None, :])
    a = evaluate(RULES, f, ctx, now=NOW)
    assert _level(a, ctx.index[0], "rainstorm") == expected
    if expected:
        row = a.hazard_levels.iloc[0]
        assert row.window_end <= NOW + pd.Timedelta(hours=row.horizon_h)
        assert row.window_end.tzinfo is not None


def test_observed_rain_counts_with_forecast() -> None:
    ctx = context_frame(1)
    s = np.zeros(24 + 72)
    s[20:23] = 40.0  # 120 mm in 3 h observed (ending 1 h before now)
    f = _features_from_hourly(ctx, s[None, :])
    a = evaluate(RULES, f, ctx, now=NOW)
    assert _level(a, ctx.index[0], "rainstorm") == 4
    assert a.hazard_levels.iloc[0].window_end == NOW - pd.Timedelta(hours=1)


CRIT = pd.DataFrame(
    {
        "village_code": np.repeat(codes(4), 9),
        "duration_h": np.tile(np.repeat([1, 3, 6], 3), 4),
        "soil": ["较干", "一般", "较湿"] * 12,
        "prepare_mm": np.tile([40, 35, 30, 65, 60, 50, 95, 90, 80], 4),
        "immediate_mm": np.tile([55, 50, 45, 90, 85, 75, 130, 125, 115], 4),
    }
)


def test_torrent_soil_state_selects_the_indicator() -> None:
    # antecedent 10 (dry < 28), 30 (normal), 60 (wet >= 52), 60 but the village has no wet rows
    crit = CRIT[~((CRIT.village_code == codes(4)[3]) & (CRIT.soil == "较湿"))]
    ctx = context_frame(4, touches_river=1)
    hourly = np.stack([_burst(96, 5, 50.0)] * 4)
    ante = xr.DataArray([10.0, 30.0, 60.0, 60.0], coords={"village": ctx.index.to_numpy()}, dims="village")
    f = _features_from_hourly(ctx, hourly, effective=ante, critical_rainfall=crit)
    assert f.soil_state.tolist() == [0, 1, 2, 2]
    hl = evaluate(RULES, f, ctx, now=NOW).hazard_levels
    t = hl[hl.hazard == "torrent"].set_index("village_code")
    # 3 h 50 mm: dry 0.6×65=39 → blue; normal 0.8×60=48 → yellow; wet prepare 50 → orange;
    # missing wet row → the normal row → yellow
    assert t.level.tolist() == [1, 2, 3, 2]
    assert t.threshold_mm.round(3).tolist() == [39.0, 48.0, 50.0, 48.0]
    assert t.rule.tolist() == [
        "torrent-prepare-60/3h",
        "torrent-prepare-80/3h",
        "torrent-prepare/3h",
        "torrent-prepare-80/3h",
    ]
    assert "准备转移临界雨量" in t.reason.iloc[2]


def test_torrent_county_table_where_no_indicators() -> None:
    ctx = context_frame(2, touches_river=[1, 0])
    hourly = np.stack([_burst(96, 5, 100.0)] * 2)  # 3 h 100 mm → 江华县 orange (100), not red (120)
    f = _features_from_hourly(ctx, hourly, critical_rainfall=CRIT.iloc[:0])
    a = evaluate(RULES, f, ctx, now=NOW)
    assert _level(a, ctx.index[0], "torrent") == 3
    assert _level(a, ctx.index[1], "torrent") == 0  # not riverside


@pytest.mark.parametrize(("unsafe", "lead_h", "expected"), [(0, 5, 3), (1, 5, 4), (1, 20, 3), (0, 20, 3)])
def test_reservoir_zone_and_unsafe_escalation(unsafe: int, lead_h: int, expected: int) -> None:
    # village 1 holds a small reservoir and gets the rain; village 2 lies in its downstream zone, dry itself;
    # village 3 is dry and outside any zone
    ctx = context_frame(
        3,
        in_reservoir_zone=[0, 1, 0],
        reservoir_scale=[0, 5, 0],
        reservoir_unsafe=[0, unsafe, 0],
        reservoir_village=["", codes(3)[0], ""],
    )
    hourly = np.stack([_burst(120, lead_h, 60.0), np.zeros(120), np.zeros(120)])
    a = evaluate(RULES, _features_from_hourly(ctx, hourly), ctx, now=NOW)
    assert _level(a, codes(3)[1], "reservoir") == expected
    assert _level(a, codes(3)[0], "reservoir") == 0
    assert _level(a, codes(3)[2], "reservoir") == 0
    reason = a.hazard_levels.query("hazard == 'reservoir'").reason.iloc[0]
    assert "水库周边3小时累计雨量" in reason
    assert ("病险水库" in reason) == (unsafe == 1 and expected == 4)


def test_large_reservoir_uses_24h_classes() -> None:
    ctx = context_frame(
        2, in_reservoir_zone=[0, 1], reservoir_scale=[0, 2], reservoir_village=["", codes(2)[0]]
    )
    hourly = np.stack([_burst(120, 10, 150.0, hours=24), np.zeros(120)])
    a = evaluate(RULES, _features_from_hourly(ctx, hourly), ctx, now=NOW)
    row = a.hazard_levels.query("hazard == 'reservoir'").iloc[0]
    assert (row.level, row.window_h, row.threshold_mm) == (3, 24, 150.0)


def test_two_hazards_highest_level_and_both_reasons() -> None:
    ctx = context_frame(2, flood_points=[2, 0])
    s = _burst(96, 4, 70.0)  # 3 h 70 mm, 1 h 23.3 mm
    s[24 + 5] = 65.0  # a 65 mm hour ending now+6 h
    a = evaluate(RULES, _features_from_hourly(ctx, np.stack([s, s])), ctx, now=NOW, language="zh-CN")
    v = a.villages.set_index("village_code")
    first, second = v.loc[codes(2)[0]], v.loc[codes(2)[1]]
    # 3 h max: 23.3 + 0 + 65 = 88.3 mm → rainstorm orange; 1 h 65 mm → waterlogging red
    assert (first.level, first.color, first.grade, first.hazards) == (
        4,
        "red",
        "Ⅰ",
        "waterlogging:4;rainstorm:3",
    )
    assert "城乡内涝风险红色" in first.reasons and "暴雨洪涝风险橙色" in first.reasons
    assert second.hazards == "rainstorm:3" and "内涝" not in second.reasons
    assert first.score > second.score  # same rain, more hazards does not lower it; exposure equal


def test_frames_have_the_contract_columns(tmp_path) -> None:
    ctx = context_frame(3, hazard_sites=[1, 1, 0], threatened_people=[10, 200, 0])
    f = flat_features(RULES, ctx, {("max", 3): [0.0, 60.0, 0.0]}, effective={"mean": [55.0, 55.0, 0.0]})
    a = evaluate(RULES, f, ctx, now=NOW, language="en-US")
    assert tuple(a.hazard_levels.columns) == HAZARD_COLUMNS
    assert tuple(a.villages.columns) == LEVELS_CSV_COLUMNS
    assert a.villages.village_code.tolist() == list(ctx.index)
    hl = a.hazard_levels
    assert (hl.level > 0).all() and hl.village_code.map(type).eq(str).all()
    geo = hl[hl.hazard == "geohazard"].set_index("village_code")
    assert geo.loc[codes(3)[0]].internal and geo.loc[codes(3)[0]].level == 1  # blue is internal
    assert geo.loc[codes(3)[1]].level == 2 and not geo.loc[codes(3)[1]].internal  # raised: 200 threatened
    assert "raised one level" in geo.loc[codes(3)[1]].reason
    assert a.villages.iloc[2].tolist()[2:] == [0, "none", "", "", 0, ""]
    out = to_levels_csv(a, tmp_path / "OUT" / "levels.csv")
    raw = out.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")
    back = read_levels_csv(out)
    assert back.columns.tolist() == list(LEVELS_CSV_COLUMNS) and back.village_code.tolist() == list(ctx.index)


def test_score_orders_within_a_level_by_ratio_and_exposure() -> None:
    ctx = context_frame(3, population=[100, 100, 5000])
    f = flat_features(RULES, ctx, {("max", 3): [50.0, 75.0, 50.0]})
    s = evaluate(RULES, f, ctx, now=NOW).villages.score.tolist()
    assert s[0] < s[1] and s[0] < s[2] and all(0 <= x <= 100 for x in s)


@pytest.mark.parametrize("n", [2000, 50000])
def test_evaluate_is_vectorised(n: int) -> None:
    rng = np.random.default_rng(1)
    ctx = context_frame(1).iloc[:0]
    ctx = pd.DataFrame(
        {
            "village_name": "村",
            "population": rng.integers(0, 3000, n),
            "households": rng.integers(0, 900, n),
            "touches_river": rng.random(n) < 0.3,
            "hazard_sites": rng.integers(0, 3, n),
            "threatened_people": rng.integers(0, 300, n),
            "flood_points": rng.integers(0, 2, n),
            "mines": rng.random(n) < 0.02,
            "in_reservoir_zone": rng.random(n) < 0.05,
            "reservoir_scale": rng.integers(1, 6, n),
            "reservoir_unsafe": rng.random(n) < 0.3,
        },
        index=pd.Index([f"431129{i:06d}" for i in range(n)]),
    )
    ctx["reservoir_village"] = ctx.index[rng.integers(0, n, n)]
    rain = {(s, w): rng.gamma(2.0, 10.0 * w**0.5, n) for s in ("mean", "max") for w in (1, 3, 6, 12, 24)}
    f = flat_features(RULES, ctx, rain, effective={"mean": rng.gamma(2, 40, n)}, lead_h=5)
    elapsed = np.inf
    for _ in range(3):  # best of three: the machine is shared
        t0 = time.perf_counter()
        a = evaluate(RULES, f, ctx, now=NOW)
        elapsed = min(elapsed, time.perf_counter() - t0)
    assert set(a.villages.level) == {0, 1, 2, 3, 4}
    # a sanity bound, not a benchmark: a Python loop per village would take tens of seconds at 50k
    assert elapsed < (2.0 if n == 2000 else 10.0), f"{n} villages took {elapsed:.3f} s"


def test_build_features_from_village_rainfall() -> None:
    # through riskmap.windows.window_maxima: hourly village rainfall, observed and forecast in one series
    c = codes(2)
    t = pd.date_range("2026-06-30T01:00", periods=96, freq="h")
    mean = np.zeros((2, 96), dtype="float32")
    mean[0, 30:33] = 40.0  # hours ending 07:00–09:00 UTC on 1 July: 120 mm in 3 h, 9 h after now
    rain = xr.Dataset(
        {"mean": (("village", "time"), mean), "max": (("village", "time"), mean * 1.25)},
        coords={"village": c, "time": t.values},
    )
    ctx = context_frame(2)
    eff = xr.Dataset({"mean": xr.DataArray([0.0, 0.0], coords={"village": c}, dims="village")})
    with pytest.warns(DataWarning, match="upper bound"):
        f = build_features(RULES, ctx, rain, now=NOW, effective=eff)
    a = evaluate(RULES, f, ctx, now=NOW)
    row = a.hazard_levels.iloc[0]
    assert (row.village_code, row.hazard, row.level, row.window_h) == (c[0], "rainstorm", 4, 3)
    assert row.value_mm == pytest.approx(150.0) and row.window_end == NOW + pd.Timedelta(hours=9)
    assert a.villages.level.tolist() == [4, 0]


def test_no_rain_gives_typed_empty_levels() -> None:
    ctx = context_frame(3)
    a = evaluate(RULES, flat_features(RULES, ctx), ctx, now=NOW)
    hl = a.hazard_levels
    assert hl.empty and tuple(hl.columns) == HAZARD_COLUMNS
    assert str(hl.window_end.dtype) == "datetime64[ns, UTC]" and hl.level.dtype == "int64"
    assert a.villages.level.tolist() == [0, 0, 0] and a.villages.color.tolist() == ["none"] * 3


def test_antecedent_rainfall_uses_observed_only() -> None:
    c = codes(2)
    t = pd.date_range("2026-06-28T01:00", periods=120, freq="h")  # to 2026-07-03 00:00 UTC
    mean = np.zeros((2, 120))
    mean[0, :] = 1.0  # 1 mm every hour, observed and forecast
    da = xr.DataArray(mean, dims=("village", "time"), coords={"village": c, "time": t.values})
    ante = antecedent_rainfall(da, NOW, k=1.0, n_days=3)
    # NOW = 2026-07-01 00:00 UTC = 08:00 Beijing: day 0 has no observed hours yet, days 1-3 have 24 h each
    assert ante.values.tolist() == [72.0, 0.0]
    with pytest.warns(DataWarning, match="no observed rainfall"):
        none = antecedent_rainfall(da, pd.Timestamp("2026-06-27T00:00", tz="UTC"), k=0.8, n_days=3)
    assert np.isnan(none.values).all()
