"""Compiled kernels of the rainfall engine (numba), with a numpy/scipy fallback.

The aggregation is ``mean = (W @ R) / (W @ valid)`` and ``max`` over each CSR row's cells.
Both are computed here in ONE pass over the CSR structure, reading the forecast as
``(cells, time)``: each touched cell's series is one contiguous row, so the inner loop over
time is a plain vector loop, four cells per pass over the accumulator.  A forecast whose
memory has time as the fastest axis (a ``(y, x, time)`` buffer seen as ``(time, y, x)`` —
what :func:`riskmap.forecast.open_forecast` returns) is read in place; a C-ordered
``(time, y, x)`` array pays one transposed copy first (same numbers, same bits).

Precision: products and sums run in the forecast's dtype (float32) within groups of
:data:`GROUP` cells, and the groups are summed in float64 — a few float32 ulps from an
all-float64 sum whatever the village's size (≤ 2e-5 mm on the reference province, whose
rain reaches 70 mm/h).

Speed: villages are visited in *spatial* order (``order``: rows sorted by their first cell),
which keeps the working set of grid rows in the CPU cache (~8× faster than file order on the
reference province); while one village is summed the next one's series are prefetched
(``llvm.prefetch``), so memory latency overlaps the arithmetic; a village of at most
:data:`GROUP` cells (nearly all) is finished straight from its float32 group sum.  Villages
are split over threads (``numba.prange``, all cores).

When numba is not installed the same results (to rounding) come from ``scipy.sparse``
products and ``np.fmax.reduceat``.

Examples
--------
>>> import numpy as np
>>> indptr, indices, data = np.array([0, 2, 3]), np.array([0, 1, 2]), np.array([0.5, 0.25, 1.0])
>>> vals = np.array([[4.0, np.nan, 9.0], [4.0, 1.0, np.nan]], dtype=np.float32)
>>> mean, mx, den = aggregate_csr(indptr, indices, data, vals, np.array([0, 1]), True, True)
>>> mean.tolist(), mx.tolist(), den.tolist()
([[4.0, 3.0], [9.0, nan]], [[4.0, 4.0], [9.0, nan]], [0.5, 0.0])
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

_nb: Any
try:  # pragma: no cover - exercised when numba is installed
    import numba as _nb

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover
    _nb = None
    HAVE_NUMBA = False

CHUNK = 256
"""Villages per parallel task (each task owns its scratch rows)."""

GROUP = 16
"""Cells summed in the forecast's precision before the running sum (float64) takes them."""


def spatial_order(indptr: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Row order sorted by each row's first (smallest) cell; empty rows last."""
    n = len(indptr) - 1
    first = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    nonempty = np.diff(indptr) > 0
    first[nonempty] = indices[indptr[:-1][nonempty]]
    return np.argsort(first, kind="stable")


def _aggregate_numpy(indptr, indices, data, vals, order, want_mean, want_max):
    nt, nc = vals.shape
    nv = len(indptr) - 1
    m = sp.csr_array((data, indices, indptr), shape=(nv, nc))
    r = np.empty((nc, nt), dtype=np.float64)
    r[...] = vals.T
    valid = ~np.isnan(r)
    r[~valid] = 0.0
    num = m @ r
    den_t = m @ valid.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(den_t > 0, num / np.where(den_t > 0, den_t, 1.0), np.nan).astype(np.float32)
    den = den_t.min(axis=1) if nt else np.asarray(m.sum(axis=1)).ravel()
    mx = np.full((nv, nt), np.nan, dtype=np.float32)
    if want_max:
        rows = np.flatnonzero(np.diff(indptr) > 0)
        if len(rows) and nt:
            step = max(1, (1 << 24) // max(1, len(indices)))
            for t0 in range(0, nt, step):
                block = vals[t0:t0 + step][:, indices]
                mx[rows, t0:t0 + step] = np.fmax.reduceat(block, indptr[rows], axis=1).T
    return (mean if want_mean else np.empty((nv, 0), np.float32)), mx, den


if HAVE_NUMBA:  # pragma: no branch
    from llvmlite import binding as _llvm
    from llvmlite import ir as _ir
    from numba.core import cgutils as _cgutils
    from numba.core import types as _types
    from numba.extending import intrinsic as _intrinsic

    # typed-pointer LLVM (< 15) names the intrinsic by its pointer type
    _PREFETCH = "llvm.prefetch.p0" if _llvm.llvm_version_info[0] >= 15 else "llvm.prefetch.p0i8"

    @_intrinsic
    def _prefetch(typingctx, arr, i):  # pragma: no cover - compiled
        """Hint the CPU to fetch ``arr.flat[i]``'s cache line (a read, kept in all cache levels)."""
        def codegen(context, builder, sig, args):
            ary = context.make_array(sig.args[0])(context, builder, args[0])
            ptr = builder.bitcast(builder.gep(ary.data, [args[1]]), _ir.IntType(8).as_pointer())
            i32 = _ir.IntType(32)
            fn = _cgutils.get_or_insert_function(
                builder.module, _ir.FunctionType(_ir.VoidType(), [ptr.type, i32, i32, i32]), _PREFETCH)
            builder.call(fn, [ptr, _ir.Constant(i32, 0), _ir.Constant(i32, 3), _ir.Constant(i32, 1)])
            return context.get_dummy_value()
        return _types.void(arr, _types.intp), codegen

    @_nb.njit(inline="always")
    def _fetch_village(flat, indptr, indices, i, nt):  # pragma: no cover
        """Prefetch every cache line of village ``i``'s cell series (``flat``: the (cells, time) buffer)."""
        for k in range(indptr[i], indptr[i + 1]):
            base = indices[k] * nt
            for o in range(0, nt, 16):
                _prefetch(flat, base + o)
            _prefetch(flat, base + nt - 1)

    @_nb.njit(inline="always")
    def _add_quad(acc, rt, indices, data, k, first):  # pragma: no cover
        """``acc (=|+=) Σ w·row`` over the four cells ``k … k+3`` (one vector loop over time)."""
        r0, r1, r2, r3 = rt[indices[k]], rt[indices[k + 1]], rt[indices[k + 2]], rt[indices[k + 3]]
        w0, w1, w2, w3 = data[k], data[k + 1], data[k + 2], data[k + 3]
        if first:
            for t in range(len(acc)):
                acc[t] = (w0 * r0[t] + w1 * r1[t]) + (w2 * r2[t] + w3 * r3[t])
        else:
            for t in range(len(acc)):
                acc[t] += (w0 * r0[t] + w1 * r1[t]) + (w2 * r2[t] + w3 * r3[t])

    @_nb.njit(inline="always")
    def _add_one(acc, row, wk, first):  # pragma: no cover
        if first:
            for t in range(len(acc)):
                acc[t] = wk * row[t]
        else:
            for t in range(len(acc)):
                acc[t] += wk * row[t]

    @_nb.njit(inline="always")
    def _max_quad(best, rt, indices, k):  # pragma: no cover
        r0, r1, r2, r3 = rt[indices[k]], rt[indices[k + 1]], rt[indices[k + 2]], rt[indices[k + 3]]
        for t in range(len(best)):     # max(best, x) keeps best when x is NaN
            best[t] = max(max(max(max(best[t], r0[t]), r1[t]), r2[t]), r3[t])

    @_nb.njit(inline="always")
    def _max_one(best, row):  # pragma: no cover
        for t in range(len(best)):
            best[t] = max(best[t], row[t])

    @_nb.njit(inline="always")
    def _write_mean(mean, i, total, inv):  # pragma: no cover
        """``mean[i] = total · inv``; True when a NaN cell made the row NaN (two vector loops)."""
        bad = False
        for t in range(len(total)):
            bad |= total[t] != total[t]
        for t in range(len(total)):
            mean[i, t] = total[t] * inv
        return bad

    @_nb.njit(inline="always")
    def _village(i, indptr, indices, data, rt, acc, num, best, want_max):  # pragma: no cover
        """Weighted sum of village ``i`` (in ``acc`` when one group, else in ``num``), max in ``best``.

        Returns the number of :data:`GROUP`-cell groups summed (0 for an empty row).
        """
        k, k1 = indptr[i], indptr[i + 1]
        if want_max:
            for t in range(len(best)):
                best[t] = -np.inf
        groups = 0
        while k < k1:
            if groups == 1:        # a second group: the first one's sum moves to float64
                for t in range(len(acc)):
                    num[t] = acc[t]
            kg = min(k1, k + GROUP)
            first = True
            while k + 4 <= kg:
                _add_quad(acc, rt, indices, data, k, first)
                if want_max:
                    _max_quad(best, rt, indices, k)
                first = False
                k += 4
            while k < kg:
                row = rt[indices[k]]
                _add_one(acc, row, data[k], first)
                if want_max:
                    _max_one(best, row)
                first = False
                k += 1
            if groups > 0:
                for t in range(len(acc)):
                    num[t] += acc[t]
            groups += 1
        return groups

    @_nb.njit(parallel=True, cache=True, nogil=True)
    def _mean_max_t(indptr, indices, data, rt, order, rowsum, want_max):  # pragma: no cover
        """Mean (NaN propagates) and NaN-skipping max from the (cells, time) layout.

        ``data``: the weights in ``rt``'s dtype.  Returns ``(mean, max, nan_row)``:
        ``nan_row[i]`` flags a non-empty row whose mean shows a NaN.  Each touched cell's series
        is one contiguous row of ``rt``, so the loop over time is a plain vector loop, four cells
        per pass; the next village's series are prefetched while this one is summed.  The
        weighted sum runs in the forecast's precision within groups of :data:`GROUP` cells and in
        float64 across groups (a few float32 ulps from an all-float64 sum whatever the size).
        """
        nt = rt.shape[1]
        nv = len(indptr) - 1
        flat = rt.reshape(-1)
        mean = np.empty((nv, nt), np.float32)
        mx = np.empty((nv if want_max else 0, nt), np.float32)
        nan_row = np.zeros(nv, np.bool_)
        nchunks = (nv + CHUNK - 1) // CHUNK
        for ch in _nb.prange(nchunks):
            num = np.empty(nt, np.float64)
            acc = np.empty(nt, rt.dtype)
            best = np.empty(nt, rt.dtype)
            hi = min(nv, (ch + 1) * CHUNK)
            for j in range(ch * CHUNK, hi):
                if j + 1 < hi:
                    _fetch_village(flat, indptr, indices, order[j + 1], nt)
                i = order[j]
                groups = _village(i, indptr, indices, data, rt, acc, num, best, want_max)
                rs = rowsum[i]
                if groups == 0 or not rs > 0:
                    for t in range(nt):
                        mean[i, t] = np.nan
                elif groups == 1:          # num == acc exactly: skip the float64 copy
                    nan_row[i] = _write_mean(mean, i, acc, 1.0 / rs)
                else:
                    nan_row[i] = _write_mean(mean, i, num, 1.0 / rs)
                if want_max:
                    for t in range(nt):
                        mx[i, t] = best[t] if best[t] > -np.inf else np.nan
        return mean, mx, nan_row

    @_nb.njit(parallel=True, cache=True, nogil=True)
    def _nan_rows(indptr, indices, data, vals, rows, mean):  # pragma: no cover
        """NaN-skipping mean for ``rows`` (written into ``mean``); returns each row's smallest weight sum."""
        nt = vals.shape[0]
        den_min = np.zeros(len(rows), np.float64)
        for j in _nb.prange(len(rows)):
            i = rows[j]
            num = np.zeros(nt, np.float64)
            den = np.zeros(nt, np.float64)
            for k in range(indptr[i], indptr[i + 1]):
                c = indices[k]
                wk = data[k]
                for t in range(nt):
                    x = vals[t, c]
                    if x == x:
                        num[t] += wk * x
                        den[t] += wk
            dmin = np.inf
            for t in range(nt):
                dmin = min(dmin, den[t])
                mean[i, t] = num[t] / den[t] if den[t] > 0 else np.nan
            den_min[j] = dmin if nt > 0 else 0.0
        return den_min


def row_sums(indptr: np.ndarray, data: np.ndarray) -> np.ndarray:
    """Sum of each CSR row's values (float64; 0 for an empty row)."""
    nv = len(indptr) - 1
    rowsum = np.zeros(nv)
    if len(data):
        rowsum = np.add.reduceat(np.asarray(data, np.float64), np.minimum(indptr[:-1], len(data) - 1))
        rowsum[np.diff(indptr) == 0] = 0.0
    return rowsum


def aggregate_csr(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, vals: np.ndarray,
                  order: np.ndarray, want_mean: bool = True, want_max: bool = True,
                  engine: str = "auto", rowsum: np.ndarray | None = None,
                  data32: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row NaN-skipping weighted mean and max of ``vals`` (time, cells).

    Returns ``(mean (rows, time) float32, max (rows, time) float32, den)`` where ``den`` is
    each row's smallest (over time) weight sum on non-NaN cells.  ``engine`` is ``auto``,
    ``numba`` or ``numpy``.  Arrays not requested have zero columns.  ``rowsum`` (each row's
    weight sum, :func:`row_sums`) and ``data32`` (``data`` as float32) may be passed when known.
    """
    if engine == "auto":
        engine = "numba" if HAVE_NUMBA else "numpy"
    if engine == "numba" and HAVE_NUMBA:
        vals = np.asarray(vals)
        if vals.dtype not in (np.float32, np.float64):
            vals = vals.astype(np.float64)
        # time the fastest axis in memory (a (y, x, time) buffer): read it as (cells, time)
        time_fastest = vals.T.flags.c_contiguous and not vals.flags.c_contiguous
        if not time_fastest:
            vals = np.ascontiguousarray(vals)
        data = np.asarray(data, np.float64)
        nv = len(indptr) - 1
        if rowsum is None:
            rowsum = row_sums(indptr, data)
        if vals.dtype == np.float64:        # the weights in the values' dtype
            wt = data
        else:
            wt = data32 if data32 is not None and len(data32) == len(data) else data.astype(np.float32)
        rt = vals.T if time_fastest else np.ascontiguousarray(vals.T)          # (cells, time)
        mean, mx, nan_row = _mean_max_t(indptr, indices, wt, rt, order, rowsum, bool(want_max))
        if not want_max:
            mx = np.empty((nv, 0), np.float32)
        # a NaN cell shows as NaN in the plain mean: redo those rows leaving NaN cells out
        den = rowsum
        bad = np.flatnonzero(nan_row)
        if len(bad):
            den = rowsum.copy()
            den[bad] = _nan_rows(indptr, indices, data, vals, bad, mean)
        if not want_mean:
            mean = np.empty((nv, 0), np.float32)
        return mean, mx, den
    if engine not in ("numpy", "numba"):
        raise ValueError(f"unknown engine {engine!r}")
    return _aggregate_numpy(indptr, indices, data, vals, order, want_mean, want_max)


def warm_up() -> float:
    """Load (or compile) the numba kernels for the usual dtypes; return the seconds it took.

    The first call of a kernel in a process loads its machine code from numba's cache
    (compiling it the very first time): a one-time cost, like an import, that a long-running
    service pays at start.  A no-op without numba.

    >>> warm_up() >= 0.0
    True
    """
    import time

    t0 = time.perf_counter()
    if HAVE_NUMBA:
        data = np.array([1.0])
        for itype in (np.int32, np.int64):
            indptr, indices = np.array([0, 1, 1], itype), np.array([0], itype)
            for dtype in (np.float32, np.float64):
                c_order = np.full((2, 2), np.nan, dtype)          # (time, cells)
                for vals in (c_order, np.asfortranarray(c_order)):   # and time-fastest
                    aggregate_csr(indptr, indices, data, vals, np.array([0, 1]), True, True)
                    aggregate_csr(indptr, indices, data, vals, np.array([0, 1]), True, False)
    return time.perf_counter() - t0

