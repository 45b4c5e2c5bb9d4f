"""WRF-ARW output → :class:`RawField`.

Precipitation is ``RAINC + RAINNC + RAINSH`` (those present; at least one), in mm **accumulated since
the model start** (``SIMULATION_START_DATE``), so it is always de-accumulated.  Times come from the
``Times`` strings (UTC).  The projection comes from the global attributes, on WRF's sphere of radius
6 370 000 m:

=========  =============================================================================
MAP_PROJ   CRS
=========  =============================================================================
1          Lambert conformal: ``lat_1=TRUELAT1 lat_2=TRUELAT2 lat_0=MOAD_CEN_LAT lon_0=STAND_LON``
2          polar stereographic: ``lat_0=±90 lat_ts=TRUELAT1 lon_0=STAND_LON``
3          Mercator: ``lat_ts=TRUELAT1 lon_0=STAND_LON``
6          regular latitude/longitude (only unrotated: ``POLE_LAT=90``)
=========  =============================================================================

``x``/``y`` are the projected south-west cell centre (``XLONG``/``XLAT`` ``[0, 0]``) plus multiples of
``DX``/``DY``; the north-east centre is checked against the same construction (within 5 % of a cell).

A **moving nest** (``XLAT``/``XLONG`` differ between times) is refused: its accumulations of different
times are on different cells, and subtracting them gives wrong (even negative) rain.  One time step
can still be read with ``time_index=k``: the amount accumulated from the model start to that time,
on that step's own grid.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from pyproj import CRS, Transformer

from riskmap.errors import ForecastError
from riskmap.forecast.normalise import RawField
from riskmap.forecast.options import ForecastOptions

WRF_EARTH_RADIUS_M = 6370000.0
RAIN_VARIABLES = ("RAINC", "RAINNC", "RAINSH")


def _wrf_time(text: object, where: str) -> np.datetime64:
    s = text.decode() if isinstance(text, bytes) else str(text)
    try:
        return np.datetime64(s.strip().replace("_", "T"), "ns")
    except ValueError:
        raise ForecastError(f"{where}: WRF time {s!r} is not YYYY-MM-DD_HH:MM:SS") from None


def wrf_crs(attrs: dict, where: str) -> CRS:
    """The CRS of a WRF domain from its global attributes (see the module doc)."""
    try:
        proj = int(attrs["MAP_PROJ"])
        lon0 = float(attrs["STAND_LON"] if "STAND_LON" in attrs else attrs["CEN_LON"])
        lat1 = float(attrs.get("TRUELAT1", 0.0))
    except (KeyError, TypeError, ValueError):
        raise ForecastError(
            f"{where}: WRF projection attributes MAP_PROJ/STAND_LON/TRUELAT1 missing") from None
    r = f"+R={WRF_EARTH_RADIUS_M:.0f} +units=m +no_defs"
    if proj == 1:
        lat2 = float(attrs.get("TRUELAT2", lat1))
        lat0 = float(attrs.get("MOAD_CEN_LAT", attrs.get("CEN_LAT", lat1)))
        return CRS.from_proj4(f"+proj=lcc +lat_1={lat1} +lat_2={lat2} +lat_0={lat0} +lon_0={lon0} {r}")
    if proj == 2:
        pole = 90 if lat1 >= 0 else -90
        return CRS.from_proj4(f"+proj=stere +lat_0={pole} +lat_ts={lat1} +lon_0={lon0} {r}")
    if proj == 3:
        return CRS.from_proj4(f"+proj=merc +lat_ts={lat1} +lon_0={lon0} {r}")
    if proj == 6 and float(attrs.get("POLE_LAT", 90.0)) == 90.0:
        return CRS.from_proj4(f"+proj=longlat {r.replace(' +units=m', '')}")
    raise ForecastError(f"{where}: WRF MAP_PROJ={proj} (rotated or unknown projection) is not supported")


def _coords(lat: np.ndarray, lon: np.ndarray, crs: CRS, dx: float, dy: float,
            where: str) -> tuple[np.ndarray, np.ndarray]:
    ny, nx = lat.shape
    if crs.is_geographic:
        return lon[0, :].astype("float64"), lat[:, 0].astype("float64")
    tr = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    x0, y0 = tr.transform(float(lon[0, 0]), float(lat[0, 0]))
    x1, y1 = tr.transform(float(lon[-1, -1]), float(lat[-1, -1]))
    if abs(x0 + dx * (nx - 1) - x1) > 0.05 * dx or abs(y0 + dy * (ny - 1) - y1) > 0.05 * dy:
        raise ForecastError(f"{where}: XLAT/XLONG do not match the projection in MAP_PROJ/DX/DY "
                            f"(north-east corner off by {x0 + dx * (nx - 1) - x1:.0f} m, "
                            f"{y0 + dy * (ny - 1) - y1:.0f} m)")
    return x0 + dx * np.arange(nx), y0 + dy * np.arange(ny)


def wrf_to_raw(ds: xr.Dataset, opts: ForecastOptions, name: str) -> RawField:
    """Read WRF precipitation (see the module doc)."""
    present = [v for v in RAIN_VARIABLES if v in ds.variables]
    if opts.variable is not None:
        present = [v.strip() for v in opts.variable.split("+")]
        missing = [v for v in present if v not in ds.variables]
        if missing:
            raise ForecastError(
                f"{name}: no variable {missing[0]!r} (variables: {', '.join(map(str, ds.data_vars))})")
    label = "+".join(present)
    where = f"{name}: variable {label!r}"
    if not present:
        raise ForecastError(f"{name}: WRF output without RAINC/RAINNC/RAINSH; variables seen: "
                            f"{', '.join(map(str, ds.data_vars))}. Pass variable=")
    times = np.array([_wrf_time(t, where) for t in np.atleast_1d(ds["Times"].values)], dtype="datetime64[ns]")
    start_attr = ds.attrs.get("SIMULATION_START_DATE") or ds.attrs.get("START_DATE")
    if start_attr is None:
        raise ForecastError(f"{where}: no SIMULATION_START_DATE: the accumulation start is unknown")
    start = _wrf_time(start_attr, where)
    latv = "XLAT" if "XLAT" in ds.variables else "XLAT_M"
    lonv = "XLONG" if "XLONG" in ds.variables else "XLONG_M"
    lat = np.asarray(ds[latv].values, dtype="float64")
    lon = np.asarray(ds[lonv].values, dtype="float64")
    if lat.ndim == 2:
        lat, lon = lat[None], lon[None]
    steps = list(range(times.size))
    if opts.time_index is not None:
        if not -times.size <= opts.time_index < times.size:
            raise ForecastError(f"{where}: time_index={opts.time_index} is out of range ({times.size} steps)")
        steps = [opts.time_index % times.size]
    elif lat.shape[0] > 1:
        moved = [i for i in range(1, lat.shape[0])
                 if not (np.allclose(lat[i], lat[0], atol=1e-4) and np.allclose(lon[i], lon[0], atol=1e-4))]
        if moved:
            i = moved[0]
            dlat, dlon = float(np.abs(lat[i] - lat[0]).max()), float(np.abs(lon[i] - lon[0]).max())
            raise ForecastError(
                f"{where}: coordinates change between times — a moving nest (XLAT/XLONG at "
                f"{np.datetime_as_string(times[i], unit='m')} differ from "
                f"{np.datetime_as_string(times[0], unit='m')} by up to {dlat:.2f}° lat, {dlon:.2f}° lon), so "
                "its accumulations are on different cells and cannot be de-accumulated; read one step with "
                "time_index= (rain since the model start)"
            )
    k = steps[0] if lat.shape[0] > 1 else 0
    crs = wrf_crs(ds.attrs, where)
    dx, dy = float(ds.attrs.get("DX", 0)), float(ds.attrs.get("DY", 0))
    if not crs.is_geographic and (dx <= 0 or dy <= 0):
        raise ForecastError(f"{where}: WRF attributes DX/DY missing")
    x, y = _coords(lat[k], lon[k], crs, dx, dy, where)
    try:
        total = sum(np.asarray(ds[v].values, dtype="float64") for v in present)
    except (OSError, RuntimeError, ValueError) as exc:
        raise ForecastError(f"{where}: cannot read the values (truncated or damaged file?): {exc}") from None
    total = np.asarray(total)
    if total.ndim == 2:
        total = total[None]
    total = total[steps]
    units = {str(ds[v].attrs.get("units", "mm")) for v in present}
    if len(units) > 1:
        raise ForecastError(f"{where}: the rain variables have different units {sorted(units)}")
    return RawField(
        values=total, x=x, y=y, times=times[steps], units=units.pop(), crs=crs, where=where, source=name,
        starts=np.full(len(steps), start, dtype="datetime64[ns]"), accumulated=True, reference_time=start,
        notes=["time_index applied"] if opts.time_index is not None else [],
    )
