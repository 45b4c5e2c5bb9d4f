"""CAP areas of villages: simplified WGS 84 polygons (``lat,lon`` closed rings) or circles for points.

Examples
--------
>>> import geopandas as gpd
>>> from shapely.geometry import Point, box
>>> v = gpd.GeoDataFrame({"code": ["469900100201", "469900100202"], "name": ["双河村", "<A&B>"]},
...                      geometry=[box(0, 0, 1000, 1000), Point(500, 500)], crs="EPSG:32649")
>>> a = village_areas(v)
>>> a["469900100201"].polygons[0][0] == a["469900100201"].polygons[0][-1], len(a["469900100201"].polygons[0])
(True, 5)
>>> a["469900100202"].circle[2]
1.0
>>> format_polygon(((22.5, 111.0), (22.5, 111.1), (22.6, 111.1), (22.5, 111.0)))
'22.50000,111.00000 22.50000,111.10000 22.60000,111.10000 22.50000,111.00000'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import geopandas as gpd
import shapely
from shapely.geometry import MultiPolygon, Polygon

Ring = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class CapArea:
    """One village as a CAP ``area``: name, code, polygons (``(lat, lon)`` closed rings) or a circle."""

    code: str
    name: str
    polygons: tuple[Ring, ...] = ()
    circle: tuple[float, float, float] | None = None
    """(lat, lon, radius_km) for villages known only as a point."""
    township: str = ""


def _ring(poly: Polygon, max_points: int) -> Ring:
    coords = list(poly.exterior.coords)
    if len(coords) > max_points:  # too detailed even after simplification: use the convex hull
        coords = list(shapely.convex_hull(poly).exterior.coords)
    if coords[0] != coords[-1]:
        coords.append(coords[0])
    return tuple((round(y, 5), round(x, 5)) for x, y in coords)


def village_areas(villages: gpd.GeoDataFrame, tolerance_m: float = 50.0, point_radius_km: float = 1.0,
                  max_points: int = 200) -> dict[str, CapArea]:
    """CAP areas of villages (a metric-CRS GeoDataFrame with ``code``, ``name``, optional ``township``).

    Polygons are simplified by ``tolerance_m`` in the metric CRS (topology preserved), then
    reprojected to WGS 84; each part of a MultiPolygon is one ``polygon``.  Points become a
    circle of ``point_radius_km``.
    """
    if villages.crs is None:
        raise ValueError("village_areas: the villages layer has no CRS")
    geom = villages.geometry
    if villages.crs.is_projected and tolerance_m > 0:
        geom = geom.simplify(tolerance_m, preserve_topology=True)
    wgs = gpd.GeoSeries(geom, crs=villages.crs).to_crs("EPSG:4326")
    towns = villages["township"] if "township" in villages.columns else [""] * len(villages)
    out: dict[str, CapArea] = {}
    for code, name, town, g in zip(villages["code"], villages["name"], towns, wgs, strict=True):
        code, name, town = str(code), str(name), "" if town is None else str(town)
        if g is None or g.is_empty:
            out[code] = CapArea(code, name, township=town)
        elif g.geom_type == "Point":
            out[code] = CapArea(code, name, circle=(round(g.y, 5), round(g.x, 5), point_radius_km),
                                township=town)
        else:
            parts: Sequence[Polygon] = g.geoms if isinstance(g, MultiPolygon) else [g]
            rings = tuple(_ring(p, max_points) for p in parts if not p.is_empty)
            out[code] = CapArea(code, name, polygons=rings, township=town)
    return out


def format_polygon(ring: Ring) -> str:
    """A CAP polygon string: ``lat,lon`` pairs separated by spaces."""
    return " ".join(f"{lat:.5f},{lon:.5f}" for lat, lon in ring)


def format_circle(circle: tuple[float, float, float]) -> str:
    """A CAP circle string: ``lat,lon radius_km``."""
    lat, lon, r = circle
    return f"{lat:.5f},{lon:.5f} {r:g}"
