"""Observed rainfall: gauge tables, IDW onto the grid and villages, merging at now; grid coverage."""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rioxarray  # noqa: F401
import shapely
import xarray as xr

from riskmap.errors import CoverageWarning, DataWarning, ForecastError
from riskmap.forecast import (
    check_coverage,
    gauges_to_grid,
    gauges_to_points,
    merge_observed,
    open_forecast,
    open_observed,
    read_gauge_table,
)

T0 = np.datetime64("2024-07-15T00:00", "ns")


def grid(hours, values, x=(100.0, 100.1, 100.2), y=(0.1, 0.0), step_h=1) -> xr.DataArray:
    """A forecast in the contract: constant ``values`` per step."""
    t = np.array([T0 + np.timedelta64(h, "h") for h in hours])
    data = np.stack([np.full((len(y), len(x)), v, "float32") for v in values])
    return xr.DataArray(
        data, dims=("time", "y", "x"),
        coords={"time": t, "interval": ("time", np.full(len(hours), np.timedelta64(step_h, "h"), "m8[ns]")),
                "y": list(y), "x": list(x)},
        attrs={"source": "fc.nc", "reference_time": "2024-07-15T00:00:00+00:00", "units": "mm"},
    ).rio.write_crs("EPSG:4326")


def gauge_csv(tmp_path, rows=None) -> str:
    rows = rows or [
        ("A", 100.0, 0.0, "2024-07-15 09:00", 10.0),          # naive: Beijing time -> 01 UTC
        ("B", 100.2, 0.0, "2024-07-15T01:00:00+00:00", 20.0),  # explicit offset
        ("A", 100.0, 0.0, "2024-07-15 10:00", 4.0),            # 02 UTC; B did not report
    ]
    df = pd.DataFrame(rows, columns=["station", "lon", "lat", "time", "mm"])
    path = tmp_path / "gauges.csv"
    df.to_csv(path, index=False)
    return str(path)


def test_read_gauge_table_times_to_utc(tmp_path):
    t = read_gauge_table(gauge_csv(tmp_path))
    assert t["time"].astype(str).tolist() == [
        "2024-07-15 01:00:00", "2024-07-15 01:00:00", "2024-07-15 02:00:00"]
    t = read_gauge_table(gauge_csv(tmp_path), tz="UTC")
    assert t["time"].astype(str).tolist()[-1] == "2024-07-15 10:00:00"


def test_idw_onto_the_grid_hand_checked(tmp_path):
    like = grid([1], [0.0])
    da = gauges_to_grid(gauge_csv(tmp_path), like)
    assert da.dims == ("time", "y", "x") and da.dtype == np.float32
    assert da.time.values.astype("datetime64[h]").astype(str).tolist() == ["2024-07-15T01", "2024-07-15T02"]
    assert (da.interval.values == np.timedelta64(1, "h")).all()
    # 01 UTC, row y=0: on A, midway, on B
    assert da.sel(y=0.0)[0].values.tolist() == pytest.approx([10.0, 15.0, 20.0])
    # (100.0, 0.1): dA = 0.1, dB = sqrt(0.05): weights 100 and 20 -> (1000 + 400) / 120
    assert float(da.sel(y=0.1, x=100.0)[0]) == pytest.approx(1400 / 120, rel=1e-6)
    # 02 UTC: only A reported
    assert da[1].values == pytest.approx(np.full((2, 3), 4.0))
    assert da.rio.crs.to_epsg() == 4326
    # power 1: (100.0, 0.1): weights 10 and 1/sqrt(.05)
    p1 = gauges_to_grid(gauge_csv(tmp_path), like, power=1)
    w_b = 1 / np.sqrt(0.05)
    assert float(p1.sel(y=0.1, x=100.0)[0]) == pytest.approx((10 * 10 + w_b * 20) / (10 + w_b), rel=1e-6)
    # max_distance: cells farther than 0.05° from every station get NaN
    with pytest.warns(DataWarning, match="grid cells have no data"):
        near = gauges_to_grid(gauge_csv(tmp_path), like, max_distance=0.05)
    assert np.isnan(float(near.sel(y=0.0, x=100.1)[0])) and float(near.sel(y=0.0, x=100.2)[0]) == 20.0


def test_idw_at_villages(tmp_path):
    villages = gpd.GeoDataFrame({"code": ["110101001001", "110101001002"]},
                                geometry=[shapely.Point(100.1, 0.0), shapely.box(99.99, -0.01, 100.01, 0.01)],
                                crs="EPSG:4326")
    v = gauges_to_points(gauge_csv(tmp_path), villages)
    assert v.dims == ("village", "time") and v["village"].values.tolist() == ["110101001001", "110101001002"]
    assert v.sel(village="110101001001").values.tolist() == pytest.approx([15.0, 4.0])
    assert float(v.sel(village="110101001002")[0]) == pytest.approx(10.0)


def test_gauge_table_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("station,lon,lat,when,mm\nA,100,0,2024-07-15 09:00,1\n")
    with pytest.raises(ForecastError, match=r"bad\.csv: gauge table lacks column\(s\) time"):
        read_gauge_table(bad)
    rows = [("A", 100.0, 0.0, "2024-07-15 09:00", -1.0)]
    with pytest.raises(ForecastError, match=r"station A .* column 'mm' is negative"):
        read_gauge_table(gauge_csv(tmp_path, rows))
    rows = [("A", 100.0, 0.0, "2024-07-15 09:00", 1.0), ("A", 100.0, 0.0, "2024-07-15T01:00Z", 2.0)]
    with pytest.raises(ForecastError, match="station A has two rows for 2024-07-15 01:00:00 UTC"):
        read_gauge_table(gauge_csv(tmp_path, rows))
    rows = [("A", 100.0, 0.0, "yesterday-ish", 1.0)]
    with pytest.raises(ForecastError, match=r"row 2 \(station A\): column 'time'"):
        read_gauge_table(gauge_csv(tmp_path, rows))
    rows = [("A", 100.0, 0.0, "2024-07-15 09:00", 1.0), ("A", 100.5, 0.0, "2024-07-15 10:00", 1.0)]
    with pytest.raises(ForecastError, match="station A has more than one location"):
        read_gauge_table(gauge_csv(tmp_path, rows))
    with pytest.raises(ForecastError, match="one time step .* pass interval="):
        gauges_to_grid(gauge_csv(tmp_path, rows[:1]), grid([1], [0.0]))
    assert float(gauges_to_grid(gauge_csv(tmp_path, rows[:1]), grid([1], [0.0]), interval="1h").max()) == 1.0


def test_open_observed_table_needs_like(tmp_path):
    with pytest.raises(ForecastError, match="gauges.csv: a gauge table needs like="):
        open_observed(gauge_csv(tmp_path))
    da = open_observed(gauge_csv(tmp_path), like=grid([1], [0.0]))
    assert da.attrs["kind"] == "observed" and da.sizes["time"] == 2


def test_open_observed_grid_file(tmp_path):
    path = tmp_path / "obs.nc"
    ds = grid([1, 2], [1.0, 2.0]).rename("precipitation").drop_vars("interval").to_dataset()
    ds["precipitation"].attrs["units"] = "mm"
    ds.to_netcdf(path)
    da = open_observed(path, interval="1h")
    assert da.attrs["kind"] == "observed" and da[:, 0, 0].values.tolist() == [1.0, 2.0]


def test_merge_observed_wins_up_to_now(tmp_path):
    obs = gauges_to_grid(gauge_csv(tmp_path), grid([1], [0.0]))
    fc = grid([1, 2, 3, 4], [7.0, 7.0, 1.0, 2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = merge_observed(obs, fc, "2024-07-15T10:00+08:00")
    assert m.time.values.astype("datetime64[h]").astype(str).tolist() == [
        "2024-07-15T01", "2024-07-15T02", "2024-07-15T03", "2024-07-15T04"]
    assert m["observed"].values.tolist() == [True, True, False, False]
    assert m.sel(y=0.0)[:, 1].values.tolist() == pytest.approx([15.0, 4.0, 1.0, 2.0])
    assert m.attrs["now"] == "2024-07-15T02:00:00+00:00" and m.rio.crs.to_epsg() == 4326


def test_merge_reports_a_gap(tmp_path):
    obs = gauges_to_grid(gauge_csv(tmp_path), grid([1], [0.0]))  # up to 02 UTC
    fc = grid([1, 2, 3, 4, 5], [9.0, 9.0, 9.0, 9.0, 3.0])
    # gauges stop at 02 UTC, now is 04 UTC: the forecast fills 02–04 (a missing hour is not a dry hour)
    with pytest.warns(DataWarning, match=r"no observation for 2024-07-15T02:00–2024-07-15T04:00 UTC before "
                      r"now: forecast rain"):
        m = merge_observed(obs, fc, "2024-07-15T04:00Z")
    assert m["observed"].values.tolist() == [True, True, False, False, False]
    assert m[2:, 0, 0].values.tolist() == [9.0, 9.0, 3.0]
    # a 3-hourly forecast interval straddling the last observation is not double counted: reported
    fc3 = grid([3, 6], [6.0, 6.0], step_h=3)
    with pytest.warns(DataWarning, match=r"no rainfall for 2024-07-15T02:00–2024-07-15T03:00 UTC"):
        m = merge_observed(obs, fc3, "2024-07-15T02:00Z")
    assert m.time.values.astype("datetime64[h]").astype(str).tolist()[-1] == "2024-07-15T06"


def test_merge_needs_same_grid_and_aware_now(tmp_path):
    obs = gauges_to_grid(gauge_csv(tmp_path), grid([1], [0.0]))
    other = grid([3], [1.0], x=(101.0, 101.1, 101.2))
    with pytest.raises(ForecastError, match="not on the grid"):
        merge_observed(obs, other, "2024-07-15T02:00Z")
    with pytest.raises(ForecastError, match="no UTC offset"):
        merge_observed(obs, grid([3], [1.0]), "2024-07-15T02:00")


def test_check_coverage_names_villages_and_missing_cells():
    fc = open_forecast(grid([1], [1.0], x=(0.5, 1.5, 2.5), y=(1.5, 0.5)).rio.write_crs("EPSG:3857"))
    villages = gpd.GeoDataFrame(
        {"code": ["110101001001", "110101001002", "110101001003"]},
        geometry=[shapely.box(0.2, 0.2, 0.8, 0.8), shapely.box(2.5, 1.5, 4.0, 3.0), shapely.Point(10, 10)],
        crs="EPSG:3857")
    with pytest.warns(CoverageWarning, match=r"2 of 3 villages are not \(fully\) covered by the forecast "
                                             r"grid: 110101001002, 110101001003"):
        rep = check_coverage(fc, villages)
    assert rep.outside == ("110101001002", "110101001003") and not rep.ok
    with pytest.raises(ForecastError, match="2 of 3 villages"):
        check_coverage(fc, villages, strict=True)
    inside = villages.iloc[:1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_coverage(fc, inside).ok
    holey = fc.copy()
    holey[0, 1, 0] = np.nan
    with pytest.warns(CoverageWarning) as rec:
        rep = check_coverage(holey, inside)
    msgs = [str(r.message) for r in rec]
    assert rep.no_data == ("110101001001",) and rep.missing_cells == 1
    assert any("1 villages have only missing (NaN) cells: 110101001001" in m for m in msgs)
    assert any("1 grid cells over the villages have no data" in m for m in msgs)
    # villages in another CRS are reprojected to the grid's
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_coverage(fc, inside.to_crs("EPSG:4326")).ok
    with pytest.warns(CoverageWarning, match=r"the region's bounds \(0, 0, 5, 1\) are not covered by the "
                                             r"forecast grid \(0, 0, 3, 2\)"):
        check_coverage(fc, (0.0, 0.0, 5.0, 1.0))
