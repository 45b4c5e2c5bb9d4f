"""Per-village rainfall on Dask: blocks of villages × time chunks, equal to the eager call.

Dask and distributed are in the ``test`` extra: without them these tests skip locally and FAIL
when ``CI=true``.

What "equal" means (the kernel's precision rule, :mod:`riskmap._kernels`): ``max`` and
``covered_fraction`` are bit for bit the eager ones in every chunking; ``mean`` is bit for bit
too, except for a village that sees a NaN cell at some time steps but not at others.  The kernel
recomputes a row that shows a NaN in float64 over all the time steps it is given; in a time
chunk without that NaN the same village takes the float32-group path, so those steps differ from
the eager ones by float32 rounding (checked here: ≤ 4 ulps).  A cell NaN at every step (a land
mask, the edge of a radar) leaves every village on the same path in every chunk: bit for bit.
"""

from __future__ import annotations

import mmap
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import shapely
import xarray as xr
from test_rainfall import forecast, villages

from riskmap.errors import InputError
from riskmap.grid import GridDef
from riskmap.rainfall import village_rainfall
from riskmap.rainfall_blocks import _cells_by_time, village_blocks
from riskmap.weights import coverage_weights
from riskmap.weights_cache import cached_coverage_weights, load_weights

ROOT = Path(__file__).resolve().parents[1]


def need(module: str):
    """Import a test-extra module; fail under CI, skip otherwise, when it is missing."""
    try:
        return __import__(module)
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{module} is not installed: CI installs riskmap[test], which brings it")
        pytest.skip(f"{module} not installed (pip install 'riskmap[dask]')")


STATIC_NAN = (2, 7)          # (row, col) NaN at every time step
PASSING_NAN = [(1, 2, 2), (1, 2, 3), (6, 5, 5)]      # (time, row, col) NaN at one step only


@pytest.fixture(scope="module")
def case():
    """A forecast with static and passing NaN cells, 30 round villages, their weights and the eager result."""
    nt = 8
    nan_cells = PASSING_NAN + [(t, *STATIC_NAN) for t in range(nt)]
    da = forecast(nt=nt, seed=9, nan_cells=nan_cells)
    rng = np.random.default_rng(11)
    v = villages([shapely.Point(x, y).buffer(r) for x, y, r in rng.uniform([0, 0, 0.2], [12, 9, 2], (30, 3))])
    w = coverage_weights(v, GridDef.from_dataarray(da))
    # villages touching a cell that is NaN at some steps but not all: mean within float32 rounding
    nan_any = np.isnan(da.values).reshape(nt, -1)
    passing = nan_any.any(axis=0) & ~nan_any.all(axis=0)
    touches = (w.matrix @ passing.astype(float)) > 0
    static = (w.matrix @ nan_any.all(axis=0).astype(float)) > 0
    assert touches.sum() >= 2 and (static & ~touches).sum() >= 1      # the case covers both kinds
    return da, v, w, village_rainfall(v, da, weights=w), touches


def assert_matches_eager(got: xr.Dataset, eager: xr.Dataset, touches: np.ndarray) -> None:
    """Everything identical (coords, attrs, dtypes, values) but the passing-NaN villages' mean, ≤ 4 ulps."""
    if "mean" in eager:
        a, e = got["mean"].values, eager["mean"].values
        assert a.dtype == e.dtype == np.float32
        assert np.array_equal(a[~touches], e[~touches], equal_nan=True)
        assert np.array_equal(np.isnan(a), np.isnan(e))
        ok = np.isnan(e) | (np.abs(a - e) <= 4 * np.spacing(np.abs(e)))
        assert ok.all()
        got, eager = got.drop_vars("mean"), eager.drop_vars("mean")
    xr.testing.assert_identical(got, eager)


@pytest.mark.parametrize("time_chunk", [1, 5, (3, 1, 4), 8])
@pytest.mark.parametrize("village_chunk", [1, 7, None])
def test_any_chunking_equals_the_eager_result(case, time_chunk, village_chunk):
    need("dask")
    da, v, w, eager, touches = case
    lazy = village_rainfall(v, da.chunk(time=time_chunk), weights=w, village_chunk=village_chunk)
    tchunks = da.chunk(time=time_chunk).chunks[0]
    vchunks = (30,) if village_chunk is None else tuple(np.diff([*range(0, 30, village_chunk), 30]))
    for s in ("mean", "max"):
        assert lazy[s].chunks == (vchunks, tchunks)
    assert lazy["covered_fraction"].chunks == (vchunks,)
    got = lazy.compute()
    assert_matches_eager(got, eager, touches)
    if time_chunk == 8:          # one time chunk: the same rows take the same paths — bit for bit
        assert np.array_equal(got["mean"].values, eager["mean"].values, equal_nan=True)
    assert got["covered_fraction"].values.min() < 1.0      # the NaN cells show


def test_mean_only_and_a_spatially_chunked_file_layout(case):
    need("dask")
    da, v, w, _, touches = case
    eager = village_rainfall(v, da, stats=("mean",), weights=w)
    tiled = da.chunk(time=3, y=4, x=5)              # spatial tiles: merged into one x/y chunk
    got = village_rainfall(v, tiled, stats=("mean",), weights=w, village_chunk=7)
    assert "max" not in got and got["mean"].chunks == ((7, 7, 7, 7, 2), (3, 3, 2))
    assert_matches_eager(got.compute(), eager, touches)


def test_one_task_per_village_block_and_time_chunk_one_layout_copy_per_time_chunk(case):
    need("dask")
    da, v, w, _, _ = case
    got = village_rainfall(None, da.chunk(time=(3, 1, 4)), weights=w, village_chunk=7)
    graph = dict(got.__dask_graph__())
    agg = [k for k in graph if isinstance(k, tuple) and re.fullmatch(r"village-rainfall-[0-9a-f]+", k[0])]
    layout = [k for k in graph if isinstance(k, tuple) and k[0].startswith("rainfall-cells-")]
    assert sorted((i, j) for _, i, j in agg) == [(i, j) for i in range(5) for j in range(3)]
    assert len(layout) == 3


def test_written_blockwise_to_zarr_and_merged_with_other_dask_results(case, tmp_path):
    dask = need("dask")
    da, v, w, eager, touches = case
    lazy = village_rainfall(v, da.chunk(time=3), weights=w, village_chunk=7)
    lazy.__dask_graph__().validate()                    # one graph layer per array, dependencies known
    lazy.to_zarr(tmp_path / "rain.zarr", consolidated=False)     # block by block, never whole in memory
    assert_matches_eager(xr.open_zarr(tmp_path / "rain.zarr", consolidated=False).compute(), eager, touches)
    other = village_rainfall(v, da.chunk(time=4), stats=("max",), weights=w)
    both = xr.merge([lazy[["mean"]], other.rename(max="max4")[["max4"]]], compat="override")
    (got,) = dask.optimize(both)
    assert np.array_equal(got["max4"].values, eager["max"].values, equal_nan=True)


def test_chunk_layout_is_what_the_kernel_reads_in_place():
    c_order = np.arange(24, dtype=np.float32).reshape(4, 2, 3)          # (k, y, x) from a file
    cells = _cells_by_time(c_order)
    assert cells.shape == (6, 4) and cells.flags.c_contiguous
    assert np.array_equal(cells.T, c_order.reshape(4, -1))
    vals = cells.T           # what aggregate gets: time-fastest, read without a copy by the kernel
    assert vals.T.flags.c_contiguous and not vals.flags.c_contiguous
    buf = np.ascontiguousarray(c_order.transpose(1, 2, 0))               # open_forecast's layout
    assert np.shares_memory(_cells_by_time(buf.transpose(2, 0, 1)), buf)     # one whole chunk: no copy
    assert _cells_by_time(c_order.astype(np.int16)).dtype == np.float64


def test_open_forecast_chunked_in_time_keeps_coords_and_attrs():
    need("dask")
    from riskmap.forecast import open_forecast

    rng = np.random.default_rng(3)
    ds = xr.Dataset(
        {"tp": (("time", "lat", "lon"), rng.gamma(0.8, 2.0, (6, 8, 10)), {"units": "mm"})},
        coords={"time": np.array([f"2024-07-15T{h:02d}" for h in range(1, 7)], "datetime64[ns]"),
                "lat": ("lat", 30 + 0.1 * np.arange(8), {"units": "degrees_north"}),
                "lon": ("lon", 100 + 0.1 * np.arange(10), {"units": "degrees_east"})})
    fc = open_forecast(ds, interval="1h", reference_time="2024-07-15T00:00Z")
    v = villages([shapely.box(100.1, 30.1, 100.5, 30.4), shapely.Point(100.72, 30.33).buffer(0.13)],
                 crs="EPSG:4326")
    eager = village_rainfall(v, fc)
    got = village_rainfall(v, fc.chunk(time=4))
    assert got["mean"].chunks == ((2,), (4, 2))
    xr.testing.assert_identical(got.compute(), eager)          # no NaN: bit for bit
    assert {"reference_time", "source"} <= set(got.attrs) and "interval" in got.coords


def test_village_chunk_is_checked(case):
    need("dask")
    da, v, w, _, _ = case
    with pytest.raises(InputError, match="needs a dask-backed grid"):
        village_rainfall(v, da, weights=w, village_chunk=10)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(InputError, match="village_chunk must be a positive"):
            village_rainfall(v, da.chunk(time=2), weights=w, village_chunk=bad)
    with pytest.raises(InputError, match="unknown stat"):
        village_rainfall(v, da.chunk(time=2), stats=("median",), weights=w)
    assert village_blocks(0) == [(0, 0)] and village_blocks(100_000) == [(0, 100_000)]
    assert [b - a for a, b in village_blocks(200_001)] == [66667, 66667, 66667]


def test_threaded_scheduler_with_weights_from_the_memory_mapped_cache(case, tmp_path):
    dask = need("dask")
    da, v, _, eager, touches = case
    cached_coverage_weights(tmp_path, v, GridDef.from_dataarray(da))
    w = load_weights(tmp_path, v, GridDef.from_dataarray(da))
    assert w is not None
    lazy = village_rainfall(v, da.chunk(time=3), weights=w, village_chunk=7)
    (got,) = dask.compute(lazy, scheduler="threads", num_workers=4)
    assert_matches_eager(got, eager, touches)


def test_cached_weights_pickle_their_data_not_the_map(case, tmp_path):
    da, v, _, eager, _ = case
    grid = GridDef.from_dataarray(da)
    cached_coverage_weights(tmp_path / "c", v, grid)
    w = load_weights(tmp_path / "c", v, grid)
    assert w is not None and on_a_map(w.order) and on_a_map(w.data32)       # views of the map
    blob = pickle.dumps(w, protocol=5)
    del w
    shutil.rmtree(tmp_path / "c")                               # the file is gone
    w2 = pickle.loads(blob)
    assert not any(on_a_map(a) for a in (w2.order, w2.rowsum, w2.data32, w2.matrix.data, w2.codes))
    assert w2.codes_index.tolist() == v["code"].tolist()
    assert np.array_equal(village_rainfall(v, da, weights=w2)["max"].values, eager["max"].values,
                          equal_nan=True)


def on_a_map(a: np.ndarray) -> bool:
    """Whether an array's memory is a memory map (followed through its bases)."""
    while a is not None:
        if isinstance(a, mmap.mmap):
            return True
        a = getattr(a, "base", None) if not isinstance(a, memoryview) else a.obj
    return False


@pytest.mark.slow
def test_distributed_local_cluster_of_processes_on_loopback(case, tmp_path):
    need("dask")
    distributed = need("distributed")
    da, v, _, eager, touches = case
    grid = GridDef.from_dataarray(da)
    cached_coverage_weights(tmp_path / "c", v, grid)
    w = load_weights(tmp_path / "c", v, grid)
    shutil.rmtree(tmp_path / "c")              # workers must get the data, not a path or a map
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        for village_chunk in (None, 7):
            lazy = village_rainfall(v, da.chunk(time=(3, 1, 4)), weights=w, village_chunk=village_chunk)
            got = client.compute(lazy).result()
            assert_matches_eager(got, eager, touches)
        pids = client.run(os.getpid)
    assert len(set(pids.values()) - {os.getpid()}) == 2


def test_riskmap_imports_and_works_without_dask():
    code = (
        "import sys; sys.modules['dask'] = None; sys.modules['distributed'] = None\n"
        "sys.path.insert(0, 'tests')\n"
        "import riskmap, riskmap.cycle, riskmap.rainfall_blocks\n"
        "import shapely\n"
        "from test_rainfall import forecast, villages\n"
        "from riskmap.rainfall import village_rainfall\n"
        "from riskmap.rainfall_blocks import is_dask_backed\n"
        "da = forecast()\n"
        "r = village_rainfall(villages([shapely.box(1, 1, 3, 3)]), da)\n"
        "assert not is_dask_backed(da) and r['mean'].shape == (1, 4)\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_benchmark_smoke_runs_every_contender_and_matches_the_eager_result():
    need("dask")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_blocks.py"), "--smoke"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for name in ("eager ", "eager (xarray load)", "dask k=2", "dask k=8, village blocks",
                 "national extrapolation", "ratios"):
        assert name in out
    diffs = re.findall(r"^(?:eager \(|dask).*\s(\S+)$", out, flags=re.M)
    assert len(diffs) == 5 and all(float(d) == 0.0 for d in diffs)
    assert re.search(r"dask k=8, village blocks .* 4×2 ", out)
