"""GRIB 1/2 → :class:`RawField`: eccodes for the messages' meaning, GDAL for projected grids.

Messages are read one by one with eccodes (no index file is written anywhere).  The precipitation
messages are chosen by the ``variable`` option (a ``shortName`` such as ``tp``, or
``discipline/category/number`` such as ``0/1/8``), else by WMO parameter: total precipitation
``0/1/8`` (kg m-2), then precipitation rate ``0/1/52``/``0/1/7`` (kg m-2 s-1), or the short names
``tp``, ``tprate``, ``prate``, ``apcp``.  Other messages on the same grid (a confidence index, a
temperature) are left out.

Times: the reference time is ``dataDate``/``dataTime``.  For a statistically processed field
(product template 8/11) the interval ends at the *end of the overall time interval* and lasts
``|lengthOfTimeRange|`` (CMC's RDPA writes ``forecastTime`` 24 with a length of −24 h, i.e. the
24 hours ending at the reference time; eccodes shows its ``stepRange`` as ``24-missing``).
Otherwise (GRIB 1, or product template 0) ``startStep``/``endStep``.  An instantaneous field (a rate)
is valid at ``validityDate``/``validityTime``.  When every interval starts at the same time and
there are several, the series is accumulated since the start and de-accumulated.

Grid: ``regular_ll`` from eccodes' coordinates (longitudes 0–360 are rolled later);
any other grid (polar stereographic, Lambert, Mercator, …) through GDAL's GRIB driver
(rasterio), which gives the projection and geotransform that eccodes does not.  The missing value
(e.g. 9999, from the bitmap) becomes NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from riskmap.errors import ForecastError
from riskmap.forecast.normalise import RawField
from riskmap.forecast.options import ForecastOptions

# (discipline, category, number) -> units per the WMO GRIB2 code table 4.2, in order of preference
PRECIP_PARAMS: dict[tuple[int, int, int], str] = {
    (0, 1, 8): "kg m-2",        # total precipitation
    (0, 1, 52): "kg m-2 s-1",   # total precipitation rate
    (0, 1, 7): "kg m-2 s-1",    # precipitation rate
}
PRECIP_SHORT_NAMES = ("tp", "tprate", "prate", "apcp")
_STEP_UNIT_SECONDS = {0: 60, 1: 3600, 2: 86400, 10: 3 * 3600, 11: 6 * 3600, 12: 12 * 3600, 13: 1, 254: 1}


@dataclass
class _Msg:
    index: int
    short_name: str
    param: tuple[int, int, int] | None
    units: str | None
    grid_type: str
    shape: tuple[int, int]
    ref: np.datetime64
    start: np.datetime64 | None
    end: np.datetime64
    values: np.ndarray | None = None
    lat: np.ndarray | None = None
    lon: np.ndarray | None = None
    summed: bool = False


def _get(h: object, key: str, default: object = None) -> object:
    import eccodes

    try:
        if not eccodes.codes_is_defined(h, key) or eccodes.codes_is_missing(h, key):
            return default
        return eccodes.codes_get(h, key)
    except eccodes.CodesInternalError:
        return default


def _dt(date: object, time: object) -> np.datetime64:
    d, t = int(date), int(time)  # type: ignore[call-overload]
    day = f"{d // 10000:04d}-{d // 100 % 100:02d}-{d % 100:02d}"
    return np.datetime64(f"{day}T{t // 100:02d}:{t % 100:02d}", "ns")


def _signed32(v: int) -> int:
    return v - 2**32 if v >= 2**31 else v


def _times(h: object, where: str) -> tuple[np.datetime64, np.datetime64 | None, np.datetime64]:
    ref = _dt(_get(h, "dataDate"), _get(h, "dataTime"))
    pdt = _get(h, "productDefinitionTemplateNumber")
    step_type = str(_get(h, "stepType", "instant"))
    if pdt in (8, 11, 9, 10, 12, 15) and _get(h, "yearOfEndOfOverallTimeInterval") is not None:
        parts = [int(_get(h, f"{k}OfEndOfOverallTimeInterval", 0))  # type: ignore[call-overload]
                 for k in ("year", "month", "day", "hour", "minute", "second")]
        end = np.datetime64("{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}".format(*parts), "ns")
        length = _get(h, "lengthOfTimeRange")
        unit = _get(h, "indicatorOfUnitForTimeRange")
        if length is None or unit not in _STEP_UNIT_SECONDS:
            raise ForecastError(f"{where}: the statistical period has no readable length")
        secs = abs(_signed32(int(length))) * _STEP_UNIT_SECONDS[int(unit)]  # type: ignore[call-overload]
        return ref, end - np.timedelta64(secs, "s"), end
    unit_code = _get(h, "stepUnits", 1)
    unit = _STEP_UNIT_SECONDS.get(int(unit_code), 3600)  # type: ignore[call-overload]
    start_step, end_step = _get(h, "startStep", 0), _get(h, "endStep", 0)
    end = ref + np.timedelta64(int(end_step) * unit, "s")  # type: ignore[call-overload]
    if step_type in ("accum", "avg", "max", "min") and int(end_step) > int(start_step):  # type: ignore[call-overload]
        return ref, ref + np.timedelta64(int(start_step) * unit, "s"), end  # type: ignore[call-overload]
    validity = _get(h, "validityDate")
    if validity is not None:
        return ref, None, _dt(validity, _get(h, "validityTime", 0))
    return ref, None, end


def _is_wanted(m: _Msg, opts: ForecastOptions) -> bool:
    if opts.variable is not None:
        v = opts.variable.strip()
        if "/" in v:
            return m.param is not None and "/".join(map(str, m.param)) == v
        return m.short_name.lower() == v.lower()
    return (m.param in PRECIP_PARAMS) or (m.short_name.lower() in PRECIP_SHORT_NAMES)


def _scan(path: Path, opts: ForecastOptions) -> tuple[list[_Msg], list[str]]:
    import eccodes

    msgs: list[_Msg] = []
    seen: list[str] = []
    where = path.name
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise ForecastError(f"{where}: cannot open: {exc}") from None
    with fh:
        i = 0
        while True:
            try:
                h = eccodes.codes_grib_new_from_file(fh)
            except Exception as exc:  # noqa: BLE001 - eccodes raises several kinds on damaged data
                raise ForecastError(f"{where}: message {i + 1} cannot be decoded (truncated or damaged "
                                    f"GRIB?): {exc}") from None
            if h is None:
                break
            try:
                short = str(_get(h, "shortName", "unknown"))
                disc, cat, num = (_get(h, k) for k in ("discipline", "parameterCategory", "parameterNumber"))
                param = (int(disc), int(cat), int(num)) if None not in (disc, cat, num) else None  # type: ignore
                label = f"{short}({'/'.join(map(str, param))})" if param else short
                seen.append(label)
                units = _get(h, "units")
                units = None if units in (None, "unknown", "~") else str(units)
                if units is None and param in PRECIP_PARAMS:
                    units = PRECIP_PARAMS[param]
                ref, start, end = _times(h, f"{where}: message {i + 1} ({label})")
                m = _Msg(i, short, param, units, str(_get(h, "gridType", "")),
                         (int(_get(h, "Nj", 0)), int(_get(h, "Ni", 0))), ref, start, end)  # type: ignore
                m.summed = _get(h, "typeOfStatisticalProcessing") == 1 or _get(h, "stepType") == "accum"
                if _is_wanted(m, opts):
                    if m.grid_type in ("regular_ll", "regular_gg"):
                        vals = np.asarray(eccodes.codes_get_values(h), dtype="float64")
                        if int(_get(h, "bitmapPresent", 0)):  # type: ignore[call-overload]
                            vals[vals == float(_get(h, "missingValue", 9999))] = np.nan  # type: ignore[arg-type]
                        lat = np.asarray(eccodes.codes_get_array(h, "latitudes"), dtype="float64")
                        lon = np.asarray(eccodes.codes_get_array(h, "longitudes"), dtype="float64")
                        ny, nx = m.shape
                        if int(_get(h, "jPointsAreConsecutive", 0)):  # type: ignore[call-overload]
                            m.values = vals.reshape(nx, ny).T
                            m.lat, m.lon = lat.reshape(nx, ny)[0, :], lon.reshape(nx, ny)[:, 0]
                        else:
                            m.values = vals.reshape(ny, nx)
                            m.lat, m.lon = lat.reshape(ny, nx)[:, 0], lon.reshape(ny, nx)[0, :]
                    msgs.append(m)
            finally:
                eccodes.codes_release(h)
            i += 1
    if i == 0:
        raise ForecastError(f"{where}: no GRIB messages (empty or not GRIB)")
    return msgs, seen


def _gdal_grid(path: Path, msgs: list[_Msg], n_messages: int, where: str) -> tuple:
    import rasterio
    from pyproj import CRS

    with rasterio.Env(GDAL_PAM_ENABLED="NO", GRIB_ADJUST_LONGITUDE_RANGE="NO"):
        try:
            src = rasterio.open(path)
        except rasterio.errors.RasterioIOError as exc:
            raise ForecastError(f"{where}: GDAL cannot read the grid: {exc}") from None
        with src:
            if src.count != n_messages:
                raise ForecastError(
                    f"{where}: GDAL sees {src.count} bands but the file has {n_messages} messages")
            t = src.transform
            if t.b != 0 or t.d != 0:
                raise ForecastError(f"{where}: rotated grids are not supported")
            if src.crs is None:
                raise ForecastError(f"{where}: GDAL finds no projection for the grid: pass crs=")
            crs = CRS.from_wkt(src.crs.to_wkt())
            x = t.c + t.a * (np.arange(src.width) + 0.5)
            y = t.f + t.e * (np.arange(src.height) + 0.5)
            stack = []
            for m in msgs:
                band = src.read(m.index + 1, masked=True).astype("float64")
                stack.append(np.ma.filled(band, np.nan))
    return np.stack(stack), x, y, crs


def read_grib(path: Path, opts: ForecastOptions) -> RawField:
    """Read the precipitation messages of a GRIB file (see the module doc)."""
    from pyproj import CRS

    msgs, seen = _scan(path, opts)
    name = path.name
    if not msgs:
        what = (f"no message {opts.variable!r}" if opts.variable else
                "no precipitation message (0/1/8, 0/1/52, 0/1/7, tp, tprate, prate, APCP)")
        raise ForecastError(f"{name}: {what}; messages seen: {', '.join(seen)}. Pass variable=")
    params = {(m.short_name, m.param) for m in msgs}
    if len(params) > 1:
        # several precipitation parameters: keep the most preferred one
        order = list(PRECIP_PARAMS)
        best = min(params, key=lambda p: order.index(p[1]) if p[1] in order else len(order))
        msgs = [m for m in msgs if (m.short_name, m.param) == best]
    first = msgs[0]
    label = first.short_name if first.short_name != "unknown" else "/".join(map(str, first.param or ()))
    where = f"{name}: variable {label!r}"
    if len({m.grid_type for m in msgs}) > 1 or len({m.shape for m in msgs}) > 1:
        raise ForecastError(
            f"{where}: coordinates change between times (messages on different grids)")
    if first.grid_type in ("regular_ll", "regular_gg"):
        for m in msgs[1:]:
            if not (np.allclose(m.lat, first.lat) and np.allclose(m.lon, first.lon)):  # type: ignore[arg-type]
                raise ForecastError(
                    f"{where}: coordinates change between times (messages on different grids)")
        values = np.stack([m.values for m in msgs])  # type: ignore[misc]
        x, y = first.lon, first.lat
        crs: CRS | None = CRS.from_epsg(4326)
    else:
        values, x, y, crs = _gdal_grid(path, msgs, len(seen), where)
    starts = [m.start for m in msgs]
    has_starts = all(s is not None for s in starts)
    start_arr = np.array(starts, dtype="datetime64[ns]") if has_starts else None
    accumulated = bool(has_starts and len(msgs) > 1 and (start_arr == start_arr[0]).all())  # type: ignore[index]
    return RawField(
        values=values, x=np.asarray(x, dtype="float64"), y=np.asarray(y, dtype="float64"),
        times=np.array([m.end for m in msgs], dtype="datetime64[ns]"), units=first.units, crs=crs,
        where=where, source=name, starts=start_arr, accumulated=accumulated, reference_time=first.ref,
        notes=["time: sum"] if all(m.summed for m in msgs) else [],
    )
