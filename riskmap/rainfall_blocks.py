"""Per-village rainfall in blocks of villages and time, on Dask.

:func:`riskmap.rainfall.village_rainfall` comes here when its ``grid`` is dask-backed
(``open_forecast(path, chunks={"time": 6})`` — checked and normalised lazily, see
:mod:`riskmap.forecast.lazy` —, ``open_forecast(...).chunk(time=6)``, or a file already in the
forecast contract opened with ``xr.open_dataset(path, chunks=...)`` / ``xr.open_zarr(...)``).
Nothing is computed: the result's ``mean``/``max`` are dask arrays chunked ``(village block,
time chunk)`` and ``covered_fraction`` one chunked ``(village block,)``.
Dask is an optional dependency (``pip install 'riskmap[dask]'``), imported only on this path.

The graph
---------
For time chunk ``j`` of the grid and village block ``i`` of the weights
(``weights.take(slice(a, b))``, :data:`VILLAGE_CHUNK` villages by default):

* ``cells[j]`` — the chunk as ``(cells, k)``, each cell's ``k`` values contiguous: the layout
  the kernel reads in place (:mod:`riskmap._kernels`).  One copy per time chunk, made once and
  shared by every village block; none when the chunk is already laid out so (one time chunk of
  a forecast from :func:`~riskmap.forecast.open_forecast` in memory; one opened with
  ``chunks=`` is not, by design: this copy is where it gets its layout).  A C-ordered chunk read from a file
  would otherwise be copied twice inside the kernel call (``np.ascontiguousarray`` then the
  transposition), for every village block.  The copy costs about what the kernel does
  (measured on ``bench_blocks.py``'s region, 3 M cells × 48 steps in chunks of 12: 0.2–0.5 s
  of copies against 0.3–0.6 s of kernel, summed over the tasks).
* ``agg[i, j]`` — :func:`riskmap.rainfall.aggregate` of block ``i`` on ``cells[j]``: one task
  per village block × time chunk, the pure core unchanged;
* ``mean[i, j]``, ``max[i, j]`` — its arrays;
* ``covered_fraction[i]`` — the minimum over the time chunks of each chunk's covered fraction.
  ``aggregate`` takes the village's non-NaN weight sum at its worst time step (``den``) and
  divides by the full weight sum; that map is monotone (``den / full`` rounded, clipped to
  [0, 1]), so the minimum of the chunks' fractions is bit for bit the fraction of the
  minimum ``den`` — what the eager call gives.

``x``/``y`` are merged into one chunk (``rechunk({y: -1, x: -1})``, a no-op when they are
whole), not refused: a village's cells may lie anywhere on the grid, and a file stored in
spatial tiles is common.  The cost is memory: each running task holds one time chunk of the
whole grid and its ``(cells, k)`` copy, ``2 × ny × nx × k × itemsize`` (float32, a 5000 × 4000
grid: 160 MB per time step of the chunk), times the scheduler's threads — pick ``k`` for it.
Measured with two threads (``benchmarks/bench_blocks.py``, peak over three chunk sizes):
16–23 B per cell × step of the chunk in flight, the spread being how far dask reads ahead.
The time chunks are the caller's.  The village blocks are copies of the weights' rows
(``take``), so with more than one block the weights are held twice.

Results
-------
Equal to the eager call: ``max`` and ``covered_fraction`` bit for bit, ``mean`` bit for bit
except for a village that sees a NaN cell at some but not all time steps — the kernel
recomputes a row with a NaN in float64 over every time step *of the chunk it is given*, so a
chunk without the NaN takes the fast float32-group path instead: the two differ by float32
rounding (a few ulps).  Village blocks never change a number.

Schedulers
----------
The threaded scheduler shares the weights; a ``dask.distributed`` cluster pickles them with
the graph, once per village block — the CSR arrays, codes and the precomputed visiting
order/row sums/float32 weights, ``16 × nnz + 100 × villages`` bytes (measured: 102 MB for
200,000 villages touching 5.2 M cells; nationally about 0.4 GB); weights memory-mapped from the
cache (:func:`~riskmap.weights_cache.load_weights`) pickle their data, not the map (tested:
the cache file deleted before a cluster of processes computes).  The kernel runs on all cores
(numba) inside each task, so two threads run up to four kernel threads on two cores (no
measurable loss against ``NUMBA_NUM_THREADS=1``); under numba's ``workqueue`` threading layer,
which must not be entered from two threads at once, tasks take turns at the kernel.

Examples
--------
See :mod:`riskmap.rainfall` ("Blocks and Dask").
"""

from __future__ import annotations

import math
import operator
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np
import xarray as xr

from riskmap.errors import InputError
from riskmap.rainfall import aggregate, check_stats
from riskmap.weights import CoverageWeights

__all__ = ["VILLAGE_CHUNK", "is_dask_backed", "village_blocks", "aggregate_blocks"]

VILLAGE_CHUNK = 100_000
"""Largest default village block: up to this many villages are one block."""

_KERNEL_LOCK = threading.Lock()


def is_dask_backed(grid: Any) -> bool:
    """Whether ``grid`` holds a dask array (False, without importing dask, for numpy data)."""
    if getattr(grid, "chunks", None) is None:
        return False
    try:
        import dask.array as da
    except ImportError:  # pragma: no cover - a chunked array that is not dask
        return False
    return isinstance(getattr(grid, "data", None), da.Array)


def village_blocks(n: int, village_chunk: int | None = None) -> list[tuple[int, int]]:
    """``(start, stop)`` of each village block: ``village_chunk`` villages (the last may be shorter).

    ``None`` takes all villages as one block up to :data:`VILLAGE_CHUNK`, else equal blocks of
    at most that many.

    >>> village_blocks(5, 2), village_blocks(250_000)
    ([(0, 2), (2, 4), (4, 5)], [(0, 83334), (83334, 166668), (166668, 250000)])
    """
    if village_chunk is None:
        size = n if n <= VILLAGE_CHUNK else math.ceil(n / math.ceil(n / VILLAGE_CHUNK))
    elif isinstance(village_chunk, int | np.integer) and not isinstance(village_chunk, bool) \
            and village_chunk > 0:
        size = int(village_chunk)
    else:
        raise InputError(f"village_rainfall: village_chunk must be a positive number of villages, "
                         f"got {village_chunk!r}")
    return [(a, min(a + size, n)) for a in range(0, n, max(size, 1))] or [(0, 0)]


def _kernel_guard() -> AbstractContextManager[Any]:
    """A lock when numba's threading layer is (or may be) ``workqueue``, which is not thread-safe."""
    try:
        import numba

        layer = numba.threading_layer()
    except (ImportError, ValueError):      # no numba (scipy path), or no parallel call made yet
        return _KERNEL_LOCK
    return _KERNEL_LOCK if layer == "workqueue" else nullcontext()


def _cells_by_time(block: np.ndarray) -> np.ndarray:
    """A ``(k, y, x)`` chunk as ``(cells, k)``, C-contiguous (no copy when it already is).

    >>> b = np.arange(6, dtype=np.float32).reshape(2, 1, 3)
    >>> _cells_by_time(b).tolist()
    [[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]]
    """
    dtype = block.dtype if block.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    return np.ascontiguousarray(block.transpose(1, 2, 0), dtype=dtype).reshape(-1, block.shape[0])


def _aggregate_block(weights: CoverageWeights, cells: np.ndarray,
                     stats: tuple[str, ...]) -> dict[str, np.ndarray]:
    """:func:`~riskmap.rainfall.aggregate` of one village block on one ``(cells, k)`` time chunk."""
    with _kernel_guard():
        return aggregate(weights, cells.T, stats)


def _fraction(parts: list[np.ndarray]) -> np.ndarray:
    """Covered fraction at the worst time step: the smallest of the time chunks' fractions."""
    return np.minimum.reduce(parts) if len(parts) > 1 else parts[0]


def _ready(w: CoverageWeights) -> CoverageWeights:
    """Compute the cached arrays the kernel uses once, here, so tasks and workers do not each redo them."""
    for name in ("order", "rowsum", "data32"):
        getattr(w, name)
    return w


def aggregate_blocks(weights: CoverageWeights, grid: xr.DataArray, stats: Sequence[str],
                     village_chunk: int | None = None) -> dict[str, Any]:
    """The lazy counterpart of :func:`~riskmap.rainfall.aggregate` for a dask-backed grid.

    Parameters
    ----------
    weights
        Coverage weights of the villages wanted, on this grid (checked by the caller).
    grid
        Dask-backed forecast, dims ``(time, y, x)`` in any order.
    stats
        Any of ``"mean"``, ``"max"``.
    village_chunk
        Villages per block (:func:`village_blocks`).

    Returns
    -------
    dict
        ``mean``/``max`` float32 dask arrays ``(village, time)`` chunked (village block, time
        chunk) and ``covered_fraction`` float64 ``(village,)`` chunked by village block.
    """
    import dask.array as da
    from dask import delayed
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    stats = check_stats(stats)
    data = grid.transpose("time", "y", "x").data
    data = data.rechunk({1: -1, 2: -1})
    ncells = int(data.shape[1] * data.shape[2])
    dtype = data.dtype if data.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    cells = da.blockwise(_cells_by_time, "ct", data, "tyx", new_axes={"c": ncells}, dtype=dtype,
                         concatenate=True, name=f"rainfall-cells-{tokenize(data.name)}")
    bounds = village_blocks(weights.n_villages, village_chunk)
    m = weights.matrix
    token = tokenize(cells.name, m.indptr, m.indices, m.data, weights.full, stats, bounds)
    name = f"village-rainfall-{token}"
    blocks = [delayed(_ready(weights if (a, b) == (0, weights.n_villages) else weights.take(slice(a, b))),
                      name=f"{name}-weights-{i}", traverse=False)
              for i, (a, b) in enumerate(bounds)]
    nt = len(data.chunks[0])
    agg: dict[Any, Any] = {(name, i, j): (_aggregate_block, w.key, (cells.name, 0, j), stats)
                           for i, w in enumerate(blocks) for j in range(nt)}
    base = HighLevelGraph.from_collections(name, agg, dependencies=[cells, *blocks])
    layers: dict[str, Any] = dict(base.layers)
    deps: dict[str, set[str]] = {k: set(v) for k, v in base.dependencies.items()}
    for part in stats + ("covered_fraction",):      # one layer per array: dask's graph culling needs it
        layers[f"{name}-{part}"] = {(f"{name}-{part}", i, j): (operator.getitem, (name, i, j), part)
                                    for i in range(len(blocks)) for j in range(nt)}
        deps[f"{name}-{part}"] = {name}
    layers[f"{name}-fraction"] = {(f"{name}-fraction", i): (_fraction, [(f"{name}-covered_fraction", i, j)
                                                                        for j in range(nt)])
                                  for i in range(len(blocks))}
    deps[f"{name}-fraction"] = {f"{name}-covered_fraction"}
    graph = HighLevelGraph(layers, deps)
    vchunks = tuple(b - a for a, b in bounds)
    out: dict[str, Any] = {s: da.Array(graph, f"{name}-{s}", (vchunks, data.chunks[0]), dtype=np.float32)
                           for s in stats}
    out["covered_fraction"] = da.Array(graph, f"{name}-fraction", (vchunks,), dtype=np.float64)
    return out
