"""A tiny valid region made in code, and writers for every supported layout (used by test_check/test_region).

Four villages of 0.01° × 0.01° near 120° E 30° N (EPSG:4490) in two townships of county
330110, one feature of each layer, six contacts (every role) and a critical-rainfall table.
Ids have leading zeros on purpose.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import shapely

from riskmap.schema import LAYERS

CRS = "EPSG:4490"
CODES = ["330110001001", "330110001002", "330110002001", "330110002002"]


def box(i: int, j: int = 0, size: float = 0.01) -> shapely.Polygon:
    """The village-sized square at column *i*, row *j*."""
    x, y = 120.0 + i * size, 30.0 + j * size
    return shapely.box(x, y, x + size, y + size)


def point(x: float, y: float) -> shapely.Point:
    return shapely.Point(120.0 + x * 0.01, 30.0 + y * 0.01)


def valid_layers() -> dict[str, pd.DataFrame]:
    """Every layer of a small, valid region (fresh objects on every call)."""
    g = gpd.GeoDataFrame
    villages = g({"code": CODES, "name": ["东村", "西村", "南村", "北村"],
                  "population": [820, 455, 1203, 96], "households": [260, 150, 390, 31],
                  "township": ["甲镇", "甲镇", "乙乡", "乙乡"], "county": ["青山县"] * 4},
                 geometry=[box(0), box(1), box(2), box(3)], crs=CRS)
    rivers = g({"id": ["R01"], "name": ["青溪"], "grade": [3]},
               geometry=[shapely.LineString([(119.99, 30.005), (120.05, 30.005)])], crs=CRS)
    reservoirs = g({"id": ["001", "002"], "name": ["青山水库", "石门水库"], "scale": ["中型", "5"],
                    "storage_m3": [2.5e7, 3.0e5], "status": ["正常", "病险"]},
                   geometry=[point(0.5, 1.5), point(2.5, 1.5)], crs=CRS)
    zones = g({"id": ["Z01"], "reservoir_id": ["002"]}, geometry=[box(2, 0, 0.005)], crs=CRS)
    flood = g({"id": ["F01"], "name": ["下穿通道一"], "kind": ["下穿通道"]},
              geometry=[point(1.5, 0.5)], crs=CRS)
    hazards = g({"id": ["H01"], "name": ["后山滑坡"], "kind": ["滑坡"], "threatened_people": [12],
                 "threatened_households": [4]}, geometry=[point(3.5, 0.5)], crs=CRS)
    mines = g({"id": ["M01"], "name": ["沉陷区"], "kind": ["采煤沉陷区"], "workers": [0]},
              geometry=[box(3, 1)], crs=CRS)
    detention = g({"id": ["D01"], "name": ["青溪蓄滞洪区"]}, geometry=[box(0, -1)], crs=CRS)
    shelters = g({"id": ["S01"], "name": ["东村小学"], "capacity": [300]},
                 geometry=[point(0.2, 0.2)], crs=CRS)
    vulnerable = g({"id": ["V01"], "name": ["东村小学"], "kind": ["学校"]},
                   geometry=[point(0.2, 0.2)], crs=CRS)
    contacts = pd.DataFrame({
        "name": ["王县", "李镇", "张村", "赵网", "钱户", "孙管"],
        "phone": ["0571-87654321", "13800000001", "+86 138 0000 0002", "13800000003", "13800000004",
                  "010-62345678"],
        "role": ["county_duty", "township_duty", "村责任人", "网格员", "household", "keeper"],
        "admin_code": ["330110", "330110001", "330110001001", "330110002001", "330110001002", None],
        "feature_layer": [None, None, None, None, None, "reservoirs"],
        "feature_id": [None, None, None, None, None, "002"],
        "household_id": [None, None, None, None, "0007", None],
        "lon": [None, None, None, None, 120.015, None],
        "lat": [None, None, None, None, 30.005, None],
    })
    rain = pd.DataFrame({
        "village_code": [c for c in CODES for _ in (1, 3)],
        "duration_h": [1, 3] * 4,
        "soil": ["normal"] * 8,
        "prepare_mm": [30.0, 50.0] * 4,
        "immediate_mm": [45.0, 70.0] * 4,
    })
    return {"villages": villages, "rivers": rivers, "reservoirs": reservoirs, "reservoir_zones": zones,
            "flood_points": flood, "hazard_sites": hazards, "mines": mines, "detention_areas": detention,
            "shelters": shelters, "vulnerable_sites": vulnerable, "contacts": contacts,
            "critical_rainfall": rain}


def write_gpkg(layers: dict[str, pd.DataFrame], path: Path) -> Path:
    """One GeoPackage with every layer by name (tables as attribute-only layers)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "'crs' was not provided", UserWarning)
        for name, frame in layers.items():
            pyogrio.write_dataframe(frame, path, layer=name)
    return path


def write_dir(layers: dict[str, pd.DataFrame], folder: Path, *, vector: str = ".geojson", table: str = ".csv",
              encoding: str = "utf-8") -> Path:
    """A directory with one file per layer: vector layers as *vector*, tables as *table*.

    With ``vector=".shp"`` and a non-UTF-8 *encoding* the shapefiles are written in that
    encoding and their ``.cpg`` is removed (as offices' old shapefiles come).
    """
    folder.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "'crs' was not provided", UserWarning)
        for name, frame in layers.items():
            if LAYERS[name].kind == "vector":
                path = folder / f"{name}{vector}"
                if vector == ".shp":
                    short = {"reservoir_id": "res_id", "threatened_people": "threat_ppl",
                             "threatened_households": "threat_hh"}
                    pyogrio.write_dataframe(frame.rename(columns=short), path, encoding=encoding)
                    if encoding.lower() != "utf-8":
                        path.with_suffix(".cpg").unlink(missing_ok=True)
                else:
                    pyogrio.write_dataframe(frame, path)
            elif table == ".csv":
                (folder / f"{name}.csv").write_bytes(frame.to_csv(index=False).encode(encoding))
            else:
                frame.to_excel(folder / f"{name}.xlsx", index=False)
    return folder
