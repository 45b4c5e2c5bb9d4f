"""GRIB, WRF and GeoTIFF inputs made in code: metadata-driven conversions and bad inputs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import rasterio
import xarray as xr
from pyproj import CRS, Transformer
from rasterio.transform import from_origin

from riskmap.errors import DataWarning, ForecastError
from riskmap.forecast import open_forecast

# ---------------------------------------------------------------- GRIB


def grib_message(fh, values: np.ndarray, *, step: str, param=(0, 1, 8), lon0=100.0, dlon=0.1,
                 date=20240715, time=0, pdt=8):
    """Write one GRIB2 message on a regular lat/lon grid (north row first) with eccodes."""
    import eccodes

    ny, nx = values.shape
    h = eccodes.codes_grib_new_from_samples("regular_ll_sfc_grib2")
    for key, value in (("Ni", nx), ("Nj", ny), ("latitudeOfFirstGridPointInDegrees", 30.0 + 0.1 * (ny - 1)),
                       ("longitudeOfFirstGridPointInDegrees", lon0),
                       ("latitudeOfLastGridPointInDegrees", 30.0),
                       ("longitudeOfLastGridPointInDegrees", lon0 + dlon * (nx - 1)),
                       ("iDirectionIncrementInDegrees", dlon), ("jDirectionIncrementInDegrees", 0.1),
                       ("jScansPositively", 0), ("dataDate", date), ("dataTime", time),
                       ("productDefinitionTemplateNumber", pdt), ("discipline", param[0]),
                       ("parameterCategory", param[1]), ("parameterNumber", param[2])):
        eccodes.codes_set(h, key, value)
    if pdt == 8:
        eccodes.codes_set(h, "typeOfStatisticalProcessing", 1)
        eccodes.codes_set(h, "stepRange", step)
    else:
        eccodes.codes_set(h, "forecastTime", int(step))
    eccodes.codes_set_values(h, values.astype("float64").ravel())
    eccodes.codes_write(h, fh)
    eccodes.codes_release(h)


def test_grib_accumulated_from_zero_is_deaccumulated(tmp_path):
    path = tmp_path / "acc.grib2"
    base = np.arange(6, dtype="float64").reshape(2, 3)
    with open(path, "wb") as fh:
        grib_message(fh, base * 0 + 280.0, step="0", param=(0, 0, 0), pdt=0)  # temperature: ignored
        for k, step in enumerate(("0-1", "0-2", "0-5"), start=1):
            grib_message(fh, base * k, step=step)
    da = open_forecast(path)
    assert da.time.values.astype("datetime64[h]").astype(str).tolist() == [
        "2024-07-15T01", "2024-07-15T02", "2024-07-15T05"]
    assert da.interval.values.astype("timedelta64[h]").astype(int).tolist() == [1, 1, 3]
    # north row first in the file; y descending in the result: cell (row 1, col 2) = base 5
    assert da[:, 1, 2].values.tolist() == [5.0, 5.0, 5.0]
    assert da.y.values.tolist() == pytest.approx([30.1, 30.0])
    assert da.attrs["reference_time"] == "2024-07-15T00:00:00+00:00"
    # the override: the same messages read as they are, one interval each (1, 2, 5 h)
    raw = open_forecast(path, accumulated=False)
    assert raw[:, 1, 2].values.tolist() == [5.0, 10.0, 15.0]
    assert raw.interval.values.astype("timedelta64[h]").astype(int).tolist() == [1, 2, 5]


def test_grib_per_interval_and_0_360_longitudes(tmp_path):
    path = tmp_path / "int.grib2"
    vals = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])
    with open(path, "wb") as fh:
        grib_message(fh, vals, step="0-3", lon0=0.0, dlon=90.0)
        grib_message(fh, vals * 2, step="3-6", lon0=0.0, dlon=90.0)
    da = open_forecast(path)
    assert da.x.values.tolist() == [-180.0, -90.0, 0.0, 90.0]
    assert da[0, 0].values.tolist() == [3.0, 4.0, 1.0, 2.0]
    assert da[1, 1].values.tolist() == [14.0, 16.0, 10.0, 12.0]
    assert (da.interval.values == np.timedelta64(3, "h")).all()


def test_grib_without_precipitation_lists_messages(tmp_path):
    path = tmp_path / "t.grib2"
    with open(path, "wb") as fh:
        grib_message(fh, np.ones((2, 2)), step="0", param=(0, 0, 0), pdt=0)
    with pytest.raises(ForecastError, match=r"t\.grib2: no precipitation message.*messages seen: .*0/0/0"):
        open_forecast(path)


def test_grib_truncated_and_empty(tmp_path):
    path = tmp_path / "full.grib2"
    with open(path, "wb") as fh:
        grib_message(fh, np.ones((20, 30)), step="0-1")
    data = path.read_bytes()
    cut = tmp_path / "cut.grib2"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ForecastError, match=r"cut\.grib2"):
        open_forecast(cut)
    empty = tmp_path / "empty.grib2"
    empty.write_bytes(b"")
    with pytest.raises(ForecastError, match="empty file"):
        open_forecast(empty)


# ---------------------------------------------------------------- WRF


def wrf_dataset(moving: bool = False) -> xr.Dataset:
    """A 3-step WRF-like file on a Lambert grid (MAP_PROJ=1) of 3 x 4 cells of 12 km."""
    crs = CRS.from_proj4("+proj=lcc +lat_1=30 +lat_2=60 +lat_0=35 +lon_0=110 +R=6370000 +units=m")
    to_ll = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    x = -100000.0 + 12000.0 * np.arange(4)
    y = -50000.0 + 12000.0 * np.arange(3)
    lats, lons = [], []
    for t in range(3):
        shift = 12000.0 * t if moving else 0.0
        gx, gy = np.meshgrid(x + shift, y)
        lon, lat = to_ll.transform(gx, gy)
        lats.append(lat)
        lons.append(lon)
    acc_c = np.stack([np.full((3, 4), v) for v in (1.0, 2.0, 4.0)])
    acc_nc = np.stack([np.full((3, 4), v) for v in (0.5, 1.5, 2.5)])
    acc_nc[:, 0, 0] += np.array([0.0, 10.0, 10.0])  # one cell: 10 mm in the second interval
    times = np.array([b"2024-07-15_01:00:00", b"2024-07-15_02:00:00", b"2024-07-15_03:00:00"], dtype="S19")
    dims = ("Time", "south_north", "west_east")
    return xr.Dataset(
        {"Times": (("Time",), times), "XLAT": (dims, np.stack(lats).astype("float32")),
         "XLONG": (dims, np.stack(lons).astype("float32")),
         "RAINC": (dims, acc_c.astype("float32"), {"units": "mm"}),
         "RAINNC": (dims, acc_nc.astype("float32"), {"units": "mm"}),
         "RAINSH": (dims, np.zeros((3, 3, 4), "float32"), {"units": "mm"})},
        attrs={"MAP_PROJ": np.int32(1), "TRUELAT1": 30.0, "TRUELAT2": 60.0, "MOAD_CEN_LAT": 35.0,
               "STAND_LON": 110.0, "DX": 12000.0, "DY": 12000.0,
               "SIMULATION_START_DATE": "2024-07-15_00:00:00",
               "TITLE": "OUTPUT FROM WRF V4 MODEL"},
    )


def test_wrf_static_domain_deaccumulated(tmp_path):
    path = tmp_path / "wrfout_d01.nc"
    wrf_dataset().to_netcdf(path)
    da = open_forecast(path)
    assert da.attrs["variable"] == "RAINC+RAINNC+RAINSH"
    assert da.attrs["reference_time"] == "2024-07-15T00:00:00+00:00"
    assert (da.interval.values == np.timedelta64(1, "h")).all()
    assert da[:, 1, 1].values.tolist() == pytest.approx([1.5, 2.0, 3.0])
    # south-west cell (file row 0) is the last row north-up
    assert da[:, -1, 0].values.tolist() == pytest.approx([1.5, 12.0, 3.0])
    # x/y rebuilt from the float32 XLAT/XLONG corner: within a metre of the true centres
    assert da.x.values == pytest.approx(-100000.0 + 12000.0 * np.arange(4), abs=1.0)
    assert da.y.values == pytest.approx(-50000.0 + 12000.0 * np.arange(3)[::-1], abs=1.0)
    assert da.rio.crs.to_dict()["proj"] == "lcc"


def test_wrf_moving_nest_refused_and_one_step_readable(tmp_path):
    path = tmp_path / "wrfout_d02.nc"
    wrf_dataset(moving=True).to_netcdf(path)
    with pytest.raises(ForecastError, match="moving nest"):
        open_forecast(path)
    one = open_forecast(path, time_index=1)
    assert one.interval.values[0] == np.timedelta64(2, "h")
    assert float(one[0, -1, 0]) == pytest.approx(2.0 + 11.5)
    assert one.x.values[0] == pytest.approx(-100000.0 + 12000.0, abs=1.0)


def test_wrf_without_rain_variables(tmp_path):
    ds = wrf_dataset().drop_vars(["RAINC", "RAINNC", "RAINSH"])
    ds["T2"] = ds["XLAT"] * 0 + 300
    with pytest.raises(ForecastError, match="WRF output without RAINC/RAINNC/RAINSH; variables seen"):
        open_forecast(ds)


# ---------------------------------------------------------------- GeoTIFF


def geotiff(path, bands: np.ndarray, *, crs="EPSG:4326", band_tags=None, tags=None, nodata=-9999.0,
            descriptions=None):
    with rasterio.open(path, "w", driver="GTiff", width=bands.shape[2], height=bands.shape[1],
                       count=bands.shape[0], dtype="float32", crs=crs, nodata=nodata,
                       transform=from_origin(100.0, 30.2, 0.1, 0.1)) as dst:
        dst.write(bands.astype("float32"))
        if tags:
            dst.update_tags(**tags)
        for b, bt in enumerate(band_tags or [], start=1):
            dst.update_tags(b, **bt)
        for b, d in enumerate(descriptions or [], start=1):
            dst.set_band_description(b, d)
    return path


def test_geotiff_band_tags_units_nodata(tmp_path):
    bands = np.array([[[0.001, 0.002, 0.003], [0.004, 0.005, -9999]], [[0.001, 0, 0], [0, 0, 0.006]]])
    path = geotiff(tmp_path / "f.tif", bands, tags={"reference_time": "2024-07-15T08:00+08:00"},
                   band_tags=[{"time": "2024-07-15T09:00+08:00", "units": "mm", "interval": "1h"},
                              {"time": "2024-07-15T04:00Z", "units": "m", "start_time": "2024-07-15T01:00Z"}])
    with pytest.raises(ForecastError, match="different units"):
        open_forecast(path)
    path = geotiff(tmp_path / "g.tif", bands, tags={"reference_time": "2024-07-15T08:00+08:00", "units": "m"},
                   band_tags=[{"time": "2024-07-15T09:00+08:00", "interval": "1h"},
                              {"time": "2024-07-15T04:00Z", "start_time": "2024-07-15T01:00Z"}])
    with pytest.warns(DataWarning, match="1 of 6 grid cells have no data"):
        da = open_forecast(path)
    assert da.time.values.astype("datetime64[h]").astype(str).tolist() == ["2024-07-15T01", "2024-07-15T04"]
    assert da.interval.values.astype("timedelta64[h]").astype(int).tolist() == [1, 3]
    assert da[0, 0].values == pytest.approx([1.0, 2.0, 3.0])  # m -> mm
    assert float(da[1, 1, 2]) == pytest.approx(6.0)
    assert np.isnan(float(da[0, 1, 2]))
    assert da.y.values == pytest.approx([30.15, 30.05])
    assert da.x.values == pytest.approx([100.05, 100.15, 100.25])


def test_geotiff_times_from_descriptions_or_option(tmp_path):
    bands = np.ones((2, 2, 3))
    path = geotiff(tmp_path / "d.tif", bands, tags={"units": "mm"},
                   descriptions=["2024-07-15T01:00+00:00", "2024-07-15T02:00+00:00"])
    da = open_forecast(path)
    assert (da.interval.values == np.timedelta64(1, "h")).all() and float(da.sum()) == 12.0
    bare = geotiff(tmp_path / "b.tif", bands)
    with pytest.raises(ForecastError, match="band 1 has no time.*pass times="):
        open_forecast(bare, units="mm")
    with pytest.raises(ForecastError, match="no units given: pass units="):
        open_forecast(bare, times="2024-07-15T01:00Z,2024-07-15T02:00Z")
    da = open_forecast(bare, times="2024-07-15T09:00+08:00,2024-07-15T10:00+08:00", units="mm/h")
    assert str(da.time.values[0]).startswith("2024-07-15T01:00")
    with pytest.raises(ForecastError, match="2 bands"):
        open_forecast(bare, times=["2024-07-15T01:00Z"], units="mm")


def test_geotiff_without_crs(tmp_path):
    path = geotiff(tmp_path / "n.tif", np.ones((1, 2, 3)), crs=None, tags={"units": "mm"},
                   band_tags=[{"time": "2024-07-15T01:00Z", "interval": "1h"}])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GDAL notes the missing georeferencing
        with pytest.raises(ForecastError, match="no CRS found"):
            open_forecast(path)
        assert open_forecast(path, crs="EPSG:4490").rio.crs.to_epsg() == 4490


def test_grib_one_step_per_file_accumulated_from_zero(tmp_path):
    """As ECMWF publishes tp: one file per step, each accumulated from the start."""
    files = []
    for k, step in enumerate(("0-6", "0-12"), start=1):
        path = tmp_path / f"tp_{k}.grib2"
        with open(path, "wb") as fh:
            grib_message(fh, np.full((2, 3), 4.0 * k * k), step=step)
        files.append(path)
    da = open_forecast(files[::-1])
    assert da[:, 0, 0].values.tolist() == [4.0, 12.0]
    assert (da.interval.values == np.timedelta64(6, "h")).all()
    assert da.attrs["source"] == "tp_1.grib2, tp_2.grib2"
