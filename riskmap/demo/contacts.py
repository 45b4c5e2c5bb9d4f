"""Contacts for every role, and the critical-rainfall table, of the demo county.

Phone numbers are drawn from one fictitious range, :data:`PHONE_PREFIX` followed by
six digits (19900000000-19900999999), assigned in row order.  They are
syntactically valid mainland mobiles (1[3-9] + 9 digits) but belong to nobody
known to riskmap; never send real SMS to them.

Examples
--------
>>> phone(7)
'19900000007'
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from riskmap.demo.hydro import Hydro
from riskmap.demo.names import person_names
from riskmap.demo.terrain import km_to_lonlat
from riskmap.demo.villages import COUNTY_CODE, Villages

PHONE_PREFIX = "19900"
"""The documented fictitious phone range: ``19900`` + 6 digits."""
RIVERSIDE_KM = 0.3
"""A village within this distance of a river is riverside (gets critical rainfall and households)."""
HAZARD_VILLAGE_KM = 1.0
UNSURVEYED_SHARE = 0.1
"""Share of riverside villages without their own critical-rainfall rows."""
LI_QING_2017 = {1: (40.0, 35.0, 30.0), 3: (65.0, 60.0, 50.0), 6: (95.0, 90.0, 80.0)}
"""Duration (h) → warning rainfall (mm) for dry, normal, wet soil (李青 et al. 2017, village 双河1组)."""
CONTACT_COLUMNS = (
    "name",
    "phone",
    "role",
    "admin_code",
    "feature_layer",
    "feature_id",
    "household_id",
    "lon",
    "lat",
)


def phone(k: int) -> str:
    """The ``k``-th fictitious mobile number."""
    return f"{PHONE_PREFIX}{k:06d}"


def riverside_mask(villages: Villages, hydro: Hydro) -> np.ndarray:
    """Which villages lie within :data:`RIVERSIDE_KM` of a river."""
    near = shapely.unary_union(hydro.rivers.geometry.to_numpy()).buffer(RIVERSIDE_KM)
    return np.asarray(shapely.intersects(villages.frame.geometry.to_numpy(), near))


def hazard_mask(villages: Villages, sites: gpd.GeoDataFrame) -> np.ndarray:
    """Which villages lie within :data:`HAZARD_VILLAGE_KM` of a hazard site."""
    near = shapely.unary_union(sites.geometry.to_numpy()).buffer(HAZARD_VILLAGE_KM)
    return np.asarray(shapely.intersects(villages.frame.geometry.to_numpy(), near))


def _points_in(rng: np.random.Generator, geom: shapely.Geometry, seat: np.ndarray, n: int) -> np.ndarray:
    if geom.geom_type == "Point":
        return seat + rng.normal(0.0, 0.15, (n, 2))
    minx, miny, maxx, maxy = geom.bounds
    out = np.empty((0, 2))
    for _ in range(50):
        xy = np.column_stack([rng.uniform(minx, maxx, 4 * n), rng.uniform(miny, maxy, 4 * n)])
        out = np.vstack([out, xy[shapely.contains_xy(geom, xy[:, 0], xy[:, 1])]])
        if len(out) >= n:
            return out[:n]
    return np.vstack([out, np.repeat(seat[None, :], n, axis=0)])[:n]


def make_contacts(
    rng: np.random.Generator,
    villages: Villages,
    hydro: Hydro,
    layers: dict[str, gpd.GeoDataFrame],
    riverside: np.ndarray,
    hazard: np.ndarray,
) -> pd.DataFrame:
    """One row per contact, every role, linked by admin code or feature id."""
    rows: list[dict[str, object]] = []

    def add(
        role: str,
        admin: str | None = None,
        layer: str | None = None,
        fid: str | None = None,
        hh: str | None = None,
        lon: float = np.nan,
        lat: float = np.nan,
    ) -> None:
        rows.append(
            {
                "role": role,
                "admin_code": admin,
                "feature_layer": layer,
                "feature_id": fid,
                "household_id": hh,
                "lon": lon,
                "lat": lat,
            }
        )

    for _ in range(4):
        add("county_duty", COUNTY_CODE)
    for tcode in villages.townships:
        add("township_duty", tcode)
        add("township_duty", tcode)
    frame = villages.frame
    codes = frame["code"].tolist()
    n_grid = rng.integers(1, 4, len(frame))
    for i, code in enumerate(codes):
        add("village_head", code)
        for _ in range(int(n_grid[i])):
            add("grid_member", code)
    for i in np.flatnonzero(riverside | hazard).tolist():
        n = int(rng.integers(4, 9))
        xy = _points_in(rng, frame.geometry.iloc[i], villages.seats[i], n)
        lon, lat = km_to_lonlat(xy[:, 0], xy[:, 1])
        for k in range(n):
            add("household", codes[i], hh=f"{codes[i]}H{k + 1:03d}", lon=float(lon[k]), lat=float(lat[k]))
    keepers = {
        "rivers": 1,
        "reservoirs": 1,
        "hazard_sites": 1,
        "mines": 1,
        "flood_points": 1,
        "detention_areas": 2,
    }
    for name, per in keepers.items():
        layer = layers[name]
        for j, fid in enumerate(layer["id"].tolist()):
            n = per
            if name == "rivers" and int(layer["grade"].iloc[j]) > 2:
                continue
            if name == "reservoirs" and str(layer["scale"].iloc[j]) in ("大(1)型", "大(2)型", "中型"):
                n = 2
            if name == "mines" and str(layer["kind"].iloc[j]) == "井工":
                n = 2
            for _ in range(n):
                add("keeper", layer=name, fid=fid)
    out = pd.DataFrame(rows)
    out.insert(0, "phone", [phone(k + 1) for k in range(len(out))])
    out.insert(0, "name", person_names(rng, len(out)))
    out = out[list(CONTACT_COLUMNS)]
    for col in ("admin_code", "feature_layer", "feature_id", "household_id"):
        out[col] = out[col].astype(object)
    return out.astype({"lon": "float64", "lat": "float64"})


def make_critical_rainfall(rng: np.random.Generator, codes: list[str]) -> pd.DataFrame:
    """Nine rows (1/3/6 h × dry/normal/wet) per surveyed riverside village, around 李青 (2017).

    About :data:`UNSURVEYED_SHARE` of the villages get no rows (no survey yet), so the rules'
    county default table has villages to serve.
    """
    surveyed = rng.random(len(codes)) >= UNSURVEYED_SHARE
    codes = [c for c, keep in zip(codes, surveyed, strict=True) if keep]
    rows = []
    factor = rng.uniform(0.85, 1.3, len(codes))
    ratio = rng.uniform(0.72, 0.82, len(codes))
    for i, code in enumerate(codes):
        for dur, values in LI_QING_2017.items():
            for soil, base in zip(("dry", "normal", "wet"), values, strict=True):
                immediate = float(round(base * factor[i]))
                rows.append(
                    {
                        "village_code": code,
                        "duration_h": dur,
                        "soil": soil,
                        "prepare_mm": float(round(immediate * ratio[i])),
                        "immediate_mm": immediate,
                    }
                )
    out = pd.DataFrame(rows, columns=["village_code", "duration_h", "soil", "prepare_mm", "immediate_mm"])
    return out.astype({"duration_h": "int64", "prepare_mm": "float64", "immediate_mm": "float64"})
