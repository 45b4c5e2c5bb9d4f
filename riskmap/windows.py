"""Rolling-window maxima and effective antecedent rainfall, per village.

Time model
----------
Each value is the rain of one interval ``(time - interval, time]`` (``time`` labels the
interval END, UTC; the ``interval`` coordinate gives its length — without it the lengths
are taken from the spacing of ``time``, the first one equal to the second).  The observed
and forecast parts are one merged series, so windows span the ``now`` boundary naturally
(a 3 h window ending one hour after ``now`` = 2 observed hours + 1 forecast hour).
Intervals may be irregular (hourly, then 3-hourly), may leave gaps (no rain), must not overlap.

``spread`` says how an interval's rain is placed in time when a window cuts it:

* ``"uniform"`` (default): evenly over the interval, so a 1 h window inside a 3-hourly
  interval of 9 mm holds 3 mm.  The accumulation of a ``d``-hour window ending at ``E`` is
  ``C(E) - C(E - d)`` with ``C`` the cumulative rain, linear inside each interval.  Its
  maximum is attained where ``E`` or ``E - d`` is an interval boundary, so those are the
  only windows examined — exact, not sampled.
* ``"whole"``: rain is not split: a window takes every interval it overlaps in whole (a
  conservative upper bound; windows end at interval ends).

A window reaches back at most to the start of the data: if the data are shorter than
``d`` hours, the ``d``-hour maximum is the total.  ``now`` + ``horizon_h`` limits the
window ENDS (windows ending at or before ``now + horizon_h``); ``now`` is a parameter,
never the clock.  Where several windows reach the maximum, the earliest end is reported.

The ``max`` statistic
---------------------
Summing a village's per-step ``max`` over a window would add maxima of *different* cells.
The honest meaning — "the largest ``d``-hour accumulation at any single cell the village
touches" — is computed from the grid by :func:`window_maxima_grid`: the window maxima of
every touched cell (cumulative sums on the grid), then per village the largest over its
cells (the CSR structure of the coverage weights).  :func:`window_maxima` on a village
Dataset therefore windows ``mean`` only, and takes ``max`` from the grid when ``grid`` and
``weights`` are passed (folded into one Dataset).

Examples
--------
>>> import numpy as np, pandas as pd, xarray as xr
>>> t = pd.to_datetime(["2026-07-01T01", "2026-07-01T02", "2026-07-01T03", "2026-07-01T06"])
>>> rain = xr.Dataset({"mean": (("village", "time"), [[1.0, 4.0, 2.0, 9.0]])},
...                   coords={"village": ["110101001001"], "time": t})
>>> w = window_maxima(rain, (1, 3, 24))
>>> w["mean"].values.tolist()     # 1 h: a third of the 9 mm 3-hourly step is 3 < 4
[[4.0, 9.0, 16.0]]
>>> str(w["mean_end"].values[0, 0])[:19]
'2026-07-01T02:00:00'
>>> window_maxima(rain, (1,), spread="whole")["mean"].values.tolist()
[[9.0]]
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import xarray as xr

from riskmap.errors import InputError
from riskmap.weights import CoverageWeights

__all__ = ["window_maxima", "window_maxima_grid", "effective_rainfall", "window_table", "SPREADS"]

SPREADS = ("uniform", "whole")
HOUR = np.timedelta64(3600, "s")


def _intervals(time: np.ndarray, interval: np.ndarray | None, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) as float hours since the first start, plus validation."""
    ends = np.asarray(time, dtype="datetime64[ns]")
    if ends.size == 0:
        raise InputError(f"{where}: no time steps")
    if np.any(np.diff(ends) <= np.timedelta64(0, "ns")):
        raise InputError(f"{where}: times must increase strictly")
    if interval is None:
        if ends.size == 1:
            raise InputError(f"{where}: one time step and no 'interval' coordinate: its length is unknown")
        d = np.diff(ends)
        interval = np.concatenate([d[:1], d])
    interval = np.asarray(interval, dtype="timedelta64[ns]")
    if np.any(interval <= np.timedelta64(0, "ns")):
        raise InputError(f"{where}: interval lengths must be positive")
    starts = ends - interval
    if np.any(starts[1:] < ends[:-1]):
        i = int(np.flatnonzero(starts[1:] < ends[:-1])[0]) + 1
        raise InputError(f"{where}: interval ending {ends[i]} overlaps the one before it")
    t0 = starts[0]
    return (starts - t0) / HOUR, (ends - t0) / HOUR


def _origin(time: np.ndarray, interval: np.ndarray | None) -> np.datetime64:
    ends = np.asarray(time, dtype="datetime64[ns]")
    if interval is None:
        d = ends[1] - ends[0]
    else:
        d = np.asarray(interval, dtype="timedelta64[ns]")[0]
    return ends[0] - d


def _to_utc64(now: Any) -> np.datetime64:
    ts = pd.Timestamp(now)
    if ts.tzinfo is None:
        raise InputError(f"now={now!r} must carry a time zone offset")
    return np.datetime64(ts.tz_convert("UTC").tz_localize(None).to_datetime64(), "ns")


def _cumulative(values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boundaries (sorted hours) and cumulative rain there, (n, nb); NaN counts as 0."""
    bounds = np.unique(np.concatenate([starts, ends]))
    v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)
    cum_end = np.cumsum(v, axis=1)                      # after each interval's end
    # at a boundary b: the rain of all intervals ending at or before b
    k = np.searchsorted(ends, bounds, side="right")     # number of intervals ended by b
    cum = np.concatenate([np.zeros((v.shape[0], 1)), cum_end], axis=1)[:, k]
    return bounds, cum


def _window_core(cum: np.ndarray, bounds: np.ndarray, ends: np.ndarray, durations: Sequence[float],
                 end_limit: float, spread: str) -> tuple[np.ndarray, np.ndarray]:
    """Max accumulation (n, nd) and the window end in hours (n, nd)."""
    n = cum.shape[0]
    out = np.full((n, len(durations)), np.nan)
    when = np.full((n, len(durations)), np.nan)
    lo = bounds[0]
    for j, d in enumerate(durations):
        if spread == "uniform":
            cand = np.unique(np.concatenate([bounds, bounds + d, [end_limit]]))
        else:
            cand = np.unique(np.concatenate([ends, [end_limit]]) if end_limit >= ends[0] else ends[:1])
        cand = cand[(cand <= end_limit + 1e-9) & (cand >= lo)]
        if spread == "whole":
            cand = cand[np.isin(cand, ends)] if np.isin(cand, ends).any() else ends[:1]
        if cand.size == 0:
            continue
        if spread == "uniform":
            a = _interp(cum, bounds, cand) - _interp(cum, bounds, np.maximum(cand - d, lo))
        else:
            # intervals overlapping (E - d, E] count whole: C(E) - C(last boundary <= E - d)
            kk = np.searchsorted(bounds, cand, side="right") - 1
            k0 = np.maximum(np.searchsorted(bounds, cand - d, side="right") - 1, 0)
            a = cum[:, kk] - cum[:, k0]
        best = np.argmax(a, axis=1)
        out[:, j] = a[np.arange(n), best]
        when[:, j] = cand[best]
    return out, when


def _interp(cum: np.ndarray, bounds: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Linear interpolation of each row of ``cum`` (at ``bounds``) at points ``x`` (clamped)."""
    x = np.clip(x, bounds[0], bounds[-1])
    k = np.clip(np.searchsorted(bounds, x, side="right") - 1, 0, len(bounds) - 2) if len(bounds) > 1 else \
        np.zeros(len(x), int)
    if len(bounds) == 1:
        return cum[:, [0] * len(x)]
    span = bounds[k + 1] - bounds[k]
    f = np.where(span > 0, (x - bounds[k]) / np.where(span > 0, span, 1.0), 0.0)
    if not f.any():                      # every point on a boundary (the usual case)
        return cum[:, k]
    return cum[:, k] * (1.0 - f) + cum[:, k + 1] * f


def _limits(time: np.ndarray, interval: np.ndarray | None, now: Any, horizon_h: float | None,
            ends: np.ndarray) -> float:
    if now is None:
        if horizon_h is not None:
            raise InputError("window_maxima: horizon_h needs now")
        return float(ends[-1])
    t0 = _origin(time, interval)
    limit = (_to_utc64(now) - t0) / HOUR + (float(horizon_h) if horizon_h is not None else np.inf)
    return float(min(limit, ends[-1]))


def _check(durations_h: Sequence[float], spread: str) -> tuple[float, ...]:
    if spread not in SPREADS:
        raise InputError(f"window_maxima: spread must be one of {', '.join(SPREADS)}, got {spread!r}")
    d = tuple(float(x) for x in durations_h)
    if not d or any(x <= 0 for x in d):
        raise InputError(f"window_maxima: durations must be positive hours, got {tuple(durations_h)}")
    return d


def _interval_coord(obj: Any) -> np.ndarray | None:
    if "interval" in obj.coords and obj["interval"].dims == ("time",):
        return np.asarray(obj["interval"].values)
    return None


def _duration_coord(durations: tuple[float, ...]) -> np.ndarray:
    return np.array([int(x) if float(x).is_integer() else x for x in durations])


def window_maxima(rain: xr.Dataset, durations_h: Sequence[float] = (1, 3, 6, 12, 24), *, now: Any = None,
                  horizon_h: float | None = None, spread: str = "uniform", grid: xr.DataArray | None = None,
                  weights: CoverageWeights | None = None) -> xr.Dataset:
    """Largest accumulation per village over windows of each duration, and when it ends.

    Parameters
    ----------
    rain
        :func:`riskmap.rainfall.village_rainfall` output (dims ``village, time``; ``mean``).
    durations_h
        Window lengths in hours.
    now, horizon_h
        With ``now`` (tz-aware), only windows ending at or before ``now + horizon_h`` (all
        windows up to the end of the data when ``horizon_h`` is None).
    spread
        ``"uniform"`` or ``"whole"`` (module docstring).
    grid, weights
        The forecast grid and its coverage weights: adds ``max`` / ``max_end`` from
        :func:`window_maxima_grid`.  Without them only ``mean`` is windowed.

    Returns
    -------
    xarray.Dataset
        Dims ``(village, duration)``; ``duration`` in hours; ``mean`` (mm, float32) and
        ``mean_end`` (datetime64[ns], UTC, the window's end); ``max``/``max_end`` with a grid.
    """
    durations = _check(durations_h, spread)
    if "mean" not in rain:
        raise InputError("window_maxima: the rainfall Dataset has no 'mean' variable")
    interval = _interval_coord(rain)
    times = rain["time"].values
    starts, ends = _intervals(times, interval, "window_maxima")
    limit = _limits(times, interval, now, horizon_h, ends)
    values = rain["mean"].transpose("village", "time").values
    bounds, cum = _cumulative(values, starts, ends)
    acc, when = _window_core(cum, bounds, ends, durations, limit, spread)
    allnan = np.isnan(values).all(axis=1)
    acc[allnan] = np.nan
    t0 = _origin(times, interval)
    ds = xr.Dataset(
        {"mean": (("village", "duration"), acc.astype(np.float32)),
         "mean_end": (("village", "duration"), _hours_to_time(t0, when))},
        coords={"village": rain["village"].values, "duration": _duration_coord(durations)},
    )
    ds["duration"].attrs["units"] = "h"
    ds.attrs.update({"spread": spread, "now": "" if now is None else pd.Timestamp(now).isoformat(),
                     "horizon_h": "" if horizon_h is None else float(horizon_h)})
    if grid is not None and weights is not None:
        g = window_maxima_grid(grid, weights, durations, now=now, horizon_h=horizon_h, spread=spread)
        g = g.sel(village=ds["village"].values)
        ds["max"], ds["max_end"] = g["max"], g["max_end"]
    return ds


def _hours_to_time(t0: np.datetime64, hours: np.ndarray) -> np.ndarray:
    out = np.full(hours.shape, np.datetime64("NaT", "ns"))
    ok = ~np.isnan(hours)
    out[ok] = t0 + np.round(hours[ok] * 3600e9).astype("timedelta64[ns]")
    return out


def window_maxima_grid(grid: xr.DataArray, weights: CoverageWeights,
                       durations_h: Sequence[float] = (1, 3, 6, 12, 24),
                       *, now: Any = None, horizon_h: float | None = None, spread: str = "uniform",
                       chunk_cells: int = 20000) -> xr.Dataset:
    """Per village, the largest ``d``-hour accumulation at any single cell it touches.

    Window maxima are computed for every touched cell from its cumulative rain (in chunks
    of ``chunk_cells`` cells), then reduced per village over its CSR row.  Returns dims
    ``(village, duration)`` with ``max`` (float32 mm) and ``max_end`` (datetime64[ns] UTC).
    """
    durations = _check(durations_h, spread)
    interval = _interval_coord(grid)
    times = grid["time"].values
    starts, ends = _intervals(times, interval, "window_maxima_grid")
    limit = _limits(times, interval, now, horizon_h, ends)
    data = grid.transpose("time", "y", "x").values.reshape(len(times), -1)
    cells = np.unique(weights.indices)
    cell_acc = np.full((len(cells), len(durations)), np.nan)
    cell_when = np.full((len(cells), len(durations)), np.nan)
    for c0 in range(0, len(cells), chunk_cells):
        sl = slice(c0, c0 + chunk_cells)
        vals = data[:, cells[sl]].T
        bounds, cum = _cumulative(vals, starts, ends)
        acc, when = _window_core(cum, bounds, ends, durations, limit, spread)
        acc[np.isnan(vals).all(axis=1)] = np.nan
        cell_acc[sl], cell_when[sl] = acc, when
    nv = weights.n_villages
    out = np.full((nv, len(durations)), np.nan)
    out_when = np.full((nv, len(durations)), np.nan)
    indptr = weights.indptr
    rows = np.flatnonzero(np.diff(indptr) > 0)
    if len(rows):
        pos = np.searchsorted(cells, weights.indices)          # touched cell -> position in cells
        a = cell_acc[pos]                                        # (nnz, nd)
        filled = np.where(np.isnan(a), -np.inf, a)
        seg_max = np.maximum.reduceat(filled, indptr[rows], axis=0)   # (rows, nd)
        # the first cell of each row reaching the row's max gives the end time
        row_of = np.repeat(np.arange(len(rows)), np.diff(indptr)[rows])
        hit = filled == seg_max[row_of]
        idx = np.where(hit, np.arange(len(a))[:, None], len(a))
        first = np.minimum.reduceat(idx, indptr[rows], axis=0)
        w = cell_when[pos]
        good = np.isfinite(seg_max)
        out[rows] = np.where(good, seg_max, np.nan)
        out_when[rows] = np.where(good, np.take_along_axis(w, np.minimum(first, len(a) - 1), axis=0), np.nan)
    t0 = _origin(times, interval)
    ds = xr.Dataset(
        {"max": (("village", "duration"), out.astype(np.float32)),
         "max_end": (("village", "duration"), _hours_to_time(t0, out_when))},
        coords={"village": weights.codes, "duration": _duration_coord(durations)},
    )
    ds["duration"].attrs["units"] = "h"
    return ds


def effective_rainfall(rain_mean: xr.DataArray, now: Any, k: float, n_days: int, day_boundary: str = "08:00",
                       tz: str = "Asia/Shanghai", spread: str = "uniform") -> xr.DataArray:
    """Effective antecedent rainfall per village, ``R_eff = Σ_{i=0..n} kⁱ · R_i``.

    ``R_i`` is the rain of rainfall day ``i`` before the day containing ``now``: a rainfall
    day runs from ``day_boundary`` local time (``tz``) to the next day's ``day_boundary``
    (the Chinese hydrological day, 08:00 to 08:00 Beijing time).  ``R_0`` is the whole day
    containing ``now`` — observed rain up to ``now`` plus forecast rain after it;
    ``R_1 … R_n`` are the ``n`` previous days.  Rain is placed in time per ``spread`` (an
    interval straddling a day boundary is split evenly with ``"uniform"``, counted in the
    day of its end with ``"whole"``).  Days without data count 0.

    >>> import pandas as pd, xarray as xr
    >>> t = pd.date_range("2026-06-29T01:00", periods=70, freq="h")   # 1 mm/h until 22:00 UTC 1 July
    >>> r = xr.DataArray([[1.0] * 70], dims=("village", "time"), coords={"village": ["v"], "time": t})
    >>> now = pd.Timestamp("2026-07-01T12:00+08:00")     # day 0: 1 July 08:00 CST (00:00 UTC) to 2 July 08:00
    >>> float(effective_rainfall(r, now, k=0.5, n_days=2)[0])   # R0 = 22, R1 = 24, R2 = 24
    40.0
    """
    if spread not in SPREADS:
        raise InputError(f"effective_rainfall: spread must be one of {', '.join(SPREADS)}, got {spread!r}")
    if n_days < 0:
        raise InputError(f"effective_rainfall: n_days must be >= 0, got {n_days}")
    hh, _, mm = day_boundary.partition(":")
    if not (hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60):
        raise InputError(f"effective_rainfall: day_boundary must be HH:MM, got {day_boundary!r}")
    zone = ZoneInfo(tz)
    now_ts = pd.Timestamp(now)
    if now_ts.tzinfo is None:
        raise InputError(f"now={now!r} must carry a time zone offset")
    local: datetime = now_ts.to_pydatetime().astimezone(zone)
    start = local.replace(hour=int(hh), minute=int(mm), second=0, microsecond=0)
    if start > local:
        start -= timedelta(days=1)
    # end of R_0, start of R_0 (= end of R_1), ..., start of R_n
    day_edges = [start + timedelta(days=1 - i) for i in range(n_days + 2)]
    edges64 = np.array([np.datetime64(pd.Timestamp(e).tz_convert("UTC").tz_localize(None), "ns")
                        for e in day_edges])
    interval = _interval_coord(rain_mean)
    times = rain_mean["time"].values
    starts, ends = _intervals(times, interval, "effective_rainfall")
    t0 = _origin(times, interval)
    values = rain_mean.transpose("village", "time").values
    bounds, cum = _cumulative(values, starts, ends)
    x = (edges64 - t0) / HOUR
    if spread == "uniform":
        c = _interp(cum, bounds, x)
    else:
        c = cum[:, np.clip(np.searchsorted(bounds, x, side="right") - 1, 0, len(bounds) - 1)]
        c[:, x < bounds[0]] = 0.0
    daily = c[:, :-1] - c[:, 1:]                       # R_0 … R_n
    weights_k = float(k) ** np.arange(n_days + 1)
    reff = daily @ weights_k
    reff[np.isnan(values).all(axis=1)] = np.nan
    out = xr.DataArray(reff, dims=("village",), coords={"village": rain_mean["village"].values},
                       name="effective_rainfall")
    out.attrs.update({"units": "mm", "k": float(k), "n_days": int(n_days), "day_boundary": day_boundary,
                      "tz": tz, "day0_start": start.isoformat()})
    return out


def window_table(windows: xr.Dataset) -> pd.DataFrame:
    """Long form of :func:`window_maxima`: columns ``village, duration_h, stat, mm, end`` (end tz-aware UTC).

    >>> ds = xr.Dataset({"mean": (("village", "duration"), [[3.0]]),
    ...                  "mean_end": (("village", "duration"), [[np.datetime64("2026-07-01T02:00", "ns")]])},
    ...                 coords={"village": ["v1"], "duration": [3]})
    >>> row = window_table(ds).iloc[0]
    >>> row["village"], int(row["duration_h"]), row["stat"], float(row["mm"]), str(row["end"])
    ('v1', 3, 'mean', 3.0, '2026-07-01 02:00:00+00:00')
    """
    frames = []
    villages = windows["village"].values.astype(str)
    durations = windows["duration"].values
    for s in ("mean", "max"):
        if s not in windows:
            continue
        a = windows[s].transpose("village", "duration").values
        e = windows[f"{s}_end"].transpose("village", "duration").values
        frames.append(pd.DataFrame({
            "village": np.repeat(villages, len(durations)),
            "duration_h": np.tile(durations, len(villages)),
            "stat": s,
            "mm": a.ravel().astype(np.float64),
            "end": pd.DatetimeIndex(e.ravel()).tz_localize("UTC"),
        }))
    if not frames:
        return pd.DataFrame(columns=["village", "duration_h", "stat", "mm", "end"])
    return pd.concat(frames, ignore_index=True)
