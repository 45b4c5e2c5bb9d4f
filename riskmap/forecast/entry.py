"""``open_forecast``: recognise the input, read it with the right reader, normalise it once.

Formats are recognised by content (magic bytes), then by suffix; ``format=`` forces one:

========  =====================================================================
netcdf    ``CDF\\x01``/``CDF\\x02``/HDF5 signature; WRF output when it has ``Times``
          and ``XLAT``/``XLONG`` and WRF's ``MAP_PROJ`` attribute (then ``wrf``)
grib      ``GRIB`` at the start
geotiff   TIFF/BigTIFF signature
zarr      a directory (``*.zarr`` or containing ``.zgroup``/``.zarray``/``zarr.json``)
========  =====================================================================
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import xarray as xr

from riskmap.errors import ForecastError
from riskmap.forecast import cf
from riskmap.forecast.normalise import RawField, finish
from riskmap.forecast.options import ForecastOptions

Source = str | os.PathLike[str] | xr.Dataset | xr.DataArray | Sequence[str | os.PathLike[str]]


def sniff(path: Path) -> str:
    """The format of a file or directory: ``netcdf``, ``grib``, ``geotiff`` or ``zarr``.

    Raises :class:`ForecastError` for a missing or empty file, or an unknown format.
    """
    if not path.exists():
        raise ForecastError(f"{path}: no such file")
    if path.is_dir():
        if path.suffix == ".zarr" or any((path / m).exists() for m in (".zgroup", ".zarray", "zarr.json")):
            return "zarr"
        raise ForecastError(f"{path}: is a directory, not a forecast file or Zarr store")
    size = path.stat().st_size
    if size == 0:
        raise ForecastError(f"{path}: empty file (0 bytes)")
    with open(path, "rb") as fh:
        head = fh.read(16)
    if head[:4] in (b"CDF\x01", b"CDF\x02") or head[:8] == b"\x89HDF\r\n\x1a\n":
        return "netcdf"
    if head[:4] == b"GRIB":
        return "grib"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "geotiff"
    suffix = path.suffix.lower()
    for fmt, suffixes in (("netcdf", (".nc", ".nc4", ".netcdf", ".cdf")), ("grib", (".grib", ".grib2", ".grb",
                          ".grb2")), ("geotiff", (".tif", ".tiff"))):
        if suffix in suffixes:
            raise ForecastError(f"{path}: not a readable {fmt} file (bad signature {head[:4]!r}; "
                                "truncated or damaged?)")
    raise ForecastError(f"{path}: unknown forecast format (not NetCDF, GRIB, GeoTIFF or Zarr)")


def _is_wrf(ds: xr.Dataset) -> bool:
    return "Times" in ds.variables and "MAP_PROJ" in ds.attrs and (
        "XLAT" in ds.variables or "XLAT_M" in ds.variables)


LAZY_FORMATS = ("netcdf", "zarr")
"""Formats :func:`open_forecast` reads lazily with ``chunks=`` (CF NetCDF, one or many files; Zarr)."""


def _no_chunks(name: str, fmt: str) -> ForecastError:
    return ForecastError(
        f"{name}: chunks= is not supported for {fmt} input (only CF NetCDF and Zarr are read lazily); "
        f"open it without chunks= and call .chunk(time=k) on the result if it fits in memory")


def _read_dataset(ds: xr.Dataset, opts: ForecastOptions, name: str, chunks: Any = None) -> RawField:
    if opts.format == "wrf" or _is_wrf(ds):
        if chunks is not None:
            raise _no_chunks(name, "WRF")
        from riskmap.forecast import wrf

        return wrf.wrf_to_raw(ds, opts, name)
    return cf.dataset_to_raw(ds, opts, name, chunks)


def _read_path(path: Path, opts: ForecastOptions, chunks: Any = None) -> RawField:
    fmt = opts.format if opts.format in ("grib", "geotiff", "zarr") else sniff(path)
    if opts.format == "wrf" and fmt != "netcdf":
        raise ForecastError(f"{path}: format=wrf, but the file is {fmt}")
    if chunks is not None and fmt not in LAZY_FORMATS:
        raise _no_chunks(path.name, {"grib": "GRIB", "geotiff": "GeoTIFF"}.get(fmt, fmt))
    if fmt == "grib":
        from riskmap.forecast import grib

        return grib.read_grib(path, opts)
    if fmt == "geotiff":
        from riskmap.forecast import geotiff

        return geotiff.read_geotiff(path, opts)
    ds = cf.open_path(path, zarr=(fmt == "zarr"))
    try:
        raw = _read_dataset(ds, opts, path.name, chunks)
    except BaseException:
        ds.close()
        raise
    if chunks is None:   # read: close now; lazy: xarray's file manager reopens it when computed
        ds.close()
    return raw


def read_raw(source: Source, opts: ForecastOptions, chunks: Any = None) -> RawField:
    """Read any accepted source into a :class:`RawField` (no conversion yet; lazy with ``chunks``)."""
    if isinstance(source, xr.DataArray):
        name = str(source.attrs.get("source") or source.name or "<DataArray>")
        ds = source.to_dataset(name=str(source.name or "precipitation"))
        return _read_dataset(ds, opts, name, chunks)
    if isinstance(source, xr.Dataset):
        return _read_dataset(source, opts, str(source.attrs.get("source") or "<Dataset>"), chunks)
    if isinstance(source, str | os.PathLike):
        return _read_path(Path(source), opts, chunks)
    if isinstance(source, Sequence):
        paths = [Path(p) for p in source]
        if not paths:
            raise ForecastError("an empty list of forecast files")
        raws = [_read_path(p, opts, chunks) for p in paths]
        return raws[0] if len(raws) == 1 else cf.concat_raws(raws)
    raise ForecastError(f"cannot read a forecast from a {type(source).__name__}")


def open_forecast(source: Source, *, chunks: Any = None, **options: Any) -> xr.DataArray:
    """Read a forecast (or gridded observation) and normalise it to the forecast contract.

    Parameters
    ----------
    source : path, list of paths, xarray.Dataset or xarray.DataArray
        CF NetCDF (one file, or several joined along time), Zarr, GRIB 1/2, GeoTIFF (one band per
        time) or WRF output; or an open xarray object in CF form.
    chunks : dict, int or "auto", optional
        Open lazily (needs ``riskmap[dask]``): the result is dask-backed in these chunks, as in
        xarray — ``{"time": 6}`` (dimensions named ``time``/``y``/``x`` or as in the file; one
        not named stays whole), ``"auto"``, or an int for every dimension.  The same contract,
        the same numbers bit for bit and the same checks, which read the data once now in a
        bounded-memory pass (:mod:`riskmap.forecast.lazy` says why, and what it costs); the values
        are read again when computed, chunk by chunk.  Not time-fastest in memory (the Dask path of
        ``village_rainfall`` lays out each time chunk itself).  CF NetCDF (one or many files),
        Zarr and open xarray objects only: GRIB, GeoTIFF and WRF are refused with ``chunks=``.
    **options
        See :class:`riskmap.forecast.options.ForecastOptions`: ``variable``, ``units``, ``crs``,
        ``interval``, ``accumulated``, ``reference_time``, ``max_intensity_mm_h`` (default 300),
        ``negative_tolerance_mm`` (0.05), ``time_index``, ``times``, ``format``.  Strings are
        accepted as on the CLI (``--forecast-option interval=1h``).

    Returns
    -------
    xarray.DataArray
        ``precipitation``: dims ``(time, y, x)``, float32 **mm per interval**; ``time`` = interval end
        (datetime64[ns] meaning UTC); coordinate ``interval`` (timedelta64 per time); 1-D ``x``
        ascending and ``y`` descending (north-up) cell centres; CRS via ``da.rio.crs``; attrs
        ``reference_time`` (ISO 8601 with offset), ``source`` (file names), ``variable``, ``units='mm'``.

    Raises
    ------
    ForecastError
        Unreadable, empty or truncated file; no precipitation variable; unknown units; no, duplicate or
        non-increasing times; substantially negative values; intensity above the plausibility limit;
        no CRS; a moving grid.  The message names the file and variable.

    Warns
    -----
    DataWarning
        Missing (NaN/fill) cells, small negative float noise clipped to 0.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset(
    ...     {"tp": (("time", "lat", "lon"), np.full((2, 2, 3), 0.002), {"units": "m"})},
    ...     coords={"time": np.array(["2024-07-15T01", "2024-07-15T02"], "datetime64[ns]"),
    ...             "lat": ("lat", [30.0, 30.1], {"units": "degrees_north"}),
    ...             "lon": ("lon", [100.0, 100.1, 100.2], {"units": "degrees_east"})})
    >>> da = open_forecast(ds, interval="1h")
    >>> da.dims, str(da.dtype), float(da[0, 0, 0]), da.rio.crs.to_epsg(), da["y"].values.tolist()
    (('time', 'y', 'x'), 'float32', 2.0, 4326, [30.1, 30.0])
    >>> da.attrs["reference_time"], str(da["interval"].values[1].astype("timedelta64[h]"))
    ('2024-07-15T00:00:00+00:00', '1 hours')

    Lazily, one step per chunk (skipped without dask):

    >>> import pytest; _ = pytest.importorskip("dask.array")
    >>> lazy = open_forecast(ds, interval="1h", chunks={"time": 1})
    >>> lazy.chunks[0], bool((lazy.values == da.values).all())
    ((1, 1), True)
    """
    opts = ForecastOptions.parse(options)
    if chunks is None:
        return finish(read_raw(source, opts), opts)
    try:
        import dask.array  # noqa: F401
    except ImportError:
        raise ForecastError("open_forecast(chunks=...) needs dask: pip install 'riskmap[dask]'") from None
    from riskmap.forecast.lazy import finish_lazy

    return finish_lazy(read_raw(source, opts, chunks), opts)
