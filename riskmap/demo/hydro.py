"""Rivers, reservoirs on them, downstream danger zones and a detention area (km frame).

Reservoirs of all five SL 252-2017 scales sit on river cells, the larger ones on
larger rivers; each has a danger zone: a buffer along its flow path downstream,
longer and wider for larger dams.  The detention area (蓄滞洪区) lies in the main
river's floodplain downstream of the county town.

Examples
--------
>>> from riskmap.schema import RESERVOIR_SCALES
>>> all(RESERVOIR_SCALES[name] == code for code, name in SCALE_NAMES.items())
True
>>> all(10 ** (10 - c) <= lo < hi <= 10 ** (11 - c) for c, (lo, hi) in STORAGE_RANGE.items())
True
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely
from scipy import ndimage
from shapely.geometry import LineString, Point, Polygon

from riskmap.demo.names import unique_names
from riskmap.demo.terrain import CELL_KM, Terrain
from riskmap.demo.villages import Villages

MAIN_RIVER = "青江"
SCALE_NAMES = {1: "大(1)型", 2: "大(2)型", 3: "中型", 4: "小(1)型", 5: "小(2)型"}
SCALE_COUNT = {1: 1, 2: 1, 3: 4, 4: 10, 5: 22}
STORAGE_RANGE = {1: (1.05e9, 1.6e9), 2: (1.2e8, 8e8), 3: (1.2e7, 8e7), 4: (1.2e6, 8e6), 5: (1.2e5, 8e5)}
ZONE_KM = {1: (16.0, 1.2), 2: (12.0, 1.0), 3: (8.0, 0.7), 4: (5.0, 0.5), 5: (3.0, 0.35)}
"""Scale → (zone length along the flow path, half-width), km."""
SMOOTH_CELLS = 1.5
"""Gaussian smoothing of river paths along their length (σ in cells)."""


@dataclass(frozen=True, eq=False)
class Hydro:
    """Rivers, reservoirs, zones and the detention area as km-frame GeoDataFrames."""

    rivers: gpd.GeoDataFrame
    reservoirs: gpd.GeoDataFrame
    reservoir_zones: gpd.GeoDataFrame
    detention_areas: gpd.GeoDataFrame
    unsafe_target: str
    """Id of the 病险 reservoir the demo storm is aimed at."""


def _chaikin(xy: np.ndarray, rounds: int = 2) -> np.ndarray:
    for _ in range(rounds):
        if len(xy) < 3:
            break
        q = 0.75 * xy[:-1] + 0.25 * xy[1:]
        r = 0.25 * xy[:-1] + 0.75 * xy[1:]
        mid = np.empty((2 * len(q), 2))
        mid[0::2], mid[1::2] = q, r
        xy = np.vstack([xy[:1], mid[1:-1], xy[-1:]])
    return xy


def _smooth_path(xy: np.ndarray, sigma: float = SMOOTH_CELLS) -> np.ndarray:
    """A D8 cell path as a smooth curve: Gaussian smoothing along the path (ends fixed), then Chaikin."""
    if len(xy) >= 4:
        ends = xy[[0, -1]].astype(float)
        xy = ndimage.gaussian_filter1d(xy.astype(float), sigma, axis=0, mode="nearest")
        xy[[0, -1]] = ends
    return _chaikin(xy, 2)


def river_lines(terrain: Terrain) -> list[LineString]:
    """Smooth lines of the traced rivers (km), each tributary ending on its parent's line."""
    lines: list[LineString] = []
    for river in terrain.rivers:
        x, y = terrain.cell_xy(river.cells)
        xy = _smooth_path(np.column_stack([x, y]))
        if river.parent >= 0:
            parent = lines[river.parent]
            mouth = parent.interpolate(parent.project(Point(xy[-1])))
            xy[-1] = (mouth.x, mouth.y)
        lines.append(LineString(xy))
    return lines


def _rivers(
    rng: np.random.Generator, terrain: Terrain, lines: list[LineString], county: Polygon
) -> gpd.GeoDataFrame:
    names = unique_names(rng, len(terrain.rivers), "")
    suffix = {1: "江", 2: "河", 3: "溪"}
    rows = []
    for k, (river, line) in enumerate(zip(terrain.rivers, lines, strict=True)):
        parts = [
            p
            for p in shapely.get_parts(shapely.intersection(line, county))
            if p.geom_type == "LineString" and p.length >= 1.5
        ]
        for p in parts:
            name = MAIN_RIVER if k == 0 else names[k] + suffix[river.grade]
            rows.append({"name": name, "grade": river.grade, "geometry": p})
    frame = gpd.GeoDataFrame(rows, geometry="geometry")
    frame.insert(0, "id", [f"riv-{i + 1:03d}" for i in range(len(frame))])
    frame["grade"] = frame["grade"].astype("int64")
    return frame


def _pick_sites(
    rng: np.random.Generator, terrain: Terrain, county: Polygon, town: tuple[float, float]
) -> list[tuple[int, int, int]]:
    """(scale, cell, river index) for every reservoir."""
    inner = county.buffer(-1.5)
    taken: list[tuple[float, float]] = [town]
    sites: list[tuple[int, int, int]] = []
    used_rivers: set[int] = set()
    main = terrain.rivers[0].cells
    mx, my = terrain.cell_xy(main)
    town_i = int(np.argmin(np.hypot(mx - town[0], my - town[1])))

    def ok(cell: int, spacing: float) -> bool:
        x, y = terrain.cell_xy(np.array([cell]))
        if not shapely.contains_xy(inner, x, y)[0]:
            return False
        return all(np.hypot(x[0] - a, y[0] - b) >= spacing for a, b in taken)

    def add(scale: int, cell: int, river: int) -> None:
        x, y = terrain.cell_xy(np.array([cell]))
        taken.append((float(x[0]), float(y[0])))
        sites.append((scale, int(cell), river))
        used_rivers.add(river)

    up = [int(c) for c in main[:town_i] if ok(int(c), 8.0)]
    add(1, up[len(up) // 3], 0)
    for scale in (2, 3, 4, 5):
        grades = (2,) if scale <= 3 else ((2, 3) if scale == 4 else (3,))
        cands = [k for k, r in enumerate(terrain.rivers) if r.grade in grades and k not in used_rivers]
        cands.sort(key=lambda k: (-int(terrain.acc[terrain.rivers[k].cells[-1]]), k))
        if scale >= 4:
            cands = [cands[i] for i in rng.permutation(len(cands))]
        placed = 0
        for k in cands:
            cells = terrain.rivers[k].cells
            lo, hi = (0.55, 0.8) if scale <= 3 else (0.3, 0.75)
            for f in rng.uniform(lo, hi, 6):
                c = int(cells[int(f * (len(cells) - 1))])
                if ok(c, 2.5):
                    add(scale, c, k)
                    placed += 1
                    break
            if placed == SCALE_COUNT[scale]:
                break
    return sites


def _detention(
    terrain: Terrain, county: Polygon, town: tuple[float, float], river_name: str
) -> gpd.GeoDataFrame:
    main = terrain.rivers[0].cells
    mx, my = terrain.cell_xy(main)
    town_i = int(np.argmin(np.hypot(mx - town[0], my - town[1])))
    step = int(round(6.0 / CELL_KM))
    seg = np.column_stack([mx, my])[town_i + step : town_i + 3 * step]
    area = LineString(_chaikin(seg, 3)).buffer(1.3).intersection(county.buffer(-0.5))
    parts = sorted(shapely.get_parts(area), key=lambda p: -p.area)
    poly = shapely.simplify(parts[0], 0.05)
    return gpd.GeoDataFrame({"id": ["da-1"], "name": [river_name + "蓄滞洪区"]}, geometry=[poly])


def make_hydro(rng: np.random.Generator, terrain: Terrain, villages: Villages) -> Hydro:
    """Generate rivers, reservoirs with zones, and the detention area."""
    county = villages.county
    lines = river_lines(terrain)
    rivers = _rivers(rng, terrain, lines, county)
    sites = _pick_sites(rng, terrain, county, villages.town_xy)
    names = unique_names(rng, len(sites), "水库")
    res_rows, zone_rows = [], []
    for i, (scale, cell, k) in enumerate(sites):
        rid = f"res-{i + 1:03d}"
        lo, hi = STORAGE_RANGE[scale]
        storage = float(round(np.exp(rng.uniform(np.log(lo), np.log(hi))), -4))
        unsafe = scale >= 3 and rng.random() < 0.25
        x, y = terrain.cell_xy(np.array([cell]))
        dam = lines[k].interpolate(lines[k].project(Point(x[0], y[0])))  # on the drawn river
        res_rows.append(
            {
                "id": rid,
                "name": names[i],
                "scale": SCALE_NAMES[scale],
                "storage_m3": storage,
                "status": "病险" if unsafe else "正常",
                "geometry": dam,
            }
        )
        length, half = ZONE_KM[scale]
        path = terrain.downstream(cell, length)
        px, py = terrain.cell_xy(path)
        flow = _smooth_path(np.column_stack([px, py]))
        flow[0] = (dam.x, dam.y)
        zone = LineString(flow).buffer(half)
        zone_rows.append(
            {"id": f"rz-{i + 1:03d}", "reservoir_id": rid, "geometry": shapely.simplify(zone, 0.02)}
        )
    reservoirs = gpd.GeoDataFrame(res_rows, geometry="geometry")
    zones = gpd.GeoDataFrame(zone_rows, geometry="geometry")
    # the storm's target: the 小(1)型 reservoir nearest the county town (6-20 km away) is made 病险
    tx, ty = villages.town_xy
    d = np.hypot(reservoirs.geometry.x - tx, reservoirs.geometry.y - ty).to_numpy()
    small = (reservoirs["scale"] == SCALE_NAMES[4]).to_numpy() & (d > 6.0) & (d < 20.0)
    target = int(np.flatnonzero(small)[np.argmin(d[small])]) if small.any() else int(np.argmin(d))
    reservoirs.loc[target, "status"] = "病险"
    detention = _detention(terrain, county, villages.town_xy, str(rivers["name"].iloc[0]))
    return Hydro(rivers, reservoirs, zones, detention, str(reservoirs["id"].iloc[target]))
