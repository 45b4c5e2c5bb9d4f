"""Static hazard context per village, computed once per region (and cached by :mod:`riskmap.context_cache`).

:func:`compute_context` answers, for every village at once (spatial index queries, no loop per village):
does it touch a river; is it in a reservoir's downstream zone (which reservoir, its scale, 病险); how many
hazard sites lie within a distance and how many people they threaten; which mines are in or near it; which
flood points, vulnerable sites it contains; how much of it lies in a detention area; and its nearest
shelter.  Villages given as points (committee location only) are treated as discs of
``point_village_radius_m`` for "inside" questions.

Reservoirs without a drawn zone get one along their river: the river line nearest the reservoir
(within 4 × ``downstream_buffer_m``), from the reservoir's position ``downstream_distance_m`` further
along the line, buffered by ``downstream_buffer_m``.  This assumes river lines are digitised
downstream (from source to mouth), the usual convention; check your layer.

Examples
--------
>>> import geopandas as gpd, shapely
>>> from riskmap.region import Region
>>> crs = "EPSG:32650"
>>> def g(rows, geoms): return gpd.GeoDataFrame(rows, geometry=geoms, crs=crs)
>>> villages = g({"code": ["431129100201", "431129100202"], "name": ["东村", "西村"], "population": [500, 80],
...               "households": [150, 20]}, [shapely.box(0, 0, 1000, 1000), shapely.box(1000, 0, 2000, 1000)])
>>> empty = g({"id": []}, [])
>>> rivers = g({"id": ["r1"], "name": ["清水河"]}, [shapely.LineString([(500, -100), (500, 1100)])])
>>> shelters = g({"id": ["s1"], "name": ["小学"], "capacity": [300]}, [shapely.Point(1500, 500)])
>>> region = Region(villages, rivers, empty, empty, empty, empty, empty, empty, shelters, empty,
...                 pd.DataFrame(), pd.DataFrame(), crs)
>>> ctx = compute_context(region)
>>> ctx[["touches_river", "river_distance_m", "shelter_name", "shelter_distance_m"]].values.tolist()
[[True, 0.0, '小学', 500.0], [False, 500.0, '小学', 0.0]]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.ops import substring

CONTEXT_VERSION = 1
"""Bumped when the columns or their meaning change (part of the cache key)."""


@dataclass(frozen=True)
class ContextParams:
    """Distances (metres) of the static context; rule files set them in their ``context:`` sections."""

    river_distance_m: float = 100.0
    hazard_site_distance_m: float = 500.0
    mine_distance_m: float = 0.0
    downstream_distance_m: float = 5000.0
    downstream_buffer_m: float = 300.0
    point_village_radius_m: float = 500.0

    @classmethod
    def from_ruleset(cls, ruleset: Any) -> ContextParams:
        """The parameters a :class:`~riskmap.rules.model.RuleSet` sets (defaults for the rest)."""
        return cls(**dict(ruleset.context_params))

    def as_dict(self) -> dict[str, float]:
        """Plain mapping (for cache keys)."""
        return asdict(self)


def _join(n: int, vidx: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """';'-join labels per village, vectorised over villages (loops over the rank within a village)."""
    out = np.full(n, "", dtype=object)
    if not len(vidx):
        return out
    order = np.lexsort((labels.astype(str), vidx))
    vidx, labels = vidx[order], labels[order].astype(str).astype(object)
    rank = pd.Series(vidx).groupby(vidx).cumcount().to_numpy()
    for k in range(int(rank.max()) + 1):
        sel = rank == k
        p = vidx[sel]
        out[p] = labels[sel] if k == 0 else out[p] + ";" + labels[sel]
    return out


def _areas(villages: gpd.GeoDataFrame, radius: float) -> np.ndarray:
    geoms = villages.geometry.to_numpy()
    points = shapely.get_type_id(geoms) == 0
    return np.where(points, shapely.buffer(geoms, radius), geoms)


def _pairs(
    areas: np.ndarray, features: gpd.GeoDataFrame, distance: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """(village index, feature index) of every feature within ``distance`` of a village."""
    if features.empty:
        return np.zeros(0, int), np.zeros(0, int)
    tree = shapely.STRtree(areas)
    geoms = features.geometry.to_numpy()
    if distance > 0:
        f, v = tree.query(geoms, predicate="dwithin", distance=distance)
    else:
        f, v = tree.query(geoms, predicate="intersects")
    return v.astype(int), f.astype(int)


def _num(frame: pd.DataFrame, col: str) -> np.ndarray:
    if col not in frame.columns:
        return np.zeros(len(frame))
    return pd.to_numeric(frame[col], errors="coerce").fillna(0).to_numpy(dtype=float)


def _scale_codes(reservoirs: pd.DataFrame) -> np.ndarray:
    if "scale_code" in reservoirs.columns:
        s = pd.to_numeric(reservoirs["scale_code"], errors="coerce")
    else:
        from riskmap.region_io import scale_codes

        s = scale_codes(reservoirs["scale"]).astype(float)
    return s.fillna(5).to_numpy(dtype=int)


def _river_zones(region: Any, p: ContextParams, with_zone: set[str]) -> gpd.GeoDataFrame:
    """Downstream stretches (buffered) for reservoirs that have no drawn zone; one loop per reservoir."""
    res = region.reservoirs
    res = res[~res["id"].astype(str).isin(with_zone)]
    rivers = region.rivers
    if res.empty or rivers.empty:
        return gpd.GeoDataFrame({"reservoir_id": []}, geometry=[], crs=region.crs)
    near = gpd.sjoin_nearest(
        res[["id", "geometry"]], rivers[["geometry"]], max_distance=4 * p.downstream_buffer_m
    )
    near = near[~near.index.duplicated()]
    ids, polys = [], []
    for rid, pt, ri in zip(near["id"].astype(str), near.geometry, near["index_right"], strict=True):
        line = rivers.geometry.loc[ri]
        if line.geom_type == "MultiLineString":
            line = shapely.line_merge(line)
            if line.geom_type == "MultiLineString":
                line = min(line.geoms, key=lambda g: g.distance(pt))
        start = line.project(pt)
        seg = substring(line, start, start + p.downstream_distance_m)
        ids.append(rid)
        polys.append(seg.buffer(p.downstream_buffer_m))
    return gpd.GeoDataFrame({"reservoir_id": ids}, geometry=polys, crs=region.crs)


def _reservoir_context(region: Any, areas: np.ndarray, p: ContextParams, n: int) -> dict[str, np.ndarray]:
    res = region.reservoirs.reset_index(drop=True)
    out: dict[str, np.ndarray] = {
        "in_reservoir_zone": np.zeros(n, bool),
        "reservoir_id": np.full(n, "", object),
        "reservoir_name": np.full(n, "", object),
        "reservoir_scale": np.zeros(n, int),
        "reservoir_unsafe": np.zeros(n, bool),
        "reservoir_village": np.full(n, "", object),
        "reservoir_zone_source": np.full(n, "", object),
        "reservoir_ids": np.full(n, "", object),
    }
    if res.empty:
        return out
    zones = region.reservoir_zones
    drawn = gpd.GeoDataFrame(
        {"reservoir_id": zones["reservoir_id"].astype(str).to_numpy(), "source": "zone"},
        geometry=zones.geometry.to_numpy(),
        crs=region.crs,
    )
    river = _river_zones(region, p, set(drawn["reservoir_id"]))
    river["source"] = "river"
    allz = pd.concat([drawn, river], ignore_index=True)
    v, z = _pairs(areas, gpd.GeoDataFrame(allz, geometry="geometry", crs=region.crs))
    if len(v):  # overlap with area, not mere touching
        keep = shapely.area(shapely.intersection(areas[v], allz.geometry.to_numpy()[z])) > 0
        v, z = v[keep], z[keep]
    rpos = pd.Index(res["id"].astype(str)).get_indexer(allz["reservoir_id"].to_numpy()[z])
    ok = rpos >= 0
    v, z, rpos = v[ok], z[ok], rpos[ok]
    scale = _scale_codes(res)
    unsafe = (
        res["status"].astype(str).str.contains("病险").to_numpy()
        if "status" in res
        else np.zeros(len(res), bool)
    )
    # the governing reservoir: 病险 first, then the largest (lowest scale code)
    order = np.lexsort((scale[rpos], ~unsafe[rpos], v))
    v_s, r_s, z_s = v[order], rpos[order], z[order]
    first = np.r_[True, v_s[1:] != v_s[:-1]] if len(v_s) else np.zeros(0, bool)
    gv, gr = v_s[first], r_s[first]
    out["in_reservoir_zone"][gv] = True
    out["reservoir_id"][gv] = res["id"].astype(str).to_numpy()[gr]
    out["reservoir_name"][gv] = res["name"].astype(str).to_numpy()[gr]
    out["reservoir_scale"][gv] = scale[gr]
    out["reservoir_unsafe"][gv] = unsafe[gr]
    out["reservoir_zone_source"][gv] = allz["source"].to_numpy()[z_s[first]]
    if len(v):
        uv = np.unique(np.c_[v, rpos], axis=0)
        out["reservoir_ids"] = _join(n, uv[:, 0], res["id"].astype(str).to_numpy()[uv[:, 1]])
    # the village holding each reservoir: containing it, else the nearest
    hv, hr = _pairs(areas, res)
    holder = np.full(len(res), -1)
    holder[hr] = hv
    missing = np.flatnonzero(holder < 0)
    if len(missing):
        tree = shapely.STRtree(areas)
        holder[missing] = tree.nearest(res.geometry.to_numpy()[missing])
    codes = region.villages["code"].astype(str).to_numpy()
    out["reservoir_village"][gv] = codes[holder[gr]]
    return out


def compute_context(region: Any, params: ContextParams | None = None) -> pd.DataFrame:
    """Static hazard context of every village (index ``village_code``, region order); see the module doc."""
    p = params or ContextParams()
    villages = region.villages
    n = len(villages)
    codes = villages["code"].astype(str).to_numpy()
    areas = _areas(villages, p.point_village_radius_m)
    ctx: dict[str, Any] = {
        "village_name": villages["name"].astype(str).to_numpy(),
        "township": villages["township"].astype(str).to_numpy() if "township" in villages else "",
        "population": _num(villages, "population").astype(int),
        "households": _num(villages, "households").astype(int),
    }
    # rivers: distance from the village (area) to the nearest river line
    dist = np.full(n, np.inf)
    if not region.rivers.empty:
        # split rivers into 2-point segments: tight envelopes make the nearest search ~10× faster
        coords, idx = shapely.get_coordinates(region.rivers.geometry.to_numpy(), return_index=True)
        same = idx[1:] == idx[:-1]
        segs = shapely.linestrings(np.stack([coords[:-1][same], coords[1:][same]], axis=1))
        dist = shapely.distance(areas, segs[shapely.STRtree(segs).nearest(areas)])
    ctx["river_distance_m"] = dist
    ctx["touches_river"] = dist <= p.river_distance_m
    ctx.update(_reservoir_context(region, areas, p, n))
    # hazard sites within a distance
    sites = region.hazard_sites.reset_index(drop=True)
    v, s = _pairs(areas, sites, p.hazard_site_distance_m)
    ctx["hazard_sites"] = np.bincount(v, minlength=n)
    ctx["threatened_people"] = np.bincount(
        v, weights=_num(sites, "threatened_people")[s], minlength=n
    ).astype(int)
    ctx["threatened_households"] = np.bincount(
        v, weights=_num(sites, "threatened_households")[s], minlength=n
    ).astype(int)
    ctx["hazard_site_ids"] = _join(n, v, sites["id"].astype(str).to_numpy()[s]) if len(v) else ""
    # mines in or near
    mines = region.mines.reset_index(drop=True)
    v, m = _pairs(areas, mines, p.mine_distance_m)
    ctx["mines"] = np.bincount(v, minlength=n)
    ctx["mine_workers"] = np.bincount(v, weights=_num(mines, "workers")[m], minlength=n).astype(int)
    ctx["mine_ids"] = _join(n, v, mines["id"].astype(str).to_numpy()[m]) if len(v) else ""
    # points inside
    for layer, name in (("flood_points", "flood_point"), ("vulnerable_sites", "vulnerable_site")):
        feats = region.layer(layer).reset_index(drop=True)
        v, f = _pairs(areas, feats)
        ctx[f"{name}s"] = np.bincount(v, minlength=n)
        ctx[f"{name}_ids"] = _join(n, v, feats["id"].astype(str).to_numpy()[f]) if len(v) else ""
    # detention areas: share of the village's area inside
    det = region.detention_areas.reset_index(drop=True)
    v, d = _pairs(areas, det)
    inter = (
        shapely.area(shapely.intersection(areas[v], det.geometry.to_numpy()[d])) if len(v) else np.zeros(0)
    )
    frac = np.bincount(v, weights=inter, minlength=n) / np.maximum(shapely.area(areas), 1e-9)
    ctx["detention_fraction"] = np.clip(frac, 0, 1)
    ctx["detention_overlap"] = ctx["detention_fraction"] > 0
    ctx["detention_ids"] = (
        _join(n, v[inter > 0], det["id"].astype(str).to_numpy()[d[inter > 0]]) if len(v) else ""
    )
    # nearest shelter
    sh = region.shelters.reset_index(drop=True)
    if sh.empty:
        ctx.update(shelter_id="", shelter_name="", shelter_distance_m=np.inf)
    else:
        idx = shapely.STRtree(sh.geometry.to_numpy()).nearest(areas)
        ctx["shelter_id"] = sh["id"].astype(str).to_numpy()[idx]
        ctx["shelter_name"] = sh["name"].astype(str).to_numpy()[idx]
        ctx["shelter_distance_m"] = shapely.distance(areas, sh.geometry.to_numpy()[idx])
    crit = region.critical_rainfall
    has = set(crit["village_code"].astype(str)) if "village_code" in crit else set()
    ctx["has_critical_rainfall"] = np.isin(codes, list(has))
    return pd.DataFrame(ctx, index=pd.Index(codes, name="village_code"))
