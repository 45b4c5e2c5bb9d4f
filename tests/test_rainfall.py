"""village_rainfall against exactextract: tricky hand-made polygons and seeded random ones."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rioxarray  # noqa: F401
import shapely
import xarray as xr
from exactextract import exact_extract
from exactextract.raster import NumPyRasterSource

from riskmap import _kernels
from riskmap.errors import CoverageWarning, DataWarning, ForecastError, InputError
from riskmap.grid import GridDef
from riskmap.rainfall import aggregate, rainfall_table, village_rainfall
from riskmap.weights import coverage_weights

ROOT = Path(__file__).resolve().parents[1]
ENGINES = ["numba", "numpy"] if _kernels.HAVE_NUMBA else ["numpy"]


def forecast(nx=12, ny=9, nt=4, x0=0.0, y0=0.0, d=1.0, crs="EPSG:32650", y_desc=True, seed=1, nan_cells=()):
    rng = np.random.default_rng(seed)
    vals = rng.gamma(0.8, 6.0, size=(nt, ny, nx)).astype(np.float32)  # rows in ascending y
    for t, r, c in nan_cells:
        vals[t, r, c] = np.nan
    x = x0 + d * (np.arange(nx) + 0.5)
    y = y0 + d * (np.arange(ny) + 0.5)
    if y_desc:
        vals, y = vals[:, ::-1, :], y[::-1]
    times = pd.date_range("2026-07-01T01:00", periods=nt, freq="h")
    da = xr.DataArray(np.ascontiguousarray(vals), dims=("time", "y", "x"),
                      coords={"time": times, "x": x, "y": y,
                              "interval": ("time", np.full(nt, np.timedelta64(1, "h")))},
                      attrs={"reference_time": "2026-07-01T00:00:00+00:00", "source": "test"})
    return da.rio.write_crs(crs)


def villages(geoms, crs="EPSG:32650"):
    codes = [f"3301020{i:05d}" for i in range(len(geoms))]
    return gpd.GeoDataFrame({"code": codes}, geometry=list(geoms), crs=crs)


def reference(da, v):
    """exactextract mean and max per village and time (villages already in the grid CRS)."""
    g = GridDef.from_dataarray(da)
    xmin, ymin, xmax, ymax = g.bounds
    means, maxes = [], []
    for t in range(da.sizes["time"]):
        band = da.isel(time=t).values
        if not g.y_descending:
            band = band[::-1]
        r = NumPyRasterSource(np.ascontiguousarray(band.astype(np.float64)), xmin, ymin, xmax, ymax,
                              srs_wkt=g.crs_wkt)
        df = exact_extract(r, v.to_crs(g.crs), ["mean", "max"], output="pandas")
        means.append(df["mean"].to_numpy(float))
        maxes.append(df["max"].to_numpy(float))
    return np.array(means).T, np.array(maxes).T


TRICKY = {
    "tiny sub-cell": shapely.box(2.2, 3.3, 2.4, 3.45),
    "hole": shapely.box(1, 1, 6.3, 6.2).difference(shapely.box(2.5, 2.4, 4.5, 4.7)),
    "multipart": shapely.MultiPolygon([shapely.box(0.3, 0.2, 1.7, 1.1),
                                       shapely.Polygon([(8, 1), (10.5, 1.3), (9, 3.9)])]),
    "partly outside": shapely.box(-2.5, 5.5, 3.2, 12.0),
    "on cell edges": shapely.box(2, 2, 5, 4),
    "thin sliver": shapely.box(7.0, 0.5, 7.05, 8.5),
    "star": shapely.Polygon([(6 + 2.5 * np.cos(a) * (0.4 + 0.6 * (i % 2)),
                              5 + 2.5 * np.sin(a) * (0.4 + 0.6 * (i % 2)))
                             for i, a in enumerate(np.linspace(0, 2 * np.pi, 14, endpoint=False))]),
}


@pytest.mark.parametrize("y_desc", [True, False])
def test_mean_and_max_equal_exactextract_on_tricky_polygons(y_desc):
    da = forecast(y_desc=y_desc)
    v = villages(TRICKY.values())
    got = village_rainfall(v, da)
    ref_mean, ref_max = reference(da, v)
    assert got["village"].values.tolist() == v["code"].tolist()
    assert got["mean"].dtype == np.float32 and got.sizes == {"village": len(v), "time": 4}
    assert np.abs(got["mean"].values - ref_mean).max() <= 1e-4
    assert np.array_equal(got["max"].values, ref_max.astype(np.float32))
    frac = dict(zip(TRICKY, got["covered_fraction"].values, strict=True))
    assert frac["partly outside"] == pytest.approx(3.2 * 3.5 / (5.7 * 6.5))
    assert all(f == pytest.approx(1.0) for k, f in frac.items() if k != "partly outside")


def test_point_village_takes_its_cell_and_off_grid_village_is_nan():
    da = forecast()
    v = villages([shapely.Point(3.7, 2.2), shapely.Point(40, 40), shapely.box(1, 1, 2, 2)])
    with pytest.warns(CoverageWarning, match="not on the forecast grid"):
        got = village_rainfall(v, da)
    cell = da.sel(x=3.5, y=2.5).values
    assert np.array_equal(got["mean"].values[0], cell) and np.array_equal(got["max"].values[0], cell)
    assert np.isnan(got["mean"].values[1]).all() and np.isnan(got["max"].values[1]).all()
    assert got["covered_fraction"].values.tolist() == [1.0, 0.0, 1.0]


@pytest.mark.parametrize("seed", [7, 8])
def test_random_polygons_equal_exactextract(seed):
    rng = np.random.default_rng(seed)
    geoms = []
    for _ in range(60):
        cx, cy = rng.uniform(-1, 13), rng.uniform(-1, 10)
        n = rng.integers(3, 12)
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        rad = rng.uniform(0.05, 3.0, n)
        ring = np.column_stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)])
        p = shapely.make_valid(shapely.Polygon(ring))
        p = shapely.union_all([g for g in shapely.get_parts(p) if g.geom_type == "Polygon"])
        if rng.random() < 0.3:
            p = p.difference(shapely.Point(cx, cy).buffer(rng.uniform(0.05, 0.5)))
        if not p.is_empty and p.intersects(shapely.box(0, 0, 12, 9)):
            geoms.append(p)
    da = forecast(nt=6, seed=seed)
    v = villages(geoms)
    got = village_rainfall(v, da)
    ref_mean, ref_max = reference(da, v)
    assert np.abs(got["mean"].values - ref_mean).max() <= 1e-4
    assert np.array_equal(got["max"].values, ref_max.astype(np.float32))


def test_geographic_grid_with_metric_villages_matches_exactextract_fraction_weighting():
    # exactextract's mean on a degree grid weights by coverage fraction only (no cell area)
    da = forecast(nx=20, ny=16, x0=117.0, y0=30.0, d=0.05, crs="EPSG:4326")
    rng = np.random.default_rng(5)
    pts = rng.uniform([117.1, 30.1], [117.9, 30.7], (25, 2))
    v = villages([shapely.Point(x, y).buffer(0.04 + 0.08 * rng.random()) for x, y in pts], crs="EPSG:4326")
    v_metric = v.to_crs("EPSG:32650")
    got = village_rainfall(v_metric, da)
    ref_mean, ref_max = reference(da, v_metric.to_crs("EPSG:4326"))
    assert np.abs(got["mean"].values - ref_mean).max() <= 1e-4
    assert np.array_equal(got["max"].values, ref_max.astype(np.float32))


@pytest.mark.parametrize("engine", ENGINES)
def test_nan_cells_are_left_out_and_reported(engine):
    da = forecast(nan_cells=[(1, 2, 2), (1, 2, 3), (3, 5, 5)])
    v = villages([shapely.box(1.5, 1.5, 4.5, 3.5), shapely.box(5, 5, 6, 6), shapely.box(8, 6, 10, 8)])
    g = GridDef.from_dataarray(da)
    w = coverage_weights(v, g)
    out = aggregate(w, da.values.reshape(4, -1), engine=engine)
    ref_mean, ref_max = reference(da, v)
    assert np.array_equal(np.isnan(out["mean"]), np.isnan(ref_mean))     # exactextract skips NaN too
    assert np.nanmax(np.abs(out["mean"] - ref_mean)) <= 1e-4
    assert np.array_equal(out["max"], ref_max.astype(np.float32), equal_nan=True)
    # village 0 (area 6 cells) holds the 2 whole cells that are NaN at t=1 -> 4/6 covered at worst;
    # village 1 is exactly the cell that is NaN at t=3
    assert out["covered_fraction"].tolist() == pytest.approx([4 / 6, 0.0, 1.0])
    assert np.isnan(out["mean"][1, 3]) and not np.isnan(out["mean"][1, :3]).any()


@pytest.mark.parametrize("engine", ENGINES)
def test_engines_agree_and_stats_can_be_chosen(engine):
    da = forecast(nt=5, seed=4)
    rng = np.random.default_rng(2)
    xyr = rng.uniform([0, 0, 0.1], [12, 9, 2.5], (40, 3))
    v = villages([shapely.Point(x, y).buffer(r) for x, y, r in xyr])
    w = coverage_weights(v, GridDef.from_dataarray(da))
    vals = da.values.reshape(5, -1)
    a = aggregate(w, vals, ("mean", "max"), engine=engine)
    b = aggregate(w, vals, ("mean",), engine="numpy")
    c = aggregate(w, vals.astype(np.float64), ("max",), engine=engine)
    assert np.abs(a["mean"] - b["mean"]).max() < 1e-5 and "max" not in b and "mean" not in c
    assert np.array_equal(a["max"], c["max"])
    with pytest.raises(InputError, match="unknown stat"):
        aggregate(w, vals, ("median",))


def test_blocks_of_villages_and_time_give_the_same_result():
    da = forecast(nt=8, seed=9)
    rng = np.random.default_rng(11)
    v = villages([shapely.Point(x, y).buffer(r) for x, y, r in rng.uniform([0, 0, 0.2], [12, 9, 2], (30, 3))])
    w = coverage_weights(v, GridDef.from_dataarray(da))
    full = village_rainfall(v, da, weights=w)
    parts = [village_rainfall(v.iloc[i:i + 7], da.isel(time=slice(t, t + 3)), weights=w)
             for i in range(0, 30, 7) for t in range(0, 8, 3)]
    merged = xr.combine_by_coords([p.drop_vars("covered_fraction") for p in parts])
    merged = merged.sel(village=full["village"].values)
    assert np.array_equal(merged["mean"].values, full["mean"].values)
    assert np.array_equal(merged["max"].values, full["max"].values)
    # the weights of a block are a row slice
    blk = village_rainfall(None, da, weights=w.take(slice(7, 14)))
    assert np.array_equal(blk["mean"].values, full["mean"].values[7:14])


def test_contract_coords_attrs_and_wrong_grid():
    da = forecast()
    v = villages([shapely.box(1, 1, 3, 3)])
    out = village_rainfall(v, da)
    assert out.attrs["reference_time"] == "2026-07-01T00:00:00+00:00" and out.attrs["source"] == "test"
    assert np.array_equal(out["time"].values, da["time"].values)
    assert "interval" in out.coords and out["covered_fraction"].dims == ("village",)
    w = coverage_weights(v, GridDef.from_dataarray(da))
    with pytest.raises(ForecastError, match="another grid"):
        village_rainfall(v, forecast(x0=0.5), weights=w)
    with pytest.raises(ForecastError, match="dims"):
        village_rainfall(v, da.rename(time="step"))


def test_rainfall_table_long_form():
    da = forecast(nt=2)
    v = villages([shapely.box(1, 1, 3, 3), shapely.box(4, 4, 5, 5)])
    out = village_rainfall(v, da)
    tab = rainfall_table(out)
    assert tab.columns.tolist() == ["village", "time", "stat", "mm"]
    assert len(tab) == 2 * 2 * 2 and str(tab["time"].dt.tz) == "UTC"
    row = tab[(tab.village == v.code[1]) & (tab.stat == "max")].iloc[1]
    assert row["mm"] == pytest.approx(float(out["max"].sel(village=v.code[1]).values[1]))


def test_benchmark_smoke_prints_figures_and_small_difference():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_rainfall.py"), "--smoke"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for name in ("exactextract raster-sequential", "riskmap cold", "riskmap warm", "peak MB", "ratios"):
        assert name in out
    diff = float(re.search(r"max \|diff\| ([0-9.e+-]+) mm", out).group(1))
    assert diff <= 1e-3
    secs = [float(s) for s in re.findall(r"^\S.*?\s(\d+\.\d{4})\s", out, flags=re.M)]
    assert len(secs) >= 3 and all(s > 0 for s in secs)


def test_accepts_a_region_like_object_and_keeps_its_village_order():
    from types import SimpleNamespace

    da = forecast()
    v = villages([shapely.box(4, 4, 6, 6), shapely.box(1, 1, 2, 2)])
    region = SimpleNamespace(villages=v)
    out = village_rainfall(region, da)
    assert out["village"].values.tolist() == v["code"].tolist()
    assert float(out["mean"].values[1, 0]) == pytest.approx(float(da.sel(x=1.5, y=1.5).values[0]))


def test_time_fastest_memory_layout_reads_without_copy_and_gives_the_same_numbers():
    da = forecast(nt=7, seed=12, nan_cells=[(2, 3, 3)])
    buf = np.ascontiguousarray(da.values.transpose(1, 2, 0))            # (y, x, time) in memory
    da_t = da.copy(data=buf.transpose(2, 0, 1))
    assert not da_t.values.flags.c_contiguous
    rng = np.random.default_rng(4)
    xyr = rng.uniform([0, 0, 0.2], [12, 9, 2.5], (25, 3))
    v = villages([shapely.Point(x, y).buffer(r) for x, y, r in xyr])
    w = coverage_weights(v, GridDef.from_dataarray(da))
    for stats in (("mean",), ("mean", "max")):
        a = village_rainfall(v, da, stats=stats, weights=w)
        b = village_rainfall(v, da_t, stats=stats, weights=w)
        for s in stats + ("covered_fraction",):
            assert np.array_equal(a[s].values, b[s].values, equal_nan=True)



def test_open_forecast_lays_values_out_time_fastest_and_everything_downstream_agrees():
    from riskmap.forecast import open_forecast
    from riskmap.windows import window_maxima_grid

    src = forecast(nt=5, seed=21, nan_cells=[(1, 2, 2)])
    ds = src.drop_vars("interval").to_dataset(name="precipitation")
    ds["precipitation"].attrs.update(units="mm", standard_name="precipitation_amount")
    with pytest.warns(DataWarning, match="1 of 108 grid cells have no data"):
        da = open_forecast(ds, crs="EPSG:32650", interval="1h", reference_time="2026-07-01T00:00Z")
    assert da.dims == ("time", "y", "x") and da.dtype == np.float32
    assert da.values.transpose(1, 2, 0).flags.c_contiguous             # (cells, time) rows in memory
    plain = da.copy(data=np.ascontiguousarray(da.values))                 # the same numbers, C order
    assert np.array_equal(da.values, src.values, equal_nan=True)
    rng = np.random.default_rng(8)
    xyr = rng.uniform([0, 0, 0.3], [12, 9, 2.0], (15, 3))
    v = villages([shapely.Point(x, y).buffer(r) for x, y, r in xyr])
    w = coverage_weights(v, GridDef.from_dataarray(da))
    for stats in (("mean",), ("mean", "max")):
        a, b = village_rainfall(v, da, stats, weights=w), village_rainfall(v, plain, stats, weights=w)
        for s in stats + ("covered_fraction",):
            assert np.array_equal(a[s].values, b[s].values, equal_nan=True)
    ref_mean, _ = reference(src, v)
    got = village_rainfall(v, da, weights=w)["mean"].values
    ok = ~np.isnan(ref_mean)
    assert np.abs(got[ok] - ref_mean[ok]).max() <= 1e-4
    wa, wb = window_maxima_grid(da, w, (1, 3)), window_maxima_grid(plain, w, (1, 3))
    assert np.array_equal(wa["max"].values, wb["max"].values, equal_nan=True)
    assert np.array_equal(wa["max_end"].values, wb["max_end"].values)
    ta = rainfall_table(village_rainfall(v, da, weights=w))
    pd.testing.assert_frame_equal(ta, rainfall_table(village_rainfall(v, plain, weights=w)))


@pytest.mark.skipif(not _kernels.HAVE_NUMBA, reason="the compiled kernel's group boundaries")
@pytest.mark.parametrize("layout", ["c", "time_fastest"])
def test_villages_across_group_boundaries_match_exact_float64_sums(layout):
    """Villages of 1 … 200 cells (one, two and many GROUP-cell groups), some with NaN cells."""
    nx, ny, nt = 30, 20, 6
    da = forecast(nx=nx, ny=ny, nt=nt, seed=9, nan_cells=[(1, 15, 22), (4, 2, 3)])
    sizes = [1, 3, 4, 5, 15, 16, 17, 31, 32, 33, 64, 120, 200]
    geoms, x, y = [], 0, 0
    for n in sizes:   # n whole cells in a row-major run (wrapping): exactly n cells, weight 1 each
        cols = [((x + i) % nx, (y + (x + i) // nx) % ny) for i in range(n)]
        cells = [shapely.box(cx, cy, cx + 1, cy + 1) for cx, cy in cols]
        geoms.append(shapely.union_all(cells))
        x = (x + n + 7) % nx
        y = (y + 3) % ny
    v = villages(geoms)
    w = coverage_weights(v, GridDef.from_dataarray(da))
    assert np.diff(w.matrix.indptr).tolist() == sizes
    vals = da.values.reshape(nt, -1)
    if layout == "time_fastest":
        vals = np.ascontiguousarray(vals.T).T
    got = aggregate(w, vals, ("mean", "max"), engine="numba")
    m = w.matrix
    rows = [m.indices[m.indptr[i]:m.indptr[i + 1]] for i in range(len(sizes))]
    with_nan = [n for n, cols in zip(sizes, rows, strict=True) if np.isnan(vals[:, cols]).any()]
    assert with_nan and max(with_nan) > 16          # a NaN cell inside a multi-group village
    for i, cols in enumerate(rows):
        x64 = vals[:, cols].astype(np.float64)
        with np.errstate(invalid="ignore"):
            want = np.nanmean(x64, axis=1)       # unit weights: the plain mean of non-NaN cells
        assert np.allclose(got["mean"][i], want, rtol=2e-6, atol=0, equal_nan=True), sizes[i]
        assert np.array_equal(got["max"][i], np.nanmax(vals[:, cols], axis=1), equal_nan=True), sizes[i]
