"""The county boundary, the county town, townships and ~2,000 villages (km frame).

Villages are Voronoi cells of sampled committee locations, clipped to the
county boundary; denser in valleys, thin on mountains.  The county town is a
cluster of residents' committees (社区居委会) split into two 街道; the rest is
grouped into rural 镇 and (in the mountains) 乡 by balanced k-means.  Codes follow
统计用区划代码: county (6) + township (3: 街道 001-099, 镇 100-199, 乡 200-399) +
village (3: 居委会 001-199, 村委会 200-399).

Examples
--------
>>> import numpy as np
>>> county = county_boundary(np.random.default_rng(0))
>>> county.is_valid, 1800 < county.area < 2600  # km²
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry import Point, Polygon

from riskmap.demo.names import unique_names
from riskmap.demo.terrain import HEIGHT_KM, WIDTH_KM, Terrain

COUNTY_CODE = "469900"
"""Fictitious 6-digit county code (GB/T 2260 has no 469900); matches the default ``office.area_code``."""
COUNTY_NAME = "青山县"
N_RURAL = 1960
N_TOWN = 40
N_TOWNSHIPS = 16
N_XIANG = 4
TOWN_RADIUS_KM = 2.6
N_POINT_VILLAGES = 6
MAX_PER_TOWNSHIP = 185


@dataclass(frozen=True, eq=False)
class Villages:
    """Villages and the administrative frame they sit in (km coordinates)."""

    county: Polygon
    town_xy: tuple[float, float]
    frame: gpd.GeoDataFrame
    """Columns code, name, population, households, township, county, geometry (km, no CRS)."""
    seats: np.ndarray
    """Committee location (km) of every village, shape (n, 2), in frame order."""
    townships: dict[str, str]
    """9-digit township code → township name."""


def county_boundary(rng: np.random.Generator) -> Polygon:
    """An irregular county outline about 60 km × 50 km centred in the terrain grid."""
    theta = np.linspace(0.0, 2 * np.pi, 240, endpoint=False)
    ph = rng.uniform(0, 2 * np.pi, 3)
    f = (
        1.0
        + 0.07 * np.sin(3 * theta + ph[0])
        + 0.04 * np.sin(5 * theta + ph[1])
        + 0.02 * np.sin(9 * theta + ph[2])
    )
    f = np.minimum(f, 1.1)
    cx, cy = WIDTH_KM / 2, HEIGHT_KM / 2
    return Polygon(np.column_stack([cx + 29.0 * f * np.cos(theta), cy + 24.0 * f * np.sin(theta)]))


def _town_centre(terrain: Terrain, county: Polygon) -> tuple[float, float]:
    main = terrain.rivers[0].cells
    x, y = terrain.cell_xy(main)
    inner = county.buffer(-9.0)
    ok = shapely.contains_xy(inner, x, y)
    i = np.flatnonzero(ok)[np.argmin(np.abs(x[ok] - 40.0))]
    return float(x[i]), float(y[i])


def _sample_rural(
    rng: np.random.Generator, terrain: Terrain, county: Polygon, town: tuple[float, float], n: int
) -> np.ndarray:
    out: list[np.ndarray] = []
    got = 0
    minx, miny, maxx, maxy = county.bounds
    while got < n:
        x = rng.uniform(minx, maxx, 4 * n)
        y = rng.uniform(miny, maxy, 4 * n)
        z = terrain.sample(terrain.dem, x, y)
        s = terrain.sample(terrain.slope_deg, x, y)
        w = np.exp(-(z - 100.0) / 320.0) * np.where(s > 30.0, 0.2, 1.0)
        keep = (rng.random(x.size) < w) & shapely.contains_xy(county, x, y)
        keep &= np.hypot(x - town[0], y - town[1]) > TOWN_RADIUS_KM + 0.4
        pts = np.column_stack([x[keep], y[keep]])
        out.append(pts)
        got += len(pts)
    return np.concatenate(out)[:n]


def _sample_town(rng: np.random.Generator, town: tuple[float, float], n: int) -> np.ndarray:
    r = TOWN_RADIUS_KM * np.sqrt(rng.random(n))
    a = rng.uniform(0, 2 * np.pi, n)
    return np.column_stack([town[0] + r * np.cos(a), town[1] + r * np.sin(a)])


def _voronoi(points: np.ndarray, county: Polygon) -> np.ndarray:
    mp = shapely.multipoints(points)
    cells = shapely.get_parts(shapely.voronoi_polygons(mp, extend_to=county, ordered=True))
    clipped = shapely.intersection(cells, county)
    out = []
    for g in clipped:
        if g.geom_type not in ("Polygon", "MultiPolygon"):
            parts = [p for p in shapely.get_parts(g) if p.geom_type == "Polygon"]
            g = shapely.multipolygons(parts) if len(parts) > 1 else parts[0]
        out.append(g)
    return np.array(out, dtype=object)


def _townships(rng: np.random.Generator, pts: np.ndarray, k: int) -> np.ndarray:
    """Balanced k-means (a power diagram): cluster label per point."""
    centres = pts[rng.choice(len(pts), k, replace=False)]
    for _ in range(25):
        d2 = ((pts[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
        lab = d2.argmin(1)
        centres = np.array([pts[lab == j].mean(0) if np.any(lab == j) else centres[j] for j in range(k)])
    w = np.zeros(k)
    d2 = ((pts[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    for _ in range(500):
        lab = (d2 + w).argmin(1)
        counts = np.bincount(lab, minlength=k)
        if counts.max() <= MAX_PER_TOWNSHIP:
            break
        w[counts > MAX_PER_TOWNSHIP] += 2.0
    return np.asarray(lab)


def make_villages(rng: np.random.Generator, terrain: Terrain) -> Villages:
    """Generate the county, its townships and villages."""
    county = county_boundary(rng)
    town = _town_centre(terrain, county)
    rural = _sample_rural(rng, terrain, county, town, N_RURAL)
    urban = _sample_town(rng, town, N_TOWN)
    lab = _townships(rng, rural, N_TOWNSHIPS)
    elev = terrain.sample(terrain.dem, rural[:, 0], rural[:, 1])
    mean_elev = np.array([elev[lab == j].mean() for j in range(N_TOWNSHIPS)])
    centres = np.array([rural[lab == j].mean(0) for j in range(N_TOWNSHIPS)])
    xiang = set(np.argsort(-mean_elev, kind="stable")[:N_XIANG].tolist())
    tnames = unique_names(rng, N_TOWNSHIPS + 2, "")
    order = sorted(range(N_TOWNSHIPS), key=lambda j: (j in xiang, -round(centres[j, 1], 3), centres[j, 0]))
    groups: list[tuple[str, str, np.ndarray, np.ndarray]] = []
    east = urban[:, 0] >= town[0]
    groups.append(("001", "城西街道", urban[~east], np.array(town)))
    groups.append(("002", "城东街道", urban[east], np.array(town)))
    n_zhen = n_xiang = 0
    for j in order:
        if j in xiang:
            n_xiang += 1
            groups.append((f"{200 + n_xiang}", tnames[j] + "乡", rural[lab == j], centres[j]))
        else:
            n_zhen += 1
            groups.append((f"{100 + n_zhen}", tnames[j] + "镇", rural[lab == j], centres[j]))
    rows: list[dict[str, object]] = []
    seats: list[np.ndarray] = []
    townships: dict[str, str] = {}
    for tcode, tname, pts, centre in groups:
        townships[COUNTY_CODE + tcode] = tname
        pts = pts[np.lexsort((pts[:, 0], np.hypot(*(pts - centre).T)))]
        n_res = len(pts) if tcode < "100" else (1 if tcode >= "200" else 2)
        res_names = unique_names(rng, n_res, "社区")
        vil_names = unique_names(rng, len(pts) - n_res, "村")
        for i, p in enumerate(pts):
            urban_v = i < n_res
            vcode = f"{i + 1:03d}" if urban_v else f"{200 + i - n_res:03d}"
            pop = rng.lognormal(np.log(4200.0 if urban_v else 1350.0), 0.4)
            pop = int(np.clip(round(pop), 300, 12000))
            hh = int(round(pop / rng.uniform(3.0, 3.4)))
            rows.append(
                {
                    "code": COUNTY_CODE + tcode + vcode,
                    "name": res_names[i] if urban_v else vil_names[i - n_res],
                    "population": pop,
                    "households": hh,
                    "township": tname,
                    "county": COUNTY_NAME,
                }
            )
            seats.append(p)
    seat_arr = np.array(seats)
    geoms = _voronoi(seat_arr, county)
    rural_idx = np.flatnonzero([r["code"][6:9] >= "100" for r in rows])  # type: ignore[index]
    for i in rng.choice(rural_idx, N_POINT_VILLAGES, replace=False):
        geoms[i] = Point(seat_arr[i])
    frame = gpd.GeoDataFrame(rows, geometry=list(geoms))
    frame["population"] = frame["population"].astype("int64")
    frame["households"] = frame["households"].astype("int64")
    return Villages(county, town, frame, seat_arr, townships)
