"""The lazy end of :func:`~riskmap.forecast.open_forecast` (``chunks=``): the same contract on Dask.

``open_forecast(path, chunks={"time": 6})`` reads the metadata, picks the variable, converts
units and rates, de-accumulates, works out the intervals and orients the grid exactly as the
in-memory path (:func:`riskmap.forecast.normalise.prepare`, :func:`~riskmap.forecast.normalise.orient`,
:func:`~riskmap.forecast.normalise.contract` — the same functions on a dask array), and returns a
dask-backed DataArray.  The values equal the in-memory result bit for bit: the same float64
operations in the same order, then one cast to float32.  De-accumulation takes each step's
predecessor across time-chunk boundaries (:func:`~riskmap.forecast.normalise._previous`).

How the value checks are made
-----------------------------
Every check of the in-memory path is made, with the same error and warning types and the same
messages (:func:`riskmap.forecast.validate.negative_verdict`, ``intensity_verdict``,
``missing_verdict``; both paths call them): negative values refused or clipped with a warning,
the plausibility limit in mm/h, NaN/fill cells.  They run **at open time, in one bounded-memory
pass**: one ``dask.compute`` of small per-chunk reductions of the normalised float64 field
(:func:`_block_stats`, step by step within a chunk: the count of negatives, each step's minimum
and maximum with NaN left out, each step's count above the limit; and the map of cells NaN at
some step).  Every chunk is read once in it (a de-accumulated one reads the last step of the
chunk before it too) and dropped when reduced, so the pass holds a few time chunks, never the
grid.  Measured (a 48 × 1500 × 2000 float32 CF NetCDF, 576 MB, in the page cache; two threads;
peak RSS less the 175 MB of the interpreter): 25–30 bytes per cell × step of a time chunk —
0.5 GB at ``chunks={"time": 6}``, 0.9 GB at 12 — against 2.2 GB to open it in memory; the
pass took 1.0–1.5 s (opening in memory: 4.6 s; a plain dask sum of the variable: 0.7 s).

The cost is that the file is **read twice**: once here, once when the caller computes the
rainfall.  The alternative — attaching the reductions to the graph and judging them when the
caller's computation runs (in :mod:`riskmap.rainfall_blocks`, next to each chunk's aggregation)
— reads once, but was not chosen:

* a refused forecast would be found only after the caller has started to use it — e.g. part of
  ``rain.to_zarr(...)`` already written — and a caller computing only some time steps or
  villages would skip the checks on the rest;
* warnings raised inside dask tasks are lost: worker processes of ``dask.distributed`` do not
  send them back, and on threads they are attributed to dask's code, not the caller's line;
* the rainfall core would have to know the forecast's checks, which belong to ingest.

Reading the file twice costs I/O and decoding time, not memory: for a file not in the page cache,
one more read of it from disk (a 5.8 GB national float32 forecast: about a minute at 100 MB/s,
seconds from fast local storage — not measured here).  When the grid fits in memory, opening it
without ``chunks=`` reads it once.

What is not done lazily
-----------------------
The time-fastest memory layout of the in-memory result (``time_fastest_float32``) is **not**
forced: the lazy result is float32 in whatever layout its chunks come in.
:mod:`riskmap.rainfall_blocks` lays each time chunk out time-fastest once, shared by all
village blocks, so forcing it here would only add a copy.  Only CF NetCDF (one file or a list
joined along time) and Zarr are read lazily; GRIB, GeoTIFF and WRF output are refused with
``chunks=`` (their readers decode whole messages or bands; open them in memory).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import xarray as xr

from riskmap.errors import ForecastError
from riskmap.forecast import validate
from riskmap.forecast.normalise import RawField, contract, orient, prepare
from riskmap.forecast.options import ForecastOptions


def _block_stats(block: np.ndarray, limits: np.ndarray, block_info: Any = None) -> np.ndarray:
    """Per step of one chunk: negatives, min and max (NaN left out; +inf/-inf when all NaN), values
    above the step's limit — as ``(k, 1, 1, 4)``; step by step, so no temporary of the whole chunk."""
    t0 = block_info[0]["array-location"][0][0]
    out = np.empty((block.shape[0], 1, 1, 4))
    for i in range(block.shape[0]):
        step = block[i]
        some = not np.isnan(step).all()
        with np.errstate(invalid="ignore"):
            out[i, 0, 0] = (np.count_nonzero(step < 0), np.nanmin(step) if some else np.inf,
                            np.nanmax(step) if some else -np.inf, np.count_nonzero(step > limits[t0 + i]))
    return out


def _reductions(mm: Any, limits: np.ndarray) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, int]:
    """One pass over the lazy field: the count of negatives, each step's min and max, each step's
    count above its limit, and the number of cells NaN at some step."""
    import dask
    import dask.array as dsa

    blocks = tuple((1,) * len(c) for c in mm.chunks[1:])
    stats = dsa.map_blocks(partial(_block_stats, limits=limits), mm, dtype=np.float64, new_axis=3,
                           chunks=(mm.chunks[0], *blocks, (4,)), token="forecast-checks")
    stats, cells = dask.compute(stats, dsa.isnan(mm).any(axis=0).sum())
    low, high = stats[..., 1].min(axis=(1, 2)), stats[..., 2].max(axis=(1, 2))
    return (int(stats[..., 0].sum()), low, high, stats[..., 3].sum(axis=(1, 2)).astype(np.int64),
            int(cells))


def finish_lazy(raw: RawField, opts: ForecastOptions) -> xr.DataArray:
    """:func:`~riskmap.forecast.normalise.finish` for dask-backed ``raw.values``: lazy result, checks now.

    See the module doc for how and when the checks read the data.
    """
    p = prepare(raw, opts)
    where = raw.where
    hours = p.intervals.astype("timedelta64[ns]").astype("float64") / 3.6e12
    try:
        neg, low, high, over, nan_cells = _reductions(p.mm, opts.max_intensity_mm_h * hours)
    except (OSError, RuntimeError, ValueError) as exc:
        raise ForecastError(f"{where}: cannot read the values (truncated or damaged file?): {exc}") from None
    mm = p.mm
    if neg:
        k = int(np.argmin(low))               # the first step holding the smallest value
        if validate.negative_verdict(neg, float(low[k]), p.times[k], where, opts.negative_tolerance_mm,
                                     deaccumulated=p.accumulated):
            import dask.array as dsa

            mm = dsa.where(mm < 0, 0.0, mm)
            high = np.where(np.isfinite(high), np.maximum(high, 0.0), high)   # the maxima once clipped
    step_max = np.where(np.isneginf(high), np.nan, high)
    validate.intensity_verdict(over, step_max, p.times, p.intervals, where, opts.max_intensity_mm_h)
    mm, x, y = orient(raw, mm, p.crs)
    validate.missing_verdict(nan_cells, int(x.size * y.size), where)
    return contract(mm.astype(np.float32), raw, p, x, y)
