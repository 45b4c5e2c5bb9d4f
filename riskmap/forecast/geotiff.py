"""Multi-band GeoTIFF → :class:`RawField`: one band per time step.

Band times (interval ends), first found of:

1. the ``times`` option (one ISO time with offset per band);
2. a band tag ``time``, ``end_time``, ``valid_time`` or ``TIME`` (ISO 8601; without an offset read as
   UTC), or GDAL's ``GRIB_VALID_TIME`` (seconds since 1970);
3. the band description, when it is an ISO 8601 time.

The interval: a band tag ``start_time`` (ISO), else ``interval`` (``1h``, ``PT3H``), else the
``interval`` option, else the time differences (see :mod:`riskmap.forecast.normalise`).
Units: the band's units (``rasterio`` ``units``), else a ``units`` tag, else the ``units`` option.
Reference time: a dataset tag ``reference_time``/``forecast_reference_time``.  Nodata → NaN.
The CRS is the file's (``crs=`` when it has none); rotated/sheared transforms are refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from riskmap.errors import ForecastError
from riskmap.forecast.normalise import RawField
from riskmap.forecast.options import ForecastOptions, parse_timedelta

TIME_TAGS = ("time", "end_time", "valid_time", "TIME", "END_TIME", "VALID_TIME")


def _utc(text: str, where: str) -> np.datetime64 | None:
    try:
        ts = pd.Timestamp(text.strip())
    except (ValueError, TypeError):
        return None
    if pd.isna(ts):
        return None
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return np.datetime64(ts.as_unit("ns").to_datetime64(), "ns")


def _band_time(tags: dict[str, str], desc: str | None, where: str) -> np.datetime64 | None:
    for key in TIME_TAGS:
        if key in tags:
            t = _utc(tags[key], where)
            if t is None:
                raise ForecastError(f"{where}: band tag {key}={tags[key]!r} is not an ISO 8601 time")
            return t
    if "GRIB_VALID_TIME" in tags:
        return np.datetime64(int(str(tags["GRIB_VALID_TIME"]).split()[0]), "s").astype("datetime64[ns]")
    if desc and any(c.isdigit() for c in desc) and "-" in desc:
        return _utc(desc, where)
    return None


def read_geotiff(path: Path, opts: ForecastOptions) -> RawField:
    """Read a multi-band GeoTIFF (see the module doc)."""
    import rasterio
    from pyproj import CRS

    name = path.name
    try:
        with rasterio.Env(GDAL_PAM_ENABLED="NO"):
            src = rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise ForecastError(f"{name}: cannot read as GeoTIFF (truncated or damaged?): {exc}") from None
    with src:
        where = f"{name}: variable 'band'"
        t = src.transform
        if t.b != 0 or t.d != 0:
            raise ForecastError(f"{where}: rotated or sheared geotransform is not supported")
        crs = CRS.from_wkt(src.crs.to_wkt()) if src.crs is not None else None
        ds_tags = src.tags()
        times, starts, intervals, units = [], [], [], []
        for b in range(1, src.count + 1):
            tags = src.tags(b)
            times.append(_band_time(tags, src.descriptions[b - 1], f"{where} band {b}"))
            st = tags.get("start_time")
            starts.append(_utc(st, where) if st else None)
            intervals.append(parse_timedelta(tags["interval"], f"band {b} interval") if "interval" in tags
                             else None)
            units.append(src.units[b - 1] or tags.get("units") or ds_tags.get("units") or None)
        if opts.times is not None:
            if len(opts.times) != src.count:
                raise ForecastError(f"{where}: times= gives {len(opts.times)} times for {src.count} bands")
            times = list(opts.times)
        if any(tm is None for tm in times):
            b = times.index(None) + 1
            raise ForecastError(
                f"{where}: band {b} has no time (no time tag or ISO description): pass times=")
        try:
            stack = src.read(masked=True).astype("float64")
        except rasterio.errors.RasterioIOError as exc:
            raise ForecastError(f"{where}: cannot read the bands (truncated or damaged?): {exc}") from None
        values = np.ma.filled(stack, np.nan)
        x = t.c + t.a * (np.arange(src.width) + 0.5)
        y = t.f + t.e * (np.arange(src.height) + 0.5)
    uniq = {u for u in units if u}
    if len(uniq) > 1:
        raise ForecastError(f"{where}: bands have different units {sorted(uniq)}")
    tarr = np.array(times, dtype="datetime64[ns]")
    start_arr = None
    if all(s is not None for s in starts):
        start_arr = np.array(starts, dtype="datetime64[ns]")
    elif all(i is not None for i in intervals):
        start_arr = tarr - np.array(intervals, dtype="timedelta64[ns]")
    ref = None
    for key in ("reference_time", "forecast_reference_time"):
        if key in ds_tags:
            ref = _utc(ds_tags[key], where)
    return RawField(
        values=values, x=x, y=y, times=tarr, units=uniq.pop() if uniq else None, crs=crs, where=where,
        source=name, starts=start_arr, accumulated=None, reference_time=ref,
    )
