"""The Region: every layer of an office's area, loaded, validated and in one metric CRS.

:func:`load_region` reads a region once (:func:`riskmap.region_io.read_region_raw`),
checks it (:func:`riskmap.check.check_raw`; errors raise :class:`~riskmap.errors.RegionError`
listing them) and builds a :class:`Region`:

* every vector layer reprojected once to one metric working CRS (:func:`working_crs`);
* codes, ids and phones are strings; counts ``int64``; amounts ``float64``;
* ``villages`` gains ``township_code`` (9-digit prefix) and ``county_code`` (6-digit);
* ``reservoirs`` gains ``scale_code`` (1–5; ``scale`` keeps the original text);
* ``contacts.role`` holds role ids, ``contacts.phone`` the normal form
  (:func:`riskmap.phones.normalize_phone`); ``critical_rainfall.soil`` holds dry/normal/wet;
* layers the region lacks are empty frames with the schema columns, and optional
  columns a layer lacks are added, empty.

Examples
--------
>>> import geopandas as gpd, shapely
>>> v = gpd.GeoDataFrame(geometry=[shapely.box(120.0, 30.0, 120.1, 30.1)], crs="EPSG:4490")
>>> working_crs(v).name
'CGCS2000 / 3-degree Gauss-Kruger CM 120E (E,N)'
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS

from riskmap.errors import DataWarning, RegionError
from riskmap.phones import normalize_phones
from riskmap.region_io import TEXT_COLUMNS, RawRegion, read_region_raw
from riskmap.region_values import numbers, role_ids, scale_codes, soil_ids
from riskmap.schema import LAYERS

__all__ = ["Region", "load_region", "region_from_raw", "working_crs"]

_COUNTS = ("population", "households", "threatened_people", "threatened_households", "workers", "capacity")
_AMOUNTS = ("storage_m3", "duration_h", "prepare_mm", "immediate_mm", "lon", "lat")


@dataclass(frozen=True, eq=False)
class Region:
    """All layers of a region, reprojected once to a metric CRS.

    Vector layers are GeoDataFrames (empty with the right columns when the
    region lacks the layer); ``contacts`` and ``critical_rainfall`` are
    DataFrames.  ``villages.code`` is a 12-character string, unique, and the
    villages keep the order of the source file.
    """

    villages: gpd.GeoDataFrame
    rivers: gpd.GeoDataFrame
    reservoirs: gpd.GeoDataFrame
    reservoir_zones: gpd.GeoDataFrame
    flood_points: gpd.GeoDataFrame
    hazard_sites: gpd.GeoDataFrame
    mines: gpd.GeoDataFrame
    detention_areas: gpd.GeoDataFrame
    shelters: gpd.GeoDataFrame
    vulnerable_sites: gpd.GeoDataFrame
    contacts: pd.DataFrame
    critical_rainfall: pd.DataFrame
    crs: CRS
    """The metric working CRS of every vector layer."""
    source: str = ""
    """Where the region was loaded from."""

    def layer(self, name: str) -> pd.DataFrame:
        """Return a layer by its schema name."""
        return getattr(self, name)

    @cached_property
    def village_key(self) -> str:
        """Hash of the village layer (:func:`riskmap.weights_cache.village_layer_key`), computed once.

        The key of the cached coverage weights; :func:`load_region` computes it at load, so a
        service that keeps the region loaded never hashes the layer again.  A Region is a
        value: its frames are not to be modified in place (load a new one instead).
        """
        from riskmap.weights_cache import village_layer_key

        return village_layer_key(self.villages)


def _east_north(base: CRS) -> CRS:
    """*base* (a CGCS2000 Gauss–Krüger zone, north/east in EPSG) with easting/northing axes."""
    j = base.to_json_dict()
    j["coordinate_system"]["axis"] = [
        {"name": "Easting", "abbreviation": "E", "direction": "east", "unit": "metre"},
        {"name": "Northing", "abbreviation": "N", "direction": "north", "unit": "metre"},
    ]
    j["name"] = f"{base.name} (E,N)"
    j.pop("id", None)
    return CRS.from_json_dict(j)


def _is_metric(crs: CRS) -> bool:
    return bool(crs.is_projected) and all(a.unit_name in ("metre", "meter") for a in crs.axis_info)


def working_crs(villages: gpd.GeoDataFrame) -> CRS:
    """The metric CRS every layer is reprojected to.

    A projected metric CRS of the villages is kept as it is.  Otherwise, inside
    China the CGCS2000 3-degree Gauss–Krüger zone whose central meridian is
    nearest the villages' centre (EPSG:4534–4554, with easting/northing axis
    order), elsewhere the UTM zone of the centre.
    """
    crs = CRS.from_user_input(villages.crs)
    if _is_metric(crs):
        return crs
    geo = villages.geometry[~(villages.geometry.is_empty | villages.geometry.isna())]
    if geo.empty:
        raise RegionError("villages: no geometry to choose a working CRS from")
    x0, y0, x1, y1 = geo.to_crs("EPSG:4490").total_bounds
    lon, lat = (x0 + x1) / 2, (y0 + y1) / 2
    if 73.5 <= lon <= 136.5 and 3 <= lat <= 54:
        cm = int(np.clip(round(lon / 3) * 3, 75, 135))
        return _east_north(CRS.from_epsg(4534 + (cm - 75) // 3))
    return CRS.from_user_input(geo.estimate_utm_crs())


def _count(values: pd.Series) -> pd.Series:
    v, _ = numbers(values)
    v = v.where(v % 1 == 0)
    return v.astype("int64") if v.notna().all() else v.astype("Int64")


def _typed(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Add missing optional columns and convert values to their working types."""
    spec = LAYERS[name]
    frame = frame.copy()
    for col in (*spec.required, *spec.optional):
        if col not in frame.columns:
            frame[col] = pd.Series(np.nan, index=frame.index, dtype=str if col in TEXT_COLUMNS else float)
    for col in _COUNTS:
        if col in frame.columns:
            frame[col] = _count(frame[col])
    for col in _AMOUNTS:
        if col in frame.columns:
            frame[col] = numbers(frame[col])[0]
    if name == "villages":
        frame["township_code"] = frame["code"].str[:9]
        frame["county_code"] = frame["code"].str[:6]
    elif name == "reservoirs":
        codes = scale_codes(frame["scale"])
        frame["scale_code"] = codes.astype("int64") if codes.notna().all() else codes
        frame["status"] = frame["status"].str.normalize("NFKC")
    elif name == "contacts":
        frame["role"] = role_ids(frame["role"])
        frame["phone"] = normalize_phones(frame["phone"]).astype(str)
    elif name == "critical_rainfall":
        frame["soil"] = soil_ids(frame["soil"])
    return frame


def _empty(name: str, crs: CRS) -> pd.DataFrame:
    spec = LAYERS[name]
    cols = {c: pd.Series([], dtype=str if c in TEXT_COLUMNS else float)
            for c in (*spec.required, *spec.optional)}
    frame = _typed(name, pd.DataFrame(cols))
    if spec.kind == "table":
        return frame
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries([], crs=crs))


def region_from_raw(raw: RawRegion) -> Region:
    """Build a :class:`Region` from layers as read, without checking them.

    Raises
    ------
    RegionError
        When there are no villages, a vector layer has no CRS, or a required column is missing.
    """
    villages = raw.frame("villages")
    if villages is None or not isinstance(villages, gpd.GeoDataFrame) or villages.empty:
        raise RegionError(f"{raw.source}: layer villages: missing or empty")
    for name, layer in raw.layers.items():
        missing = [c for c in LAYERS[name].required if c not in layer.frame.columns]
        if missing:
            raise RegionError(f"{layer.source}: layer {name}: missing required column {missing[0]!r}")
        if isinstance(layer.frame, gpd.GeoDataFrame) and layer.frame.crs is None:
            raise RegionError(f"{layer.source}: layer {name} geometry: no CRS declared")
    crs = working_crs(villages)
    out: dict[str, pd.DataFrame] = {}
    for name, spec in LAYERS.items():
        frame = raw.frame(name)
        if frame is None:
            out[name] = _empty(name, crs)
            continue
        if spec.kind == "vector":
            assert isinstance(frame, gpd.GeoDataFrame)
            if not CRS.from_user_input(frame.crs).equals(crs):
                frame = frame.to_crs(crs)
        out[name] = _typed(name, frame)
    return Region(**out, crs=crs, source=raw.source)


def load_region(path: str | Path, *, check: bool = True) -> Region:
    """Read, check and load the region at *path* (a GeoPackage or a directory of layer files).

    Parameters
    ----------
    path
        The region; see ``layers/README.md`` for the data contract.
    check
        Run every rule of :func:`riskmap.check.check_raw` first and refuse a region with
        errors; warnings are issued as one :class:`~riskmap.errors.DataWarning`.
        With ``check=False`` values that do not parse become missing.

    Raises
    ------
    RegionError
        Listing the first 20 problems and their count, naming layer, row and column.
    """
    raw = read_region_raw(path)
    if check:
        from riskmap.check import check_raw

        report = check_raw(raw)
        if not report.ok:
            n = len(report.errors)
            lines = [p.format() for p in report.errors[:20]]
            more = f"\n… and {n - 20} more" if n > 20 else ""
            raise RegionError(f"{raw.source}: {n} error{'s' * (n != 1)} in the region "
                              f"(run `riskmap check --region {raw.source}`):\n" + "\n".join(lines) + more)
        if report.warnings:
            lines = [p.format() for p in report.warnings[:5]]
            head = f"{raw.source}: {len(report.warnings)} warning(s) in the region:\n"
            warnings.warn(head + "\n".join(lines), DataWarning, stacklevel=2)
    region = region_from_raw(raw)
    _ = region.village_key       # hashed once, at load (the key of the cached coverage weights)
    return region
