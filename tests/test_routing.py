"""Routing of warnings to contacts (riskmap.routing, riskmap.routing_rules, riskmap.messages).

The tiny region (metres, UTM 50N): three 2 km square villages, a river along y = 100,
a landslide site, a mine, a reservoir with its downstream zone, two shelters.
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import yaml
from pyproj import CRS, Transformer
from shapely.geometry import LineString, Point, box

from riskmap.errors import DataWarning, RuleError
from riskmap.lifecycle import Change
from riskmap.messages import render
from riskmap.region import Region, _empty
from riskmap.routing import Alert, nearest_shelters, route
from riskmap.routing_rules import load_routing, routing_from_dict
from riskmap.schema import LAYERS
from riskmap.templates import load_templates

ROOT = Path(__file__).resolve().parents[1]
CRS_M = CRS.from_epsg(32650)
TO_LL = Transformer.from_crs(CRS_M, "EPSG:4326", always_xy=True)
V1, V2, V3 = "469900100201", "469900100202", "469900200201"
T0 = datetime(2026, 7, 22, 12, tzinfo=UTC)
SIGN = {"signature": "青山县防指", "issuer": "青山县防汛抗旱指挥部办公室", "issued_at": T0}


def ll(x: float, y: float) -> tuple[float, float]:
    return TO_LL.transform(x, y)


def gdf(rows: list[dict], geoms: list) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(pd.DataFrame(rows), geometry=geoms, crs=CRS_M)


def contact(name, phone, role, admin="", layer="", fid="", xy=None, drill=0, hh=""):
    lon, lat = ll(*xy) if xy else (float("nan"), float("nan"))
    return {"name": name, "phone": phone, "role": role, "admin_code": admin, "feature_layer": layer,
            "feature_id": fid, "household_id": hh, "lon": lon, "lat": lat, "drill": drill}


CONTACTS = [
    contact("县值班", "13900000001", "county_duty", "469900"),
    contact("青山镇值班", "13900000002", "乡镇值班", "469900100"),
    contact("白云乡值班", "13900000003", "township_duty", "469900200"),
    contact("上河村主任", "13800000001", "village_head", V1, drill=1),
    contact("上河网格员", "13800000002", "grid_member", V1),
    contact("河边户", "13800000101", "household", V1, xy=(500, 50), hh="H1"),
    contact("山脚户", "13800000102", "household", V1, xy=(1000, 1900), hh="H2"),
    contact("无坐标户", "13800000103", "household", V1, hh="H3"),
    contact("滑坡户", "13800000104", "household", V1, layer="hazard_sites", fid="HZ1", hh="H4"),
    contact("下河村主任", "13800000011", "村责任人", V2),
    contact("下河网格员(兼上河村主任)", "13800000001", "grid_member", V2),
    contact("下河户", "13800000111", "household", V2, xy=(3000, 150), hh="H5"),
    contact("云村主任", "13800000021", "village_head", V3),
    contact("煤矿矿长", "13700000001", "keeper", layer="mines", fid="M1"),
    contact("滑坡监测员", "13700000002", "keeper", layer="hazard_sites", fid="HZ1"),
    contact("水库责任人", "13700000003", "keeper", layer="reservoirs", fid="RS1"),
    contact("错号", "12345", "village_head", V1),
    contact("座机", "0571-87654321", "grid_member", V1),
]


def make_region(contacts: list[dict] | None = None) -> Region:
    layers = {name: _empty(name, CRS_M) for name in LAYERS}
    def village(code, name, town):
        return {"code": code, "name": name, "population": 500, "households": 120, "township": town,
                "county": "青山县"}

    layers["villages"] = gdf(
        [village(V1, "上河村", "青山镇"), village(V2, "下河村", "青山镇"), village(V3, "云村", "白云乡")],
        [box(0, 0, 2000, 2000), box(2000, 0, 4000, 2000), box(0, 2000, 2000, 4000)])
    layers["rivers"] = gdf([{"id": "R1", "name": "青河", "grade": 2}], [LineString([(0, 100), (4000, 100)])])
    layers["hazard_sites"] = gdf([{"id": "HZ1", "name": "后山滑坡", "kind": "滑坡", "threatened_people": 20,
                                   "threatened_households": 5}], [Point(1500, 1500)])
    layers["mines"] = gdf([{"id": "M1", "name": "青山煤矿", "kind": "井工", "workers": 80}],
                          [Point(3000, 1000)])
    layers["reservoirs"] = gdf([{"id": "RS1", "name": "青山水库", "scale": "小(1)型"}], [Point(1000, 3500)])
    layers["reservoir_zones"] = gdf([{"id": "Z1", "reservoir_id": "RS1"}], [box(0, 0, 1000, 1000)])
    layers["shelters"] = gdf([{"id": "S1", "name": "上河小学", "capacity": 300},
                              {"id": "S2", "name": "下河村委会", "capacity": 100}],
                             [Point(500, 1800), Point(3500, 1800)])
    layers["contacts"] = pd.DataFrame(contacts if contacts is not None else CONTACTS)
    return Region(**layers, crs=CRS_M, source="<test>")


@pytest.fixture(scope="module")
def region() -> Region:
    return make_region()


@pytest.fixture(scope="module")
def routing():
    return load_routing()


def run(region, routing, alerts, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return route(alerts, region, routing, **kw)


def by_phone(recipients):
    return {r.phone: r for r in recipients}


def people(recipients, kind="warning"):
    return {r.phone for r in recipients if r.kind == kind}


def test_blue_goes_to_village_heads_and_duty_summaries(region, routing):
    rs = run(region, routing, [Alert(V1, "rainstorm", 1)])
    assert people(rs) == {"13800000001"}
    assert people(rs, "summary") == {"13900000001", "13900000002"}  # county + 青山镇, not 白云乡


def test_yellow_adds_grid_members(region, routing):
    assert people(run(region, routing, [Alert(V1, "rainstorm", 2)])) == {"13800000001", "13800000002"}


def test_orange_adds_households_in_the_river_zone(region, routing):
    rs = run(region, routing, [Alert(V1, "torrent", 3)])
    # H1 within 300 m of the river; H2 located far from it; H3 unlocated → village fallback;
    # H4 linked to a landslide site, not to the river → out
    assert people(rs) == {"13800000001", "13800000002", "13800000101", "13800000103"}


def test_orange_zone_without_fallback(region):
    data = yaml.safe_load((ROOT / "riskmap/rules_default/routing.yaml").read_text(encoding="utf-8"))
    data["hazard_zones"]["fallback"] = "none"
    rs = run(region, routing_from_dict(data), [Alert(V1, "torrent", 3)])
    assert people(rs) == {"13800000001", "13800000002", "13800000101"}


def test_orange_geohazard_zone_by_link_and_keeper(region, routing):
    rs = run(region, routing, [Alert(V1, "geohazard", 3)])
    assert people(rs) == {"13800000001", "13800000002", "13800000104", "13800000103", "13700000002"}
    keeper = by_phone(rs)["13700000002"]
    assert keeper.place == "后山滑坡" and keeper.roles == ("keeper",)


def test_red_reaches_every_household(region, routing):
    rs = run(region, routing, [Alert(V1, "rainstorm", 4)])
    assert {"13800000101", "13800000102", "13800000103", "13800000104"} <= people(rs)
    assert "13800000111" not in people(rs)  # a household of another village


def test_mine_goes_to_its_keeper_with_stop_production(region, routing):
    rs = run(region, routing, [Alert(V2, "mine", 3, window_start=T0, window_end=T0 + timedelta(hours=3),
                                     rain_mm=66)])
    keeper = by_phone(rs)["13700000001"]
    assert keeper.place == "青山煤矿"
    text = render(keeper, load_templates(), **SIGN)
    assert "青山煤矿" in text and "停产撤人" in text and "矿山暴雨灾害风险橙色预警" in text


def test_reservoir_keeper_through_downstream_zone(region, routing):
    rs = run(region, routing, [Alert(V1, "reservoir", 2)])
    assert by_phone(rs)["13700000003"].place == "青山水库"
    assert "13700000003" not in people(run(region, routing, [Alert(V2, "reservoir", 4)]))


def test_one_sms_per_phone_merges_hazards_and_villages(region, routing):
    alerts = [Alert(V1, "torrent", 4, change_key="k1"), Alert(V1, "geohazard", 3, change_key="k2"),
              Alert(V2, "rainstorm", 2, change_key="k3")]
    rs = run(region, routing, alerts)
    assert len([r for r in rs if r.phone == "13800000001"]) == 1
    head = by_phone(rs)["13800000001"]  # 上河村主任 and 下河网格员: one message
    assert set(head.village_codes) == {V1, V2}
    assert head.change_keys == ("k1", "k2", "k3")
    assert [(a.hazard, a.level) for a in head.items()] == [("torrent", 4), ("geohazard", 3), ("rainstorm", 2)]
    assert head.place == "上河村" and head.shelter == "上河小学"
    text = render(head, load_templates(), **SIGN)
    assert "山洪灾害风险红色预警" in text and "同时生效:地质灾害气象风险橙色、暴雨洪涝风险黄色" in text
    assert len(rs) == len({r.phone for r in rs})


def test_duty_summaries_count_villages_per_level(region, routing):
    alerts = [Alert(V1, "torrent", 4), Alert(V1, "rainstorm", 2), Alert(V2, "rainstorm", 4),
              Alert(V3, "geohazard", 3), Alert(V3, "rainstorm", 1, internal=True)]
    rs = by_phone(run(region, routing, alerts))
    county, town, yun = rs["13900000001"], rs["13900000002"], rs["13900000003"]
    assert county.kind == town.kind == yun.kind == "summary"
    assert county.counts == {4: 2, 3: 1} and county.place == "青山县"
    assert town.counts == {4: 2} and town.place == "青山镇"
    assert yun.counts == {3: 1}
    text = render(town, load_templates(), **SIGN)
    assert "青山镇2村红色预警" in text


def test_internal_levels_only_reach_duty_officers(region, routing):
    rs = run(region, routing, [Alert(V1, "geohazard", 1, internal=True)])
    assert people(rs) == set()
    assert {r.phone: r.internal for r in rs} == {"13900000001": 1, "13900000002": 1}
    text = render(rs[0], load_templates(), signature="青山县防指", issuer="县防办", issued_at=T0)
    assert "内部预警1村" in text


def test_drill_only_flagged_contacts_and_prefix(region, routing):
    rs = run(region, routing, [Alert(V1, "rainstorm", 4)], drill=True)
    assert [r.phone for r in rs] == ["13800000001"]
    text = render(rs[0], load_templates(), signature="青山县防指", issuer="县防办", issued_at=T0)
    assert text.startswith("【演练】【青山县防指】")


def test_invalid_numbers_reported_once_masked_and_never_routed(region, routing):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        rs = route([Alert(V1, "rainstorm", 4)], region, routing)
    msgs = [str(w.message) for w in rec if issubclass(w.category, DataWarning)]
    assert len(msgs) == 2
    assert any("landline" in m for m in msgs) and any("malformed" in m for m in msgs)
    assert not any("87654321" in m for m in msgs)
    assert all(r.phone.startswith("1") and len(r.phone) == 11 for r in rs)


def test_lift_sends_all_clear_to_roles_of_the_old_level(region, routing):
    rs = run(region, routing, [Alert(V1, "rainstorm", 2, kind="lift")])
    assert people(rs, "all_clear") == {"13800000001", "13800000002"}
    assert people(rs, "summary") == set()
    text = render(by_phone(rs)["13800000002"], load_templates(), signature="青山县防指", issuer="县防办",
                  issued_at=T0)
    assert text.endswith("解除上河村暴雨洪涝风险预警。")


def test_warning_supersedes_all_clear_for_one_phone(region, routing):
    rs = run(region, routing, [Alert(V1, "rainstorm", 2, kind="lift"), Alert(V1, "torrent", 1)])
    head = by_phone(rs)["13800000001"]
    assert head.kind == "warning" and [a.hazard for a in head.alerts] == ["torrent"]


def test_change_kinds_not_configured_are_not_sent(region):
    data = yaml.safe_load((ROOT / "riskmap/rules_default/routing.yaml").read_text(encoding="utf-8"))
    data["send_on"] = ["issue", "escalate"]
    rs = run(region, routing_from_dict(data), [Alert(V1, "rainstorm", 2, kind="downgrade")])
    assert rs == []


def test_alert_from_lifecycle_change():
    we = T0 + timedelta(hours=3)
    ch = Change("escalate", V1, "torrent", 2, 4, T0, None, window_h=3.0, window_end=we, value_mm=120.0)
    a = Alert.from_change(ch)
    assert (a.village_code, a.hazard, a.level, a.kind) == (V1, "torrent", 4, "escalate")
    assert a.window_start == T0 and a.window_end == we and a.rain_mm == 120.0 and a.change_key == ch.key
    lift = Alert.from_change(Change("lift", V1, "torrent", 4, 0, T0, None))
    assert lift.level == 4 and not lift.sends and lift.window_start is None and lift.rain_mm is None


def test_nearest_shelters(region):
    assert nearest_shelters(region) == {V1: "上河小学", V2: "下河村委会", V3: "上河小学"}


def test_recipient_repr_masks_phone(region, routing):
    r = run(region, routing, [Alert(V1, "rainstorm", 1)])
    assert all(r_.phone not in repr(r_) for r_ in r)


def test_routing_files_identical_and_valid():
    office = ROOT / "warning_rules" / "routing.yaml"
    packaged = ROOT / "riskmap" / "rules_default" / "routing.yaml"
    assert office.read_text(encoding="utf-8") == packaged.read_text(encoding="utf-8")
    r = load_routing(ROOT / "warning_rules")
    assert r.roles_for(4) == ("village_head", "grid_member", "household")
    assert r.escalation.to_role == "township_duty"


@pytest.mark.parametrize(("patch", "match"), [
    ({"village_roles": {"purple": ["village_head"]}}, "village_roles.purple: unknown level"),
    ({"village_roles": {"red": ["mayor"]}}, "unknown role 'mayor'"),
    ({"village_roles": {"red": ["county_duty"]}}, "not a village role"),
    ({"keepers": {"volcano": {"layer": "mines"}}}, "keepers.volcano: unknown hazard"),
    ({"keepers": {"mine": {"layer": "mine"}}}, "keepers.mine.layer: unknown layer"),
    ({"release": {"red": "later"}}, "release.red must be auto or hold"),
    ({"send_on": ["issue", "shout"]}, "send_on"),
    ({"colour": 1}, "unknown key 'colour'"),
])
def test_bad_routing_is_a_rule_error_naming_file_and_key(tmp_path, patch, match):
    data = yaml.safe_load((ROOT / "riskmap/rules_default/routing.yaml").read_text(encoding="utf-8"))
    data.update(patch)
    p = tmp_path / "routing.yaml"
    p.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(RuleError, match=match) as exc:
        load_routing(tmp_path)
    assert str(p) in str(exc.value)
