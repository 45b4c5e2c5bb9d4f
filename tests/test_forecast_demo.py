"""The demo forecast (NetCDF and Zarr) and open xarray objects (CF, cfgrib) through open_forecast."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
from test_forecast_formats import grib_message  # tests/ is on sys.path under pytest's default import mode

from riskmap.errors import ForecastError
from riskmap.forecast import open_forecast


@pytest.fixture(scope="module")
def demo_forecast() -> xr.Dataset:
    from riskmap.demo import build_demo

    return build_demo().forecast.isel(time=slice(0, 12))


def check_demo(da: xr.DataArray, ds: xr.Dataset) -> None:
    src = ds["precipitation_amount"]
    assert da.dims == ("time", "y", "x") and da.dtype == np.float32
    assert da.shape == (12, src.sizes["lat"], src.sizes["lon"])
    assert da.rio.crs.to_epsg() == 4490
    assert da.attrs["reference_time"] == "2024-07-15T00:00:00+00:00"
    assert (da.interval.values == np.timedelta64(1, "h")).all()
    assert list(da.time.values) == list(ds["time"].values)
    # same numbers, north-up; a cell compared by its coordinates
    flipped = src.sortby("lat", ascending=False).values
    np.testing.assert_array_equal(da.values, flipped)
    lat, lon = float(src.lat[3]), float(src.lon[5])
    assert float(da.sel(y=lat, x=lon)[7]) == float(src.sel(lat=lat, lon=lon)[7])


def test_demo_netcdf(demo_forecast, tmp_path):
    path = tmp_path / "forecast.nc"
    demo_forecast.to_netcdf(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        da = open_forecast(path)
    check_demo(da, demo_forecast)
    assert da.attrs["source"] == "forecast.nc" and da.attrs["variable"] == "precipitation_amount"


def test_demo_dataset_in_memory(demo_forecast):
    check_demo(open_forecast(demo_forecast), demo_forecast)


def test_demo_zarr(demo_forecast, tmp_path):
    path = tmp_path / "forecast.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr's notes on consolidated metadata
        demo_forecast.to_zarr(path, mode="w")
        da = open_forecast(path)
    check_demo(da, demo_forecast)
    assert da.attrs["source"] == "forecast.zarr"
    (tmp_path / "not_a_store").mkdir()
    with pytest.raises(ForecastError, match="is a directory, not a forecast file or Zarr store"):
        open_forecast(tmp_path / "not_a_store")


def test_cfgrib_dataset_accumulated_steps(tmp_path):
    path = tmp_path / "acc.grib2"
    base = np.arange(6, dtype="float64").reshape(2, 3)
    with open(path, "wb") as fh:
        for k, step in enumerate(("0-1", "0-2", "0-5"), start=1):
            grib_message(fh, base * k, step=step)
    ds = xr.open_dataset(path, engine="cfgrib", backend_kwargs={"indexpath": ""})
    assert not list(tmp_path.glob("*.idx"))
    # cfgrib names the field 'unknown' with units 'unknown': both must be given
    with pytest.raises(ForecastError, match="no precipitation variable.*variables seen: unknown"):
        open_forecast(ds)
    da = open_forecast(ds, variable="unknown", units="kg m-2")
    assert da[:, 1, 2].values.tolist() == [5.0, 5.0, 5.0]
    assert da.interval.values.astype("timedelta64[h]").astype(int).tolist() == [1, 1, 3]
    assert da.attrs["reference_time"] == "2024-07-15T00:00:00+00:00"
