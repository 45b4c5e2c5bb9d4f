"""Raw reading of a region: every layer file read once, as found, into frames.

This is the IO edge under :mod:`riskmap.check` and :mod:`riskmap.region`:
:func:`read_region_raw` reads a GeoPackage (layers by name) or a directory
with one file per layer (``<layer>.gpkg|.geojson|.json|.shp``, tables
``<layer>.csv|.xlsx``) and returns a :class:`RawRegion` that both the checker
and the loader work from, so a run reads each file once.

What "raw" keeps and what it already fixes:

* geometries stay in their declared CRS (``None`` if none was declared);
* column names are stripped and matched case-insensitively to the schema; the
  Chinese headers offices use (``姓名``, ``手机号码``, ``人口(人)``, ``准备转移(mm)`` …, see
  ``_ZH``) and short shapefile names (:data:`SHAPEFILE_ALIASES`) are understood;
* key and text columns (:data:`TEXT_COLUMNS`: codes, ids, phones, roles …) are
  strings (pandas ``str`` dtype, missing = NaN), never floats: ``5.1e11`` read
  from a numeric field becomes ``'510100000000'``; CSV/xlsx text keeps its leading
  zeros; surrounding blanks are stripped and empty cells are missing;
* numeric columns are left as read (strings from CSV/xlsx): the checker reports
  what does not parse, the loader converts;
* CSV files and shapefiles without a ``.cpg`` are decoded as UTF-8 when they
  are valid UTF-8, otherwise as GB18030 (a superset of GBK and GB2312).

A layer may also be named by its Chinese title (``行政村``, ``责任人与联系人`` …,
:attr:`riskmap.schema.LayerSpec.title_zh`), as a GeoPackage layer or a file name.

Problems found while reading (missing mandatory layer, unreadable file, two
files for one layer, unknown layer) are returned as :class:`Problem` records in
:attr:`RawRegion.problems`; only a path that is neither a GeoPackage nor a
directory raises.

The value normalisers both use (:func:`text_column`, :func:`numbers`,
:func:`scale_codes`, :func:`role_ids`, :func:`soil_ids`, :func:`code_hint`) live in
:mod:`riskmap.region_values` and are re-exported here.
"""

from __future__ import annotations

import io
import re
import unicodedata
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio

from riskmap.errors import RegionError
from riskmap.region_values import code_hint, numbers, role_ids, scale_codes, soil_ids, text_column
from riskmap.schema import LAYERS

__all__ = ["Problem", "RawLayer", "RawRegion", "read_region_raw", "text_column", "TEXT_COLUMNS", "numbers",
           "scale_codes", "role_ids", "soil_ids", "code_hint",
           "VECTOR_SUFFIXES", "TABLE_SUFFIXES", "SHAPEFILE_ALIASES"]

TEXT_COLUMNS = frozenset({
    "code", "id", "name", "township", "county", "reservoir_id", "scale", "status", "kind",
    "phone", "role", "admin_code", "feature_layer", "feature_id", "household_id", "drill",
    "village_code", "soil",
})
"""Columns always read as text (keys, codes, phones, labels)."""

SHAPEFILE_ALIASES = {
    "res_id": "reservoir_id", "reservoir_": "reservoir_id",
    "threat_ppl": "threatened_people", "threatened": "threatened_people",
    "threat_hh": "threatened_households", "threaten_1": "threatened_households",
}
"""Short names for columns longer than a shapefile's 10 characters (and GDAL's truncations of them)."""

_ZH = {
    "*": {"编号": "id", "名称": "name", "类型": "kind", "类别": "kind"},
    "villages": {"统计用区划代码": "code", "区划代码": "code", "村代码": "code", "村名": "name",
                 "村名称": "name", "人口": "population", "人口数": "population", "户数": "households",
                 "乡镇": "township", "乡镇街道": "township", "县": "county", "县区": "county",
                 "区县": "county"},
    "reservoirs": {"规模": "scale", "工程规模": "scale", "状态": "status", "安全状况": "status"},
    "reservoir_zones": {"水库编号": "reservoir_id"},
    "hazard_sites": {"灾种": "kind", "威胁人数": "threatened_people", "威胁人口": "threatened_people",
                     "威胁户数": "threatened_households"},
    "mines": {"作业人数": "workers", "从业人数": "workers", "下井人数": "workers"},
    "shelters": {"容量": "capacity", "可容纳人数": "capacity"},
    "contacts": {"姓名": "name", "电话": "phone", "手机": "phone", "手机号": "phone", "手机号码": "phone",
                 "联系电话": "phone", "角色": "role", "区划代码": "admin_code", "行政区划代码": "admin_code",
                 "对象图层": "feature_layer", "对象编号": "feature_id", "户号": "household_id",
                 "经度": "lon", "纬度": "lat"},
    "critical_rainfall": {"村代码": "village_code", "区划代码": "village_code", "时段": "duration_h",
                          "历时": "duration_h", "土壤": "soil", "土壤含水量": "soil",
                          "准备转移": "prepare_mm", "准备转移雨量": "prepare_mm",
                          "立即转移": "immediate_mm", "立即转移雨量": "immediate_mm"},
}
"""Chinese column headers offices use, per layer (``*``: every layer); units in brackets are ignored."""

_UNIT = re.compile(r"\s*[(（][^()（）]*[)）]$")

VECTOR_SUFFIXES = (".gpkg", ".geojson", ".json", ".shp")
TABLE_SUFFIXES = (".csv", ".xlsx", ".gpkg")


@dataclass(frozen=True)
class Problem:
    """One problem in a region: where it is and what is wrong.

    ``row`` identifies the feature: the village code, the feature id, or ``#N``
    (the N-th record, 1-based; line N+1 of a spreadsheet with a header) when it has
    none; empty for problems of a whole layer or column.  ``severity`` is
    ``error`` (the region cannot be used) or ``warning``.
    """

    layer: str
    row: str
    column: str
    message: str
    severity: str = "error"

    def format(self) -> str:
        """One line: ``ERROR layer [row] column: message``.

        Examples
        --------
        >>> Problem("villages", "510100001001", "population", "negative count: -5").format()
        'ERROR villages [510100001001] population: negative count: -5'
        >>> Problem("rivers", "", "", "no CRS declared", "warning").format()
        'WARNING rivers: no CRS declared'
        """
        where = self.layer + (f" [{self.row}]" if self.row else "")
        where += f" {self.column}" if self.column else ""
        return f"{self.severity.upper()} {where}: {self.message}"


@dataclass(frozen=True, eq=False)
class RawLayer:
    """One layer as read: a (Geo)DataFrame and the file it came from."""

    name: str
    frame: pd.DataFrame
    source: str


@dataclass(frozen=True, eq=False)
class RawRegion:
    """Every layer found in a region, as read, plus the problems met while reading."""

    source: str
    layers: Mapping[str, RawLayer]
    problems: tuple[Problem, ...] = field(default=())

    def frame(self, name: str) -> pd.DataFrame | None:
        """The layer's frame, or None when the region lacks it."""
        layer = self.layers.get(name)
        return None if layer is None else layer.frame


def _tidy(frame: pd.DataFrame, layer: str) -> pd.DataFrame:
    """Normalise column names and text columns of a freshly read frame."""
    spec = LAYERS[layer]
    known = {c for c in (*spec.required, *spec.optional)}
    rename: dict[str, str] = {}
    for col in frame.columns:
        if col == "geometry" or not isinstance(col, str):
            continue
        key = col.strip().lower()
        if key not in known:
            bare = _UNIT.sub("", unicodedata.normalize("NFKC", key)).strip()
            key = _ZH.get(layer, {}).get(bare) or _ZH["*"].get(bare) or SHAPEFILE_ALIASES.get(key, key)
        if key in known and key != col and key not in frame.columns and key not in rename.values():
            rename[col] = key
    if rename:
        frame = frame.rename(columns=rename)
    for col in frame.columns:
        if col in TEXT_COLUMNS:
            frame[col] = text_column(frame[col])
    return frame.reset_index(drop=True)


def _decode(data: bytes) -> str:
    """UTF-8 (with or without BOM) when valid, else GB18030."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("gb18030")


def read_csv(path: Path) -> pd.DataFrame:
    """Read a CSV table as text (UTF-8 or GB18030), empty cells missing."""
    text = _decode(path.read_bytes())
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""],
                       skipinitialspace=True)


def read_xlsx(path: Path, layer: str) -> pd.DataFrame:
    """Read the sheet named like the layer (else the first sheet) of an .xlsx file, as text."""
    with pd.ExcelFile(path, engine="openpyxl") as book:
        names = [str(n) for n in book.sheet_names]
        sheet = next((n for n in names if n.strip().lower() == layer), names[0])
        return pd.read_excel(book, sheet_name=sheet, dtype=str)


def _shapefile_encoding(path: Path) -> str | None:
    """None when GDAL knows the encoding (a .cpg or a DBF code page), else UTF-8 or GB18030.

    The DBF code page 0x57 ("ANSI", as ArcGIS writes it) means the writer's Windows code page,
    which on a Chinese system is GBK: it is treated as unknown.
    """
    if any(path.with_suffix(s).exists() for s in (".cpg", ".CPG")):
        return None
    dbf = next((p for p in (path.with_suffix(".dbf"), path.with_suffix(".DBF")) if p.exists()), None)
    if dbf is None:
        return None
    data = dbf.read_bytes()
    if len(data) < 32 or data[29] not in (0, 0x57):  # 0x57: ArcGIS "ANSI", the Windows code page (GBK)
        return None
    records = data[int.from_bytes(data[8:10], "little"):]  # the header holds binary field widths
    try:
        records.decode("utf-8")
    except UnicodeDecodeError:
        return "GB18030"
    return "UTF-8"


def read_vector(path: Path, layer: str | None = None) -> pd.DataFrame:
    """Read one vector layer (or an attribute-only table) with pyogrio."""
    kwargs: dict[str, object] = {}
    if path.suffix.lower() == ".shp":
        enc = _shapefile_encoding(path)
        if enc:
            kwargs["encoding"] = enc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return pyogrio.read_dataframe(path, layer=layer, **kwargs)


def _gpkg_layer_names(path: Path) -> list[str]:
    return [str(n) for n in pyogrio.list_layers(path)[:, 0]]


def _read_one(name: str, path: Path, gpkg_layer: str | None = None) -> RawLayer | Problem:
    """Read one layer file; a Problem when it cannot be read."""
    spec = LAYERS[name]
    where = f"{path.name}" + (f" layer '{gpkg_layer}'" if gpkg_layer else "")
    try:
        suffix = path.suffix.lower()
        if suffix == ".csv":
            frame = read_csv(path)
        elif suffix == ".xlsx":
            frame = read_xlsx(path, name)
        else:
            frame = read_vector(path, gpkg_layer)
    except Exception as exc:  # noqa: BLE001 - any reader failure is a problem of that file
        return Problem(name, "", "", f"cannot read {where}: {type(exc).__name__}: {exc}")
    if spec.kind == "table" and isinstance(frame, gpd.GeoDataFrame):
        frame = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    if spec.kind == "vector" and not isinstance(frame, gpd.GeoDataFrame):
        return Problem(name, "", "geometry",
                       f"{where} has no geometry: a {name} layer needs {', '.join(spec.geometry)} features")
    return RawLayer(name, _tidy(frame, name), str(path) + (f":{gpkg_layer}" if gpkg_layer else ""))


def _names_of(layer: str) -> tuple[str, ...]:
    """A layer's names in files: the schema name, then its Chinese title (``行政村`` …)."""
    title = LAYERS[layer].title_zh
    return (layer, title) if title else (layer,)


def _from_geopackage(path: Path) -> tuple[dict[str, RawLayer], list[Problem]]:
    layers: dict[str, RawLayer] = {}
    problems: list[Problem] = []
    try:
        names = _gpkg_layer_names(path)
    except Exception as exc:  # noqa: BLE001
        raise RegionError(f"{path}: cannot open GeoPackage: {exc}") from exc
    by_key = {n.strip().lower(): n for n in names}
    for name in LAYERS:
        found = [by_key[k] for k in _names_of(name) if k in by_key]
        if len(found) > 1:
            problems.append(Problem(name, "", "", f"several layers for one: {', '.join(found)}; "
                                    f"using {found[0]}", "warning"))
        if found:
            got = _read_one(name, path, found[0])
            if isinstance(got, Problem):
                problems.append(got)
            else:
                layers[name] = got
    known = {k for name in LAYERS for k in _names_of(name)}
    for key, actual in by_key.items():
        if key not in known and not key.startswith(("gpkg_", "rtree_", "layer_styles")):
            problems.append(Problem(actual, "", "", f"unknown layer in {path.name}, ignored "
                                    f"(known: {', '.join(LAYERS)})", "warning"))
    return layers, problems


def _from_directory(path: Path) -> tuple[dict[str, RawLayer], list[Problem]]:
    layers: dict[str, RawLayer] = {}
    problems: list[Problem] = []
    files = {p.name.lower(): p for p in path.iterdir() if p.is_file()}
    for name, spec in LAYERS.items():
        suffixes = VECTOR_SUFFIXES if spec.kind == "vector" else TABLE_SUFFIXES
        found = [files[n + s] for n in _names_of(name) for s in suffixes if n + s in files]
        if not found:
            continue
        if len(found) > 1:
            problems.append(Problem(name, "", "", f"several files for one layer: "
                                    f"{', '.join(p.name for p in found)}; using {found[0].name}", "warning"))
        file = found[0]
        gpkg_layer = None
        if file.suffix.lower() == ".gpkg":
            try:
                inner = _gpkg_layer_names(file)
            except Exception as exc:  # noqa: BLE001
                problems.append(Problem(name, "", "", f"cannot open {file.name}: {exc}"))
                continue
            gpkg_layer = next((n for n in inner if n.strip().lower() in _names_of(name)),
                              inner[0] if inner else None)
        got = _read_one(name, file, gpkg_layer)
        if isinstance(got, Problem):
            problems.append(got)
        else:
            layers[name] = got
    return layers, problems


def read_region_raw(path: str | Path) -> RawRegion:
    """Read every layer of a region once, as found.

    Parameters
    ----------
    path
        A GeoPackage holding the layers by name, or a directory with one file per layer.

    Returns
    -------
    RawRegion
        The layers found (missing optional layers are simply absent) and the
        problems met while reading, including a missing mandatory layer.

    Raises
    ------
    RegionError
        When *path* does not exist or is neither a GeoPackage nor a directory.
    """
    path = Path(path)
    if path.is_dir():
        layers, problems = _from_directory(path)
        expected = "a file <layer>.gpkg, .geojson, .json or .shp"
    elif path.is_file() and path.suffix.lower() == ".gpkg":
        layers, problems = _from_geopackage(path)
        expected = "a layer of that name"
    elif path.exists():
        raise RegionError(f"{path}: a region is a GeoPackage (.gpkg) or a directory with one file per layer")
    else:
        raise RegionError(f"{path}: no such region (GeoPackage or directory)")
    for name, spec in LAYERS.items():
        if spec.mandatory and name not in layers and not any(p.layer == name for p in problems):
            problems.append(Problem(name, "", "", f"missing mandatory layer: {path.name} has no {name} "
                                    f"({expected})"))
    return RawRegion(str(path), layers, tuple(problems))
