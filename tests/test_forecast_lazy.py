"""open_forecast(..., chunks=): the same contract, numbers, checks and messages as in memory, lazily.

Every file is made in code in tmp_path (the helpers of test_forecast_cf / test_forecast_formats).
Each case is opened in memory and lazily with several time chunks; the lazy result must be
dask-backed and, computed, identical (values bit for bit, coords, attrs, CRS), with the same
warnings; a refused input must raise the same ForecastError message.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import shapely
import xarray as xr
from test_forecast_cf import T0, H, demo_like, hours, write
from test_forecast_formats import geotiff, wrf_dataset
from test_rainfall import villages

from riskmap.errors import CoverageWarning, DataWarning, ForecastError
from riskmap.forecast import open_forecast
from riskmap.rainfall import village_rainfall


@pytest.fixture(autouse=True, scope="module")
def _dask():
    try:
        import dask.array  # noqa: F401
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("dask is not installed: CI installs riskmap[test], which brings it")
        pytest.skip("dask not installed (pip install 'riskmap[dask]')")


def zarr(ds: xr.Dataset, path) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr's notes on consolidated metadata / v3 specs
        ds.to_zarr(path, mode="w")
    return str(path)


def acc(*levels: float) -> np.ndarray:
    """An accumulation since T0 on the 3 × 4 demo grid, varied per cell so chunk seams show."""
    base = 1.0 + np.arange(12.0).reshape(3, 4) / 10
    return np.stack([base * v for v in levels])


def _rate_3h(tmp):
    ends = hours(3, 6)
    return write(demo_like(np.full((2, 3, 4), 2.0), units="mm h-1", std="precipitation_flux", ends=ends,
                           starts=ends - 3 * H, cell_methods="time: mean"), tmp / "r.nc"), {}


def _override_no_bounds(tmp):
    ds = xr.Dataset({"tp": (("time", "lat", "lon"), acc(0.0, 2.0, 5.0, 6.0, 9.0), {"units": "m"})},
                    coords={"time": hours(0, 6, 12, 18, 24), "lat": [30.0, 30.1, 30.2],
                            "lon": [1.0, 2.0, 3.0, 4.0]})
    return write(ds, tmp / "o.nc"), {"accumulated": True, "reference_time": "2024-07-15T08:00+08:00",
                                     "crs": "EPSG:4326", "max_intensity_mm_h": 2000}


def _noise(tmp):
    vals = np.ones((4, 3, 4))
    vals[2, 0, 0] = -0.001
    vals[3, 1, 1] = -0.002
    return write(demo_like(vals), tmp / "n.nc"), {}


def _fill(tmp):
    vals = np.ones((4, 3, 4))
    vals[0, 0, :2] = -999.0
    vals[3, 2, 3] = -999.0
    path = tmp / "f.nc"
    demo_like(vals).to_netcdf(path, encoding={"precip": {"_FillValue": -999.0}})
    return str(path), {}


def _multi(tmp):
    a = demo_like(np.full((2, 3, 4), 1.0), ends=hours(1, 2))
    b = demo_like(np.full((2, 3, 4), 2.0), ends=hours(3, 4))
    return [write(b, tmp / "b.nc"), write(a, tmp / "a.nc")], {}


def _multi_acc(tmp):
    files = []
    for i, v in enumerate((1.0, 4.0, 4.5), start=1):
        ds = demo_like(acc(v), ends=hours(i), starts=np.array([T0]))
        files.append(write(ds, tmp / f"s{i}.nc"))
    return files, {}


def _bounds_start(tmp):
    ends = hours(1, 2)
    ds = demo_like(np.full((2, 3, 4), 2.0), ends=ends)
    ds = ds.assign_coords(time=("time", ends - H, {"bounds": "time_bnds"}))
    ds["time"].encoding["units"] = "minutes since 2024-07-15 00:00:00"
    return write(ds, tmp / "start.nc"), {}


def _single_rate(tmp):
    ds = xr.Dataset({"pr": (("time", "lat", "lon"), np.full((1, 2, 2), 1 / 600), {"units": "kg m-2 s-1"})},
                    coords={"time": hours(1), "lat": ("lat", [0.0, 1.0], {"units": "degrees_north"}),
                            "lon": ("lon", [0.0, 1.0], {"units": "degrees_east"})})
    return write(ds, tmp / "one.nc"), {"interval": "10min"}


CASES = {
    "demo": lambda t: (write(demo_like(np.arange(24.0).reshape(2, 3, 4) / 10), t / "d.nc"), {}),
    "ascending lat, 0-360 lon": lambda t: (write(demo_like(
        np.arange(24.0).reshape(3, 2, 4), lat=(10.0, 11.0), lon=(0.0, 90.0, 180.0, 270.0)), t / "g.nc"), {}),
    **{f"units {u}": (lambda t, u=u, v=v: (write(demo_like(np.full((3, 3, 4), v), units=u), t / "u.nc"), {}))
       for u, v in [("mm", 2.0), ("m", 0.002), ("kg m-2", 2.0), ("kg m-2 s-1", 1 / 1800), ("mm/h", 2.0),
                    ("mm s-1", 1 / 1800), ("cm", 0.2)]},
    "rate over 3 h": _rate_3h,
    "accumulated (bounds)": lambda t: (write(demo_like(acc(1, 3, 6, 6.5, 9, 12, 12.25),
                                                       ends=hours(*range(1, 8)), starts=np.full(7, T0)),
                                             t / "acc.nc"), {}),
    "irregular accumulated": lambda t: (write(demo_like(acc(1, 2, 3, 9, 12), ends=hours(1, 2, 3, 6, 9),
                                                        starts=np.full(5, T0)), t / "irr.nc"), {}),
    "accumulated override, no bounds": _override_no_bounds,
    "small negative noise": _noise,
    "fill values": _fill,
    "multi-file": _multi,
    "multi-file accumulated": _multi_acc,
    "time_index": lambda t: (write(demo_like(acc(1, 3, 6), ends=hours(1, 2, 3), starts=np.full(3, T0)),
                                   t / "ti.nc"), {"time_index": -2}),
    "bounds label the start": _bounds_start,
    "single rate step": _single_rate,
    "zarr demo": lambda t: (zarr(demo_like(np.arange(36.0).reshape(3, 3, 4) / 10), t / "d.zarr"), {}),
    "zarr accumulated": lambda t: (zarr(demo_like(acc(1, 3, 6, 7, 8), ends=hours(1, 2, 3, 4, 5),
                                                  starts=np.full(5, T0)), t / "a.zarr"), {}),
}


def opened(source, chunks=None, **options):
    """The result (computed) and the warnings (category, message) of one open_forecast call."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        da = open_forecast(source, chunks=chunks, **options)
    if chunks is not None:
        import dask.array as dsa

        assert isinstance(da.data, dsa.Array), "chunks= must give a dask-backed result"
        da = da.compute()
    return da, [(w.category, str(w.message)) for w in seen if issubclass(w.category, DataWarning)]


def assert_same(lazy: xr.DataArray, eager: xr.DataArray) -> None:
    xr.testing.assert_identical(lazy, eager)
    np.testing.assert_array_equal(lazy.values.view(np.uint32), eager.values.view(np.uint32))  # bit for bit
    assert lazy.rio.crs == eager.rio.crs and lazy.dtype == np.float32


@pytest.mark.parametrize("chunks", [{"time": 1}, {"time": 2}, "auto", {"time": 3, "y": 2, "x": 3}])
@pytest.mark.parametrize("case", list(CASES))
def test_lazy_equals_eager_bit_for_bit_with_the_same_warnings(tmp_path, case, chunks):
    source, options = CASES[case](tmp_path)
    eager, eager_warnings = opened(source, **options)
    lazy, lazy_warnings = opened(source, chunks=chunks, **options)
    assert_same(lazy, eager)
    assert lazy_warnings == eager_warnings


def test_cases_warn_where_the_eager_tests_say(tmp_path):
    _, w = opened(_noise(tmp_path)[0], chunks={"time": 1})
    assert w == [(DataWarning, "n.nc: variable 'precip': 2 slightly negative values (down to -0.002 mm, "
                               "float noise) clipped to 0")]
    _, w = opened(_fill(tmp_path)[0], chunks={"time": 3})
    assert w == [(DataWarning, "f.nc: variable 'precip': 3 of 12 grid cells have no data (NaN or fill value) "
                               "in at least one time step")]


def test_deaccumulation_across_chunk_boundaries(tmp_path):
    # 7 steps of an accumulation since 00Z; chunks of 2 and 3 put seams after steps 1, 2, 3, 5
    levels = (1.0, 3.0, 6.0, 6.5, 9.0, 12.0, 12.25)
    path = write(demo_like(acc(*levels), ends=hours(*range(1, 8)), starts=np.full(7, T0)), tmp_path / "a.nc")
    want = np.diff(np.concatenate([[0.0], levels]))
    for k in (1, 2, 3):
        da = open_forecast(path, chunks={"time": k})
        assert da.chunks[0][0] == k
        assert da[:, 0, 0].values.tolist() == pytest.approx(want.tolist())
        assert da[:, 2, 3].values.tolist() == pytest.approx((want * 2.1).tolist())


@pytest.mark.parametrize("chunks", [{"time": 1}, {"time": 2}])
def test_bad_values_raise_the_same_error(tmp_path, chunks):
    bad = {}
    vals = np.ones((3, 3, 4))
    vals[2, 1, 1] = -3.0
    bad["negative"] = (write(demo_like(vals), tmp_path / "n.nc"), {})
    bad["de-accumulated negative"] = (write(demo_like(acc(5.0, 6.0, 1.0), ends=hours(1, 2, 3),
                                                      starts=np.full(3, T0)), tmp_path / "dn.nc"), {})
    vals = np.ones((3, 3, 4))
    vals[1, 2, 2], vals[2, 0, 0] = 350.0, 420.0
    bad["intensity"] = (write(demo_like(vals), tmp_path / "i.nc"), {})
    bad["intensity, option"] = (bad["intensity"][0], {"max_intensity_mm_h": "100"})
    bad["units"] = (write(demo_like(np.ones((2, 3, 4)), units="K"), tmp_path / "u.nc"), {})
    bad["no variable"] = (write(demo_like(np.ones((2, 3, 4)), name="t2m", std="air_temperature", units="K"),
                                tmp_path / "x.nc"), {})
    bad["duplicate times"] = (write(demo_like(np.ones((2, 3, 4)), ends=hours(1, 1)), tmp_path / "dt.nc"), {})
    bad["no crs"] = (xr.Dataset({"pr": (("time", "y", "x"), np.ones((2, 2, 2)), {"units": "mm"})},
                                coords={"time": hours(1, 2), "y": [1000.0, 0.0], "x": [0.0, 1000.0]}), {})
    moved = demo_like(np.ones((2, 3, 4)), ends=hours(3, 4), lon=(100.5, 100.6, 100.7, 100.8))
    bad["grid moves between files"] = ([write(demo_like(np.ones((2, 3, 4))), tmp_path / "a.nc"),
                                        write(moved, tmp_path / "c.nc")], {})
    for what, (source, options) in bad.items():
        with pytest.raises(ForecastError) as eager:
            open_forecast(source, **options)
        with pytest.raises(ForecastError) as lazy:
            open_forecast(source, chunks=chunks, **options)
        assert str(lazy.value) == str(eager.value), what
    with pytest.raises(ForecastError, match=r"i\.nc: variable 'precip': 2 values exceed .* 420\.0 mm/h at "
                                            r"2024-07-15T03:00"):
        open_forecast(bad["intensity"][0], chunks=chunks)


def test_formats_read_in_memory_refuse_chunks(tmp_path):
    tif = tmp_path / "r.tif"
    geotiff(tif, np.ones((2, 3, 4)), band_tags=[{"units": "mm"}] * 2,
            tags={"reference_time": "2024-07-15T00Z"})
    with pytest.raises(ForecastError, match=r"r\.tif: chunks= is not supported for GeoTIFF input"):
        open_forecast(tif, chunks={"time": 1}, times="2024-07-15T01Z,2024-07-15T02Z")
    grib = tmp_path / "r.grib2"
    grib.write_bytes(b"GRIB" + b"\0" * 12)
    with pytest.raises(ForecastError, match=r"r\.grib2: chunks= is not supported for GRIB input"):
        open_forecast(grib, chunks="auto")
    wrf = write(wrf_dataset(), tmp_path / "wrfout_d01.nc")
    with pytest.raises(ForecastError, match=r"wrfout_d01\.nc: chunks= is not supported for WRF input"):
        open_forecast(wrf, chunks={"time": 1})
    with pytest.raises(ForecastError, match="chunks= names dimension 'member'"):
        open_forecast(write(demo_like(np.ones((2, 3, 4))), tmp_path / "d.nc"), chunks={"member": 1})


class TaskSizes:
    """A dask callback recording every task's result size in bytes (arrays only)."""

    def __init__(self) -> None:
        from dask.callbacks import Callback

        self.sizes: list[int] = []

        class _CB(Callback):
            def _posttask(cb, key, result, dsk, state, worker_id):  # noqa: N805
                self.sizes.append(int(getattr(result, "nbytes", 0)))

        self.callback = _CB()


def test_memory_bounded_open_and_lazy_result(tmp_path):
    # 48 steps × 60 × 80 float64: 1.8 MB in the file, 0.9 MB as float32; chunks of 4 steps: 150 kB float64
    nt, ny, nx = 48, 60, 80
    rng = np.random.default_rng(5)
    ends = hours(*range(1, nt + 1))
    ds = demo_like(np.cumsum(rng.gamma(0.5, 1.0, (nt, ny, nx)), axis=0), ends=ends, starts=np.full(nt, T0),
                   lat=np.linspace(40, 30, ny), lon=np.linspace(100, 110, nx))
    path = write(ds, tmp_path / "big.nc")
    full = nt * ny * nx * 8
    chunk = 4 * ny * nx * 8
    sizes = TaskSizes()
    with sizes.callback:
        da = open_forecast(path, chunks={"time": 4})
    assert da.chunks == ((4,) * 12, (ny,), (nx,))
    assert sizes.sizes, "the checks pass computes"
    assert max(sizes.sizes) <= chunk < full / 10          # never more than one chunk in one task
    sizes.sizes.clear()
    with sizes.callback:
        rain = village_rainfall(villages([shapely.box(101, 31, 103, 33), shapely.box(105, 35, 109, 39)],
                                         crs="EPSG:4326"), da)
        assert not sizes.sizes, "nothing computed until asked"
        step = da.isel(time=slice(8, 12)).compute()
    assert max(sizes.sizes) <= chunk and step.shape == (4, ny, nx)
    eager = open_forecast(path)
    assert_same(da.compute(), eager)
    xr.testing.assert_identical(rain.compute(), village_rainfall(
        villages([shapely.box(101, 31, 103, 33), shapely.box(105, 35, 109, 39)], crs="EPSG:4326"), eager))


def test_village_rainfall_on_a_lazily_opened_file_equals_the_eager_result(tmp_path):
    rng = np.random.default_rng(7)
    nt = 7
    path = write(demo_like(rng.gamma(0.8, 2.0, (nt, 8, 10)), ends=hours(*range(1, nt + 1)),
                           lat=30 + 0.1 * np.arange(8), lon=100 + 0.1 * np.arange(10)), tmp_path / "fc.nc")
    v = villages([shapely.box(100.1, 30.1, 100.5, 30.4), shapely.Point(100.72, 30.33).buffer(0.13),
                  shapely.box(100.0, 30.5, 100.9, 30.7)], crs="EPSG:4326")
    eager = village_rainfall(v, open_forecast(path))
    lazy = village_rainfall(v, open_forecast(path, chunks={"time": 3}))
    assert lazy["mean"].chunks == ((3,), (3, 3, 1))
    xr.testing.assert_identical(lazy.compute(), eager)          # no NaN: bit for bit


def test_check_coverage_of_a_lazy_grid_computes_only_the_nan_map(tmp_path):
    from riskmap.forecast import check_coverage

    vals = np.ones((6, 3, 4))
    vals[0, 0, :2] = -999.0          # two cells NaN at one step, over the first village
    path = tmp_path / "f.nc"
    demo_like(vals, ends=hours(*range(1, 7))).to_netcdf(path, encoding={"precip": {"_FillValue": -999.0}})
    v = villages([shapely.box(99.99, 30.19, 100.01, 30.21), shapely.box(100.15, 30.0, 100.25, 30.1),
                  shapely.box(100.25, 29.0, 100.5, 29.5)], crs="EPSG:4326")
    with warnings.catch_warnings(record=True) as seen_eager:
        warnings.simplefilter("always")
        eager = check_coverage(open_forecast(str(path)), v)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        lazy_fc = open_forecast(str(path), chunks={"time": 2})
    sizes = TaskSizes()
    with warnings.catch_warnings(record=True) as seen_lazy, sizes.callback:
        warnings.simplefilter("always")
        lazy = check_coverage(lazy_fc, v)
    assert lazy == eager and eager.outside and eager.no_data and eager.missing_cells == 2
    coverage = [str(w.message) for w in seen_eager if issubclass(w.category, CoverageWarning)]
    assert [str(w.message) for w in seen_lazy] == coverage and len(coverage) == 3
    assert max(sizes.sizes) <= 2 * 3 * 4 * 4          # one time chunk of float32, never the 6 steps
