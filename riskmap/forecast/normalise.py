"""From what a reader found (:class:`RawField`) to the forecast contract, in one place.

Every reader (CF NetCDF/Zarr, GRIB, WRF, GeoTIFF) fills a :class:`RawField` with the values as
stored and the metadata it could find; :func:`finish` then applies, in order:

1. times: at least one, strictly increasing (duplicates refused);
2. units → millimetres (amounts) or mm/s (rates, multiplied by the interval length);
3. de-accumulation when the series is accumulated since one start (``accumulated`` from metadata or
   the option): ``mm[i] = acc[i] - acc[i-1]``, interval ``t[i] - t[i-1]`` (the first from the start);
   a step at the start itself (zero length, e.g. GRIB step 0) is dropped;
4. intervals when the file has no bounds: the ``interval`` option, else the time differences, the
   first being ``t[0] - reference_time`` (or ``t[1] - t[0]``); one step with neither is refused;
5. orientation: longitudes 0–360 rolled to −180…180, **x ascending, y descending (north-up, as
   GeoTIFF/GDAL)**;
6. checks: negative values, missing cells, plausibility of intensity;
7. the float32 values laid out **time-fastest in memory** (a ``(y, x, time)`` buffer seen as
   ``(time, y, x)``, :func:`time_fastest_float32`), the layout in which the per-village
   engine reads the forecast as ``(cells, time)`` without a copy — in memory only: opened with
   ``chunks=`` the same steps 1–6 run on a dask array (:func:`prepare`, :func:`orient`,
   :func:`contract`; checks in :mod:`riskmap.forecast.lazy`) and the layout is left to the chunks.

An instantaneous rate (no bounds) is taken to hold over the interval **ending** at its time.
The reference time, when the file has none and no option gives it, is the start of the first
interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import rioxarray  # noqa: F401  (registers da.rio)
import xarray as xr
from pyproj import CRS

from riskmap.errors import ForecastError
from riskmap.forecast import validate
from riskmap.forecast.options import ForecastOptions
from riskmap.forecast.units import parse_units


@dataclass
class RawField:
    """Precipitation as a reader found it.

    Attributes
    ----------
    values : numpy.ndarray or dask.array.Array
        ``(time, y, x)`` values in the file's units, NaN where missing (a dask array when opened
        with ``chunks=``).
    x, y : numpy.ndarray
        1-D cell-centre coordinates in the order of ``values``.
    times : numpy.ndarray
        datetime64[ns] (UTC): interval ends (or instants of a rate without bounds).
    units : str or None
        Units as written.
    crs : pyproj.CRS or None
        CRS found in the file.
    where : str
        ``"file: variable 'name'"`` for messages.
    source : str
        The file name(s), for the ``source`` attribute.
    starts : numpy.ndarray or None
        Interval starts when known (CF bounds, GRIB statistical period).
    accumulated : bool or None
        Metadata says "accumulated since one start".
    reference_time : numpy.datetime64 or None
        Forecast reference time (UTC) when the file says.
    """

    values: Any
    x: np.ndarray
    y: np.ndarray
    times: np.ndarray
    units: str | None
    crs: CRS | None
    where: str
    source: str
    starts: np.ndarray | None = None
    accumulated: bool | None = None
    reference_time: np.datetime64 | None = None
    notes: list[str] = field(default_factory=list)


def _intervals(raw: RawField, opts: ForecastOptions, ref: np.datetime64 | None, kind: str) -> np.ndarray:
    t = raw.times
    if raw.starts is not None:
        iv = t - raw.starts
        if (iv <= np.timedelta64(0, "ns")).any():
            raise ForecastError(f"{raw.where}: time bounds give an interval of zero or negative length")
        if opts.interval is not None and (iv != opts.interval).any():
            raise ForecastError(f"{raw.where}: option interval= conflicts with the file's own time bounds")
        return iv
    if opts.interval is not None:
        return np.full(t.size, opts.interval, dtype="timedelta64[ns]")
    if t.size >= 2:
        first = t[0] - ref if (ref is not None and t[0] > ref) else t[1] - t[0]
        return np.concatenate([[first], np.diff(t)]).astype("timedelta64[ns]")
    if ref is not None and t[0] > ref:
        return np.array([t[0] - ref], dtype="timedelta64[ns]")
    what = (f"is a rate ({raw.units!r}) at a single time, so turning it into mm needs a duration"
            if kind == "rate" else "has one time step and no time bounds or reference time before it, so the "
            "length of its interval is unknown")
    raise ForecastError(f"{raw.where}: {what}: pass interval= (e.g. interval='1h')")


def _deaccumulate(raw: RawField, mm: Any, start: np.datetime64,
                  kind: str, factor: float) -> tuple[Any, np.ndarray, np.ndarray]:
    t = raw.times
    since = t - start
    if (since < np.timedelta64(0, "ns")).any():
        raise ForecastError(f"{raw.where}: a time step lies before the accumulation start {start}")
    if kind == "rate":
        mm = raw.values * factor * (since.astype("float64") / 1e9)[:, None, None]
    keep = since > np.timedelta64(0, "ns")
    if not keep.all():
        mm, t = mm[keep], t[keep]
    if t.size == 0:
        raise ForecastError(f"{raw.where}: no time steps after the accumulation start")
    out = mm - _previous(mm)
    iv = np.diff(np.concatenate([[start], t])).astype("timedelta64[ns]")
    return out, t, iv


def _previous(mm: Any) -> Any:
    """Each step's predecessor (zeros before the first), for ``mm - previous``.

    A dask array gets a dask array chunked as ``mm``: step ``i`` of a chunk reads the last step
    of the chunk before it, so the difference is the same across chunk boundaries.
    """
    if isinstance(mm, np.ndarray):
        return np.concatenate([np.zeros((1,) + mm.shape[1:]), mm[:-1]])
    import dask.array as dsa

    zero = dsa.zeros((1,) + mm.shape[1:], chunks=((1,),) + mm.chunks[1:], dtype=mm.dtype)
    return dsa.concatenate([zero, mm[:-1]], axis=0).rechunk(mm.chunks)


def orient(raw: RawField, data: Any, crs: CRS) -> tuple[Any, np.ndarray, np.ndarray]:
    """x ascending (longitudes 0–360 rolled to −180…180), y descending; numpy or dask ``data``."""
    x = np.asarray(raw.x, dtype="float64")
    y = np.asarray(raw.y, dtype="float64")
    if crs.is_geographic and (x > 180).any():
        x = np.where(x >= 180, x - 360, x)
    ox = np.argsort(x, kind="stable")
    oy = np.argsort(-y, kind="stable")
    x, y = x[ox], y[oy]
    data = data[:, _index(oy)][:, :, _index(ox)]
    for name, c in (("x", x), ("y", y)):
        if c.size > 1 and (np.diff(c) == 0).any():
            raise ForecastError(f"{raw.where}: duplicate {name} coordinates")
        if not np.isfinite(c).all():
            raise ForecastError(f"{raw.where}: {name} coordinates are not finite")
    return data, x, y


def _index(order: np.ndarray) -> slice | np.ndarray:
    """A view-friendly index for a permutation: the identity or the reversal as a slice."""
    n = order.size
    if (order == np.arange(n)).all():
        return slice(None)
    if (order == np.arange(n)[::-1]).all():
        return slice(None, None, -1)
    return order


def _select_step(raw: RawField, k: int) -> None:
    """Keep only stored step ``k`` (from the end when negative), before any de-accumulation."""
    n = raw.times.size
    if not -n <= k < n:
        raise ForecastError(f"{raw.where}: time_index={k} is out of range ({n} steps)")
    k %= n
    raw.values = raw.values[k:k + 1]
    raw.times = raw.times[k:k + 1]
    if raw.starts is not None:
        raw.starts = raw.starts[k:k + 1]
    raw.accumulated = False


def time_fastest_float32(values: np.ndarray) -> np.ndarray:
    """A float32 copy of ``(time, y, x)`` values laid out time-fastest in memory.

    The result is a ``(time, y, x)`` view of a C-ordered ``(y, x, time)`` buffer: each cell's
    series is contiguous, so the per-village engine reads the forecast as ``(cells, time)``
    (one row per cell, :mod:`riskmap._kernels`) without copying it on every call.  The cast and
    the transposition are one pass, done once here at decode (this is the copy the cast to
    float32 made anyway).  Anything that wants another layout still sees an ordinary array.

    >>> v = np.arange(12.0).reshape(2, 2, 3)
    >>> a = time_fastest_float32(v)
    >>> a.shape, a.dtype.name, a.transpose(1, 2, 0).flags.c_contiguous, bool((a == v).all())
    ((2, 2, 3), 'float32', True, True)
    """
    out = np.empty(values.shape[1:] + values.shape[:1], dtype=np.float32)
    np.copyto(out, np.moveaxis(values, 0, -1), casting="unsafe")
    return out.transpose(2, 0, 1)


def iso_utc(t: np.datetime64) -> str:
    """ISO 8601 with offset of a datetime64 meaning UTC.

    >>> iso_utc(np.datetime64("2023-12-18T06:00", "ns"))
    '2023-12-18T06:00:00+00:00'
    """
    return pd.Timestamp(t).tz_localize("UTC").isoformat()


@dataclass
class Prepared:
    """A field after units, de-accumulation and intervals, before the value checks and orientation."""

    mm: Any
    times: np.ndarray
    intervals: np.ndarray
    ref: np.datetime64
    crs: CRS
    accumulated: bool


def prepare(raw: RawField, opts: ForecastOptions) -> Prepared:
    """Steps 1–4 of the module doc: times, units, de-accumulation, intervals (no value read yet).

    ``raw.values`` may be a numpy or a dask array; the same operations apply to both, so the
    lazy path (:mod:`riskmap.forecast.lazy`) gives the same float64 numbers.
    """
    where = raw.where
    if raw.values.ndim != 3 or raw.values.shape[1:] != (raw.y.size, raw.x.size):
        raise ForecastError(f"{where}: values of shape {raw.values.shape} do not match the grid")
    times = np.asarray(raw.times).astype("datetime64[ns]")
    raw.times = times
    validate.check_times(times, where)
    if opts.time_index is not None and "time_index applied" not in raw.notes:
        _select_step(raw, opts.time_index)
        times = raw.times
    if raw.values.size == 0:
        raise ForecastError(f"{where}: the grid is empty")
    crs = opts.crs or raw.crs
    if crs is None:
        raise ForecastError(
            f"{where}: no CRS found (no grid_mapping, crs_wkt, spatial_ref or model projection attributes): "
            "pass crs= (e.g. crs='EPSG:4326')"
        )
    kind, factor = parse_units(opts.units or raw.units, where)
    ref = opts.reference_time if opts.reference_time is not None else raw.reference_time
    accumulated = opts.accumulated if opts.accumulated is not None else bool(raw.accumulated)
    values = (np.asarray(raw.values, dtype="float64") if isinstance(raw.values, np.ndarray)
              else raw.values.astype("float64"))
    if accumulated:
        if raw.starts is not None:
            if (raw.starts != raw.starts[0]).any():
                raise ForecastError(
                    f"{where}: accumulated=true, but the time bounds start at different times")
            start = raw.starts[0]
        elif ref is not None:
            start = ref
        else:
            raise ForecastError(
                f"{where}: accumulated since the start, but the start is unknown: pass reference_time="
            )
        mm, times, intervals = _deaccumulate(raw, values * factor, start, kind, factor)
        if ref is None:
            ref = start
    else:
        intervals = _intervals(raw, opts, ref, kind)
        if kind == "rate":
            mm = values * factor * (intervals.astype("float64") / 1e9)[:, None, None]
        else:
            mm = values * factor if factor != 1.0 else values
    if ref is None:
        ref = times[0] - intervals[0]
    return Prepared(mm, times, intervals, ref, crs, accumulated)


def contract(values: Any, raw: RawField, p: Prepared, x: np.ndarray, y: np.ndarray) -> xr.DataArray:
    """The forecast contract's DataArray around float32 ``(time, y, x)`` values (numpy or dask)."""
    where = raw.where
    da = xr.DataArray(
        values,
        dims=("time", "y", "x"),
        coords={"time": p.times, "interval": ("time", p.intervals.astype("timedelta64[ns]")), "y": y, "x": x},
        name="precipitation",
        attrs={
            "units": "mm",
            "long_name": "precipitation amount per interval (time = interval end, UTC)",
            "reference_time": iso_utc(p.ref),
            "source": raw.source,
            "variable": where.split("variable ", 1)[-1].strip("'") if "variable " in where else "",
        },
    )
    return da.rio.write_crs(p.crs).rio.set_spatial_dims(x_dim="x", y_dim="y")


def finish(raw: RawField, opts: ForecastOptions) -> xr.DataArray:
    """Apply units, de-accumulation, intervals, orientation and checks; build the contract DataArray."""
    p = prepare(raw, opts)
    where = raw.where
    mm = validate.check_negative(p.mm, p.times, where, opts.negative_tolerance_mm,
                                 deaccumulated=p.accumulated)
    validate.check_intensity(mm, p.times, p.intervals, where, opts.max_intensity_mm_h)
    mm, x, y = orient(raw, mm, p.crs)
    validate.check_missing(mm, where)
    return contract(time_fastest_float32(mm), raw, p, x, y)
