"""Static context on a tiny hand-made region (metric CRS, 1 km villages), and context → features → levels."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import xarray as xr
from rules_fixtures import NOW, hourly_windows

from riskmap.context import ContextParams, compute_context
from riskmap.region import Region
from riskmap.rules import evaluate, features_from_windows, load_rules, packaged_rules_dir

CRS = "EPSG:32650"
CODES = ["431129100201", "431129100202", "431129100203", "431129100204", "431129100205"]


def _g(rows: dict, geoms: list) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(rows, geometry=geoms, crs=CRS)


def tiny_region() -> Region:
    """V1–V4: 1 km squares side by side along x from 0; V5: a point village at (10000, 500)."""
    boxes = [shapely.box(i * 1000, 0, (i + 1) * 1000, 1000) for i in range(4)]
    villages = _g(
        {
            "code": CODES,
            "name": ["一村", "二村", "三村", "四村", "五村"],
            "population": [500, 400, 300, 200, 100],
            "households": [150, 120, 90, 60, 30],
            "township": "石门镇",
        },
        [*boxes, shapely.Point(10000, 500)],
    )
    rivers = _g(
        {"id": ["r1", "r2"], "name": ["甲河", "乙河"]},
        [
            shapely.LineString([(500, -100), (500, 1100)]),  # through V1
            shapely.LineString([(1500, 1300), (1500, -3000)]),
        ],
    )  # digitised downstream, through V2
    reservoirs = _g(
        {
            "id": ["ra", "rb", "rc"],
            "name": ["甲水库", "乙水库", "丙水库"],
            "scale": ["小(1)型", "中型", "大(2)型"],
            "scale_code": [4, 3, 2],
            "status": ["病险", "正常", "正常"],
        },
        [shapely.Point(2500, 500), shapely.Point(1500, 1200), shapely.Point(3500, 3000)],
    )
    zones = _g(
        {"id": ["za", "zc"], "reservoir_id": ["ra", "rc"]},
        [shapely.box(3100, 100, 3900, 900), shapely.box(3000, 0, 4000, 2000)],
    )
    sites = _g(
        {
            "id": ["s1", "s2"],
            "name": ["后山滑坡", "远坡"],
            "kind": ["滑坡", "崩塌"],
            "threatened_people": [120, 40],
            "threatened_households": [30, 10],
        },
        [shapely.Point(2200, 1300), shapely.Point(3500, 2000)],
    )
    mines = _g(
        {"id": ["m1"], "name": ["东矿"], "kind": ["井工"], "workers": [50]},
        [shapely.box(3800, 800, 4200, 1200)],
    )
    flood = _g(
        {"id": ["f2", "f1"], "name": ["下穿1", "涵洞1"], "kind": ["下穿通道", "涵洞"]},
        [shapely.Point(600, 600), shapely.Point(500, 500)],
    )
    detention = _g({"id": ["d1"], "name": ["蓄滞洪区"]}, [shapely.box(0, 0, 500, 1000)])
    shelters = _g(
        {"id": ["sh1", "sh2"], "name": ["二村小学", "五村礼堂"], "capacity": [300, 100]},
        [shapely.Point(1500, 500), shapely.Point(9000, 500)],
    )
    vulnerable = _g({"id": ["v1"], "name": ["五村小学"], "kind": ["学校"]}, [shapely.Point(10100, 500)])
    critical = pd.DataFrame(
        {
            "village_code": [CODES[0]] * 3,
            "duration_h": [1, 1, 1],
            "soil": ["dry", "normal", "wet"],
            "prepare_mm": [40, 35, 30],
            "immediate_mm": [55, 50, 45],
        }
    )
    return Region(
        villages,
        rivers,
        reservoirs,
        zones,
        flood,
        sites,
        mines,
        detention,
        shelters,
        vulnerable,
        pd.DataFrame(),
        critical,
        CRS,
    )


@pytest.fixture(scope="module")
def ctx() -> pd.DataFrame:
    return compute_context(tiny_region())


def test_index_and_order(ctx: pd.DataFrame) -> None:
    assert ctx.index.tolist() == CODES and ctx.index.name == "village_code"
    assert ctx.village_name.tolist() == ["一村", "二村", "三村", "四村", "五村"]


def test_rivers(ctx: pd.DataFrame) -> None:
    assert ctx.touches_river.tolist() == [True, True, False, False, False]
    assert ctx.river_distance_m.round(3).tolist()[:3] == [0.0, 0.0, 500.0]


def test_reservoir_zones_drawn_and_along_river(ctx: pd.DataFrame) -> None:
    r = ctx[
        [
            "in_reservoir_zone",
            "reservoir_id",
            "reservoir_scale",
            "reservoir_unsafe",
            "reservoir_village",
            "reservoir_zone_source",
            "reservoir_ids",
        ]
    ]
    # V2: no drawn zone for rb, so 5 km down its river (buffer 300 m); holder = nearest village V2
    assert r.loc[CODES[1]].tolist() == [True, "rb", 3, False, CODES[1], "river", "rb"]
    # V4: in ra's zone (小(1)型 病险) and rc's zone (大(2)型 正常): the 病险 one governs
    assert r.loc[CODES[3]].tolist() == [True, "ra", 4, True, CODES[2], "zone", "ra;rc"]
    assert not r.loc[[CODES[0], CODES[2], CODES[4]], "in_reservoir_zone"].any()


def test_hazard_sites_mines_points_detention_shelters(ctx: pd.DataFrame) -> None:
    # s1 is 360 m from V2 and 300 m from V3 (within 500 m); s2 is 1 km from V4
    assert ctx.hazard_sites.tolist() == [0, 1, 1, 0, 0]
    assert ctx.threatened_people.tolist() == [0, 120, 120, 0, 0]
    assert ctx.hazard_site_ids.tolist() == ["", "s1", "s1", "", ""]
    assert ctx.mines.tolist() == [0, 0, 0, 1, 0] and ctx.mine_workers.tolist() == [0, 0, 0, 50, 0]
    assert ctx.flood_points.tolist() == [2, 0, 0, 0, 0] and ctx.flood_point_ids.iloc[0] == "f1;f2"
    assert ctx.detention_fraction.round(6).tolist() == [0.5, 0, 0, 0, 0]
    assert ctx.vulnerable_sites.tolist() == [0, 0, 0, 0, 1]  # inside the point village's 500 m disc
    assert ctx.shelter_id.tolist() == ["sh1", "sh1", "sh1", "sh1", "sh2"]
    assert ctx.shelter_distance_m.round(3).tolist() == [500.0, 0.0, 500.0, 1500.0, 500.0]
    assert ctx.has_critical_rainfall.tolist() == [True, False, False, False, False]


def test_distances_come_from_the_rules() -> None:
    rules = load_rules(packaged_rules_dir())
    params = ContextParams.from_ruleset(rules)
    assert params.hazard_site_distance_m == 500 and params.river_distance_m == 100
    near = compute_context(tiny_region(), ContextParams(hazard_site_distance_m=320, river_distance_m=600))
    assert near.hazard_sites.tolist() == [0, 0, 1, 0, 0]
    assert near.touches_river.tolist() == [True, True, True, False, False]


def test_context_to_levels() -> None:
    rules = load_rules(packaged_rules_dir())
    region = tiny_region()
    ctx = compute_context(region, ContextParams.from_ruleset(rules))
    hourly = np.zeros((5, 96))
    hourly[2, 24 + 2 : 24 + 5] = 20.0  # 60 mm in 3 h over V3, which holds reservoir ra
    durations = sorted({w for _, w, _ in rules.rain_keys()})
    horizons = sorted({h for _, _, h in rules.rain_keys()})
    eff = xr.DataArray(np.zeros(5), coords={"village": CODES}, dims="village")
    f = features_from_windows(
        rules,
        ctx,
        now=NOW,
        windows=hourly_windows(hourly, durations, horizons),
        effective=eff,
        critical_rainfall=region.critical_rainfall,
    )
    a = evaluate(rules, f, ctx, now=NOW)
    v = a.villages.set_index("village_code")
    # V4 lies downstream of 病险 small reservoir ra: 60 mm/3 h over ra → orange, raised to red (lead 5 h)
    assert v.loc[CODES[3], "hazards"] == "reservoir:4"
    assert v.loc[CODES[2], "hazards"] == "rainstorm:3"
    assert v.loc[CODES[0], "level"] == 0
