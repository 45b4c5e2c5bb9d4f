"""Rolling-window maxima (village mean and per-cell max) and effective antecedent rainfall."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rioxarray  # noqa: F401
import shapely
import xarray as xr

from riskmap.errors import InputError
from riskmap.grid import GridDef
from riskmap.rainfall import village_rainfall
from riskmap.weights import coverage_weights
from riskmap.windows import effective_rainfall, window_maxima, window_maxima_grid, window_table

T0 = np.datetime64("2026-07-01T00:00", "ns")


def series(values, step_h, t0=T0, villages=("v1",)):
    """Village Dataset from per-interval values and lengths (hours), times = interval ends."""
    step = np.asarray(step_h, dtype=float)
    ends = t0 + (np.cumsum(step) * 3600e9).astype("timedelta64[ns]")
    vals = np.atleast_2d(np.asarray(values, dtype=float))
    return xr.Dataset({"mean": (("village", "time"), vals)},
                      coords={"village": list(villages), "time": ends,
                              "interval": ("time", (step * 3600e9).astype("timedelta64[ns]"))})


def brute_force(values, step_h, d, res=0.25, end_limit=None):
    """Independent check: spread each interval evenly on a fine lattice, rolling sums."""
    fine = np.concatenate([np.full(int(round(s / res)), v / round(s / res))
                           for v, s in zip(values, step_h, strict=True)])
    csum = np.concatenate([[0.0], np.cumsum(fine)])
    n = int(round(d / res))
    last = len(fine) if end_limit is None else int(round(end_limit / res))
    best, when = -np.inf, None
    for e in range(1, last + 1):
        a = csum[e] - csum[max(0, e - n)]
        if a > best + 1e-12:
            best, when = a, e * res
    return best, when


def hours(ts):
    return (np.asarray(ts, dtype="datetime64[ns]") - T0) / np.timedelta64(1, "h")


def test_hourly_then_three_hourly_matches_brute_force():
    vals = [1, 0, 5, 2, 0, 0, 3, 9, 12, 3, 0, 6]
    steps = [1] * 8 + [3] * 4
    w = window_maxima(series(vals, steps), (1, 2, 3, 6, 12, 24))
    for j, d in enumerate((1, 2, 3, 6, 12, 24)):
        best, when = brute_force(vals, steps, d)
        assert float(w["mean"].values[0, j]) == pytest.approx(best, abs=1e-5), d
        assert hours(w["mean_end"].values[0, j]) == pytest.approx(when), d


def test_window_shorter_than_interval_spreads_evenly_or_takes_whole():
    s = series([9.0, 1.0], [3, 1])
    assert window_maxima(s, (1,))["mean"].values.tolist() == [[3.0]]
    assert window_maxima(s, (1,), spread="whole")["mean"].values.tolist() == [[9.0]]
    assert window_maxima(s, (2,))["mean"].values.tolist() == [[6.0]]
    assert window_maxima(s, (2,), spread="whole")["mean"].values.tolist() == [[10.0]]  # overlaps both
    with pytest.raises(InputError, match="spread"):
        window_maxima(s, (1,), spread="peak")


def test_windows_span_now_and_horizon_limits_ends():
    # 1 mm/h observed, then a 10 mm forecast hour, then 50 mm far out
    vals = [1, 1, 1, 1, 10, 0, 0, 0, 50]
    s = series(vals, [1] * 9)
    now = pd.Timestamp("2026-07-01T04:00+00:00")          # 4 observed hours
    w = window_maxima(s, (3,), now=now, horizon_h=1)
    assert float(w["mean"].values[0, 0]) == pytest.approx(12.0)   # 2 observed + 1 forecast hour
    assert hours(w["mean_end"].values[0, 0]) == pytest.approx(5.0)
    assert float(window_maxima(s, (3,), now=now)["mean"].values[0, 0]) == pytest.approx(50.0)
    beijing = pd.Timestamp("2026-07-01T12:00+08:00")      # the same instant in Beijing time
    assert float(window_maxima(s, (3,), now=beijing, horizon_h=1)["mean"].values[0, 0]) == pytest.approx(12.0)
    with pytest.raises(InputError, match="time zone"):
        window_maxima(s, (3,), now=pd.Timestamp("2026-07-01T04:00"), horizon_h=1)


def test_data_shorter_than_window_gives_total_and_gaps_count_zero():
    s = series([2.0, 3.0], [1, 1])
    assert float(window_maxima(s, (24,))["mean"].values[0, 0]) == pytest.approx(5.0)
    # a gap: 1 h at 00-01, then 1 h at 05-06 (interval says 1 h, spacing says 5 h)
    ends = T0 + np.array([1, 6], dtype="timedelta64[h]").astype("timedelta64[ns]")
    one_h = np.full(2, np.timedelta64(3600, "s")).astype("timedelta64[ns]")
    gap = xr.Dataset({"mean": (("village", "time"), [[4.0, 4.0]])},
                     coords={"village": ["v1"], "time": ends, "interval": ("time", one_h)})
    assert float(window_maxima(gap, (3,))["mean"].values[0, 0]) == pytest.approx(4.0)
    assert float(window_maxima(gap, (6,))["mean"].values[0, 0]) == pytest.approx(8.0)


def test_bad_time_axes_are_refused():
    with pytest.raises(InputError, match="increase"):
        window_maxima(series([1, 2], [1, 1]).isel(time=[1, 0]), (1,))
    over = series([1, 2], [1, 1]).assign_coords(interval=("time", np.array([1, 3], "timedelta64[h]")
                                                          .astype("timedelta64[ns]")))
    with pytest.raises(InputError, match="overlaps"):
        window_maxima(over, (1,))
    with pytest.raises(InputError, match="durations"):
        window_maxima(series([1], [1]), (0,))


def grid_case(seed=3, nt=10):
    rng = np.random.default_rng(seed)
    vals = rng.gamma(0.6, 4.0, size=(nt, 6, 8)).astype(np.float32)
    vals[3, 2, 2] = np.nan
    steps = np.full(nt, 1.0)
    steps[-3:] = 3.0
    times = T0 + (np.cumsum(steps) * 3600e9).astype("timedelta64[ns]")
    da = xr.DataArray(vals, dims=("time", "y", "x"),
                      coords={"time": times, "x": np.arange(8) + 0.5, "y": (np.arange(6) + 0.5)[::-1],
                              "interval": ("time", (steps * 3600e9).astype("timedelta64[ns]"))})
    da = da.rio.write_crs("EPSG:32650")
    v = gpd.GeoDataFrame({"code": ["a00000000001", "a00000000002", "a00000000003"]},
                         geometry=[shapely.box(0.5, 0.5, 3.2, 2.7), shapely.Point(6.5, 4.5),
                                   shapely.box(4, 1, 7.5, 5.5)], crs="EPSG:32650")
    return da, v, steps


def test_grid_max_is_the_best_single_cell_accumulation():
    da, v, steps = grid_case()
    w = coverage_weights(v, GridDef.from_dataarray(da))
    out = window_maxima_grid(da, w, (1, 3, 6))
    flat = da.values.reshape(da.sizes["time"], -1)
    for i in range(len(v)):
        cells = w.indices[w.indptr[i]:w.indptr[i + 1]]
        for j, d in enumerate((1, 3, 6)):
            per_cell = [brute_force(np.nan_to_num(flat[:, c]), steps, d) for c in cells]
            best = max(per_cell, key=lambda bw: bw[0])
            assert float(out["max"].values[i, j]) == pytest.approx(best[0], abs=1e-4)
            assert hours(out["max_end"].values[i, j]) == pytest.approx(best[1])
    # the per-cell maximum is at least the windowed mean and at most the windowed per-step max
    rain = village_rainfall(v, da, weights=w)
    both = window_maxima(rain, (1, 3, 6), grid=da, weights=w)
    assert (both["max"].values >= both["mean"].values - 1e-4).all()
    upper = window_maxima(rain.drop_vars("mean").rename({"max": "mean"}), (1, 3, 6))["mean"].values
    assert (both["max"].values <= upper + 1e-4).all()


def test_window_table_long_form():
    da, v, _ = grid_case()
    w = coverage_weights(v, GridDef.from_dataarray(da))
    both = window_maxima(village_rainfall(v, da, weights=w), (1, 24), grid=da, weights=w)
    tab = window_table(both)
    assert tab.columns.tolist() == ["village", "duration_h", "stat", "mm", "end"]
    assert len(tab) == 3 * 2 * 2 and set(tab["stat"]) == {"mean", "max"}
    assert str(tab["end"].dt.tz) == "UTC"


def test_effective_rainfall_days_from_the_beijing_0800_boundary():
    # hourly from 2026-06-28 00:00 UTC for 5 days; day i has rain i+1 mm/h? use distinct per-day totals
    t = pd.date_range("2026-06-28T01:00", periods=24 * 5, freq="h")
    per_hour = np.repeat([1.0, 2.0, 3.0, 4.0, 5.0], 24)       # UTC days 28, 29, 30, 1, 2
    r = xr.DataArray([per_hour], dims=("village", "time"), coords={"village": ["v"], "time": t})
    now = pd.Timestamp("2026-07-01T09:30+08:00")               # day 0 = 1 Jul 08:00 CST = 1 Jul 00:00 UTC
    got = float(effective_rainfall(r, now, k=0.5, n_days=2)[0])
    assert got == pytest.approx(24 * 4 + 0.5 * 24 * 3 + 0.25 * 24 * 2)
    # before 08:00 Beijing time the day is still the previous one
    early = pd.Timestamp("2026-07-01T07:59+08:00")
    assert float(effective_rainfall(r, early, k=0.5, n_days=0)[0]) == pytest.approx(24 * 3)
    # another boundary (20:00) splits hourly data at 12:00 UTC
    got20 = float(effective_rainfall(r, now, k=1.0, n_days=0, day_boundary="20:00")[0])
    assert got20 == pytest.approx(12 * 3 + 12 * 4)
    # a 3-hourly interval straddling the boundary is split evenly (uniform) or goes to its end's day (whole)
    t3 = pd.DatetimeIndex(["2026-07-01T01:00"])
    r3 = xr.DataArray([[9.0]], dims=("village", "time"), coords={"village": ["v"], "time": t3,
                      "interval": ("time", [np.timedelta64(3, "h")])})
    at = pd.Timestamp("2026-07-01T10:00+08:00")
    assert float(effective_rainfall(r3, at, k=0.5, n_days=1)[0]) == pytest.approx(3.0 + 0.5 * 6.0)
    assert float(effective_rainfall(r3, at, k=0.5, n_days=1, spread="whole")[0]) == pytest.approx(9.0)
    with pytest.raises(InputError, match="HH:MM"):
        effective_rainfall(r, now, k=0.5, n_days=1, day_boundary="8h")
