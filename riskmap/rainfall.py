"""Per-village rainfall from a forecast grid: one sparse product per forecast.

``village_rainfall(villages, grid)`` gives, per village and time step, the
coverage-fraction-weighted ``mean`` (exactly exactextract's ``mean``), the ``max`` of every
cell the village touches with positive coverage, and the village's ``covered_fraction``.

How it computes
---------------
With ``W`` the village × cell coverage matrix (:class:`~riskmap.weights.CoverageWeights`,
built once per grid and village layer and cached by :mod:`riskmap.weights_cache`) and
``R`` the forecast as cells × time, the whole computation is the sparse product::

    mean = (W @ R) / rowsum(W)                  # all villages, all time steps at once
    max  = max over each CSR row's cells of R   # the cells a village touches

done by one compiled pass over the CSR arrays (:mod:`riskmap._kernels`, numba on all cores;
float32 sums over groups of 16 cells added up in float64; villages visited in spatial order so
the grid rows stay in cache).  :func:`~riskmap.forecast.open_forecast` lays the values out
time-fastest in memory, so the kernel reads the forecast as ``cells × time`` in place; a
C-ordered ``(time, y, x)`` array gives the same numbers after one transposed copy.

On the reference province (50,000 villages, 600 × 500 cells, 72 steps) a warm call — cached
weights memory-mapped and verified, the product, the Dataset — takes 15–20 ms
(``benchmarks/bench_rainfall.py`` prints each part).  The cache is keyed by the grid and the
village layer's hash, which :func:`~riskmap.region.load_region` computes once
(:attr:`~riskmap.region.Region.village_key`; ``serve`` keeps the region loaded between
forecasts, :class:`~riskmap.region_cache.RegionCache`).
Without numba the same numbers come from ``scipy.sparse`` (``W @ R``) and
``np.fmax.reduceat`` — no Python loop over villages either way.

NaN cells are left out: a village whose plain mean shows a NaN is recomputed as
``Σ w·r / Σ w`` over its non-NaN cells.  ``covered_fraction`` (dims ``village``) is the
share of the village's area (in the grid CRS) that lies on grid cells with a value — at the
worst time step — so a village partly outside the grid, or under NaN cells, says how much
of it the numbers describe.

Blocks and Dask
---------------
The engine is blockwise by construction: the result for a set of villages depends only on
their rows of ``W`` (``weights.take(slice)`` / ``weights.select(codes)`` — a CSR row slice),
and the result for a time chunk only on that chunk of the grid.  Give ``village_rainfall`` a
**dask-backed** grid — ``open_forecast(path).chunk(time=6)``, or for a grid too big to decode
in memory ``xr.open_dataset(path, chunks={"time": 6})`` / ``xr.open_zarr(...)`` in the forecast
contract — and it returns at once a lazy Dataset (:mod:`riskmap.rainfall_blocks`, needs the
optional ``riskmap[dask]``): ``mean``/``max`` are dask arrays chunked (village block, time
chunk), one :func:`aggregate` task per block and chunk; ``village_chunk=`` sets the villages
per block (all in one up to 100,000).  ``covered_fraction`` (worst time step) is reduced over
the time chunks.  ``x``/``y`` are merged into one chunk — a village's cells may lie anywhere —
so each running task holds one time chunk of the whole grid, twice (``2 × ny × nx × k × 4``
bytes for float32): the time chunk ``k`` bounds the memory.  Each chunk is laid out
time-fastest once, for all village blocks.  Compute with any scheduler (threads, or a
``dask.distributed`` cluster: the weights pickle with their data, also when memory-mapped from
the cache).  The numbers equal the eager call's, ``mean`` to float32 rounding only for a village
under a cell that is NaN at some steps and not others (:mod:`riskmap.rainfall_blocks`).  No
home-made distribution here: a province (50,000 villages × 72 steps) takes a fraction of a
second in one process; ``benchmarks/bench_blocks.py`` measures the blocked run and its memory.

Examples
--------
>>> import numpy as np, pandas as pd, xarray as xr, rioxarray, geopandas as gpd, shapely  # noqa: F401
>>> t = pd.to_datetime(["2026-07-01T01:00", "2026-07-01T02:00"])
>>> da = xr.DataArray(np.array([[[1, 2], [3, 4]], [[0, 0], [0, 8]]], "float32"), dims=("time", "y", "x"),
...                   coords={"time": t, "x": [0.5, 1.5], "y": [1.5, 0.5]}).rio.write_crs("EPSG:32650")
>>> v = gpd.GeoDataFrame({"code": ["110101001001"]}, geometry=[shapely.box(0.5, 0, 1.5, 1)], crs="EPSG:32650")
>>> r = village_rainfall(v, da)
>>> r["mean"].values.tolist(), r["max"].values.tolist(), r["covered_fraction"].values.tolist()
([[3.5, 4.0]], [[4.0, 8.0]], [1.0])

The same on Dask, one time step per chunk (skipped when dask is not installed):

>>> import pytest; _ = pytest.importorskip("dask.array")
>>> lazy = village_rainfall(v, da.chunk(time=1))
>>> lazy["mean"].chunks, lazy["mean"].values.tolist() == r["mean"].values.tolist()
(((1,), (1, 1)), True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from riskmap._kernels import aggregate_csr
from riskmap.errors import ForecastError, InputError
from riskmap.grid import GridDef
from riskmap.weights import CoverageWeights, coverage_weights, village_frame

__all__ = ["village_rainfall", "aggregate", "rainfall_table"]

STATS = ("mean", "max")


def check_stats(stats: Sequence[str]) -> tuple[str, ...]:
    """The known stats asked for, in :data:`STATS` order; :class:`~riskmap.errors.InputError` otherwise."""
    unknown = set(stats) - set(STATS)
    if unknown:
        raise InputError(f"village_rainfall: unknown stat(s) {sorted(unknown)}; known: {', '.join(STATS)}")
    return tuple(s for s in STATS if s in stats)


def aggregate(weights: CoverageWeights, values: np.ndarray, stats: Sequence[str] = STATS,
              engine: str = "auto") -> dict[str, np.ndarray]:
    """The pure array core: per-village stats of a ``(time, cells)`` array.

    Parameters
    ----------
    weights
        Coverage weights (any row subset).
    values
        ``(time, ncells)`` rainfall, cells numbered as in :class:`~riskmap.grid.GridDef`.
    stats
        Any of ``"mean"``, ``"max"``.
    engine
        ``auto`` (numba when installed), ``numba`` or ``numpy`` (scipy.sparse product).

    Returns
    -------
    dict
        ``mean``/``max`` as float32 ``(village, time)`` arrays and ``covered_fraction``
        (village) as float64.

    >>> import numpy as np, scipy.sparse as sp
    >>> w = CoverageWeights(sp.csr_array(np.array([[0.5, 0.25, 0.0]])), GridDef("", 0, 0, 1, 1, 3, 1),
    ...                     np.array(["a"]), np.array([1.0]))
    >>> out = aggregate(w, np.array([[4.0, np.nan, 9.0], [4.0, 1.0, 9.0]]))
    >>> out["mean"].tolist(), out["max"].tolist(), out["covered_fraction"].tolist()
    ([[4.0, 3.0]], [[4.0, 4.0]], [0.5])
    """
    stats = check_stats(stats)
    values = np.asarray(values)
    if values.ndim != 2 or values.shape[1] != weights.grid.ncells:
        raise InputError(f"village_rainfall: values of shape {values.shape} do not match the grid's "
                         f"{weights.grid.ncells} cells")
    if values.dtype not in (np.float32, np.float64):
        values = values.astype(np.float64)
    m = weights.matrix
    mean, mx, den = aggregate_csr(m.indptr, m.indices, m.data, values, weights.order,
                                  "mean" in stats, "max" in stats, engine=engine, rowsum=weights.rowsum,
                                  data32=weights.data32 if values.dtype == np.float32 else None)
    full = weights.full
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(full > 0, den / np.where(full > 0, full, 1.0), 0.0)
    out: dict[str, np.ndarray] = {"covered_fraction": np.clip(frac, 0.0, 1.0)}
    if "mean" in stats:
        out["mean"] = mean
    if "max" in stats:
        out["max"] = mx
    return out


def village_rainfall(villages: Any, grid: xr.DataArray, stats: Sequence[str] = STATS,
                     weights: CoverageWeights | None = None, *,
                     village_chunk: int | None = None) -> xr.Dataset:
    """Per-village rainfall of a forecast grid.

    Parameters
    ----------
    villages
        GeoDataFrame in the villages schema, or a :class:`~riskmap.region.Region`; the
        result keeps its order.  May be ``None`` when ``weights`` is given (all its villages).
        A subset of the weights' villages selects their rows (blocks of villages).
    grid
        Forecast in the team's contract: dims ``(time, y, x)``, mm per interval, a CRS.
        Any time chunk works.  A dask-backed grid gives a lazy result
        (:mod:`riskmap.rainfall_blocks`; needs ``riskmap[dask]``).
    stats
        ``"mean"`` and/or ``"max"``.
    weights
        Precomputed :class:`~riskmap.weights.CoverageWeights` (from the cache); built here
        when None.  Must belong to this grid: otherwise :class:`~riskmap.errors.ForecastError`.
    village_chunk
        Dask-backed grid only: villages per block (default: all in one block up to 100,000,
        else equal blocks of at most 100,000).

    Returns
    -------
    xarray.Dataset
        Dims ``(village, time)``; coordinate ``village`` (codes) and the grid's ``time``
        (UTC, tz-naive datetime64[ns], interval end) and ``interval`` when present;
        float32 ``mean``/``max`` in mm per interval; ``covered_fraction`` (village);
        attrs ``reference_time``/``source`` copied from the grid.  For a dask-backed grid
        the data variables are dask arrays chunked (village block, time chunk).
    """
    if set(grid.dims) != {"time", "y", "x"}:
        raise ForecastError(f"village_rainfall: grid dims must be (time, y, x), got {tuple(grid.dims)}")
    gd = GridDef.from_dataarray(grid)
    if weights is None:
        if villages is None:
            raise InputError("village_rainfall: give villages or weights")
        weights = coverage_weights(villages, gd)
    elif weights.grid != gd:
        raise ForecastError("village_rainfall: the coverage weights were built for another grid "
                            f"(weights {weights.grid.shape} key {weights.grid.key[:12]}, "
                            f"forecast {gd.shape} key {gd.key[:12]})")
    if villages is not None:
        weights = weights.select(village_frame(villages)["code"])
    from riskmap.rainfall_blocks import is_dask_backed

    out: dict[str, Any]
    if is_dask_backed(grid):
        from riskmap.rainfall_blocks import aggregate_blocks

        out = aggregate_blocks(weights, grid, stats, village_chunk)
    elif village_chunk is not None:
        raise InputError("village_rainfall: village_chunk needs a dask-backed grid, e.g. grid.chunk(time=6)")
    else:
        data = grid.transpose("time", "y", "x").values
        out = aggregate(weights, data.reshape(data.shape[0], -1), stats)
    coords: dict[str, Any] = {"village": weights.codes_index, "time": grid["time"].values}
    if "interval" in grid.coords and grid["interval"].dims == ("time",):
        coords["interval"] = ("time", grid["interval"].values)
    data_vars: dict[str, Any] = {s: (("village", "time"), out[s]) for s in STATS if s in out}
    data_vars["covered_fraction"] = (("village",), out["covered_fraction"])
    ds = xr.Dataset(data_vars, coords=coords)
    for k in ("reference_time", "source"):
        if k in grid.attrs:
            ds.attrs[k] = grid.attrs[k]
    for s in STATS:
        if s in ds:
            ds[s].attrs["units"] = "mm"
    return ds


def rainfall_table(rain: xr.Dataset) -> pd.DataFrame:
    """Long form of :func:`village_rainfall`'s result: columns ``village, time, stat, mm``.

    ``time`` is tz-aware UTC (the interval end).

    >>> t = pd.to_datetime(["2026-07-01T01", "2026-07-01T02"])
    >>> ds = xr.Dataset({"mean": (("village", "time"), [[1.0, 2.0]])},
    ...                 coords={"village": ["110101001001"], "time": t})
    >>> row = rainfall_table(ds).iloc[1]
    >>> row["village"], str(row["time"]), row["stat"], float(row["mm"])
    ('110101001001', '2026-07-01 02:00:00+00:00', 'mean', 2.0)
    """
    frames = []
    villages = rain["village"].values.astype(str)
    times = pd.DatetimeIndex(rain["time"].values).tz_localize("UTC")
    for s in STATS:
        if s not in rain:
            continue
        a = rain[s].transpose("village", "time").values
        frames.append(pd.DataFrame({
            "village": np.repeat(villages, len(times)),
            "time": np.tile(times, len(villages)),
            "stat": s,
            "mm": a.ravel().astype(np.float64),
        }))
    if not frames:
        return pd.DataFrame({"village": pd.Series(dtype=str), "time": pd.Series(dtype="datetime64[ns, UTC]"),
                             "stat": pd.Series(dtype=str), "mm": pd.Series(dtype=float)})
    return pd.concat(frames, ignore_index=True)
