"""Point features of the demo county: hazard sites, mines, flood points, shelters, vulnerable sites.

All in the km frame.  Hazard sites sit on steep slopes (debris flows in gullies,
rock falls on the steepest cells), mines around a coal-mining subsidence area
(采煤沉陷区), flood points in the county town, shelters and vulnerable sites at
village committee locations.

Examples
--------
>>> import numpy as np
>>> from riskmap.demo.terrain import make_terrain
>>> from riskmap.demo.villages import make_villages
>>> rng = np.random.default_rng(3)
>>> terrain = make_terrain(rng)
>>> feats = make_features(rng, terrain, make_villages(rng, terrain))
>>> sorted(feats.mines["kind"].unique())
['井工', '尾矿库', '采煤沉陷区', '露天']
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry import Point, Polygon

from riskmap.demo.names import unique_names
from riskmap.demo.terrain import Terrain
from riskmap.demo.villages import TOWN_RADIUS_KM, Villages

N_HAZARD_SITES = 160
N_DEBRIS_FLOWS = 24


@dataclass(frozen=True, eq=False)
class Features:
    """Point (and one polygon) feature layers as km-frame GeoDataFrames."""

    hazard_sites: gpd.GeoDataFrame
    mines: gpd.GeoDataFrame
    flood_points: gpd.GeoDataFrame
    shelters: gpd.GeoDataFrame
    vulnerable_sites: gpd.GeoDataFrame
    subsidence_xy: tuple[float, float]


def _frame(prefix: str, rows: list[dict[str, object]], width: int = 3) -> gpd.GeoDataFrame:
    frame = gpd.GeoDataFrame(rows, geometry="geometry")
    frame.insert(0, "id", [f"{prefix}-{i + 1:0{width}d}" for i in range(len(frame))])
    return frame


def _village_names(villages: Villages, x: np.ndarray, y: np.ndarray) -> list[str]:
    d = np.hypot(villages.seats[:, 0][None, :] - x[:, None], villages.seats[:, 1][None, :] - y[:, None])
    return [str(villages.frame["name"].iloc[i]) for i in d.argmin(1)]


def _near_seat(rng: np.random.Generator, villages: Villages, idx: np.ndarray, sd: float = 0.15) -> np.ndarray:
    xy = villages.seats[idx] + rng.normal(0.0, sd, (len(idx), 2))
    inside = shapely.contains_xy(villages.county, xy[:, 0], xy[:, 1])
    return np.where(inside[:, None], xy, villages.seats[idx])


def _hazard_sites(
    rng: np.random.Generator, terrain: Terrain, villages: Villages, subsidence: tuple[float, float]
) -> gpd.GeoDataFrame:
    x, y = np.meshgrid(terrain.xc, terrain.yc)
    slope, acc = terrain.slope_deg.ravel(), terrain.acc
    ok = (slope >= 22.0) & shapely.contains_xy(villages.county.buffer(-0.5), x.ravel(), y.ravel())
    cand = np.flatnonzero(ok)
    w = (slope[cand] - 20.0) ** 1.5
    cells = rng.choice(cand, N_HAZARD_SITES - N_DEBRIS_FLOWS, replace=False, p=w / w.sum())
    kinds = np.where(slope[cells] >= 33.0, "崩塌", "滑坡")
    gully = np.flatnonzero(
        ok.reshape(-1) & (acc >= 20) & (acc <= 1000)
        | (
            (slope >= 15.0)
            & (acc >= 40)
            & (acc <= 1000)
            & shapely.contains_xy(villages.county, x.ravel(), y.ravel())
        )
    )
    debris = rng.choice(gully, N_DEBRIS_FLOWS, replace=False)
    cells = np.concatenate([cells, debris])
    kinds = np.concatenate([kinds, np.full(N_DEBRIS_FLOWS, "泥石流")])
    cx, cy = terrain.cell_xy(cells)
    # ground collapse (地面塌陷) over the old workings around the subsidence area
    a = rng.uniform(0, 2 * np.pi, 8)
    r = rng.uniform(1.8, 4.0, 8)
    cx = np.concatenate([cx, subsidence[0] + r * np.cos(a)])
    cy = np.concatenate([cy, subsidence[1] + r * np.sin(a)])
    kinds = np.concatenate([kinds, np.full(8, "地面塌陷")])
    people = np.clip(np.round(rng.lognormal(np.log(45.0), 0.8, len(cx))), 5, 600).astype("int64")
    households = np.maximum(1, np.round(people / rng.uniform(3.0, 3.6, len(cx)))).astype("int64")
    vnames = _village_names(villages, cx, cy)
    count: dict[str, int] = {}
    rows = []
    for i in range(len(cx)):
        key = vnames[i] + str(kinds[i])
        count[key] = count.get(key, 0) + 1
        rows.append(
            {
                "name": f"{vnames[i]}{count[key]}号{kinds[i]}",
                "kind": str(kinds[i]),
                "threatened_people": people[i],
                "threatened_households": households[i],
                "geometry": Point(cx[i], cy[i]),
            }
        )
    return _frame("hs", rows)


def _subsidence_site(rng: np.random.Generator, terrain: Terrain, villages: Villages) -> tuple[float, float]:
    tx, ty = villages.town_xy
    for _ in range(200):
        a = rng.uniform(0.3 * np.pi, 1.2 * np.pi)
        r = rng.uniform(7.0, 11.0)
        x, y = tx + r * np.cos(a), ty + r * np.sin(a)
        if (
            shapely.contains_xy(villages.county.buffer(-3.0), x, y)
            and terrain.sample(terrain.slope_deg, np.array([x]), np.array([y]))[0] < 15.0
        ):
            return float(x), float(y)
    return tx - 8.0, ty + 3.0


def _mines(
    rng: np.random.Generator, terrain: Terrain, villages: Villages, subsidence: tuple[float, float]
) -> gpd.GeoDataFrame:
    sx, sy = subsidence
    t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    rad = 1.0 + 0.12 * np.sin(3 * t + rng.uniform(0, 6)) + 0.06 * np.sin(5 * t + rng.uniform(0, 6))
    rot = rng.uniform(0, np.pi)
    ex, ey = 1.4 * rad * np.cos(t), 0.9 * rad * np.sin(t)
    poly = Polygon(
        np.column_stack([sx + ex * np.cos(rot) - ey * np.sin(rot), sy + ex * np.sin(rot) + ey * np.cos(rot)])
    )
    names = unique_names(rng, 12, "")
    rows: list[dict[str, object]] = [
        {"name": names[0] + "采煤沉陷区", "kind": "采煤沉陷区", "workers": 0, "geometry": poly}
    ]
    a = rng.uniform(0, 2 * np.pi, 4)
    for k in range(4):
        p = Point(sx + 3.0 * np.cos(a[k]), sy + 3.0 * np.sin(a[k]))
        rows.append(
            {
                "name": names[1 + k] + "煤矿",
                "kind": "井工",
                "workers": int(rng.integers(80, 600)),
                "geometry": p,
            }
        )
    x, y = np.meshgrid(terrain.xc, terrain.yc)
    s = terrain.slope_deg.ravel()
    inner = shapely.contains_xy(villages.county.buffer(-2.0), x.ravel(), y.ravel())
    hills = np.flatnonzero(inner & (s > 12.0) & (s < 25.0))
    gullies = np.flatnonzero(inner & (terrain.acc >= 30) & (terrain.acc <= 200) & (s > 8.0))
    for k, cell in enumerate(rng.choice(hills, 4, replace=False)):
        px, py = terrain.cell_xy(np.array([cell]))
        rows.append(
            {
                "name": names[5 + k] + "石场",
                "kind": "露天",
                "workers": int(rng.integers(20, 150)),
                "geometry": Point(px[0], py[0]),
            }
        )
    for k, cell in enumerate(rng.choice(gullies, 3, replace=False)):
        px, py = terrain.cell_xy(np.array([cell]))
        rows.append(
            {
                "name": names[9 + k] + "尾矿库",
                "kind": "尾矿库",
                "workers": int(rng.integers(3, 15)),
                "geometry": Point(px[0], py[0]),
            }
        )
    frame = _frame("mine", rows, 2)
    frame["workers"] = frame["workers"].astype("int64")
    return frame


def _flood_points(rng: np.random.Generator, villages: Villages) -> gpd.GeoDataFrame:
    tx, ty = villages.town_xy
    kinds = ["易涝点"] * 10 + ["涵洞"] * 4 + ["下穿通道"] * 4 + ["地下空间"] * 3
    tails = {"易涝点": "路易涝点", "涵洞": "涵洞", "下穿通道": "路下穿通道", "地下空间": "广场地下车库"}
    names = unique_names(rng, len(kinds), "")
    r = TOWN_RADIUS_KM * 0.9 * np.sqrt(rng.random(len(kinds)))
    a = rng.uniform(0, 2 * np.pi, len(kinds))
    rows = [
        {
            "name": names[i] + tails[k],
            "kind": k,
            "geometry": Point(tx + r[i] * np.cos(a[i]), ty + r[i] * np.sin(a[i])),
        }
        for i, k in enumerate(kinds)
    ]
    return _frame("fp", rows)


def _shelters(rng: np.random.Generator, terrain: Terrain, villages: Villages) -> gpd.GeoDataFrame:
    f = villages.frame
    slope = terrain.sample(terrain.slope_deg, villages.seats[:, 0], villages.seats[:, 1])
    rows = []
    for tname in sorted(f["township"].unique()):
        idx = np.flatnonzero((f["township"] == tname).to_numpy())
        urban = f["code"].iloc[idx[0]][6] == "0"
        n = 3 if urban else int(rng.integers(4, 9))
        w = 1.0 / (1.0 + slope[idx])
        pick = np.sort(rng.choice(idx, min(n, len(idx)), replace=False, p=w / w.sum()))
        xy = _near_seat(rng, villages, pick, 0.1)
        for j, i in enumerate(pick):
            cap = int(rng.integers(800, 3000)) if urban else int(rng.integers(100, 1500))
            label = "学校避险安置点" if rng.random() < 0.4 else "村委会避险点"
            rows.append({"name": str(f["name"].iloc[i]) + label, "capacity": cap, "geometry": Point(xy[j])})
    frame = _frame("sh", rows)
    frame["capacity"] = frame["capacity"].astype("int64")
    return frame


def _vulnerable(rng: np.random.Generator, terrain: Terrain, villages: Villages) -> gpd.GeoDataFrame:
    f = villages.frame
    n = len(f)
    urban = (f["code"].str[6] == "0").to_numpy()
    rows: list[dict[str, object]] = []

    def add(idx: np.ndarray, kind: str, tail: str) -> None:
        xy = _near_seat(rng, villages, idx, 0.2)
        for j, i in enumerate(idx):
            rows.append({"name": str(f["name"].iloc[i]) + tail, "kind": kind, "geometry": Point(xy[j])})

    add(np.sort(rng.choice(np.flatnonzero(urban), 8, replace=False)), "学校", "学校")
    add(np.sort(rng.choice(np.flatnonzero(~urban), 60, replace=False)), "学校", "小学")
    add(np.sort(rng.choice(np.flatnonzero(urban), 3, replace=False)), "医院", "医院")
    seats = [np.flatnonzero((f["township"] == t).to_numpy())[0] for t in sorted(f["township"].unique())]
    add(np.array([i for i in seats if not urban[i]]), "医院", "卫生院")
    add(np.array([i for i in seats if not urban[i]]), "养老院", "敬老院")
    elev = terrain.sample(terrain.dem, villages.seats[:, 0], villages.seats[:, 1])
    add(np.sort(np.argsort(-elev, kind="stable")[rng.choice(60, 5, replace=False)]), "景区", "风景区")
    add(np.sort(rng.choice(n, 12, replace=False)), "工地", "在建工地")
    add(np.sort(rng.choice(np.flatnonzero(~urban), 60, replace=False)), "危房", "危房户")
    return _frame("vs", rows)


def make_features(rng: np.random.Generator, terrain: Terrain, villages: Villages) -> Features:
    """Generate hazard sites, mines, flood points, shelters and vulnerable sites."""
    subsidence = _subsidence_site(rng, terrain, villages)
    return Features(
        hazard_sites=_hazard_sites(rng, terrain, villages, subsidence),
        mines=_mines(rng, terrain, villages, subsidence),
        flood_points=_flood_points(rng, villages),
        shelters=_shelters(rng, terrain, villages),
        vulnerable_sites=_vulnerable(rng, terrain, villages),
        subsidence_xy=subsidence,
    )
