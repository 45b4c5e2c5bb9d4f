"""Rain-gauge tables and inverse-distance weighting (IDW) onto a grid or villages.

A gauge table has the columns ``station, lon, lat, time, mm``: one row per station and interval,
``time`` the **end** of the interval, ``mm`` the rain in it, ``lon``/``lat`` in WGS 84 degrees.
Times with an explicit offset (``2024-07-15T08:00+08:00``) are taken as written; naive times are in
the zone given (default :data:`DEFAULT_TZ`, Beijing time — the zone Chinese gauge networks report in).

IDW: for each interval, the value at a target point is ``Σ wᵢ·vᵢ / Σ wᵢ`` with ``wᵢ = 1 / dᵢ^power``
over the stations that reported in that interval (default ``power=2``); a target at a station takes
its value; targets farther than ``max_distance`` (CRS units; metres in a projected CRS) from every
reporting station get NaN.  Distances are measured in the target's CRS; for a geographic CRS, in
degrees with longitude scaled by cos(mean latitude) (a local equirectangular approximation).

Examples
--------
>>> import pandas as pd
>>> t = pd.DataFrame({"station": ["A", "B"], "lon": [100.0, 100.2], "lat": [30.0, 30.0],
...                   "time": ["2024-07-15T09:00", "2024-07-15T09:00"], "mm": [10.0, 20.0]})
>>> g = read_gauge_table(t)
>>> str(g["time"].iloc[0])  # 09:00 Beijing time = 01:00 UTC
'2024-07-15 01:00:00'
>>> targets, stations = np.array([[0.0, 0.0], [2.0, 0.0]]), np.array([[1.0, 0.0], [0.0, 0.0]])
>>> idw_weights(targets, stations, 2).round(3).tolist()  # on station 2; then distances 1 and 2
[[0.0, 1.0], [0.8, 0.2]]
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from pyproj import CRS, Transformer

from riskmap.errors import ForecastError
from riskmap.forecast.normalise import RawField, finish
from riskmap.forecast.options import ForecastOptions
from riskmap.forecast.validate import warn

DEFAULT_TZ = "Asia/Shanghai"
"""Zone of naive times in a gauge table."""

GAUGE_COLUMNS = ("station", "lon", "lat", "time", "mm")


def read_gauge_table(source: str | os.PathLike[str] | pd.DataFrame, tz: str = DEFAULT_TZ) -> pd.DataFrame:
    """Read and check a gauge table (CSV path or DataFrame); ``time`` becomes datetime64[ns] UTC (naive).

    Raises :class:`ForecastError` naming the file, row and column for a missing column, an unreadable
    time or number, a negative amount, a station with two locations, or a repeated station and time.
    Rows without an amount are dropped with a :class:`DataWarning`.
    """
    name = Path(source).name if isinstance(source, str | os.PathLike) else "<gauge table>"
    if isinstance(source, pd.DataFrame):
        df = source.copy()
    else:
        try:
            df = pd.read_csv(source, dtype={"station": str})
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise ForecastError(f"{name}: cannot read the gauge table: {exc}") from None
    missing = [c for c in GAUGE_COLUMNS if c not in df.columns]
    if missing:
        raise ForecastError(f"{name}: gauge table lacks column(s) {', '.join(missing)} "
                            f"(need {', '.join(GAUGE_COLUMNS)})")
    if df.empty:
        raise ForecastError(f"{name}: gauge table has no rows (no time steps)")
    df["station"] = df["station"].astype(str)
    for col in ("lon", "lat", "mm"):
        vals = pd.to_numeric(df[col], errors="coerce")
        bad = vals.isna() & df[col].notna()
        if bad.any():
            i = int(np.argmax(bad.to_numpy()))
            raise ForecastError(f"{name}: row {i + 2} (station {df['station'].iloc[i]}): column {col!r} "
                                f"value {df[col].iloc[i]!r} is not a number")
        df[col] = vals
    times = []
    for i, text in enumerate(df["time"].astype(str)):
        try:
            ts = pd.Timestamp(text)
        except ValueError:
            raise ForecastError(f"{name}: row {i + 2} (station {df['station'].iloc[i]}): column "
                                f"'time' value {text!r} is not an ISO 8601 time") from None
        ts = ts.tz_localize(tz) if ts.tzinfo is None else ts
        times.append(ts.tz_convert("UTC").tz_localize(None).as_unit("ns"))
    df["time"] = pd.DatetimeIndex(times)
    nan = df["mm"].isna()
    if nan.any():
        warn(f"{name}: {int(nan.sum())} rows without an amount (mm) left out")
        df = df[~nan]
    neg = df["mm"] < 0
    if neg.any():
        i = int(np.argmax(neg.to_numpy()))
        raise ForecastError(f"{name}: station {df['station'].iloc[i]} at {df['time'].iloc[i]} UTC: "
                            f"column 'mm' is negative ({df['mm'].iloc[i]})")
    dup = df.duplicated(["station", "time"])
    if dup.any():
        i = int(np.argmax(dup.to_numpy()))
        raise ForecastError(
            f"{name}: station {df['station'].iloc[i]} has two rows for {df['time'].iloc[i]} UTC")
    locs = df.groupby("station")[["lon", "lat"]].nunique()
    moved = locs[(locs["lon"] > 1) | (locs["lat"] > 1)]
    if len(moved):
        raise ForecastError(f"{name}: station {moved.index[0]} has more than one location (lon/lat)")
    out = df[list(GAUGE_COLUMNS)].sort_values(["time", "station"]).reset_index(drop=True)
    out.attrs["source"] = name
    return out


def idw_weights(targets: np.ndarray, stations: np.ndarray, power: float) -> np.ndarray:
    """Normalised IDW weights, shape (targets, stations); a target on a station takes it alone."""
    d = np.sqrt(((targets[:, None, :] - stations[None, :, :]) ** 2).sum(axis=2))
    on = d == 0
    with np.errstate(divide="ignore"):
        w = np.where(on, 0.0, 1.0 / np.maximum(d, 1e-300) ** power)
    hit = on.any(axis=1)
    w[hit] = on[hit].astype("float64")
    return w / w.sum(axis=1, keepdims=True)


def _project(table: pd.DataFrame, crs: CRS) -> tuple[np.ndarray, float]:
    st = table.drop_duplicates("station").set_index("station")
    tr = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    x, y = tr.transform(st["lon"].to_numpy(), st["lat"].to_numpy())
    scale = float(np.cos(np.radians(np.mean(y)))) if crs.is_geographic else 1.0
    return np.column_stack([np.asarray(x) * scale, np.asarray(y)]), scale


def idw(table: pd.DataFrame, targets_xy: np.ndarray, crs: CRS, power: float = 2.0,
        max_distance: float | None = None, chunk: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """IDW of every interval of ``table`` at ``targets_xy`` (in ``crs``): (values (time, target), times)."""
    if power <= 0:
        raise ForecastError(f"IDW power must be positive, got {power}")
    stations = list(dict.fromkeys(table["station"]))
    xy, scale = _project(table, crs)
    pos = {s: i for i, s in enumerate(table.drop_duplicates("station")["station"])}
    xy = xy[[pos[s] for s in stations]]
    tgt = np.column_stack([targets_xy[:, 0] * scale, targets_xy[:, 1]])
    times = np.array(sorted(table["time"].unique()), dtype="datetime64[ns]")
    wide = table.pivot(index="time", columns="station", values="mm").reindex(index=times, columns=stations)
    vals = wide.to_numpy(dtype="float64")
    out = np.full((times.size, tgt.shape[0]), np.nan)
    for k in range(times.size):
        have = ~np.isnan(vals[k])
        if not have.any():
            continue
        for a in range(0, tgt.shape[0], chunk):
            part = tgt[a:a + chunk]
            w = idw_weights(part, xy[have], power)
            res = w @ vals[k, have]
            if max_distance is not None:
                d = np.sqrt(((part[:, None, :] - xy[have][None]) ** 2).sum(axis=2)).min(axis=1)
                res[d > max_distance] = np.nan
            out[k, a:a + chunk] = res
    return out, times


def gauges_to_grid(table: pd.DataFrame | str | os.PathLike[str], like: xr.DataArray, power: float = 2.0,
                   interval: Any = None, max_distance: float | None = None, tz: str = DEFAULT_TZ,
                   **options: Any) -> xr.DataArray:
    """Interpolate a gauge table onto the grid of ``like`` (a forecast in the contract) by IDW.

    Parameters
    ----------
    table : DataFrame or path
        Gauge table (see the module doc); read with :func:`read_gauge_table` when not yet read.
    like : xarray.DataArray
        Any DataArray with 1-D ``x``/``y`` and a rioxarray CRS (e.g. the forecast).
    power : float
        IDW exponent (default 2).
    interval : str or timedelta, optional
        Length of each interval; default: the spacing of the table's times (needed for one time).
    max_distance : float, optional
        Cells farther than this from every reporting station are NaN.
    tz : str
        Zone of naive times.
    **options
        Passed to the checks (e.g. ``max_intensity_mm_h``).

    Returns
    -------
    xarray.DataArray
        The forecast contract on ``like``'s grid: one step per distinct time of the table.
    """
    if not isinstance(table, pd.DataFrame) or "source" not in table.attrs:
        table = read_gauge_table(table, tz=tz)
    name = str(table.attrs.get("source", "<gauge table>"))
    crs = like.rio.crs
    if crs is None:
        raise ForecastError(f"{name}: the target grid has no CRS")
    crs = CRS.from_user_input(crs)
    x = np.asarray(like["x"].values, dtype="float64")
    y = np.asarray(like["y"].values, dtype="float64")
    gx, gy = np.meshgrid(x, y)
    vals, times = idw(table, np.column_stack([gx.ravel(), gy.ravel()]), crs, power, max_distance)
    opts = ForecastOptions.parse({"interval": interval, **options})
    starts = None
    if opts.interval is None and times.size >= 2:
        diffs = np.diff(times)
        starts = times - np.concatenate([[diffs[0]], diffs])
    raw = RawField(values=vals.reshape(times.size, y.size, x.size), x=x, y=y, times=times, units="mm",
                   crs=crs, where=f"{name}: variable 'mm'", source=name, starts=starts)
    return finish(raw, opts)


def gauges_to_points(table: pd.DataFrame | str | os.PathLike[str], points: Any, power: float = 2.0,
                     id_column: str = "code", tz: str = DEFAULT_TZ,
                     max_distance: float | None = None) -> xr.DataArray:
    """IDW of a gauge table at villages (their representative points): DataArray (village, time) of mm.

    ``points``: a GeoDataFrame (polygons use ``representative_point()``); distances in its CRS.
    """
    if not isinstance(table, pd.DataFrame) or "source" not in table.attrs:
        table = read_gauge_table(table, tz=tz)
    crs = CRS.from_user_input(points.crs)
    pts = points.geometry.representative_point()
    xy = np.column_stack([pts.x.to_numpy(), pts.y.to_numpy()])
    vals, times = idw(table, xy, crs, power, max_distance)
    codes = points[id_column].astype(str).tolist() if id_column in points.columns else list(points.index)
    return xr.DataArray(vals.T.astype("float32"), dims=("village", "time"),
                        coords={"village": codes, "time": times}, name="mm",
                        attrs={"units": "mm", "source": str(table.attrs.get("source", "")),
                               "method": f"inverse-distance weighting, power {power}"})
