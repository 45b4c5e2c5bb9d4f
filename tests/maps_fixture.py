"""A small hand-made region for the map tests: five villages in a row, one per level, and every layer.

Villages (UTM 49N, 2 km squares side by side, west to east): level 4 red, 3 orange, 2 yellow, 1 blue,
0 none; the last one is named ``<script>alert(1)</script>&"`` to test escaping.  Every feature layer has one
or two features placed south of the villages (so they do not cover the village interiors), and the contacts
table carries phone numbers that must never reach the page.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr
from pyproj import CRS
from shapely.geometry import LineString, Point, box

from riskmap.levels import Level
from riskmap.region import Region
from riskmap.schema import LAYERS

CRS_UTM = CRS.from_epsg(32649)
X0, Y0, SIDE = 500_000.0, 3_330_000.0, 2_000.0
EVIL = '<script>alert(1)</script>&"'
CODES = [f"4201000010{i:02d}" for i in range(1, 6)]
NAMES = ["红村", "橙村", "黄村", "蓝村", EVIL]
LEVELS = [4, 3, 2, 1, 0]
PHONES = ["13800138000", "13912345678", "0571-87654321"]


def village_box(i: int) -> tuple[float, float, float, float]:
    """The (minx, miny, maxx, maxy) of village i in UTM metres."""
    return (X0 + i * SIDE, Y0, X0 + (i + 1) * SIDE, Y0 + SIDE)


def village_lonlat(i: int) -> tuple[float, float]:
    """Centre of village i in lon/lat."""
    minx, miny, maxx, maxy = village_box(i)
    pt = gpd.GeoSeries([Point((minx + maxx) / 2, (miny + maxy) / 2)], crs=CRS_UTM).to_crs(4326).iloc[0]
    return pt.x, pt.y


def _gdf(rows: dict[str, list[object]], geoms: list[object]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(rows, geometry=geoms, crs=CRS_UTM)


def utm_lonlat(x: float, y: float) -> tuple[float, float]:
    """A UTM point in lon/lat."""
    pt = gpd.GeoSeries([Point(x, y)], crs=CRS_UTM).to_crs(4326).iloc[0]
    return pt.x, pt.y


def make_region() -> Region:
    villages = _gdf({"code": CODES, "name": NAMES, "population": [1000, 900, 800, 700, 600],
                     "households": [300, 280, 260, 240, 220],
                     "township": ["城关镇", "城关镇", "河口乡", "河口乡", "河口乡"]},
                    [box(*village_box(i)) for i in range(5)])
    south = Y0 - 1500
    layers = {
        "rivers": _gdf({"id": ["rv1"], "name": ["清江"], "grade": ["三级"]},
                       [LineString([(X0, Y0 - 300), (X0 + 5 * SIDE, Y0 - 300)])]),
        "reservoirs": _gdf({"id": ["rs1", "rs2"], "name": ["大坝水库", "小塘水库"],
                            "scale": ["大(1)型", "小(2)型"], "status": ["正常", "病险"]},
                           [Point(X0 + 500, south), Point(X0 + 2500, south)]),
        "reservoir_zones": _gdf({"id": ["z1"], "reservoir_id": ["rs2"]},
                                [box(X0 + 2000, south - 900, X0 + 3000, south - 400)]),
        "flood_points": _gdf({"id": ["f1"], "name": ["下穿通道一"], "kind": ["下穿通道"]},
                             [Point(X0 + 4500, south)]),
        "hazard_sites": _gdf({"id": ["h1"], "name": ["后山滑坡"], "kind": ["滑坡"], "threatened_people": [35],
                              "threatened_households": [9]}, [Point(X0 + 6500, south)]),
        "mines": _gdf({"id": ["m1"], "name": ["一号煤矿"], "kind": ["井工"], "workers": [120]},
                      [Point(X0 + 8500, south)]),
        "detention_areas": _gdf({"id": ["d1"], "name": ["东湖蓄滞洪区"]},
                                [box(X0 + 6000, south - 900, X0 + 9000, south - 400)]),
        "shelters": _gdf({"id": ["s1"], "name": ["中心小学"], "capacity": [300]}, [Point(X0 + 9500, south)]),
        "vulnerable_sites": _gdf({"id": ["v1"], "name": ["敬老院"], "kind": ["养老院"]},
                                 [Point(X0 + 7500, south)]),
    }
    contacts = pd.DataFrame({"name": ["张三", "李四", "王五"], "phone": PHONES,
                             "role": ["village_head", "grid_member", "township_duty"],
                             "admin_code": [CODES[0], CODES[0], "420100001"]})
    tables = {"critical_rainfall": pd.DataFrame({c: [] for c in LAYERS["critical_rainfall"].required})}
    return Region(villages=villages, contacts=contacts, crs=CRS_UTM, **layers, **tables)


def make_levels() -> pd.DataFrame:
    rows = []
    for code, name, lv in zip(CODES, NAMES, LEVELS, strict=True):
        level = Level(lv)
        rows.append({"village_code": code, "village_name": name, "level": lv, "color": level.color,
                     "grade": level.grade, "hazards": f"rainstorm:{lv};hz_<b>:1" if lv else "",
                     "score": float(lv) * 10, "reasons": f"24小时雨量 {lv * 30} mm <i>" if lv else "",
                     "rain_24h": float(lv * 30), "rain_3h": float(lv * 10)})
    return pd.DataFrame(rows)


def make_rain() -> xr.DataArray:
    """Hourly rain (time, y, x) on a 500 m grid over the villages, 6 steps, heaviest in the north-west.

    Hour 1 is ``20 mm × west × (0.5 + 0.5 × north)`` (``west``, ``north`` run 0 → 1 across the cell centres);
    the hours alternate ×1, ×2, so the largest 3-hour sum is 5× hour 1.
    """
    xs = np.arange(X0 - 1000, X0 + 5 * SIDE + 1000, 500.0) + 250
    ys = np.arange(Y0 + SIDE + 1000, Y0 - 3000, -500.0) - 250
    times = pd.date_range("2026-07-01T01:00", periods=6, freq="h").values
    west = (xs.max() - xs) / (xs.max() - xs.min())
    north = (ys - ys.min()) / (ys.max() - ys.min())
    field = 20.0 * west[None, :] * (0.5 + 0.5 * north[:, None])
    data = np.stack([field * (1 + k % 2) for k in range(6)]).astype("float32")
    da = xr.DataArray(data, dims=("time", "y", "x"), coords={"time": times, "y": ys, "x": xs},
                      name="precipitation")
    da = da.assign_coords(interval=("time", np.full(6, np.timedelta64(1, "h"))))
    return da.rio.write_crs(CRS_UTM)
