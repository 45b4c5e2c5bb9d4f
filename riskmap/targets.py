"""Resolve what an operator names (a village, a township, a feature) to village codes (pure).

Used by ``riskmap issue`` / ``lift`` / ``silence``: opening a detention area warns every
village in it; a dam 险情 warns the villages in the reservoir's downstream zone.

Targets: ``469900100201`` or ``village:469900100201`` (one village); a 6- or 9-digit code
(every village of the county or township); ``LAYER:ID`` for ``detention_areas``,
``reservoir_zones``, ``mines`` (villages intersecting the polygon), ``reservoirs`` (villages
in its downstream zones), and point layers ``hazard_sites``, ``flood_points``, ``mines``,
``vulnerable_sites``, ``shelters`` (the village containing the point, else the nearest
within ``near_m``).

Examples
--------
>>> import geopandas as gpd
>>> from types import SimpleNamespace
>>> from shapely.geometry import Point, box
>>> v = gpd.GeoDataFrame({"code": ["469900100201", "469900100202", "469900101201"]},
...     geometry=[box(0, 0, 10, 10), box(10, 0, 20, 10), box(20, 0, 30, 10)], crs="EPSG:32649")
>>> d = gpd.GeoDataFrame({"id": ["D1"]}, geometry=[box(5, 2, 15, 8)], crs="EPSG:32649")
>>> region = SimpleNamespace(villages=v, layer=lambda name: {"detention_areas": d}[name])
>>> resolve_target(region, "detention_areas:D1")
('469900100201', '469900100202')
>>> resolve_target(region, "469900101")
('469900101201',)
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd

from riskmap.errors import InputError

ZONE_LAYERS = ("detention_areas", "reservoir_zones")
POINT_LAYERS = ("hazard_sites", "flood_points", "vulnerable_sites", "shelters")


def _codes(villages: gpd.GeoDataFrame, mask: Any) -> tuple[str, ...]:
    return tuple(str(c) for c in villages.loc[mask, "code"])


def _intersecting(villages: gpd.GeoDataFrame, shapes: gpd.GeoSeries) -> tuple[str, ...]:
    if shapes.empty:
        return ()
    geom = shapes.union_all()
    hits = villages.geometry.intersects(geom)
    # a village touching the zone only along its border is not "in" it
    areas = villages.geometry.intersection(geom).area
    polygonal = villages.geometry.geom_type.isin(["Polygon", "MultiPolygon"])
    return _codes(villages, hits & (~polygonal | (areas > 0)))


def _containing(villages: gpd.GeoDataFrame, points: gpd.GeoSeries, near_m: float) -> tuple[str, ...]:
    out: list[str] = []
    for p in points:
        inside = villages.geometry.contains(p)
        if inside.any():
            out.extend(_codes(villages, inside))
            continue
        dist = villages.geometry.distance(p)
        if len(dist) and dist.min() <= near_m:
            out.append(str(villages["code"].iloc[int(dist.to_numpy().argmin())]))
    order = {c: i for i, c in enumerate(villages["code"].astype(str))}
    return tuple(sorted(set(out), key=order.__getitem__))


def resolve_target(region: Any, target: str, near_m: float = 2000.0) -> tuple[str, ...]:
    """Village codes (in region order) a target covers; :class:`InputError` if it names nothing."""
    villages: gpd.GeoDataFrame = region.villages
    codes = villages["code"].astype(str)
    raw = target.strip()
    layer, sep, ident = raw.partition(":")
    if not sep:
        layer, ident = "village", raw
    if layer == "village":
        if len(ident) == 12 and ident.isdigit():
            if not (codes == ident).any():
                raise InputError(f"target {raw!r}: no village with code {ident} in the region")
            return (ident,)
        if len(ident) in (6, 9) and ident.isdigit():
            found = _codes(villages, codes.str.startswith(ident))
            if not found:
                raise InputError(f"target {raw!r}: no village code starts with {ident}")
            return found
        raise InputError(f"target {raw!r}: give a 12-digit village code, a 6/9-digit county/township code, "
                         "or LAYER:ID")
    try:
        features = region.layer("reservoir_zones" if layer == "reservoirs" else layer)
    except (AttributeError, KeyError):
        raise InputError(f"target {raw!r}: unknown layer {layer!r}") from None
    if layer == "reservoirs":
        chosen = features[features["reservoir_id"].astype(str) == ident]
        if chosen.empty:
            raise InputError(f"target {raw!r}: reservoir {ident} has no downstream zone in reservoir_zones")
    else:
        if "id" not in features.columns:
            raise InputError(f"target {raw!r}: layer {layer!r} has no id column")
        chosen = features[features["id"].astype(str) == ident]
        if chosen.empty:
            raise InputError(f"target {raw!r}: no feature with id {ident} in layer {layer!r}")
    geoms = chosen.geometry
    polygonal = geoms.geom_type.isin(["Polygon", "MultiPolygon"])
    found = _intersecting(villages, geoms[polygonal]) + _containing(villages, geoms[~polygonal], near_m)
    order = {c: i for i, c in enumerate(codes)}
    result = tuple(sorted(set(found), key=order.__getitem__))
    if not result:
        raise InputError(f"target {raw!r}: no village lies in or near {layer} {ident}")
    return result
