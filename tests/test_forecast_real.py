"""The three real files in ../shared/data/forecasts: read (with explicit options) or refused clearly.

Expected numbers are cross-checked against an independent read of the same file (eccodes message
values, netCDF4 arrays), not copied from riskmap's own output.
"""

from __future__ import annotations

import lzma
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from pyproj import Transformer

from riskmap.errors import DataWarning, ForecastError
from riskmap.forecast import open_forecast

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "forecasts"
if not SHARED.is_dir():  # the checkout may live elsewhere; the data sit beside /work/main
    SHARED = Path("/work/shared/data/forecasts")
CMC = "CMC_RDPA_APCP-024-0100cutoff_SFC_0_ps10km_2023121806_000.grib2"
ECMWF = "ecmwf-opendata_20250912120000-0h-oper-fc_tprate.grib2"
WRF = "wrf_2005-08-28_katrina_d02_subset.nc"


def unpack(name: str, tmp_path: Path) -> Path:
    """Decompress a shared .xz into tmp_path (nothing is written beside the shared data)."""
    out = tmp_path / name
    with lzma.open(SHARED / f"{name}.xz") as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return out


def grib_messages(path: Path) -> list[dict]:
    """Independent read of every message with eccodes: keys and values (missing -> NaN)."""
    import eccodes

    out = []
    with open(path, "rb") as fh:
        while (h := eccodes.codes_grib_new_from_file(fh)) is not None:
            vals = eccodes.codes_get_values(h).astype("float64")
            if eccodes.codes_get(h, "bitmapPresent"):
                vals[vals == eccodes.codes_get(h, "missingValue")] = np.nan
            out.append({
                "param": (eccodes.codes_get(h, "discipline"), eccodes.codes_get(h, "parameterCategory"),
                          eccodes.codes_get(h, "parameterNumber")),
                "values": vals,
                "lat": eccodes.codes_get_array(h, "latitudes"),
                "lon": eccodes.codes_get_array(h, "longitudes"),
                "lat0": eccodes.codes_get(h, "latitudeOfFirstGridPointInDegrees"),
                "lon0": eccodes.codes_get(h, "longitudeOfFirstGridPointInDegrees"),
            })
            eccodes.codes_release(h)
    return out


def test_cmc_rdpa_polar_stereographic_precipitation_message(tmp_path):
    path = unpack(CMC, tmp_path)
    msgs = grib_messages(path)
    assert [m["param"] for m in msgs] == [(0, 1, 8), (0, 1, 193)]
    precip = msgs[0]["values"]
    with pytest.warns(DataWarning, match=r"20283 of 770440 grid cells have no data"):
        da = open_forecast(path)
    assert da.shape == (1, 824, 935)
    assert da.attrs["variable"] == "0/1/8"
    assert da.time.values[0] == np.datetime64("2023-12-18T06:00", "ns")
    assert da.interval.values[0] == np.timedelta64(24, "h")
    assert da.attrs["reference_time"] == "2023-12-18T06:00:00+00:00"
    crs = da.rio.crs
    assert crs.is_projected and "Polar_Stereographic" in crs.to_wkt()
    # the precipitation message, not the confidence index (whose values are <= 1)
    assert int(np.isnan(da.values).sum()) == int(np.isnan(precip).sum()) == 20283
    assert float(da.max()) == pytest.approx(np.nanmax(precip), rel=1e-6)
    assert float(da.sum()) == pytest.approx(np.nansum(precip), rel=1e-5)
    assert float(da.max()) > 100
    # grid: the south-west cell centre is GRIB's first grid point
    to_ll = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    lon, lat = to_ll.transform(float(da.x[0]), float(da.y[-1]))
    assert lat == pytest.approx(msgs[0]["lat0"], abs=1e-4)
    assert lon % 360 == pytest.approx(msgs[0]["lon0"], abs=1e-4)
    # and a known cell: the wettest point in eccodes' order is the same value at the same place
    k = int(np.nanargmax(precip))
    lon_k, lat_k = msgs[0]["lon"][k], msgs[0]["lat"][k]
    xk, yk = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon_k, lat_k)
    cell = da.sel(x=xk, y=yk, method="nearest")
    assert float(cell[0]) == pytest.approx(precip[k], rel=1e-6)
    assert not list(tmp_path.glob("*.idx")) and not list(tmp_path.glob("*.aux.xml"))


def test_cmc_confidence_index_is_not_precipitation(tmp_path):
    path = unpack(CMC, tmp_path)
    with pytest.raises(ForecastError, match=r"no message '0/1/999'.*messages seen: unknown\(0/1/8\), "
                                            r"unknown\(0/1/193\)"):
        open_forecast(path, variable="0/1/999")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        with pytest.raises(ForecastError, match=r"variable '0/1/193': no units given"):
            open_forecast(path, variable="0/1/193")


def test_ecmwf_tprate_needs_an_interval(tmp_path):
    path = unpack(ECMWF, tmp_path)
    with pytest.raises(ForecastError, match=r"tprate.*is a rate \('kg m\*\*-2 s\*\*-1'\).*pass interval="):
        open_forecast(path)


def test_ecmwf_tprate_global_grid_normalised(tmp_path):
    path = unpack(ECMWF, tmp_path)
    (msg,) = grib_messages(path)
    assert msg["lon0"] == 180.0  # the file starts at 180°E and runs round to 179.75°E
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        da = open_forecast(path, interval="1h")
    assert da.shape == (1, 721, 1440)
    assert da.x.values[0] == -180.0 and da.x.values[-1] == 179.75 and (np.diff(da.x.values) > 0).all()
    assert da.y.values[0] == 90.0 and da.y.values[-1] == -90.0
    assert da.rio.crs.is_geographic
    assert da.time.values[0] == np.datetime64("2025-09-12T12:00", "ns")
    assert da.interval.values[0] == np.timedelta64(1, "h")
    rate = msg["values"]
    assert float(da.max()) == pytest.approx(rate.max() * 3600, rel=1e-6)
    assert float(da.sum(dtype="float64")) == pytest.approx(rate.sum() * 3600, rel=1e-5)
    for lon, lat in ((0.0, 0.0), (116.5, 40.0), (-90.0, -30.25)):
        k = int(np.flatnonzero((msg["lat"] == lat) & (np.isclose(msg["lon"] % 360, lon % 360)))[0])
        assert float(da.sel(x=lon, y=lat)[0]) == pytest.approx(rate[k] * 3600, rel=1e-6)
    # a 3-hour interval triples the amount
    assert float(open_forecast(path, interval="3h").max()) == pytest.approx(rate.max() * 3 * 3600, rel=1e-6)


def test_wrf_moving_nest_is_refused_with_the_reason():
    with pytest.raises(ForecastError, match=r"RAINC\+RAINNC\+RAINSH.*coordinates change between times — a "
                                            r"moving nest.*time_index="):
        open_forecast(SHARED / WRF)


def test_wrf_single_step_reads_rain_since_model_start():
    import netCDF4

    with netCDF4.Dataset(SHARED / WRF) as nc:
        total = sum(np.asarray(nc[v][3], dtype="float64") for v in ("RAINC", "RAINNC", "RAINSH"))
        lat, lon = np.asarray(nc["XLAT"][3]), np.asarray(nc["XLONG"][3])
    da = open_forecast(SHARED / WRF, time_index=3)
    assert da.shape == (1, 48, 48)
    assert da.time.values[0] == np.datetime64("2005-08-28T21:00", "ns")
    assert da.interval.values[0] == np.timedelta64(21, "h")
    assert da.attrs["reference_time"] == "2005-08-28T00:00:00+00:00"
    assert da.rio.crs.to_dict()["proj"] == "merc"
    assert float(da.max()) == pytest.approx(total.max(), rel=1e-6)
    assert float(da.sum(dtype="float64")) == pytest.approx(total.sum(), rel=1e-5)
    # the grid: projected cell centres back to WRF's own XLAT/XLONG at both corners
    to_ll = Transformer.from_crs(da.rio.crs, "EPSG:4326", always_xy=True)
    for (row, col), (j, i) in (((-1, 0), (0, 0)), ((0, -1), (-1, -1)), ((10, 20), (37, 20))):
        x_, y_ = to_ll.transform(float(da.x[col]), float(da.y[row]))
        assert (y_, x_) == pytest.approx((float(lat[j, i]), float(lon[j, i])), abs=2e-4)
        assert float(da[0, row, col]) == pytest.approx(total[j, i], rel=1e-6)
    assert np.allclose(np.diff(da.x.values), 10000.0) and np.allclose(np.diff(da.y.values), -10000.0)
    # time_index counts from the end too
    assert float(open_forecast(SHARED / WRF, time_index=-1).max()) == float(da.max())
    with pytest.raises(ForecastError, match="time_index=9 is out of range"):
        open_forecast(SHARED / WRF, time_index=9)
