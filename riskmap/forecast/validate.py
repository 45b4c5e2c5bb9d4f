"""Checks on a forecast: times, values, and coverage of the villages.

Each check names the file and variable (``where``) and either raises :class:`ForecastError`
(the input cannot be used) or warns with a :class:`DataWarning` subclass (usable, but suspicious).

Examples
--------
>>> import numpy as np
>>> t = np.array(["2024-07-15T01", "2024-07-15T01"], dtype="datetime64[ns]")
>>> check_times(t, "f.nc: variable 'pr'")
Traceback (most recent call last):
...
riskmap.errors.ForecastError: f.nc: variable 'pr': duplicate time 2024-07-15T01:00 (steps 0 and 1)
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from riskmap.errors import CoverageWarning, DataWarning, ForecastError


def warn(message: str, category: type[Warning] = DataWarning) -> None:
    """Issue a warning attributed to the first caller outside :mod:`riskmap.forecast`."""
    level, frame = 2, sys._getframe(1)
    while frame is not None and str(frame.f_globals.get("__name__", "")).startswith("riskmap.forecast"):
        frame, level = frame.f_back, level + 1  # type: ignore[assignment]
    warnings.warn(message, category, stacklevel=level)


def _fmt(t: np.datetime64) -> str:
    return str(np.datetime_as_string(t, unit="m"))


def check_times(times: np.ndarray, where: str) -> None:
    """Refuse no time steps, duplicate or non-increasing times."""
    if times.size == 0:
        raise ForecastError(f"{where}: no time steps")
    if np.isnat(times).any():
        step = int(np.argmax(np.isnat(times)))
        raise ForecastError(f"{where}: a time step has no valid time (NaT) at step {step}")
    for i in range(1, times.size):
        if times[i] == times[i - 1]:
            raise ForecastError(f"{where}: duplicate time {_fmt(times[i])} (steps {i - 1} and {i})")
        if times[i] < times[i - 1]:
            raise ForecastError(
                f"{where}: times are not increasing: step {i} ({_fmt(times[i])}) comes after "
                f"{_fmt(times[i - 1])}"
            )


def negative_verdict(n: int, low: float, at: np.datetime64, where: str, tolerance: float,
                     deaccumulated: bool = False) -> bool:
    """Judge ``n`` negative amounts down to ``low`` (first at time ``at``): refuse, or warn and clip.

    The one place of the message, for the in-memory check (:func:`check_negative`) and the lazy
    one (:mod:`riskmap.forecast.lazy`).  Returns True when the negatives are to be clipped to 0.
    """
    if n == 0:
        return False
    if low < -tolerance:
        hint = (" after de-accumulation: the series is not accumulated since one start on fixed cells "
                "(pass accumulated=false if it holds amounts per interval)") if deaccumulated else ""
        raise ForecastError(
            f"{where}: {n} negative values, down to {low:.3g} mm at {_fmt(at)}{hint}"
        )
    warn(
        f"{where}: {n} slightly negative values (down to {low:.2g} mm, float noise) clipped to 0",
    )
    return True


def check_negative(amounts: np.ndarray, times: np.ndarray, where: str, tolerance: float,
                   deaccumulated: bool = False) -> np.ndarray:
    """Refuse substantially negative amounts; clip float noise (>= -tolerance) to 0 with a warning.

    >>> import warnings
    >>> a = np.array([[[1.0, -0.01]]])
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     out = check_negative(a, np.array(["2024-01-01"], "datetime64[ns]"), "f", 0.05)
    >>> out.tolist(), str(w[0].message)
    ([[[1.0, 0.0]]], 'f: 1 slightly negative values (down to -0.01 mm, float noise) clipped to 0')
    """
    neg = amounts < 0
    n = int(np.count_nonzero(neg))
    if n == 0:
        return amounts
    low = float(np.nanmin(amounts))
    k = int(np.unravel_index(np.nanargmin(amounts), amounts.shape)[0])
    negative_verdict(n, low, times[k], where, tolerance, deaccumulated)
    out = np.array(amounts, copy=True) if not amounts.flags.writeable else amounts
    out[neg] = 0.0
    return out


def missing_verdict(n: int, cells: int, where: str) -> None:
    """Warn that ``n`` of ``cells`` grid cells are NaN in some step (nothing when ``n`` is 0)."""
    if n:
        warn(
            f"{where}: {n} of {cells} grid cells have no data (NaN or fill value) "
            "in at least one time step",
        )


def check_missing(amounts: np.ndarray, where: str) -> int:
    """Warn when cells are NaN (missing or fill value) in some step; return how many cells."""
    bad = np.isnan(amounts).any(axis=0)
    n = int(np.count_nonzero(bad))
    missing_verdict(n, bad.size, where)
    return n


def intensity_verdict(over: np.ndarray, step_max: np.ndarray, times: np.ndarray, intervals: np.ndarray,
                      where: str, limit_mm_h: float) -> None:
    """Refuse when any step has values above the limit, from per-step reductions.

    ``over[i]``: how many values of step ``i`` exceed ``limit_mm_h`` × its hours; ``step_max[i]``:
    its largest value (NaN when the step is all NaN).  The message names the worst intensity and
    the first step that has it.
    """
    n = int(np.sum(over))
    if not n:
        return
    hours = intervals.astype("timedelta64[ns]").astype("float64") / 3.6e12
    worst, k = -np.inf, 0
    for i in range(step_max.shape[0]):
        if np.isnan(step_max[i]):
            continue
        top = float(step_max[i]) / hours[i]
        if top > worst:
            worst, k = top, i
    raise ForecastError(
        f"{where}: {n} values exceed the plausibility limit of {limit_mm_h:g} mm/h (up to "
        f"{worst:.1f} mm/h at {_fmt(times[k])}); wrong units? "
        "Pass max_intensity_mm_h= to accept them"
    )


def check_intensity(amounts: np.ndarray, times: np.ndarray, intervals: np.ndarray, where: str,
                    limit_mm_h: float) -> None:
    """Refuse intensities (amount / interval length) above ``limit_mm_h`` — usually wrong units."""
    hours = intervals.astype("timedelta64[ns]").astype("float64") / 3.6e12
    nt = amounts.shape[0]
    over, step_max = np.zeros(nt, dtype=np.int64), np.full(nt, np.nan)
    for i in range(nt):  # step by step: no full-size temporary
        step = amounts[i]
        with np.errstate(invalid="ignore"):
            over[i] = np.count_nonzero(step > limit_mm_h * hours[i])
        if not np.isnan(step).all():
            step_max[i] = float(np.nanmax(step))
    intensity_verdict(over, step_max, times, intervals, where, limit_mm_h)


@dataclass(frozen=True)
class CoverageReport:
    """Which villages a forecast grid does not cover.

    Attributes
    ----------
    outside : tuple of str
        Codes of villages (or ids) lying wholly or partly outside the grid's extent.
    no_data : tuple of str
        Codes of villages whose cells are all NaN in some time step.
    missing_cells : int
        NaN cells (in any step) within the villages' bounding box.
    """

    outside: tuple[str, ...]
    no_data: tuple[str, ...]
    missing_cells: int

    @property
    def ok(self) -> bool:
        """True when every village is inside the grid with data."""
        return not (self.outside or self.no_data or self.missing_cells)


def _codes(codes: list[str], limit: int = 20) -> str:
    shown = ", ".join(codes[:limit])
    return shown + (f" … (+{len(codes) - limit} more)" if len(codes) > limit else "")


def _edges(c: np.ndarray) -> tuple[float, float]:
    if c.size == 1:
        return float(c[0]) - 0.5, float(c[0]) + 0.5
    step = abs(float(c[-1] - c[0])) / (c.size - 1)
    return float(c.min()) - step / 2, float(c.max()) + step / 2


def _nan_cells(da: Any) -> np.ndarray:
    """``(y, x)``: cells NaN at some time step — only this map is computed for a dask-backed grid."""
    isnull = da.isnull()
    if isnull.ndim == 3:
        isnull = isnull.any(dim=da.dims[0])
    return np.asarray(isnull.values)


def check_coverage(da: Any, villages: Any, *, where: str | None = None, id_column: str = "code",
                   strict: bool = False) -> CoverageReport:
    """Report villages the forecast grid does not cover, and missing cells over them.

    Pure: takes the forecast DataArray (contract of :func:`open_forecast`) and a GeoDataFrame of
    villages (any CRS; reprojected to the grid's), a loaded :class:`riskmap.region.Region`, or a
    ``(minx, miny, maxx, maxy)`` tuple in the grid's CRS.  A village counts as covered when its
    bounding box lies within the grid's outer cell edges.  Warns with :class:`CoverageWarning` naming
    how many villages and which codes; with ``strict=True`` raises :class:`ForecastError` instead.
    Of a dask-backed grid (``open_forecast(..., chunks=)``) only the ``(y, x)`` map of cells NaN at
    some step is computed, chunk by chunk.

    Examples
    --------
    >>> import geopandas as gpd, shapely, xarray as xr, warnings, rioxarray  # noqa: F401
    >>> da = xr.DataArray(np.ones((1, 2, 2), "float32"), dims=("time", "y", "x"),
    ...     coords={"time": np.array(["2024-07-15T01"], "datetime64[ns]"), "y": [1.5, 0.5], "x": [0.5, 1.5]},
    ...     attrs={"source": "f.nc"}).rio.write_crs("EPSG:3857")
    >>> v = gpd.GeoDataFrame({"code": ["110101001001", "110101001002"]},
    ...     geometry=[shapely.box(0.2, 0.2, 0.8, 0.8), shapely.box(1.5, 1.5, 3, 3)], crs="EPSG:3857")
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     r = check_coverage(da, v)
    >>> r.outside, str(w[0].message)
    (('110101001002',), 'f.nc: 1 of 2 villages are not (fully) covered by the forecast grid: 110101001002')
    """
    where = where or str(da.attrs.get("source", "forecast"))
    if hasattr(villages, "villages") and not hasattr(villages, "geometry"):
        villages = villages.villages  # a loaded Region
    x = np.asarray(da["x"].values, dtype="float64")
    y = np.asarray(da["y"].values, dtype="float64")
    x0, x1 = _edges(x)
    y0, y1 = _edges(y)
    outside: list[str] = []
    no_data: list[str] = []
    ids: list[str] = []
    nan_any = _nan_cells(da)
    if isinstance(villages, tuple | list) and len(villages) == 4:
        bx0, by0, bx1, by1 = (float(v) for v in villages)
        if bx0 < x0 or by0 < y0 or bx1 > x1 or by1 > y1:
            outside.append("bounds")
    else:
        crs = da.rio.crs
        gdf = villages.to_crs(crs) if (crs is not None and villages.crs is not None) else villages
        ids = gdf[id_column].astype(str).tolist() if id_column in gdf.columns else [str(i) for i in gdf.index]
        b = gdf.geometry.bounds.to_numpy()
        out_mask = (b[:, 0] < x0) | (b[:, 1] < y0) | (b[:, 2] > x1) | (b[:, 3] > y1)
        outside = [c for c, o in zip(ids, out_mask, strict=True) if o]
        bx0, by0, bx1, by1 = (float(v) for v in gdf.total_bounds)
        if nan_any.any():
            for code, (vx0, vy0, vx1, vy1) in zip(ids, b, strict=True):
                ix = (x >= vx0 - (x1 - x0) / max(x.size, 1) / 2) & (x <= vx1 + (x1 - x0) / max(x.size, 1) / 2)
                iy = (y >= vy0 - (y1 - y0) / max(y.size, 1) / 2) & (y <= vy1 + (y1 - y0) / max(y.size, 1) / 2)
                cells = nan_any[np.ix_(iy, ix)]
                if cells.size and cells.all():
                    no_data.append(code)
    ix = (x >= bx0) & (x <= bx1)
    iy = (y >= by0) & (y <= by1)
    missing = int(np.count_nonzero(nan_any[iy][:, ix]))
    report = CoverageReport(tuple(outside), tuple(no_data), missing)
    problems = []
    n_all = f" of {len(ids)}" if ids else ""
    if outside == ["bounds"]:
        problems.append(f"the region's bounds ({bx0:g}, {by0:g}, {bx1:g}, {by1:g}) are not covered by the "
                        f"forecast grid ({x0:g}, {y0:g}, {x1:g}, {y1:g})")
    elif outside:
        problems.append(f"{len(outside)}{n_all} villages are not (fully) covered by the forecast grid: "
                        f"{_codes(outside)}")
    if no_data:
        problems.append(f"{len(no_data)} villages have only missing (NaN) cells: {_codes(no_data)}")
    if missing:
        problems.append(f"{missing} grid cells over the villages have no data (NaN or fill value)")
    for text in problems:
        if strict:
            raise ForecastError(f"{where}: {text}")
        warn(f"{where}: {text}", CoverageWarning)
    return report
