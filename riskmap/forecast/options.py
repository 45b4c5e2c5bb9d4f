"""The options of :func:`riskmap.forecast.open_forecast`, validated once.

Options come as Python values or as the strings of ``--forecast-option key=value`` on the CLI;
both are accepted (``interval="1h"``, ``accumulated="false"``, ``max_intensity_mm_h="500"``).

Examples
--------
>>> o = ForecastOptions.parse({"interval": "1h", "accumulated": "false", "max_intensity_mm_h": "500"})
>>> str(o.interval.astype("timedelta64[m]")), o.accumulated, o.max_intensity_mm_h
('60 minutes', False, 500.0)
>>> ForecastOptions.parse({"intervall": "1h"})
Traceback (most recent call last):
...
riskmap.errors.ForecastError: unknown forecast option 'intervall' (known: accumulated, crs, format, \
interval, max_intensity_mm_h, negative_tolerance_mm, reference_time, time_index, times, units, variable)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
from pyproj import CRS
from pyproj.exceptions import CRSError

from riskmap.errors import ForecastError

DEFAULT_MAX_INTENSITY_MM_H = 300.0
"""Default plausibility limit of rain intensity (mm/h); more is refused as a likely unit error."""

DEFAULT_NEGATIVE_TOLERANCE_MM = 0.05
"""Negative amounts down to minus this (mm) are float noise: clipped to 0 with a warning."""


def parse_timedelta(value: Any, what: str = "interval") -> np.timedelta64:
    """A positive duration from ``"1h"``, ``"PT3H"``, ``"90min"``, a timedelta or seconds (number).

    >>> s = np.timedelta64(1, "s")
    >>> int(parse_timedelta("PT3H") / s), int(parse_timedelta(1800) / s)
    (10800, 1800)
    """
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            td = pd.Timedelta(seconds=float(value))
        else:
            td = pd.Timedelta(value)
    except (ValueError, TypeError):
        raise ForecastError(
            f"option {what}={value!r} is not a duration (e.g. '1h', 'PT3H', '30min')") from None
    if pd.isna(td) or td <= pd.Timedelta(0):
        raise ForecastError(f"option {what}={value!r} must be a positive duration")
    return np.timedelta64(td.value, "ns")


def parse_utc(value: Any, what: str) -> np.datetime64:
    """An instant with an offset (or an aware datetime) as datetime64[ns] meaning UTC.

    >>> str(parse_utc("2024-07-15T08:00+08:00", "reference_time"))
    '2024-07-15T00:00:00.000000000'
    """
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise ForecastError(f"option {what}={value!r} is not an ISO 8601 time") from None
    if ts.tzinfo is None:
        raise ForecastError(
            f"option {what}={value!r} has no UTC offset: write it like 2024-07-15T08:00+08:00")
    return np.datetime64(ts.tz_convert("UTC").tz_localize(None).as_unit("ns").to_datetime64(), "ns")


def options_from_strings(items: Iterable[str]) -> dict[str, str]:
    """``key=value`` strings (the CLI's repeatable ``--forecast-option``) as a dict for :func:`open_forecast`.

    Keys are checked here; values when the options are parsed.

    >>> options_from_strings(["interval=1h", "crs=EPSG:4326", "times=2024-07-15T01:00Z,2024-07-15T02:00Z"])
    {'interval': '1h', 'crs': 'EPSG:4326', 'times': '2024-07-15T01:00Z,2024-07-15T02:00Z'}
    >>> options_from_strings(["interval"])
    Traceback (most recent call last):
    ...
    riskmap.errors.ForecastError: forecast option 'interval' must be written key=value
    """
    known = {f.name for f in fields(ForecastOptions)}
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ForecastError(f"forecast option {item!r} must be written key=value")
        if key not in known:
            raise ForecastError(f"unknown forecast option {key!r} (known: {', '.join(sorted(known))})")
        out[key] = value.strip()
    return out


def _bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ForecastError(f"option {what}={value!r} must be true or false")


def _float(value: Any, what: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ForecastError(f"option {what}={value!r} must be a number") from None
    if not out >= 0:
        raise ForecastError(f"option {what}={value!r} must be >= 0")
    return out


@dataclass(frozen=True)
class ForecastOptions:
    """Explicit overrides for what a file leaves ambiguous (all optional).

    Attributes
    ----------
    variable : str
        Name of the precipitation variable (NetCDF/Zarr name, GRIB shortName or ``discipline/category/number``
        such as ``0/1/8``, GeoTIFF ignored).
    units : str
        Units, when the file has none or wrong ones.
    crs : pyproj.CRS
        The CRS, when the file has none (``"EPSG:4326"``, WKT, PROJ string).
    interval : numpy.timedelta64
        Length of each interval, when the file cannot tell (a rate at one time, a single band).
    accumulated : bool
        Whether values are accumulated since the start (overrides what the metadata says).
    reference_time : numpy.datetime64
        The forecast reference (issue) time, UTC.
    max_intensity_mm_h : float
        Plausibility limit of intensity; above it the input is refused (likely wrong units).
    negative_tolerance_mm : float
        Negative values down to minus this are clipped with a warning; below it they are an error.
    time_index : int
        Read only this time step (e.g. one step of a moving WRF nest).
    times : tuple of numpy.datetime64
        Interval ends of the bands of a GeoTIFF without time tags.
    format : str
        Force the reader: ``netcdf``, ``zarr``, ``grib``, ``geotiff`` or ``wrf``.
    """

    variable: str | None = None
    units: str | None = None
    crs: CRS | None = None
    interval: np.timedelta64 | None = None
    accumulated: bool | None = None
    reference_time: np.datetime64 | None = None
    max_intensity_mm_h: float = DEFAULT_MAX_INTENSITY_MM_H
    negative_tolerance_mm: float = DEFAULT_NEGATIVE_TOLERANCE_MM
    time_index: int | None = None
    times: tuple[np.datetime64, ...] | None = None
    format: str | None = None

    @classmethod
    def parse(cls, options: dict[str, Any]) -> ForecastOptions:
        """Validate keyword options (Python values or CLI strings)."""
        known = sorted(f.name for f in fields(cls))
        out: dict[str, Any] = {}
        for key, value in options.items():
            if key not in known:
                raise ForecastError(f"unknown forecast option {key!r} (known: {', '.join(known)})")
            if value is None:
                continue
            if key in ("variable", "units"):
                out[key] = str(value)
            elif key == "crs":
                try:
                    out[key] = CRS.from_user_input(value)
                except CRSError as exc:
                    raise ForecastError(f"option crs={value!r} is not a CRS: {exc}") from None
            elif key == "interval":
                out[key] = parse_timedelta(value)
            elif key == "accumulated":
                out[key] = _bool(value, key)
            elif key == "reference_time":
                out[key] = parse_utc(value, key)
            elif key in ("max_intensity_mm_h", "negative_tolerance_mm"):
                out[key] = _float(value, key)
            elif key == "time_index":
                try:
                    out[key] = int(value)
                except (TypeError, ValueError):
                    raise ForecastError(f"option time_index={value!r} must be an integer") from None
            elif key == "times":
                items = value.split(",") if isinstance(value, str) else list(value)
                out[key] = tuple(parse_utc(v.strip() if isinstance(v, str) else v, "times") for v in items)
            elif key == "format":
                fmt = str(value).lower()
                if fmt not in ("netcdf", "zarr", "grib", "geotiff", "wrf"):
                    raise ForecastError(f"option format={value!r}: use netcdf, zarr, grib, geotiff or wrf")
                out[key] = fmt
        return cls(**out)
