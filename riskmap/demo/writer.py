"""Write the demo region to a folder, and the content hash that lets a second run reuse it.

Files written (atomically: a temporary file in the same folder, then a rename):

- ``region.gpkg``: every vector layer by its schema name, plus ``contacts`` and
  ``critical_rainfall`` as attribute-only (non-spatial) GeoPackage layers;
- ``forecast.nc``: the CF-1.8 NetCDF forecast;
- ``observed.csv``: the rain-gauge table of the 72 h before the reference time (UTF-8, columns
  ``station,lon,lat,time,mm,name``, ``time`` the end of each hour with the +08:00 offset);
- ``demo.json``: the manifest: seed, generator version, the content hash of every
  layer, of the forecast and of the observations, and the SHA-256 of each file's bytes.

:func:`content_hash` is computed from the data (sorted columns, values, WKB of the
geometries), never from file bytes, which embed timestamps.  :func:`write_demo`
leaves the files alone when the manifest records the same content hashes and
the files still have the recorded bytes.

Examples
--------
>>> import tempfile
>>> from riskmap.demo import build_demo
>>> demo = build_demo()
>>> with tempfile.TemporaryDirectory() as tmp:
...     first = write_demo(tmp, demo=demo)
...     second = write_demo(tmp, demo=demo)
>>> first.reused, second.reused, first.region.name
(False, True, 'region.gpkg')
>>> first.observed.name
'observed.csv'
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
import xarray as xr

from riskmap.demo import DEFAULT_SEED, DemoRegion, build_demo
from riskmap.errors import RiskmapIOError

GENERATOR_VERSION = 5
"""Bumped whenever the generator's output changes on purpose."""
REGION_FILE = "region.gpkg"
FORECAST_FILE = "forecast.nc"
OBSERVED_FILE = "observed.csv"
MANIFEST_FILE = "demo.json"


@dataclass(frozen=True)
class DemoPaths:
    """Where :func:`write_demo` put the demo, and whether existing files were reused."""

    directory: Path
    region: Path
    forecast: Path
    observed: Path
    """The rain-gauge table (``station,lon,lat,time,mm,name``), for ``observed=`` / ``--observed``."""
    manifest: Path
    reused: bool


def _update_str(h: hashlib._Hash, value: object) -> None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        h.update(b"\x01")
    else:
        data = str(value).encode("utf-8")
        h.update(b"\x02" + len(data).to_bytes(8, "little") + data)


def _update_array(h: hashlib._Hash, arr: np.ndarray) -> None:
    arr = np.ascontiguousarray(arr)
    if arr.dtype.kind == "M":
        arr = arr.astype("datetime64[ns]").view("int64")
    arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
    h.update(f"{arr.dtype.str}{arr.shape}".encode())
    h.update(arr.tobytes())


def frame_hash(frame: pd.DataFrame) -> str:
    """SHA-256 of a (Geo)DataFrame's content: sorted columns, values, WKB geometries, in row order.

    Examples
    --------
    >>> a = pd.DataFrame({"b": [1, 2], "a": ["x", None]})
    >>> frame_hash(a) == frame_hash(a[["a", "b"]]), frame_hash(a) == frame_hash(a.iloc[::-1])
    (True, False)
    """
    h = hashlib.sha256()
    h.update(f"rows={len(frame)}".encode())
    geom_col = frame.geometry.name if isinstance(frame, gpd.GeoDataFrame) else None
    for col in sorted(c for c in frame.columns if c != geom_col):
        series = frame[col]
        h.update(b"\x00col\x00" + str(col).encode("utf-8"))
        if series.dtype.kind in "biufM":
            _update_array(h, series.to_numpy())
        else:
            for value in series.tolist():
                _update_str(h, value)
    if geom_col is not None:
        h.update(b"\x00geometry\x00")
        for wkb in shapely.to_wkb(frame.geometry.to_numpy(), byte_order=1, output_dimension=2):
            h.update(len(wkb).to_bytes(8, "little") + wkb)
    return h.hexdigest()


def forecast_hash(ds: xr.Dataset) -> str:
    """SHA-256 of the forecast's values, coordinates, bounds, units and reference time."""
    h = hashlib.sha256()
    da = ds["precipitation_amount"]
    for name in ("time", "lat", "lon", "time_bnds"):
        _update_array(h, ds[name].to_numpy())
    _update_array(h, da.to_numpy())
    _update_str(h, da.attrs.get("units"))
    _update_str(h, ds.attrs.get("reference_time"))
    return h.hexdigest()


def content_hash(demo: DemoRegion) -> dict[str, str]:
    """A SHA-256 per layer (schema name), for the forecast (``forecast``) and the gauges (``observed``)."""
    out = {name: frame_hash(frame) for name, frame in demo.layers().items()}
    out["forecast"] = forecast_hash(demo.forecast)
    out["observed"] = frame_hash(demo.observed)
    return out


def _file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_manifest(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _reusable(directory: Path, manifest: dict[str, object] | None, seed: int, hashes: dict[str, str]) -> bool:
    if manifest is None or manifest.get("seed") != seed or manifest.get("content") != hashes:
        return False
    files = manifest.get("files")
    if not isinstance(files, dict):
        return False
    for name in (REGION_FILE, FORECAST_FILE, OBSERVED_FILE):
        path = directory / name
        if not path.is_file() or files.get(name) != _file_sha(path):
            return False
    return True


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")


def write_region_gpkg(demo: DemoRegion, path: Path) -> None:
    """Write every layer of ``demo`` into one GeoPackage at ``path`` (overwritten)."""
    for name, frame in demo.layers().items():
        if isinstance(frame, gpd.GeoDataFrame):
            pyogrio.write_dataframe(frame, path, layer=name, driver="GPKG", promote_to_multi=False)
        else:
            pyogrio.write_dataframe(frame, path, layer=name, driver="GPKG")


def write_observed_csv(table: pd.DataFrame, path: Path) -> None:
    """Write the gauge table as UTF-8 CSV (no BOM, ``\\n`` line ends, ``mm`` with one decimal)."""
    out = table[["station", "lon", "lat", "time", "mm", "name"]].copy()
    for col, fmt in (("lon", "{:.5f}"), ("lat", "{:.5f}"), ("mm", "{:.1f}")):
        out[col] = [fmt.format(v) for v in out[col].to_numpy(dtype=float)]
    out.to_csv(path, index=False, encoding="utf-8", lineterminator="\n")


def _write_atomic(path: Path, write: object) -> None:
    tmp = _tmp(path)
    tmp.unlink(missing_ok=True)
    try:
        write(tmp)  # type: ignore[operator]
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_demo(
    directory: str | os.PathLike[str], seed: int = DEFAULT_SEED, demo: DemoRegion | None = None
) -> DemoPaths:
    """Write (or reuse) the demo region and forecast in ``directory``.

    Parameters
    ----------
    directory : path
        Folder to write into; created if missing.
    seed : int
        Seed for :func:`~riskmap.demo.build_demo` (ignored when ``demo`` is given).
    demo : DemoRegion, optional
        An already built demo.

    Returns
    -------
    DemoPaths
        The file paths, and ``reused=True`` when the files already held this content.

    Raises
    ------
    RiskmapIOError
        When the folder or a file cannot be written (names the path).
    """
    folder = Path(directory)
    if demo is None:
        demo = build_demo(seed)
    hashes = content_hash(demo)
    paths = DemoPaths(folder, folder / REGION_FILE, folder / FORECAST_FILE, folder / OBSERVED_FILE,
                      folder / MANIFEST_FILE, False)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if _reusable(folder, _read_manifest(paths.manifest), demo.seed, hashes):
            return replace(paths, reused=True)
        _write_atomic(paths.region, lambda p: write_region_gpkg(demo, p))
        _write_atomic(paths.forecast, lambda p: demo.forecast.to_netcdf(p, engine="netcdf4"))
        _write_atomic(paths.observed, lambda p: write_observed_csv(demo.observed, p))
        manifest = {
            "generator": "riskmap.demo",
            "generator_version": GENERATOR_VERSION,
            "seed": demo.seed,
            "reference_time": str(demo.forecast.attrs["reference_time"]),
            "crs": "EPSG:4490",
            "content": hashes,
            "files": {name: _file_sha(folder / name) for name in (REGION_FILE, FORECAST_FILE, OBSERVED_FILE)},
        }
        text = json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
        _write_atomic(paths.manifest, lambda p: p.write_text(text, encoding="utf-8"))
    except OSError as exc:
        raise RiskmapIOError(f"{folder}: cannot write the demo region: {exc}") from exc
    return paths
