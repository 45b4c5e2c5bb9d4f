"""CF NetCDF (one file or many along time), Zarr, and open xarray objects → :class:`RawField`.

Variable: the ``variable`` option; else a CF ``standard_name`` of precipitation
(:data:`STANDARD_NAMES`, in that order of preference); else a common name (:data:`COMMON_NAMES`,
case-insensitive, then names starting with ``rain``/``precip``); else the only variable whose units are
a precipitation amount or rate.

Time: the coordinate with ``axis: T`` / ``standard_name: time`` (or a ``valid_time`` over a ``step``
dimension, as cfgrib writes).  When ``time`` has ``bounds`` (or ``climatology``) the bounds rule:
the interval is ``[start, end]`` and ``time`` becomes the end.  The series is taken as **accumulated
since the start** when ``cell_methods`` says ``time: sum`` and every bound starts at the same time
(more than one step), or for cfgrib's ``GRIB_stepType: accum`` on several steps.

CRS: the ``crs`` option; else the variable's ``grid_mapping`` (``crs_wkt``, ``spatial_ref`` or the CF
grid-mapping attributes); else a global ``crs_wkt``/``spatial_ref``; else, for coordinates that are
CF longitude/latitude (``standard_name`` or ``degrees_east``/``degrees_north`` units), WGS 84
(EPSG:4326) as CF implies.  Projected coordinates without any of these are refused.

Reference time: a scalar ``forecast_reference_time``/``reference_time`` coordinate or variable, or a
``reference_time``/``forecast_reference_time`` attribute (ISO; without offset read as UTC).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from pyproj import CRS
from pyproj.exceptions import CRSError

from riskmap.errors import ForecastError
from riskmap.forecast.normalise import RawField
from riskmap.forecast.options import ForecastOptions
from riskmap.forecast.units import parse_units

STANDARD_NAMES = (
    "precipitation_amount", "lwe_thickness_of_precipitation_amount", "thickness_of_rainfall_amount",
    "rainfall_amount", "precipitation_flux", "lwe_precipitation_rate", "rainfall_flux", "rainfall_rate",
)
COMMON_NAMES = (
    "precipitation_amount", "precipitation", "precip", "pr", "tp", "tprate", "apcp", "prate", "rain",
    "rainfall", "pcp", "prcp", "rr", "precipitationcal", "total_precipitation",
)
_X_NAMES = ("x", "lon", "longitude", "rlon", "xc", "easting", "west_east")
_Y_NAMES = ("y", "lat", "latitude", "rlat", "yc", "northing", "south_north")


def _candidates(ds: xr.Dataset) -> list[str]:
    return [str(n) for n, v in ds.data_vars.items() if v.ndim >= 2]


def select_variable(ds: xr.Dataset, opts: ForecastOptions, name: str) -> str:
    """The name of the precipitation variable in ``ds`` (see the module doc for the order)."""
    seen = ", ".join(str(v) for v in ds.data_vars) or "none"
    if opts.variable is not None:
        if opts.variable not in ds.data_vars:
            raise ForecastError(f"{name}: no variable {opts.variable!r} (variables: {seen})")
        return opts.variable
    cands = _candidates(ds)
    for std in STANDARD_NAMES:
        hits = [v for v in cands if ds[v].attrs.get("standard_name") == std]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise ForecastError(f"{name}: several variables have standard_name {std!r} ({', '.join(hits)}): "
                                "pass variable=")
    lower = {v.lower(): v for v in cands}
    for common in COMMON_NAMES:
        if common in lower:
            return lower[common]
    prefixed = [v for v in cands if v.lower().startswith(("rain", "precip"))]
    if len(prefixed) == 1:
        return prefixed[0]
    by_units = []
    for v in cands:
        try:
            parse_units(ds[v].attrs.get("units"))
            by_units.append(v)
        except ForecastError:
            pass
    if len(by_units) == 1:
        return by_units[0]
    raise ForecastError(
        f"{name}: no precipitation variable (no variable=, no standard_name such as precipitation_amount or "
        f"precipitation_flux, no name such as tp/APCP/pr/precip/rain, no unique variable in mm or "
        f"kg m-2 s-1); "
        f"variables seen: {seen}. Pass variable="
    )


def _axis_kind(da: xr.DataArray, dim: str) -> str | None:
    if dim not in da.coords:
        low = dim.lower()
        return "x" if low in _X_NAMES else "y" if low in _Y_NAMES else None
    c = da.coords[dim]
    axis = str(c.attrs.get("axis", "")).upper()
    std = str(c.attrs.get("standard_name", ""))
    units = str(c.attrs.get("units", ""))
    if np.issubdtype(c.dtype, np.datetime64) or axis == "T" or std == "time":
        return "t"
    if axis == "X" or std in ("longitude", "grid_longitude", "projection_x_coordinate") or units.startswith(
            "degrees_e") or dim.lower() in _X_NAMES:
        return "x"
    if axis == "Y" or std in ("latitude", "grid_latitude", "projection_y_coordinate") or units.startswith(
            "degrees_n") or dim.lower() in _Y_NAMES:
        return "y"
    return None


def _lonlat(c: xr.DataArray) -> bool:
    std = str(c.attrs.get("standard_name", ""))
    units = str(c.attrs.get("units", "")).lower()
    return std in ("longitude", "latitude") or units.startswith(
        ("degrees_e", "degrees_n", "degree_e", "degree_n"))


def _crs(ds: xr.Dataset, var: xr.DataArray, x: xr.DataArray, y: xr.DataArray, name: str) -> CRS | None:
    gm = var.attrs.get("grid_mapping") or var.encoding.get("grid_mapping")
    attrs: dict[str, Any] | None = None
    if gm:
        gm_name = str(gm).split(":")[0].split()[0]
        if gm_name in ds.variables:
            attrs = dict(ds[gm_name].attrs)
        elif gm_name in var.coords:
            attrs = dict(var.coords[gm_name].attrs)
    elif "spatial_ref" in ds.variables:
        attrs = dict(ds["spatial_ref"].attrs)
    elif "crs" in ds.variables and "grid_mapping_name" in ds["crs"].attrs:
        attrs = dict(ds["crs"].attrs)
    for src in (attrs or {}, ds.attrs):
        for key in ("crs_wkt", "spatial_ref"):
            if src.get(key):
                try:
                    return CRS.from_wkt(str(src[key]))
                except CRSError as exc:
                    raise ForecastError(f"{name}: {key} is not a valid WKT CRS: {exc}") from None
    if attrs and "grid_mapping_name" in attrs:
        try:
            return CRS.from_cf(attrs)
        except CRSError as exc:
            raise ForecastError(f"{name}: grid mapping {gm!r} is not understood: {exc}") from None
    if _lonlat(x) and _lonlat(y):
        return CRS.from_epsg(4326)
    return None


def _ref_time(ds: xr.Dataset, var: xr.DataArray, name: str) -> np.datetime64 | None:
    for key in ("forecast_reference_time", "reference_time"):
        for holder in (var.coords, ds.variables):
            if key in holder and holder[key].ndim == 0 and np.issubdtype(holder[key].dtype, np.datetime64):
                return np.datetime64(pd.Timestamp(holder[key].values).as_unit("ns").to_datetime64())
    for attrs in (var.attrs, ds.attrs):
        for key in ("reference_time", "forecast_reference_time"):
            if key in attrs:
                try:
                    ts = pd.Timestamp(str(attrs[key]))
                except ValueError:
                    raise ForecastError(
                        f"{name}: attribute {key}={attrs[key]!r} is not an ISO time") from None
                if ts.tzinfo is not None:
                    ts = ts.tz_convert("UTC").tz_localize(None)
                return np.datetime64(ts.as_unit("ns").to_datetime64(), "ns")
    return None


def _bounds(ds: xr.Dataset, tcoord: xr.DataArray, where: str) -> np.ndarray | None:
    key = tcoord.attrs.get("bounds") or tcoord.attrs.get("climatology") or tcoord.encoding.get("bounds")
    if not key or key not in ds.variables:
        return None
    b = ds[key]
    vals = b.values
    if not np.issubdtype(vals.dtype, np.datetime64):
        units = b.attrs.get("units") or tcoord.encoding.get("units")
        cal = b.attrs.get("calendar") or tcoord.encoding.get("calendar", "standard")
        if not units:
            raise ForecastError(f"{where}: time bounds {key!r} have no units")
        try:
            vals = xr.coding.times.decode_cf_datetime(vals, units, cal)
        except Exception as exc:  # noqa: BLE001 - any decoding failure is a bad file
            raise ForecastError(f"{where}: time bounds {key!r} cannot be decoded: {exc}") from None
    vals = np.asarray(vals).astype("datetime64[ns]")
    if vals.ndim != 2 or vals.shape[1] != 2:
        raise ForecastError(f"{where}: time bounds {key!r} must have shape (time, 2)")
    return vals


def chunk_spec(chunks: Any, dims: dict[str, str], where: str) -> Any:
    """``chunks=`` of :func:`open_forecast` for the variable's own dimensions.

    A dict may name the contract's ``time``/``y``/``x`` or the file's dimensions (``lat``, ``lon``);
    ``"auto"``, an int or -1 apply to every dimension, as in xarray.

    >>> chunk_spec({"time": 6, "y": -1}, {"time": "valid", "y": "lat", "x": "lon"}, "f")
    {'valid': 6, 'lat': -1}
    """
    if not isinstance(chunks, dict):
        return chunks
    by_file = {v: v for v in dims.values()}
    out = {}
    for key, size in chunks.items():
        dim = dims.get(key) or by_file.get(key)
        if dim is None:
            raise ForecastError(f"{where}: chunks= names dimension {key!r}, which it does not have "
                                f"(use time, y, x or {', '.join(dims.values())})")
        out[dim] = size
    return out


def dataset_to_raw(ds: xr.Dataset, opts: ForecastOptions, name: str, chunks: Any = None) -> RawField:
    """Read the precipitation of one (loaded or lazy) CF dataset.

    With ``chunks`` (not None) nothing is read: the values are a dask array of float64 in those
    chunks (:func:`chunk_spec`), read when computed.
    """
    vname = select_variable(ds, opts, name)
    where = f"{name}: variable {vname!r}"
    var = ds[vname]
    kinds = {d: _axis_kind(var, str(d)) for d in var.dims}
    if "valid_time" in var.coords and "step" in var.dims:
        kinds["step"] = "t"
    tdims = [d for d, k in kinds.items() if k == "t"]
    xdims = [d for d, k in kinds.items() if k == "x"]
    ydims = [d for d, k in kinds.items() if k == "y"]
    if len(xdims) != 1 or len(ydims) != 1:
        raise ForecastError(f"{where}: cannot tell the x and y dimensions among {tuple(map(str, var.dims))} "
                            "(need 1-D coordinates with axis X/Y or lon/lat, x/y names)")
    xd, yd = xdims[0], ydims[0]
    for d in var.dims:
        if d not in (xd, yd) and d not in tdims:
            if var.sizes[d] != 1:
                raise ForecastError(
                    f"{where}: extra dimension {d!r} of size {var.sizes[d]}; select one first")
            var = var.isel({d: 0})
    if len(tdims) > 1:
        raise ForecastError(f"{where}: several time dimensions {tdims}")
    starts = None
    accumulated = None
    notes: list[str] = []
    ref = _ref_time(ds, var, name)
    if tdims:
        td = tdims[0]
        if td == "step" and "valid_time" in var.coords:
            times = np.asarray(var.coords["valid_time"].values).astype("datetime64[ns]")
            if ref is None and "time" in var.coords and var.coords["time"].ndim == 0:
                ref = np.datetime64(var.coords["time"].values, "ns")
            accumulated = var.attrs.get("GRIB_stepType") == "accum" and times.size > 1
        else:
            tcoord = var.coords[td] if td in var.coords else None
            if tcoord is None or not np.issubdtype(tcoord.dtype, np.datetime64):
                raise ForecastError(f"{where}: time dimension {td!r} has no decodable time coordinate")
            times = np.asarray(tcoord.values).astype("datetime64[ns]")
            bnds = _bounds(ds, ds[td] if td in ds.variables else tcoord, where)
            if bnds is None and "interval" in var.coords and np.issubdtype(var.coords["interval"].dtype,
                                                                           np.timedelta64):
                # already in the forecast contract: time = end, interval = length
                iv = var.coords["interval"].values.astype("timedelta64[ns]")
                bnds = np.stack([times - iv, times], axis=1)
            if bnds is not None:
                starts, times = bnds[:, 0], bnds[:, 1]
                if re.search(r"time\s*:\s*sum", str(var.attrs.get("cell_methods", ""))):
                    notes.append("time: sum")
                    if times.size > 1 and (starts == starts[0]).all():
                        accumulated = True
        var = var.transpose(td, yd, xd)
        tdim = str(td)
    else:
        tc = [c for c in var.coords.values() if c.ndim == 0 and np.issubdtype(c.dtype, np.datetime64)
              and str(c.name) not in ("forecast_reference_time", "reference_time")]
        if "valid_time" in var.coords and var.coords["valid_time"].ndim == 0:
            # cfgrib: ``time`` is the reference time, ``valid_time`` the time of the values
            if ref is None and "time" in var.coords and var.coords["time"].ndim == 0:
                ref = np.datetime64(var.coords["time"].values, "ns")
            tc = [var.coords["valid_time"]]
        if not tc:
            raise ForecastError(f"{where}: no time steps (no time dimension or time coordinate)")
        times = np.array([tc[0].values]).astype("datetime64[ns]")
        var = var.transpose(yd, xd).expand_dims("time")
        tdim = "time"
    if xd not in var.coords or yd not in var.coords:
        missing = xd if xd not in var.coords else yd
        raise ForecastError(f"{where}: dimension {missing!r} has no coordinate values")
    x, y = var.coords[xd], var.coords[yd]
    crs = _crs(ds, ds[vname], x, y, name)
    values: Any
    if chunks is not None:   # lazy: nothing read here
        spec = chunk_spec(chunks, {"time": tdim, "y": str(yd), "x": str(xd)}, where)
        try:
            values = var.chunk(spec).data.astype("float64")
        except (ValueError, TypeError, NotImplementedError) as exc:
            raise ForecastError(f"{where}: chunks={chunks!r} cannot be used: {exc}") from None
    else:
        try:
            values = np.array(var.values, dtype="float64")  # a copy: later steps work in place
        except (OSError, RuntimeError, ValueError) as exc:
            raise ForecastError(
                f"{where}: cannot read the values (truncated or damaged file?): {exc}") from None
    return RawField(
        values=values, x=np.asarray(x.values, dtype="float64"), y=np.asarray(y.values, dtype="float64"),
        times=times, units=var.attrs.get("units"), crs=crs, where=where, source=name, starts=starts,
        accumulated=accumulated, reference_time=ref, notes=notes,
    )


def open_path(path: Path, zarr: bool = False) -> xr.Dataset:
    """Open a NetCDF file or Zarr store as an xarray Dataset, with readable errors."""
    if zarr:
        try:
            import zarr as _zarr  # noqa: F401
        except ImportError:
            raise ForecastError(f"{path}: is a Zarr store, but the zarr package is not installed") from None
        try:
            return xr.open_zarr(path, consolidated=None)
        except Exception as exc:  # noqa: BLE001 - any failure to open is a bad input
            raise ForecastError(f"{path}: cannot read as Zarr: {exc}") from None
    try:
        return xr.open_dataset(path, engine="netcdf4")
    except Exception as exc:  # noqa: BLE001
        raise ForecastError(f"{path}: cannot read as NetCDF (truncated or not NetCDF?): {exc}") from None


def concat_raws(raws: Sequence[RawField]) -> RawField:
    """Join per-file fields along time; their grids, CRS and units must agree."""
    first = raws[0]
    order = sorted(range(len(raws)), key=lambda i: (raws[i].times[:1].tolist(), i))
    for r in raws[1:]:
        if r.x.shape != first.x.shape or r.y.shape != first.y.shape or not (
                np.allclose(r.x, first.x) and np.allclose(r.y, first.y)):
            raise ForecastError(f"{r.where}: coordinates change between times: its grid differs from "
                                f"{first.source}'s")
        if (r.crs is None) != (first.crs is None) or (r.crs is not None and r.crs != first.crs):
            raise ForecastError(f"{r.where}: its CRS differs from {first.source}'s")
        if r.units != first.units:
            raise ForecastError(f"{r.where}: units {r.units!r} differ from {first.source}'s {first.units!r}")
    rs = [raws[i] for i in order]
    times = np.concatenate([r.times for r in rs])
    by_time = np.argsort(times, kind="stable")
    starts = None
    if all(r.starts is not None for r in rs):
        starts = np.concatenate([r.starts for r in rs if r.starts is not None])[by_time]
    summed = all("time: sum" in r.notes for r in rs)
    values = np.concatenate([r.values for r in rs])  # dask's concatenate for dask arrays
    if not (by_time == np.arange(by_time.size)).all():
        values = values[by_time]
    return RawField(
        values=values, x=first.x, y=first.y,
        times=times[by_time], units=first.units, crs=first.crs,
        where=f"{', '.join(r.source for r in rs)}: variable {first.where.split('variable ', 1)[-1]}",
        source=", ".join(r.source for r in rs), starts=starts,
        accumulated=bool(starts is not None and starts.size > 1 and (starts == starts[0]).all() and summed),
        reference_time=first.reference_time,
    )
