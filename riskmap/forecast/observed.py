"""Observed rainfall: read it (grids or gauge tables) and join it to a forecast at ``now``.

Examples
--------
>>> import numpy as np, xarray as xr, rioxarray  # noqa: F401
>>> def grid(hours, value):
...     t = np.array([np.datetime64("2024-07-15T00:00", "ns") + np.timedelta64(h, "h") for h in hours])
...     return xr.DataArray(np.full((len(hours), 1, 1), value, "float32"), dims=("time", "y", "x"),
...         coords={"time": t, "interval": ("time", np.full(len(hours), np.timedelta64(1, "h"))),
...                 "y": [0.0], "x": [0.0]}, attrs={"source": "s", "reference_time": "r"}).rio.write_crs(4326)
>>> m = merge_observed(grid([1, 2, 3], 5.0), grid([2, 3, 4, 5], 1.0), "2024-07-15T10:00+08:00")
>>> m[:, 0, 0].values.tolist(), m["observed"].values.tolist()  # now = 02 UTC
([5.0, 5.0, 1.0, 1.0, 1.0], [True, True, False, False, False])
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from riskmap.errors import ForecastError
from riskmap.forecast.entry import Source, open_forecast
from riskmap.forecast.gauges import DEFAULT_TZ, gauges_to_grid
from riskmap.forecast.normalise import time_fastest_float32
from riskmap.forecast.options import parse_utc
from riskmap.forecast.validate import warn

TABLE_SUFFIXES = (".csv", ".txt", ".tsv")


def open_observed(source: Source | pd.DataFrame, like: xr.DataArray | None = None, *, power: float = 2.0,
                  tz: str = DEFAULT_TZ, max_distance: float | None = None, **options: Any) -> xr.DataArray:
    """Read observed rainfall into the forecast contract.

    Parameters
    ----------
    source
        Any grid :func:`open_forecast` reads, or a gauge table (``.csv`` path or DataFrame with
        ``station,lon,lat,time,mm``; see :mod:`riskmap.forecast.gauges`).
    like : xarray.DataArray, optional
        The forecast whose grid a gauge table is interpolated onto (required for a table).
    power, tz, max_distance
        IDW exponent, zone of naive times, cut-off distance (gauge tables only).
    **options
        Forecast options (``interval``, ``units``, ``crs`` …).

    Returns
    -------
    xarray.DataArray
        Same contract as :func:`open_forecast`; attribute ``kind='observed'``.
    """
    is_table = isinstance(source, pd.DataFrame) or (
        isinstance(source, str | os.PathLike) and Path(source).suffix.lower() in TABLE_SUFFIXES)
    if is_table:
        if like is None:
            name = Path(source).name if isinstance(source, str | os.PathLike) else "<gauge table>"
            raise ForecastError(f"{name}: a gauge table needs like= (the forecast whose grid it is put on)")
        da = gauges_to_grid(source, like, power=power, tz=tz, max_distance=max_distance,
                            **options)
    else:
        da = open_forecast(source, **options)
    da.attrs["kind"] = "observed"
    return da


def _same_grid(a: xr.DataArray, b: xr.DataArray) -> bool:
    return (a.sizes["x"] == b.sizes["x"] and a.sizes["y"] == b.sizes["y"]
            and np.allclose(a["x"].values, b["x"].values) and np.allclose(a["y"].values, b["y"].values)
            and a.rio.crs == b.rio.crs)


def merge_observed(observed: xr.DataArray, forecast: xr.DataArray, now: Any) -> xr.DataArray:
    """Observed rain up to ``now``, forecast after it, on one time axis.

    Observed intervals ending at or before ``now`` are kept; forecast intervals are kept when they start
    at or after the end of the last kept observation (no double counting).  Where observations stop
    before ``now`` the forecast fills in up to ``now`` — the best estimate at hand, and the safe one (a
    missing gauge hour must not count as a dry hour) — and a :class:`DataWarning` names that interval.
    A gap nothing covers (a forecast interval straddling the last observation) is reported too.

    Parameters
    ----------
    observed, forecast : xarray.DataArray
        Both in the forecast contract, on the same grid (same x, y and CRS).
    now : str or datetime
        An instant with an offset.

    Returns
    -------
    xarray.DataArray
        The contract, with a boolean coordinate ``observed`` per time; attributes from the forecast
        (``source`` lists both).
    """
    t_now = parse_utc(now, "now")
    if not _same_grid(observed, forecast):
        raise ForecastError(f"{observed.attrs.get('source', 'observed')}: observed rainfall is not on the "
                            f"grid of {forecast.attrs.get('source', 'the forecast')} (regrid it, e.g. "
                            "open_observed(like=))")
    obs = observed.sel(time=observed["time"].values <= t_now)
    fc_start = forecast["time"].values - forecast["interval"].values
    obs_end = obs["time"].values[-1] if obs.sizes["time"] else None
    keep = forecast["time"].values > t_now
    if obs_end is not None:
        keep = fc_start >= obs_end
    fc = forecast.isel(time=np.flatnonzero(keep))
    gap_from = obs_end if obs_end is not None else None
    gap_to = (fc["time"].values[0] - fc["interval"].values[0]) if fc.sizes["time"] else t_now
    filled = fc["time"].values[fc["time"].values <= t_now] if obs_end is not None else fc["time"].values[:0]
    if len(filled) and obs_end is not None:
        warn(
            f"{observed.attrs.get('source', 'observed')}: no observation for "
            f"{np.datetime_as_string(obs_end, unit='m')}–{np.datetime_as_string(filled[-1], unit='m')} UTC "
            f"before now: forecast rain from {forecast.attrs.get('source', 'the forecast')} used instead")
    if gap_from is None:
        if obs.sizes["time"] == 0 and observed.sizes["time"]:
            warn(f"{observed.attrs.get('source', 'observed')}: no observation ends at or before now "
                 f"({np.datetime_as_string(t_now, unit='m')} UTC)")
    elif gap_to > gap_from:
        warn(
            f"{observed.attrs.get('source', 'observed')} / {forecast.attrs.get('source', 'forecast')}: "
            f"no rainfall for {np.datetime_as_string(gap_from, unit='m')}–"
            f"{np.datetime_as_string(gap_to, unit='m')} UTC between the last observation and the first "
            "forecast interval")
    parts = [p.drop_vars([c for c in p.coords if c not in ("time", "interval", "x", "y", "spatial_ref")])
             for p in (obs, fc)]
    parts = [p.assign_coords(x=forecast["x"].values, y=forecast["y"].values) for p in parts]
    merged = xr.concat(parts, dim="time", coords="minimal", compat="override", join="override")
    merged = merged.transpose("time", "y", "x")
    merged = merged.copy(data=time_fastest_float32(merged.values))  # the engine's layout (see normalise)
    merged = merged.assign_coords(observed=("time", np.r_[np.ones(obs.sizes["time"], bool),
                                                           np.zeros(fc.sizes["time"], bool)]))
    merged.attrs = dict(forecast.attrs)
    merged.attrs["source"] = f"observed: {observed.attrs.get('source', '')}; forecast: " \
                             f"{forecast.attrs.get('source', '')}"
    merged.attrs["now"] = pd.Timestamp(t_now).tz_localize("UTC").isoformat()
    return merged.rio.write_crs(forecast.rio.crs)
