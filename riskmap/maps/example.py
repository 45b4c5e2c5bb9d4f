"""A tiny hand-made region for examples and doctests (two villages, one river, one shelter)."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
from pyproj import CRS
from shapely.geometry import LineString, Point, box

from riskmap.region import Region
from riskmap.schema import LAYERS


def example_region(crs: str = "EPSG:32649") -> Region:
    """A two-village region (UTM zone 49N) with one river and one shelter, for examples."""
    crs_obj = CRS.from_user_input(crs)
    x0, y0 = 701_000.0, 3_332_000.0
    villages = gpd.GeoDataFrame(
        {"code": ["420100001001", "420100001002"], "name": ["东村", "西村"], "population": [1200, 800],
         "households": [400, 260], "township": ["城关镇", "城关镇"]},
        geometry=[box(x0, y0, x0 + 2000, y0 + 2000), box(x0 - 2000, y0, x0, y0 + 2000)], crs=crs_obj)
    empty = {name: gpd.GeoDataFrame({c: [] for c in spec.required}, geometry=[], crs=crs_obj)
             for name, spec in LAYERS.items() if spec.kind == "vector"}
    empty["rivers"] = gpd.GeoDataFrame({"id": ["r1"], "name": ["清江"]},
                                       geometry=[LineString([(x0 - 2000, y0 - 100), (x0 + 2000, y0 - 100)])],
                                       crs=crs_obj)
    empty["shelters"] = gpd.GeoDataFrame({"id": ["s1"], "name": ["小学"], "capacity": [300]},
                                         geometry=[Point(x0 + 500, y0 + 500)], crs=crs_obj)
    del empty["villages"]
    tables = {name: pd.DataFrame({c: [] for c in spec.required})
              for name, spec in LAYERS.items() if spec.kind == "table"}
    return Region(villages=villages, crs=crs_obj, **empty, **tables)
