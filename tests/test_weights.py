"""Grid definition, coverage weights and their on-disk cache."""

from __future__ import annotations

import threading
import warnings

import geopandas as gpd
import numpy as np
import pytest
import rioxarray  # noqa: F401
import shapely
import xarray as xr

from riskmap.errors import CoverageWarning, ForecastError, RegionError
from riskmap.grid import GridDef
from riskmap.weights import coverage_weights
from riskmap.weights_cache import (
    cache_path,
    cached_coverage_weights,
    load_weights,
    save_weights,
    village_layer_key,
)

CRS = "EPSG:32650"


def grid_da(nx=10, ny=8, x0=0.0, y0=0.0, d=1.0, crs=CRS, y_desc=True, nt=1, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    x = x0 + d * (np.arange(nx) + 0.5) + rng.uniform(-noise, noise, nx)
    y = y0 + d * (np.arange(ny) + 0.5) + rng.uniform(-noise, noise, ny)
    if y_desc:
        y = y[::-1]
    vals = rng.gamma(1.0, 5.0, size=(nt, ny, nx)).astype(np.float32)
    return xr.DataArray(vals, dims=("time", "y", "x"), coords={"x": x, "y": y}).rio.write_crs(crs)


def villages(geoms, crs=CRS):
    codes = [f"11010100{i:04d}" for i in range(len(geoms))]
    return gpd.GeoDataFrame({"code": codes}, geometry=list(geoms), crs=crs)


# ---------------------------------------------------------------- GridDef

def test_griddef_snaps_float_noise_to_the_same_grid_and_key():
    clean = GridDef.from_dataarray(grid_da(x0=100.0, y0=30.0, d=0.01, crs="EPSG:4326"))
    noisy = GridDef.from_dataarray(grid_da(x0=100.0, y0=30.0, d=0.01, crs="EPSG:4326", noise=3e-7))
    f32 = grid_da(x0=100.0, y0=30.0, d=0.01, crs="EPSG:4326")
    f32 = f32.assign_coords(x=f32.x.astype(np.float32), y=f32.y.astype(np.float32))
    assert noisy == clean and noisy.key == clean.key
    assert GridDef.from_dataarray(f32) == clean
    assert clean.dx == 0.01 and clean.x0 == 100.0 and clean.y0 == 30.08 and clean.dy == -0.01
    edges = clean.x_edges
    assert np.allclose(np.diff(edges), 0.01, rtol=0, atol=1e-12)  # no sliver cell


def test_griddef_distinguishes_grids_and_refuses_irregular_or_crs_less():
    a = GridDef.from_dataarray(grid_da())
    assert GridDef.from_dataarray(grid_da(x0=0.5)).key != a.key
    assert GridDef.from_dataarray(grid_da(crs="EPSG:32651")).key != a.key
    assert GridDef.from_dataarray(grid_da(y_desc=False)) != a
    bad = grid_da().assign_coords(x=np.r_[0.5, 1.5, 2.5, 3.9, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5])
    with pytest.raises(ForecastError, match="'x' is not regularly spaced"):
        GridDef.from_dataarray(bad)
    nocrs = xr.DataArray(np.zeros((1, 2, 2)), dims=("time", "y", "x"),
                         coords={"x": [0.5, 1.5], "y": [1.5, 0.5]})
    with pytest.raises(ForecastError, match="no CRS"):
        GridDef.from_dataarray(nocrs)


def test_griddef_roundtrips_through_dict():
    g = GridDef.from_dataarray(grid_da(crs="EPSG:4326", d=0.25, x0=100))
    assert GridDef.from_dict(g.to_dict()) == g
    assert g.is_geographic and g.bounds == (100.0, 0.0, 102.5, 2.0)


# ---------------------------------------------------------------- weights

def test_weights_hand_checked_on_edges_point_and_outside():
    g = GridDef.from_dataarray(grid_da(nx=4, ny=3))
    v = villages([shapely.box(1, 1, 3, 2),            # exactly on cell edges: 2 whole cells
                  shapely.box(0.5, 2.5, 1.5, 3.5),    # half outside (top), 2 quarter cells... inside part 0.5
                  shapely.Point(3.5, 0.2),            # point
                  shapely.box(10, 10, 11, 11)])       # off the grid
    with pytest.warns(CoverageWarning, match="1 of 4 village"):
        w = coverage_weights(v, g)
    dense = w.matrix.toarray()
    # y descending: row 0 is y in [2, 3]; cell k = row * 4 + col
    assert dense[0].nonzero()[0].tolist() == [5, 6] and np.allclose(dense[0, [5, 6]], 1.0)
    assert np.allclose(dense[1, [0, 1]], 0.25) and dense[1].sum() == pytest.approx(0.5)
    assert dense[2].nonzero()[0].tolist() == [11] and dense[2, 11] == 1.0
    assert dense[3].sum() == 0
    assert np.allclose(w.covered_fraction, [1.0, 0.5, 1.0, 0.0])
    assert w.codes.tolist() == v["code"].tolist()


def test_weights_reproject_villages_to_the_grid_crs():
    g = GridDef.from_dataarray(grid_da(x0=117.0, y0=31.0, d=0.05, crs="EPSG:4326"))
    poly = shapely.box(117.12, 31.07, 117.31, 31.22)
    v4326 = villages([poly], crs="EPSG:4326")
    w_direct = coverage_weights(v4326, g)
    w_metric = coverage_weights(v4326.to_crs(CRS), grid_da(x0=117.0, y0=31.0, d=0.05, crs="EPSG:4326"))
    assert np.abs(w_direct.matrix.toarray() - w_metric.matrix.toarray()).max() < 1e-3


def test_weights_refuse_lines_and_crs_less_layers():
    g = GridDef.from_dataarray(grid_da())
    with pytest.raises(RegionError, match="code=110101000000.*LineString"):
        coverage_weights(villages([shapely.LineString([(0, 0), (3, 3)])]), g)
    with pytest.raises(RegionError, match="no CRS"):
        coverage_weights(gpd.GeoDataFrame({"code": ["110101000001"]}, geometry=[shapely.box(0, 0, 1, 1)]), g)


def test_weights_take_and_select_are_row_slices():
    g = GridDef.from_dataarray(grid_da())
    v = villages([shapely.box(i, 0, i + 1.5, 2) for i in range(5)])
    w = coverage_weights(v, g)
    part = w.take(slice(1, 3))
    assert part.codes.tolist() == v["code"].tolist()[1:3]
    assert (part.matrix != w.matrix[1:3]).nnz == 0
    sel = w.select(v["code"].tolist()[::-1])
    assert (sel.matrix != w.matrix[::-1]).nnz == 0
    with pytest.raises(RegionError, match="no coverage weights"):
        w.select(["999999999999"])


# ---------------------------------------------------------------- cache

def test_cache_roundtrip_and_key(tmp_path):
    da = grid_da()
    g = GridDef.from_dataarray(da)
    v = villages([shapely.box(1, 1, 4, 3), shapely.Point(5.5, 5.5)])
    w = cached_coverage_weights(tmp_path, v, g)
    path = cache_path(tmp_path, g, village_layer_key(v))
    assert path.exists() and not list(tmp_path.glob("*.tmp"))
    back = load_weights(tmp_path, v, g)
    assert back is not None and (back.matrix != w.matrix).nnz == 0
    assert back.codes.tolist() == w.codes.tolist() and back.grid == g and np.array_equal(back.full, w.full)
    assert np.array_equal(back.order, w.order) and sorted(back.order.tolist()) == [0, 1]
    # the layer key follows geometry and codes
    moved = v.copy()
    moved.geometry = moved.geometry.translate(0.1, 0)
    assert village_layer_key(moved) != village_layer_key(v)
    recoded = v.copy()
    recoded["code"] = ["110101000009", "110101000001"]
    assert village_layer_key(recoded) != village_layer_key(v)
    holed = v.copy()
    holed.geometry = [v.geometry[0].difference(shapely.box(2, 1.5, 3, 2.5)), v.geometry[1]]
    assert village_layer_key(holed) != village_layer_key(v)
    assert village_layer_key(v.copy()) == village_layer_key(v)
    assert load_weights(tmp_path, moved, g) is None


def test_cache_never_returns_weights_for_another_grid(tmp_path):
    g1 = GridDef.from_dataarray(grid_da())
    g2 = GridDef.from_dataarray(grid_da(x0=0.5))
    v = villages([shapely.box(1, 1, 4, 3)])
    key = village_layer_key(v)
    w1 = coverage_weights(v, g1)
    save_weights(tmp_path, w1, key)
    assert load_weights(tmp_path, v, g2) is None
    # a colliding / planted entry at g2's path holding g1's weights is refused
    cache_path(tmp_path, g1, key).rename(cache_path(tmp_path, g2, key))
    assert load_weights(tmp_path, v, g2) is None
    w2 = cached_coverage_weights(tmp_path, v, g2)
    assert w2.grid == g2


def test_cache_ignores_truncated_files_and_rebuilds(tmp_path):
    g = GridDef.from_dataarray(grid_da())
    v = villages([shapely.box(1, 1, 4, 3)])
    w = cached_coverage_weights(tmp_path, v, g)
    path = cache_path(tmp_path, g, village_layer_key(v))
    path.write_bytes(path.read_bytes()[:100])
    assert load_weights(tmp_path, v, g) is None
    again = cached_coverage_weights(tmp_path, v, g)
    assert (again.matrix != w.matrix).nnz == 0
    assert load_weights(tmp_path, v, g) is not None


def test_cache_rejects_row_pointers_that_do_not_match_the_weights(tmp_path):
    """The mapped CSR arrays are used in place (no scipy copy): their sizes are checked instead."""
    import json

    g = GridDef.from_dataarray(grid_da())
    v = villages([shapely.box(1, 1, 4, 3), shapely.box(5, 1, 6, 2)])
    w = cached_coverage_weights(tmp_path, v, g)
    got = load_weights(tmp_path, v, g)
    assert got is not None and not got.matrix.data.flags.writeable     # the mapped file, not a copy
    assert (got.matrix != w.matrix).nnz == 0 and got.matrix.has_canonical_format
    path = cache_path(tmp_path, g, village_layer_key(v))
    raw = bytearray(path.read_bytes())
    hlen = int(np.frombuffer(bytes(raw[8:16]), np.uint64)[0])
    meta = json.loads(bytes(raw[16:16 + hlen]))
    start = -(-(16 + hlen) // 64) * 64
    dtype, _shape, off, nbytes = meta["arrays"]["indptr"]
    last = start + off + nbytes - np.dtype(dtype).itemsize
    raw[last:last + np.dtype(dtype).itemsize] = np.array([w.matrix.nnz - 1], dtype).tobytes()
    path.write_bytes(bytes(raw))
    assert load_weights(tmp_path, v, g) is None          # rebuilt by the next cached_coverage_weights


def test_cache_concurrent_writers_and_readers_never_see_half_a_file(tmp_path):
    g = GridDef.from_dataarray(grid_da(nx=60, ny=50))
    rng = np.random.default_rng(3)
    xyr = rng.uniform([5, 5, 0.5], [55, 45, 4], (80, 3))
    v = villages([shapely.Point(x, y).buffer(r) for x, y, r in xyr])
    key = village_layer_key(v)
    w = coverage_weights(v, g)
    save_weights(tmp_path, w, key)
    errors: list[str] = []

    def writer():
        for _ in range(15):
            save_weights(tmp_path, w, key)

    def reader():
        for _ in range(30):
            got = load_weights(tmp_path, v, g, layer_key=key)
            if got is None or (got.matrix != w.matrix).nnz:
                errors.append("bad read")

    threads = [threading.Thread(target=f) for f in (writer, writer, reader, reader)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    assert not list(tmp_path.glob("*.tmp"))


def test_cache_load_is_memory_mapped_and_carries_its_precomputed_parts(tmp_path):
    import pandas as pd

    from riskmap.weights import codes_digest

    g = GridDef.from_dataarray(grid_da())
    v = gpd.GeoDataFrame({"code": ["330102000001", "330102000002", "330102000003"]},
                         geometry=[shapely.box(0.2, 0.3, 2.7, 1.9), shapely.box(1, 1, 3.5, 3.5),
                                   shapely.Point(0.5, 0.5)], crs="EPSG:32650")
    built = cached_coverage_weights(tmp_path, v, g)
    got = load_weights(tmp_path, v, g)
    assert got is not None and not got.matrix.indptr.flags.writeable      # views of the mapped file
    assert np.array_equal(got.order, built.order) and np.array_equal(got.rowsum, built.rowsum)
    assert "data32" in got.__dict__ and got.data32.dtype == np.float32       # stored, not recomputed
    assert np.array_equal(got.data32, built.matrix.data.astype(np.float32))
    assert got.codes_digest == built.codes_digest == codes_digest(v["code"])
    assert got.codes_index.tolist() == v["code"].tolist()
    # the same codes give the same digest whatever holds them; the layer key does not depend on it
    assert codes_digest(v["code"].astype(object)) == codes_digest(v["code"].to_numpy().astype(str)) \
        == codes_digest(list(v["code"])) == got.codes_digest
    as_object = v.assign(code=pd.Series(list(v["code"]), dtype=object))
    assert village_layer_key(as_object) == village_layer_key(v)
    assert got.select(v["code"]) is got and got.select(as_object["code"]) is got
    assert got.select(["330102000003", "330102000001"]).codes.tolist() == ["330102000003", "330102000001"]


def test_layer_key_works_in_a_forked_child_after_the_parent_used_it():
    import multiprocessing as mp

    v = villages([shapely.box(0, 0, 2, 2), shapely.box(2, 0, 4, 3)])
    key = village_layer_key(v)                 # the parent's helper thread exists now
    with mp.get_context("fork").Pool(1) as pool:
        assert pool.apply_async(village_layer_key, (v,)).get(timeout=60) == key
