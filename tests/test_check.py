"""`riskmap check`: every breakage of the region contract is reported, one line naming layer, row, column."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from region_data import CODES, box, point, valid_layers, write_dir, write_gpkg

from riskmap.check import CheckReport, Problem, check_region
from riskmap.errors import RegionError

FIX = "repair it at the source (shapely make_valid or buffer(0), QGIS 'Fix geometries')"


def check(layers: dict[str, pd.DataFrame], tmp_path: Path, layout: str = "gpkg") -> CheckReport:
    if layout == "gpkg":
        return check_region(write_gpkg(layers, tmp_path / "region.gpkg"))
    return check_region(write_dir(layers, tmp_path / "region", vector=".geojson", table=layout))


def lines(report: CheckReport) -> list[str]:
    return [p.format() for p in report.problems]


def add_row(frame: pd.DataFrame, **values: object) -> pd.DataFrame:
    """*frame* with one more row (a copy of its first row, updated with *values*)."""
    row = frame.iloc[[0]].copy()
    for k, v in values.items():
        row[k] = [v]
    out = pd.concat([frame, row], ignore_index=True)
    return gpd.GeoDataFrame(out, crs=frame.crs) if isinstance(frame, gpd.GeoDataFrame) else out


@pytest.mark.parametrize("layout", ["gpkg", ".csv", ".xlsx"])
def test_valid_region_is_clean(tmp_path: Path, layout: str) -> None:
    report = check(valid_layers(), tmp_path, layout)
    assert report.problems == ()
    assert report.ok
    assert report.summary == {"villages": 4, "rivers": 1, "reservoirs": 2, "reservoir_zones": 1,
                              "flood_points": 1, "hazard_sites": 1, "mines": 1, "detention_areas": 1,
                              "shelters": 1, "vulnerable_sites": 1, "contacts": 6, "critical_rainfall": 8}
    assert report.format()[-1] == "0 errors, 0 warnings: the region is usable"
    assert report.format()[-2].startswith("layers: villages 4, rivers 1, reservoirs 2,")


def test_gbk_shapefiles_and_csv_without_cpg_are_clean(tmp_path: Path) -> None:
    folder = write_dir(valid_layers(), tmp_path / "gbk", vector=".shp", table=".csv", encoding="gbk")
    assert not (folder / "villages.cpg").exists()
    assert check_region(folder).problems == ()


def test_optional_layers_may_be_missing(tmp_path: Path) -> None:
    layers = {k: v for k, v in valid_layers().items() if k in ("villages", "critical_rainfall")}
    report = check(layers, tmp_path)
    assert report.problems == () and report.summary == {"villages": 4, "critical_rainfall": 8}


def test_missing_mandatory_layer(tmp_path: Path) -> None:
    layers = valid_layers()
    del layers["villages"], layers["critical_rainfall"], layers["contacts"]
    assert lines(check(layers, tmp_path)) == [
        "ERROR villages: missing mandatory layer: region.gpkg has no villages (a layer of that name)"]
    assert lines(check(layers, tmp_path, ".csv")) == [
        "ERROR villages: missing mandatory layer: region has "
        "no villages (a file <layer>.gpkg, .geojson, .json "
        "or .shp)"]


def test_missing_required_column(tmp_path: Path) -> None:
    layers = valid_layers()
    layers["villages"] = layers["villages"].drop(columns="population")
    layers["contacts"] = layers["contacts"].drop(columns="role")
    assert lines(check(layers, tmp_path)) == [
        "ERROR villages population: missing required column (have: code, name, households, township, county, "
        "geometry)",
        "ERROR contacts role: missing required column (have: "
        "name, phone, admin_code, feature_layer, feature_id, "
        "household_id, lon, lat)",
    ]


def test_wrong_geometry_type(tmp_path: Path) -> None:
    layers = valid_layers()
    layers["reservoirs"] = layers["reservoirs"].set_geometry([point(0.5, 1.5), box(2, 1)], crs="EPSG:4490")
    layers["rivers"] = layers["rivers"].set_geometry([box(0, 2)], crs="EPSG:4490")
    assert lines(check(layers, tmp_path)) == [
        "ERROR rivers [R01] geometry: wrong geometry type Polygon "
        "(a rivers feature is LineString or MultiLineString)",
        "ERROR reservoirs [002] geometry: wrong geometry type Polygon (a reservoirs feature is Point)",
    ]


def test_invalid_geometry_explained_with_the_fix(tmp_path: Path) -> None:
    layers = valid_layers()
    bowtie = shapely.Polygon([(120.01, 30.0), (120.02, 30.01), (120.02, 30.0), (120.01, 30.01)])
    layers["villages"] = layers["villages"].set_geometry([box(0), bowtie, box(2), box(3)], crs="EPSG:4490")
    report = check(layers, tmp_path)
    assert lines(report) == [
        f"ERROR villages [330110001002] geometry: invalid geometry: Self-intersection[120.015 30.005]; {FIX}"]
    # never repaired silently: loading refuses the same region
    with pytest.raises(RegionError, match=r"\[330110001002\] geometry: invalid geometry: Self-intersection"):
        from riskmap.region import load_region

        load_region(tmp_path / "region.gpkg")


def test_empty_and_missing_geometry(tmp_path: Path) -> None:
    layers = valid_layers()
    layers["villages"] = layers["villages"].set_geometry([box(0), box(1), shapely.Polygon(), None],
                                                         crs="EPSG:4490")
    assert lines(check(layers, tmp_path)) == [
        "ERROR villages [330110002002] geometry: missing geometry",
        "ERROR villages [330110002001] geometry: empty geometry",
    ]


def test_missing_crs(tmp_path: Path) -> None:
    layers = valid_layers()
    layers["hazard_sites"] = layers["hazard_sites"].set_crs(None, allow_override=True)
    folder = write_dir(layers, tmp_path / "shp", vector=".shp")
    (folder / "villages.prj").unlink()
    assert lines(check_region(folder)) == [
        "ERROR villages geometry: no CRS declared: add the .prj / the layer's SRS (e.g. EPSG:4490 CGCS2000, "
        "EPSG:4326 WGS 84 or a Gauss–Krüger zone)",
        "ERROR hazard_sites geometry: no CRS declared: add "
        "the .prj / the layer's SRS (e.g. EPSG:4490 CGCS2000, "
        "EPSG:4326 WGS 84 or a Gauss–Krüger zone)",
    ]


def test_projected_coordinates_with_a_geographic_crs(tmp_path: Path) -> None:
    layers = valid_layers()
    layers["shelters"] = layers["shelters"].set_geometry([shapely.Point(500000, 3320000)], crs="EPSG:4490")
    assert lines(check(layers, tmp_path)) == [
        "ERROR shelters geometry: coordinates (500000, 3320000) "
        "… (500000, 3320000) are not degrees but the CRS "
        "China Geodetic Coordinate System 2000 is geographic: wrong .prj?"]


def test_duplicate_and_malformed_village_codes(tmp_path: Path) -> None:
    layers = valid_layers()
    v = add_row(layers["villages"], code=CODES[0], name="重村", geometry=box(4))
    v = add_row(v, code="33011000100", name="短村", geometry=box(5))
    v = add_row(v, code="3301100010AB", name="字村", geometry=box(6))
    v = add_row(v, code=None, name="无码村", geometry=box(7))
    layers["villages"] = v
    assert lines(check(layers, tmp_path)) == [
        "ERROR villages [#8 无码村] code: missing village code",
        "ERROR villages [33011000100] code: malformed village code '33011000100': expected 12 digits "
        "(统计用区划代码 PPCCDDTTTVVV)",
        "ERROR villages [3301100010AB] code: malformed village code '3301100010AB': expected 12 digits "
        "(统计用区划代码 PPCCDDTTTVVV)",
        "ERROR villages [330110001001 #1] code: duplicate village code '330110001001' (2 rows)",
        "ERROR villages [330110001001 #5] code: duplicate village code '330110001001' (2 rows)",
    ]


def test_township_and_county_names_disagreeing_with_code_prefixes_are_warnings(tmp_path: Path) -> None:
    layers = valid_layers()
    layers["villages"].loc[3, "township"] = "甲镇"
    report = check(layers, tmp_path)
    assert report.ok
    assert lines(report) == [
        "WARNING villages [330110002002] township: township "
        "'甲镇' but code prefix 330110002; most villages of "
        "'甲镇' have 330110001"]


def test_bad_counts(tmp_path: Path) -> None:
    layers = valid_layers()
    layers["villages"]["population"] = [820, -5, None, 96]
    layers["villages"]["households"] = [260, 150.5, 390, 31]
    layers["hazard_sites"]["threatened_people"] = ["十二"]
    layers["mines"]["workers"] = [-1]
    layers["shelters"]["capacity"] = [20.5]
    assert lines(check(layers, tmp_path, ".csv")) == [
        "ERROR villages [330110002001] population: missing value",
        "ERROR villages [330110001002] population: negative count: -5",
        "ERROR villages [330110001002] households: not a whole number: 150.5",
        "ERROR hazard_sites [H01] threatened_people: not a number: '十二'",
        "ERROR mines [M01] workers: negative count: -1",
        "ERROR shelters [S01] capacity: not a whole number: 20.5",
    ]


def test_unknown_reservoir_scale_and_status(tmp_path: Path) -> None:
    layers = valid_layers()
    layers["reservoirs"]["scale"] = ["巨型", "6"]
    layers["reservoirs"]["status"] = ["正常", "危险"]
    expected = "(expected 大(1)型, 大(2)型, 中型, 小(1)型, 小(2)型 or 1–5)"
    assert lines(check(layers, tmp_path)) == [
        f"ERROR reservoirs [001] scale: unknown reservoir scale '巨型' {expected}",
        f"ERROR reservoirs [002] scale: unknown reservoir scale '6' {expected}",
        "ERROR reservoirs [002] status: unknown status '危险' (expected 正常 or 病险)",
    ]


def test_unknown_role_and_misplaced_household(tmp_path: Path) -> None:
    layers = valid_layers()
    layers["contacts"].loc[1, "role"] = "boss"
    layers["contacts"].loc[4, "admin_code"] = "330110001"
    assert lines(check(layers, tmp_path, ".xlsx")) == [
        "ERROR contacts [#2 李镇] role: unknown role 'boss' "
        "(expected county_duty 县值班, township_duty 乡镇值班, "
        "village_head 村责任人, grid_member 网格员, household 户, keeper 责任人)",
        "ERROR contacts [#5 钱户] admin_code: a household "
        "contact needs the 12-digit admin_code of its village",
    ]


def test_duplicate_and_missing_ids(tmp_path: Path) -> None:
    layers = valid_layers()
    layers["shelters"] = add_row(add_row(layers["shelters"], name="二号点"), id=None, name="三号点")
    assert lines(check(layers, tmp_path)) == [
        "ERROR shelters [#3 三号点] id: missing id",
        "ERROR shelters [S01 #1] id: duplicate id 'S01' (2 rows)",
        "ERROR shelters [S01 #2] id: duplicate id 'S01' (2 rows)",
    ]


def test_links_to_unknown_ids_and_codes(tmp_path: Path) -> None:
    layers = valid_layers()
    layers["reservoir_zones"]["reservoir_id"] = ["009"]
    c = layers["contacts"]
    c.loc[0, "admin_code"] = "330111"
    c.loc[1, "admin_code"] = "330110009"
    c.loc[2, "admin_code"] = "330110001009"
    c.loc[3, "admin_code"] = "3301100"
    c.loc[5, "feature_id"] = "003"
    c = add_row(c, name="周管", role="keeper", admin_code=None, feature_layer="dams", feature_id="X1")
    c = add_row(c, name="吴管", role="keeper", admin_code=None, feature_layer="flood_points", feature_id=None)
    c = add_row(c, name="郑人", role="grid_member", admin_code=None, feature_layer=None, feature_id=None)
    layers["contacts"] = c
    layers["critical_rainfall"].loc[7, "village_code"] = "330110002009"
    assert lines(check(layers, tmp_path)) == [
        "ERROR reservoir_zones [Z01] reservoir_id: unknown reservoir id '009' (no such id in reservoirs)",
        "ERROR critical_rainfall [#8 330110002009] village_code: unknown village code '330110002009'",
        "ERROR contacts [#4 赵网] admin_code: malformed admin_code "
        "'3301100': expected 6 (county), 9 (township) "
        "or 12 (village) digits",
        "ERROR contacts [#1 王县] admin_code: unknown admin_code '330111': no village in county 330111",
        "ERROR contacts [#2 李镇] admin_code: unknown admin_code "
        "'330110009': no village in township 330110009",
        "ERROR contacts [#3 张村] admin_code: unknown admin_code "
        "'330110001009': no village with code 330110001009",
        "ERROR contacts [#7 周管] feature_layer: unknown "
        "feature_layer 'dams' (expected one of rivers, reservoirs, "
        "reservoir_zones, flood_points, hazard_sites, mines, detention_areas, shelters, vulnerable_sites)",
        "ERROR contacts [#8 吴管] feature_id: missing feature_id for feature_layer 'flood_points'",
        "ERROR contacts [#6 孙管] feature_id: unknown reservoirs id '003'",
        "ERROR contacts [#9 郑人] admin_code: the contact belongs "
        "nowhere: give an admin_code (village, township "
        "or county) and/or feature_layer + feature_id",
    ]


def test_link_to_a_layer_the_region_lacks(tmp_path: Path) -> None:
    layers = valid_layers()
    del layers["reservoirs"], layers["reservoir_zones"]
    assert lines(check(layers, tmp_path)) == [
        "ERROR contacts [#6 孙管] feature_id: unknown reservoirs "
        "id '002' (the region has no reservoirs layer)"]


def test_malformed_phone_numbers_are_masked(tmp_path: Path) -> None:
    layers = valid_layers()
    layers["contacts"].loc[1, "phone"] = "1380000001"
    layers["contacts"].loc[3, "phone"] = None
    report = check(layers, tmp_path)
    assert lines(report) == [
        "ERROR contacts [#2 李镇] phone: malformed phone number '138****001': a mobile number has 11 digits, "
        "this one 10",
        "ERROR contacts [#4 赵网] phone: missing phone number",
    ]
    assert "1380000001" not in "\n".join(report.format())


def test_thresholds_soil_and_duplicates(tmp_path: Path) -> None:
    layers = valid_layers()
    rain = layers["critical_rainfall"]
    rain.loc[2, ["prepare_mm", "immediate_mm"]] = [50.0, 45.0]
    rain.loc[4, "soil"] = "muddy"
    rain.loc[5, "duration_h"] = 0
    rain.loc[6, "soil"] = "较湿"  # Chinese terms are accepted
    layers["critical_rainfall"] = add_row(rain)
    assert lines(check(layers, tmp_path, ".csv")) == [
        "ERROR critical_rainfall [#6 330110002001] duration_h: 0: duration must be > 0 hours",
        "ERROR critical_rainfall [#3 330110001002] prepare_mm: prepare_mm 50 > immediate_mm 45: the 准备转移 "
        "threshold must not exceed the 立即转移 threshold",
        "ERROR critical_rainfall [#5 330110002001] soil: unknown "
        "soil state 'muddy' (expected dry, normal, wet or "
        "较干, 一般, 较湿)",
        "ERROR critical_rainfall [#1 330110001001] duration_h: "
        "duplicate threshold for village 330110001001, 1 h, "
        "soil normal",
        "ERROR critical_rainfall [#9 330110001001] duration_h: "
        "duplicate threshold for village 330110001001, 1 h, "
        "soil normal",
    ]


def test_unreadable_file_and_unknown_layer(tmp_path: Path) -> None:
    layers = valid_layers()
    folder = write_dir(layers, tmp_path / "d")
    (folder / "rivers.geojson").write_text("{not json", encoding="utf-8")
    report = check_region(folder)
    assert len(report.problems) == 1
    assert report.problems[0].format().startswith("ERROR rivers: cannot read rivers.geojson: ")
    gpkg = write_gpkg({**layers, "village": layers["villages"]}, tmp_path / "r.gpkg")
    assert lines(check_region(gpkg))[0].startswith("WARNING village: unknown layer "
                                                   "in r.gpkg, ignored (known: ")


def test_not_a_region(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(RegionError, match=r"x.txt: a region is a GeoPackage \(.gpkg\) or a directory"):
        check_region(tmp_path / "x.txt")


def test_every_problem_at_once(tmp_path: Path) -> None:
    layers = valid_layers()
    layers["villages"]["population"] = [820, -5, 1203, 96]
    layers["villages"].loc[2, "code"] = "33011000200"
    layers["reservoirs"]["scale"] = ["中型", "特大型"]
    layers["reservoir_zones"]["reservoir_id"] = ["404"]
    layers["shelters"] = add_row(layers["shelters"])
    layers["contacts"].loc[0, "phone"] = "0571-876"
    layers["contacts"].loc[1, "role"] = "mayor"
    layers["critical_rainfall"].loc[0, "prepare_mm"] = 99.0
    layers["critical_rainfall"].loc[1, "soil"] = "frozen"
    layers["rivers"] = layers["rivers"].set_geometry([shapely.Point(120, 30)], crs="EPSG:4490")
    report = check(layers, tmp_path)
    assert not report.ok
    got = lines(report)
    expected = [
        "ERROR villages [33011000200] code: malformed village code '33011000200': expected 12 digits "
        "(统计用区划代码 PPCCDDTTTVVV)",
        "ERROR villages [330110001002] population: negative count: -5",
        "ERROR rivers [R01] geometry: wrong geometry type Point "
        "(a rivers feature is LineString or MultiLineString)",
        "ERROR reservoirs [002] scale: unknown reservoir "
        "scale '特大型' (expected 大(1)型, 大(2)型, 中型, 小(1)型, "
        "小(2)型 or 1–5)",
        "ERROR shelters [S01 #1] id: duplicate id 'S01' (2 rows)",
        "ERROR shelters [S01 #2] id: duplicate id 'S01' (2 rows)",
        "ERROR contacts [#2 李镇] role: unknown role 'mayor' "
        "(expected county_duty 县值班, township_duty 乡镇值班, "
        "village_head 村责任人, grid_member 网格员, household 户, keeper 责任人)",
        "ERROR contacts [#1 王县] phone: malformed phone number '05**-*76': not a landline: the area code "
        "(010, 02x or 0xxx) must be followed by a 7- or 8-digit number",
        "ERROR critical_rainfall [#1 330110001001] prepare_mm: prepare_mm 99 > immediate_mm 45: the 准备转移 "
        "threshold must not exceed the 立即转移 threshold",
        "ERROR critical_rainfall [#2 330110001001] soil: unknown "
        "soil state 'frozen' (expected dry, normal, wet or "
        "较干, 一般, 较湿)",
        "ERROR reservoir_zones [Z01] reservoir_id: unknown reservoir id '404' (no such id in reservoirs)",
        "ERROR critical_rainfall [#5 330110002001] village_code: unknown village code '330110002001'",
        "ERROR critical_rainfall [#6 330110002001] village_code: unknown village code '330110002001'",
        "ERROR contacts [#4 赵网] admin_code: unknown admin_code "
        "'330110002001': no village with code 330110002001",
    ]
    assert got == expected
    formatted = report.format()
    assert formatted[:-2] == expected
    assert formatted[-1] == "14 errors, 0 warnings: the region is NOT usable"
    assert formatted[-2] == ("layers: villages 4 (2 errors), rivers 1 (1 error), reservoirs 2 (1 error), "
                             "reservoir_zones 1 (1 error), flood_points 1, hazard_sites 1, mines 1, "
                             "detention_areas 1, shelters 2 (2 errors), vulnerable_sites 1, "
                             "contacts 6 (3 errors), critical_rainfall 8 (4 errors)")
    assert report.format(limit=3)[3] == "… and 11 more"


def test_problem_format_and_report_ok_with_warnings_only() -> None:
    warn = Problem("hazard_sites", "H01", "kind", "unknown kind '火山'", "warning")
    report = CheckReport((warn,), {"hazard_sites": 1})
    assert report.ok and report.errors == () and report.warnings == (warn,)
    assert report.format() == ["WARNING hazard_sites [H01] kind: unknown kind '火山'",
                               "layers: hazard_sites 1 (1 warning)",
                               "0 errors, 1 warning: the region is usable"]


def test_household_location_out_of_range(tmp_path: Path) -> None:
    layers = valid_layers()
    layers["contacts"].loc[4, ["lon", "lat"]] = [520123.0, -95.0]
    assert lines(check(layers, tmp_path, ".csv")) == [
        "ERROR contacts [#5 钱户] lon: 520123: not a longitude in degrees (WGS 84 / CGCS2000)",
        "ERROR contacts [#5 钱户] lat: -95: not a latitude in degrees (WGS 84 / CGCS2000)",
    ]


def test_scale_disagreeing_with_storage_is_a_warning(tmp_path: Path) -> None:
    layers = valid_layers()
    layers["reservoirs"]["storage_m3"] = [2.5e6, 3.0e5]
    report = check(layers, tmp_path)
    assert report.ok
    assert lines(report) == [
        "WARNING reservoirs [001] scale: scale 中型 but storage_m3 2.5e+06 makes it 小(1)型 (SL 252-2017)"]


def test_codes_that_excel_turned_into_numbers_get_a_hint(tmp_path: Path) -> None:
    layers = valid_layers()
    layers["critical_rainfall"]["village_code"] = layers["critical_rainfall"]["village_code"].astype(object)
    layers["critical_rainfall"].loc[0, "village_code"] = "3.30110001E+11"
    layers["contacts"].loc[1, "admin_code"] = "3.30110001E+8"
    assert lines(check(layers, tmp_path, ".csv")) == [
        "ERROR critical_rainfall [#1 3.30110001E+11] village_code: unknown village code '3.30110001E+11': "
        "Excel shortened it to scientific notation; format the column as Text and type the codes again",
        "ERROR contacts [#2 李镇] admin_code: malformed admin_code '3.30110001E+8': expected 6 (county), "
        "9 (township) or 12 (village) digits: Excel shortened it to scientific notation; "
        "format the column as Text and type the codes again",
    ]


def test_a_villages_layer_without_features(tmp_path: Path) -> None:
    layers = {"villages": valid_layers()["villages"].iloc[:0]}
    assert lines(check(layers, tmp_path)) == ["ERROR villages: the villages layer has no features"]
