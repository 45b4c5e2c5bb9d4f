"""CF NetCDF ingest: the demo's shape of file, conversions, de-accumulation, orientation, bad inputs.

Every file is made in code in tmp_path with hand-checkable numbers.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr

from riskmap.errors import DataWarning, ForecastError
from riskmap.forecast import open_forecast

T0 = np.datetime64("2024-07-15T00:00", "ns")
H = np.timedelta64(1, "h")


def hours(*hs: float) -> np.ndarray:
    return np.array([T0 + np.timedelta64(int(h * 60), "m") for h in hs], dtype="datetime64[ns]")


def demo_like(values: np.ndarray, *, units: str = "mm", std: str = "precipitation_amount",
              ends: np.ndarray | None = None, starts: np.ndarray | None = None,
              lat=(30.2, 30.1, 30.0), lon=(100.0, 100.1, 100.2, 100.3), cell_methods: str = "time: sum",
              name: str = "precip", grid_mapping: bool = True, ref: str | None = "2024-07-15T00:00:00+00:00",
              ) -> xr.Dataset:
    """A CF dataset shaped like the demo forecast: amounts per interval with time_bnds and a crs variable."""
    nt = values.shape[0]
    ends = hours(*range(1, nt + 1)) if ends is None else ends
    starts = ends - H if starts is None else starts
    attrs = {"units": units, "standard_name": std, "cell_methods": cell_methods}
    if grid_mapping:
        attrs["grid_mapping"] = "crs"
    ds = xr.Dataset(
        {name: (("time", "lat", "lon"), values, attrs),
         "time_bnds": (("time", "nv"), np.stack([starts, ends], axis=1))},
        coords={"time": ("time", ends, {"bounds": "time_bnds", "standard_name": "time"}),
                "lat": ("lat", list(lat), {"standard_name": "latitude", "units": "degrees_north"}),
                "lon": ("lon", list(lon), {"standard_name": "longitude", "units": "degrees_east"})},
    )
    if grid_mapping:
        ds["crs"] = xr.DataArray(np.int32(0), attrs={"grid_mapping_name": "latitude_longitude",
                                                    "semi_major_axis": 6378137.0,
                                                    "inverse_flattening": 298.257222101})
    if ref:
        ds.attrs["reference_time"] = ref
    ds["time"].encoding["units"] = "minutes since 2024-07-15 00:00:00"
    return ds


def write(ds: xr.Dataset, path) -> str:
    ds.to_netcdf(path)
    return str(path)


def test_demo_shaped_file(tmp_path):
    vals = np.arange(2 * 3 * 4, dtype="float64").reshape(2, 3, 4) / 10
    path = write(demo_like(vals), tmp_path / "demo.nc")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        da = open_forecast(path)
    assert da.dims == ("time", "y", "x") and da.dtype == np.float32
    assert da.attrs["units"] == "mm" and da.attrs["source"] == "demo.nc"
    assert da.attrs["reference_time"] == "2024-07-15T00:00:00+00:00"
    assert da.attrs["variable"] == "precip"
    assert list(da.time.values) == list(hours(1, 2))
    assert (da.interval.values == H).all()
    # latitude was written north-first already: y stays descending, x ascending
    assert da.y.values.tolist() == [30.2, 30.1, 30.0]
    assert da.x.values.tolist() == [100.0, 100.1, 100.2, 100.3]
    assert da.rio.crs.is_geographic
    assert float(da[1, 0, 0]) == pytest.approx(1.2)
    assert float(da.sum()) == pytest.approx(vals.sum(), rel=1e-6)


def test_ascending_latitude_is_flipped_and_0_360_rolled(tmp_path):
    vals = np.zeros((1, 2, 4))
    vals[0, 0, 3] = 5.0  # lat 10 (south), lon 270 -> -90
    ds = demo_like(vals, lat=(10.0, 11.0), lon=(0.0, 90.0, 180.0, 270.0))
    da = open_forecast(write(ds, tmp_path / "g.nc"))
    assert da.y.values.tolist() == [11.0, 10.0]
    assert da.x.values.tolist() == [-180.0, -90.0, 0.0, 90.0]
    assert float(da.sel(y=10.0, x=-90.0)[0]) == 5.0
    assert float(da.sum()) == 5.0


@pytest.mark.parametrize(
    ("units", "value", "expected"),
    [("mm", 2.0, 2.0), ("m", 0.002, 2.0), ("kg m-2", 2.0, 2.0), ("kg m-2 s-1", 1 / 1800, 2.0),
     ("mm/h", 2.0, 2.0), ("mm s-1", 1 / 1800, 2.0), ("cm", 0.2, 2.0)],
)
def test_units_converted_to_mm_per_interval(tmp_path, units, value, expected):
    ds = demo_like(np.full((2, 3, 4), value), units=units, std="precipitation_amount")
    da = open_forecast(write(ds, tmp_path / "u.nc"))
    assert float(da[1, 1, 1]) == pytest.approx(expected, rel=1e-5)


def test_rate_over_three_hour_interval(tmp_path):
    ends = hours(3, 6)
    ds = demo_like(np.full((2, 3, 4), 2.0), units="mm h-1", std="precipitation_flux", ends=ends,
                   starts=ends - 3 * H, cell_methods="time: mean")
    da = open_forecast(write(ds, tmp_path / "r.nc"))
    assert float(da.max()) == pytest.approx(6.0)
    assert (da.interval.values == 3 * H).all()


def test_unknown_units_error_names_file_variable_and_units(tmp_path):
    ds = demo_like(np.ones((1, 3, 4)), units="K")
    with pytest.raises(ForecastError, match=r"u\.nc: variable 'precip': units 'K'"):
        open_forecast(write(ds, tmp_path / "u.nc"))


def test_accumulated_since_start_from_cell_methods_and_bounds(tmp_path):
    # accumulations 1, 3, 6 mm since 00Z at 01, 02, 03Z -> 1, 2, 3 mm per hour
    ends = hours(1, 2, 3)
    acc = np.stack([np.full((3, 4), v) for v in (1.0, 3.0, 6.0)])
    ds = demo_like(acc, ends=ends, starts=np.full(3, T0))
    da = open_forecast(write(ds, tmp_path / "acc.nc"))
    assert da[:, 0, 0].values.tolist() == [1.0, 2.0, 3.0]
    assert (da.interval.values == H).all()
    # the override: the same values read as they are
    with pytest.raises(ForecastError, match="conflicts|different"):
        open_forecast(write(ds, tmp_path / "acc2.nc"), accumulated=False, interval="1h")


def test_irregular_steps_hourly_then_three_hourly_accumulated(tmp_path):
    ends = hours(1, 2, 3, 6, 9)
    acc = np.stack([np.full((3, 4), v) for v in (1.0, 2.0, 3.0, 9.0, 12.0)])
    ds = demo_like(acc, ends=ends, starts=np.full(5, T0))
    da = open_forecast(write(ds, tmp_path / "irr.nc"))
    assert da[:, 2, 3].values.tolist() == [1.0, 1.0, 1.0, 6.0, 3.0]
    assert (da.interval.values.astype("timedelta64[h]").astype(int)).tolist() == [1, 1, 1, 3, 3]


def test_accumulated_override_without_bounds(tmp_path):
    acc = np.stack([np.full((3, 4), v) for v in (0.0, 2.0, 5.0)])
    ds = xr.Dataset({"tp": (("time", "lat", "lon"), acc, {"units": "m"})},
                    coords={"time": hours(0, 6, 12), "lat": [30.0, 30.1, 30.2], "lon": [1.0, 2.0, 3.0, 4.0]})
    da = open_forecast(ds, accumulated=True, reference_time="2024-07-15T08:00+08:00", crs="EPSG:4326",
                       max_intensity_mm_h=1000)
    # step 0 (the start itself) dropped; 2 m then 3 m over 6 h
    assert da[:, 0, 0].values.tolist() == [2000.0, 3000.0]
    assert list(da.time.values) == list(hours(6, 12))


def test_deaccumulation_negative_is_refused(tmp_path):
    ends = hours(1, 2)
    acc = np.stack([np.full((3, 4), 5.0), np.full((3, 4), 1.0)])
    ds = demo_like(acc, ends=ends, starts=np.full(2, T0))
    with pytest.raises(ForecastError, match=r"negative values, down to -4 mm.*accumulated=false"):
        open_forecast(write(ds, tmp_path / "neg.nc"))


def test_small_negative_noise_clipped_with_warning(tmp_path):
    vals = np.ones((1, 3, 4))
    vals[0, 0, 0] = -0.001
    with pytest.warns(DataWarning, match=r"1 slightly negative values .* clipped to 0"):
        da = open_forecast(write(demo_like(vals), tmp_path / "n.nc"))
    assert float(da[0, 0, 0]) == 0.0


def test_substantially_negative_is_refused(tmp_path):
    vals = np.ones((1, 3, 4))
    vals[0, 1, 1] = -3.0
    with pytest.raises(ForecastError, match=r"n\.nc: variable 'precip': 1 negative values, down to -3 mm"):
        open_forecast(write(demo_like(vals), tmp_path / "n.nc"))


def test_nan_and_fill_values_warn_with_count(tmp_path):
    vals = np.ones((2, 3, 4))
    vals[0, 0, :2] = -999.0
    ds = demo_like(vals)
    ds["precip"].encoding["_FillValue"] = -999.0
    ds["precip"].attrs["missing_value"] = -999.0
    path = tmp_path / "f.nc"
    ds.to_netcdf(path, encoding={"precip": {"_FillValue": -999.0}})
    with pytest.warns(DataWarning, match=r"f\.nc: variable 'precip': 2 of 12 grid cells have no data"):
        da = open_forecast(str(path))
    assert int(np.isnan(da.values).sum()) == 2


def test_intensity_above_plausibility_limit(tmp_path):
    vals = np.ones((1, 3, 4))
    vals[0, 2, 2] = 350.0
    path = write(demo_like(vals), tmp_path / "i.nc")
    with pytest.raises(ForecastError, match=r"1 values exceed the plausibility limit of 300 mm/h"):
        open_forecast(path)
    assert float(open_forecast(path, max_intensity_mm_h=400).max()) == 350.0
    with pytest.raises(ForecastError, match="plausibility limit of 100 mm/h"):
        open_forecast(path, max_intensity_mm_h="100")


def test_duplicate_and_non_increasing_times(tmp_path):
    ends = hours(1, 1)
    with pytest.raises(ForecastError, match="duplicate time 2024-07-15T01:00"):
        open_forecast(demo_like(np.ones((2, 3, 4)), ends=ends))
    ends = hours(2, 1)
    with pytest.raises(ForecastError, match="times are not increasing"):
        open_forecast(demo_like(np.ones((2, 3, 4)), ends=ends))


def test_no_time_steps(tmp_path):
    ds = demo_like(np.ones((1, 3, 4))).isel(time=slice(0, 0))
    with pytest.raises(ForecastError, match="no time steps"):
        open_forecast(write(ds, tmp_path / "e.nc"))
    ds = demo_like(np.ones((1, 3, 4))).isel(time=0).drop_vars(["time", "time_bnds"])
    with pytest.raises(ForecastError, match="no time steps"):
        open_forecast(ds)


def test_no_precipitation_variable_lists_variables(tmp_path):
    ds = demo_like(np.ones((1, 3, 4)), name="t2m", std="air_temperature", units="K")
    with pytest.raises(ForecastError, match=r"x\.nc: no precipitation variable.*variables seen: t2m"):
        open_forecast(write(ds, tmp_path / "x.nc"))
    with pytest.raises(ForecastError, match=r"no variable 'rain'"):
        open_forecast(write(ds, tmp_path / "y.nc"), variable="rain")


def test_variable_option_and_common_names():
    ds = demo_like(np.ones((1, 3, 4)), name="APCP", std="")
    ds["APCP"].attrs.pop("standard_name")
    ds["other"] = ds["APCP"] * 2
    assert open_forecast(ds).attrs["variable"] == "APCP"
    assert float(open_forecast(ds, variable="other").max()) == 2.0


def test_projected_grid_without_crs_is_refused_unless_given():
    ds = xr.Dataset({"pr": (("time", "y", "x"), np.ones((1, 2, 2)), {"units": "mm"})},
                    coords={"time": hours(1), "y": [1000.0, 0.0], "x": [0.0, 1000.0]})
    with pytest.raises(ForecastError, match="no CRS found.*pass crs="):
        open_forecast(ds, interval="1h")
    da = open_forecast(ds, interval="1h", crs="EPSG:32650")
    assert da.rio.crs.to_epsg() == 32650


def test_crs_from_crs_wkt_grid_mapping():
    from pyproj import CRS

    ds = xr.Dataset({"pr": (("time", "y", "x"), np.ones((1, 2, 2)), {"units": "mm", "grid_mapping": "gm"})},
                    coords={"time": hours(1), "y": [0.0, 1000.0], "x": [0.0, 1000.0]})
    ds["gm"] = xr.DataArray(0, attrs={"crs_wkt": CRS.from_epsg(4547).to_wkt()})
    da = open_forecast(ds, interval="1h")
    assert da.rio.crs.to_epsg() == 4547
    assert da.y.values.tolist() == [1000.0, 0.0]


def test_single_step_without_interval_is_refused():
    ds = xr.Dataset({"pr": (("time", "lat", "lon"), np.full((1, 2, 2), 1 / 600), {"units": "kg m-2 s-1"})},
                    coords={"time": hours(1), "lat": ("lat", [0.0, 1.0], {"units": "degrees_north"}),
                            "lon": ("lon", [0.0, 1.0], {"units": "degrees_east"})})
    with pytest.raises(ForecastError, match="pass interval="):
        open_forecast(ds)
    da = open_forecast(ds, interval="10min")
    assert float(da.max()) == pytest.approx(1.0) and da.interval.values[0] == np.timedelta64(10, "m")


def test_multi_file_along_time(tmp_path):
    a = demo_like(np.full((2, 3, 4), 1.0), ends=hours(1, 2))
    b = demo_like(np.full((2, 3, 4), 2.0), ends=hours(3, 4))
    pa, pb = write(a, tmp_path / "a.nc"), write(b, tmp_path / "b.nc")
    da = open_forecast([pb, pa])
    assert list(da.time.values) == list(hours(1, 2, 3, 4))
    assert da[:, 0, 0].values.tolist() == [1.0, 1.0, 2.0, 2.0]
    assert da.attrs["source"] == "a.nc, b.nc"
    c = demo_like(np.full((2, 3, 4), 2.0), ends=hours(3, 4), lon=(100.5, 100.6, 100.7, 100.8))
    with pytest.raises(ForecastError, match="coordinates change between times"):
        open_forecast([pa, write(c, tmp_path / "c.nc")])
    with pytest.raises(ForecastError, match="duplicate time"):
        open_forecast([pa, write(a, tmp_path / "a2.nc")])


def test_multi_file_accumulated_one_step_each(tmp_path):
    files = []
    for i, v in enumerate((1.0, 4.0), start=1):
        ds = demo_like(np.full((1, 3, 4), v), ends=hours(i), starts=np.array([T0]))
        files.append(write(ds, tmp_path / f"s{i}.nc"))
    da = open_forecast(files)
    assert da[:, 0, 0].values.tolist() == [1.0, 3.0]


def test_unreadable_empty_truncated_missing(tmp_path):
    empty = tmp_path / "empty.nc"
    empty.write_bytes(b"")
    with pytest.raises(ForecastError, match="empty.nc: empty file"):
        open_forecast(empty)
    junk = tmp_path / "junk.nc"
    junk.write_bytes(b"this is not netcdf at all")
    with pytest.raises(ForecastError, match="junk.nc: not a readable netcdf file"):
        open_forecast(junk)
    good = write(demo_like(np.ones((4, 3, 4))), tmp_path / "good.nc")
    data = open(good, "rb").read()
    cut = tmp_path / "cut.nc"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ForecastError, match="cut.nc"):
        open_forecast(cut)
    with pytest.raises(ForecastError, match="nothere.nc: no such file"):
        open_forecast(tmp_path / "nothere.nc")


def test_dataarray_input_and_unknown_option():
    ds = demo_like(np.full((1, 3, 4), 3.0))
    da = open_forecast(ds["precip"], interval="1h")
    assert float(da.max()) == 3.0
    again = open_forecast(da)  # the contract itself round-trips
    assert again.attrs["reference_time"] == da.attrs["reference_time"]
    assert (again.interval.values == da.interval.values).all() and again.rio.crs == da.rio.crs
    assert float(again.max()) == 3.0
    with pytest.raises(ForecastError, match="unknown forecast option 'intervall'"):
        open_forecast(ds, intervall="1h")


def test_input_dataset_is_not_modified():
    vals = np.ones((1, 3, 4))
    vals[0, 0, 0] = -0.001
    ds = demo_like(vals)
    before = ds["precip"].values.copy()
    with pytest.warns(DataWarning, match="clipped"):
        open_forecast(ds)
    np.testing.assert_array_equal(ds["precip"].values, before)


def test_time_index_selects_one_stored_step(tmp_path):
    ends = hours(1, 2, 3)
    acc = np.stack([np.full((3, 4), v) for v in (1.0, 3.0, 6.0)])
    path = write(demo_like(acc, ends=ends, starts=np.full(3, T0)), tmp_path / "acc.nc")
    one = open_forecast(path, time_index=1)  # the accumulation since the start, as stored
    assert one[:, 0, 0].values.tolist() == [3.0]
    assert one.interval.values[0] == np.timedelta64(2, "h")
    assert open_forecast(path, time_index=-1)[0, 0, 0] == 6.0
    with pytest.raises(ForecastError, match=r"acc\.nc: variable .precip.: time_index=3 is out of range"):
        open_forecast(path, time_index=3)


def test_bounds_rule_time_labelling_the_start_and_climatology_bounds(tmp_path):
    ends = hours(1, 2)
    ds = demo_like(np.full((2, 3, 4), 2.0), ends=ends)
    ds = ds.assign_coords(time=("time", ends - H, {"bounds": "time_bnds"}))  # time labels the START
    ds["time"].encoding["units"] = "minutes since 2024-07-15 00:00:00"
    da = open_forecast(write(ds, tmp_path / "start.nc"))
    assert list(da.time.values) == list(ends)  # the bounds rule: time = interval end
    ds2 = ds.assign_coords(time=("time", ends - H, {"climatology": "time_bnds"}))
    assert list(open_forecast(ds2).time.values) == list(ends)


def test_curvilinear_and_extra_dimensions_are_refused():
    lat2d = xr.DataArray(np.array([[30.0, 30.0], [30.1, 30.1]]), dims=("j", "i"))
    ds = xr.Dataset({"pr": (("time", "j", "i"), np.ones((1, 2, 2)), {"units": "mm"})},
                    coords={"time": hours(1), "lat": lat2d, "lon": lat2d + 70})
    with pytest.raises(ForecastError, match="cannot tell the x and y dimensions"):
        open_forecast(ds, interval="1h")
    ens = xr.Dataset({"pr": (("member", "time", "lat", "lon"), np.ones((3, 1, 2, 2)), {"units": "mm"})},
                     coords={"time": hours(1), "lat": ("lat", [0.0, 1.0], {"units": "degrees_north"}),
                             "lon": ("lon", [0.0, 1.0], {"units": "degrees_east"})})
    with pytest.raises(ForecastError, match="extra dimension 'member' of size 3; select one first"):
        open_forecast(ens, interval="1h")
    assert open_forecast(ens.isel(member=[0]), interval="1h").shape == (1, 2, 2)
