"""load_region: one metric CRS, string codes, encodings, normalised values, refusal with the problem list."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import CRS, Geod
from region_data import CODES, box, valid_layers, write_dir, write_gpkg

from riskmap.errors import DataWarning, RegionError
from riskmap.region import Region, load_region, working_crs
from riskmap.region_io import read_region_raw
from riskmap.schema import LAYERS

GEOD = Geod(ellps="GRS80")


def geodesic_area(poly: shapely.Polygon) -> float:
    return abs(GEOD.geometry_area_perimeter(poly)[0])


def assert_one_metric_crs(region: Region) -> None:
    assert region.crs.is_projected
    assert all(a.unit_name == "metre" for a in region.crs.axis_info)
    for name, spec in LAYERS.items():
        frame = region.layer(name)
        if spec.kind == "vector":
            assert isinstance(frame, gpd.GeoDataFrame)
            assert CRS.from_user_input(frame.crs).equals(region.crs), name
        else:
            assert not isinstance(frame, gpd.GeoDataFrame)


@pytest.fixture(scope="module")
def gpkg_region(tmp_path_factory: pytest.TempPathFactory) -> Region:
    return load_region(write_gpkg(valid_layers(), tmp_path_factory.mktemp("gpkg") / "region.gpkg"))


def test_cgcs2000_lonlat_is_reprojected_once_to_a_gauss_kruger_zone(gpkg_region: Region) -> None:
    region = gpkg_region
    assert region.crs.name == "CGCS2000 / 3-degree Gauss-Kruger CM 120E (E,N)"
    assert [a.direction for a in region.crs.axis_info] == ["east", "north"]
    assert_one_metric_crs(region)
    expected = [geodesic_area(box(i)) for i in range(4)]  # ≈ 1.07 km² each at 30° N
    assert np.allclose(region.villages.area, expected, rtol=1e-4)
    assert 1.0e6 < region.villages.area.iloc[0] < 1.1e6
    # the false easting of a GK zone: 120.005° E is ~480 m east of the central meridian
    x = region.villages.geometry.centroid.x.iloc[0]
    assert 500_000 < x < 501_000
    assert np.isclose(region.rivers.length.iloc[0], 0.06 * 96_490, rtol=0.01)  # 0.06° of longitude at 30° N


def test_types_and_derived_columns(gpkg_region: Region) -> None:
    v = gpkg_region.villages
    assert v["code"].tolist() == CODES  # source order kept
    assert v["township_code"].tolist() == ["330110001", "330110001", "330110002", "330110002"]
    assert v["county_code"].unique().tolist() == ["330110"]
    assert v["population"].dtype == np.int64 and v["population"].tolist() == [820, 455, 1203, 96]
    r = gpkg_region.reservoirs
    assert r["scale"].tolist() == ["中型", "5"] and r["scale_code"].tolist() == [3, 5]
    assert r["scale_code"].dtype == np.int64
    c = gpkg_region.contacts
    assert c["role"].tolist() == ["county_duty", "township_duty", "village_head", "grid_member", "household",
                                  "keeper"]
    assert c["phone"].tolist() == ["0571-87654321", "13800000001", "13800000002", "13800000003",
                                   "13800000004", "010-62345678"]
    assert c["lon"].dtype == np.float64
    rain = gpkg_region.critical_rainfall
    assert rain["prepare_mm"].dtype == np.float64 and rain["soil"].unique().tolist() == ["normal"]
    assert gpkg_region.hazard_sites["threatened_people"].tolist() == [12]


@pytest.mark.parametrize("table", [".csv", ".xlsx"])
def test_codes_and_ids_stay_strings_with_leading_zeros(tmp_path: Path, table: str) -> None:
    region = load_region(write_dir(valid_layers(), tmp_path / "d", vector=".geojson", table=table))
    assert region.reservoirs["id"].tolist() == ["001", "002"]
    assert region.contacts["household_id"].dropna().tolist() == ["0007"]
    assert region.contacts["feature_id"].dropna().tolist() == ["002"]
    assert region.contacts["admin_code"].tolist()[:3] == ["330110", "330110001", "330110001001"]
    assert region.critical_rainfall["village_code"].tolist()[::2] == CODES
    for frame, col in ((region.contacts, "admin_code"), (region.critical_rainfall, "village_code"),
                       (region.villages, "code")):
        assert all(isinstance(x, str) for x in frame[col].dropna()), col
    assert region.crs.name == "CGCS2000 / 3-degree Gauss-Kruger CM 120E (E,N)"


def test_numeric_codes_in_a_spreadsheet_do_not_become_floats(tmp_path: Path) -> None:
    layers = valid_layers()
    layers["critical_rainfall"]["village_code"] = layers["critical_rainfall"]["village_code"].astype("int64")
    layers["contacts"]["phone"] = [np.nan, 13800000001, 13800000002, 13800000003, 13800000004, 13800000005]
    layers["contacts"].loc[0, "phone"] = 13800000000
    folder = write_dir(layers, tmp_path / "d", table=".xlsx")
    region = load_region(folder)
    assert region.critical_rainfall["village_code"].tolist()[::2] == CODES
    assert region.contacts["phone"].tolist()[:2] == ["13800000000", "13800000001"]


def test_gbk_shapefile_and_csv_without_cpg(tmp_path: Path) -> None:
    folder = write_dir(valid_layers(), tmp_path / "gbk", vector=".shp", table=".csv", encoding="gbk")
    assert not list(folder.glob("*.cpg"))
    with pytest.raises(UnicodeDecodeError):
        (folder / "contacts.csv").read_text(encoding="utf-8")
    region = load_region(folder)
    assert region.villages["name"].tolist() == ["东村", "西村", "南村", "北村"]
    assert region.villages["township"].tolist() == ["甲镇", "甲镇", "乙乡", "乙乡"]
    assert region.contacts["name"].tolist() == ["王县", "李镇", "张村", "赵网", "钱户", "孙管"]
    assert region.contacts["role"].tolist()[2:4] == ["village_head", "grid_member"]
    assert region.reservoir_zones["reservoir_id"].tolist() == ["002"]  # from the shapefile alias res_id
    assert region.hazard_sites["threatened_households"].tolist() == [4]
    assert_one_metric_crs(region)


def test_mixed_crs_layers_end_in_one_crs(tmp_path: Path) -> None:
    layers = valid_layers()
    layers["rivers"] = layers["rivers"].to_crs("EPSG:4326")
    layers["shelters"] = layers["shelters"].to_crs("EPSG:3857")
    layers["mines"] = layers["mines"].to_crs("EPSG:4549")  # a CGCS2000 GK zone with north/east axes
    region = load_region(write_gpkg(layers, tmp_path / "r.gpkg"))
    assert_one_metric_crs(region)
    reference = load_region(write_gpkg(valid_layers(), tmp_path / "ref.gpkg"))
    for name in ("rivers", "shelters", "mines"):
        a, b = region.layer(name).geometry.iloc[0], reference.layer(name).geometry.iloc[0]
        assert shapely.hausdorff_distance(a, b) < 0.01, name  # metres


def test_a_metric_source_crs_is_kept(tmp_path: Path) -> None:
    layers = {k: (v.to_crs("EPSG:32651") if isinstance(v, gpd.GeoDataFrame) else v)
              for k, v in valid_layers().items()}
    region = load_region(write_gpkg(layers, tmp_path / "utm.gpkg"))
    assert region.crs.to_epsg() == 32651
    assert np.allclose(region.villages.area, [geodesic_area(box(i)) for i in range(4)], rtol=2e-3)


def test_working_crs_outside_china_is_utm() -> None:
    v = gpd.GeoDataFrame(geometry=[shapely.box(9.0, 45.0, 9.1, 45.1)], crs="EPSG:4326")
    assert working_crs(v).to_epsg() == 32632


def test_missing_optional_layers_are_empty_with_schema_columns(tmp_path: Path) -> None:
    layers = {k: v for k, v in valid_layers().items() if k in ("villages", "contacts")}
    dropped = ["feature_layer", "feature_id", "lon", "lat"]
    layers["contacts"] = layers["contacts"].drop(columns=dropped).iloc[:5]
    region = load_region(write_gpkg(layers, tmp_path / "r.gpkg"))
    for name, spec in LAYERS.items():
        frame = region.layer(name)
        assert set(spec.required + spec.optional) <= set(frame.columns), name
        if name not in layers:
            assert frame.empty
    assert region.reservoirs.crs == region.crs and "scale_code" in region.reservoirs.columns
    assert region.contacts["feature_layer"].isna().all() and region.contacts["lat"].dtype == np.float64


def test_column_names_are_matched_loosely(tmp_path: Path) -> None:
    layers = valid_layers()
    layers["villages"] = layers["villages"].rename(columns={"code": "Code", "name": " NAME "})
    region = load_region(write_gpkg(layers, tmp_path / "r.gpkg"))
    assert region.villages["code"].tolist() == CODES and region.villages["name"].iloc[0] == "东村"


def test_refusal_lists_the_first_twenty_problems_and_the_count(tmp_path: Path) -> None:
    layers = valid_layers()
    bad = pd.DataFrame({"name": [f"人{i}" for i in range(25)], "phone": ["12345"] * 25, "role": "grid_member",
                        "admin_code": CODES[0]})
    layers["contacts"] = pd.concat([layers["contacts"], bad], ignore_index=True)
    path = write_gpkg(layers, tmp_path / "r.gpkg")
    with pytest.raises(RegionError) as info:
        load_region(path)
    text = str(info.value)
    assert text.startswith(f"{path}: 25 errors in the region (run `riskmap check --region {path}`):\n")
    body = text.splitlines()[1:]
    assert len(body) == 21 and body[-1] == "… and 5 more"
    assert body[0] == ("ERROR contacts [#7 人0] phone: malformed phone number '1***5': "
                       "a mobile number has 11 digits, this one 5")
    assert info.value.exit_code == 2
    # without the check the region loads and the bad numbers are missing
    region = load_region(path, check=False)
    assert region.contacts["phone"].isna().sum() == 25


def test_warnings_do_not_stop_loading(tmp_path: Path) -> None:
    layers = valid_layers()
    layers["hazard_sites"]["kind"] = ["火山"]
    with pytest.warns(DataWarning, match=r"WARNING hazard_sites \[H01\] kind: unknown kind '火山'"):
        region = load_region(write_gpkg(layers, tmp_path / "r.gpkg"))
    assert region.hazard_sites["kind"].tolist() == ["火山"]


def test_no_villages_cannot_load_even_unchecked(tmp_path: Path) -> None:
    layers = valid_layers()
    layers["rivers"] = layers["rivers"].set_crs(None, allow_override=True)
    del layers["villages"]
    path = write_dir(layers, tmp_path / "d", vector=".shp")
    with pytest.raises(RegionError, match="missing mandatory layer"):
        load_region(path)
    with pytest.raises(RegionError, match="layer villages: missing or empty"):
        load_region(path, check=False)


@pytest.mark.slow
def test_a_county_of_2000_villages_and_20000_contacts_checks_and_loads_quickly(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    n, m = 2000, 20_000
    ij = np.array([(i % 50, i // 50) for i in range(n)])
    codes = [f"330110{1 + i // 100:03d}{1 + i % 100:03d}" for i in range(n)]
    villages = gpd.GeoDataFrame(
        {"code": codes, "name": [f"村{i}" for i in range(n)], "population": rng.integers(50, 3000, n),
         "households": rng.integers(20, 900, n)},
        geometry=shapely.box(120 + ij[:, 0] * 0.01, 30 + ij[:, 1] * 0.01, 120.01 + ij[:, 0] * 0.01,
                             30.01 + ij[:, 1] * 0.01), crs="EPSG:4490")
    who = rng.integers(0, n, m)
    contacts = pd.DataFrame({"name": [f"人{k}" for k in range(m)], "phone": [f"139{k:08d}" for k in range(m)],
                             "role": rng.choice(["household", "村责任人", "grid_member"], m),
                             "admin_code": [codes[k] for k in who]})
    rain = pd.DataFrame({"village_code": np.repeat(codes, 3), "duration_h": np.tile([1, 3, 6], n),
                         "soil": "normal", "prepare_mm": np.tile([30.0, 50.0, 70.0], n),
                         "immediate_mm": np.tile([45.0, 70.0, 100.0], n)})
    layers = {"villages": villages, "contacts": contacts, "critical_rainfall": rain}
    path = write_gpkg(layers, tmp_path / "big.gpkg")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        t0 = time.perf_counter()
        region = load_region(path)
        elapsed = time.perf_counter() - t0
    assert len(region.villages) == n and len(region.contacts) == m
    assert region.contacts["phone"].notna().all()
    assert elapsed < 10.0, f"check+load took {elapsed:.1f} s"  # ~1 s on an idle 2-core machine


def test_raw_reader_reads_each_layer_once_and_keeps_its_source(tmp_path: Path) -> None:
    path = write_gpkg(valid_layers(), tmp_path / "r.gpkg")
    raw = read_region_raw(path)
    assert set(raw.layers) == set(LAYERS) and raw.problems == ()
    assert raw.layers["villages"].source == f"{path}:villages"
    assert raw.frame("villages").crs.to_epsg() == 4490  # raw frames are not reprojected


def test_layers_may_be_named_by_their_chinese_title(tmp_path: Path) -> None:
    layers = valid_layers()
    titled = {LAYERS[k].title_zh: v for k, v in layers.items() if k in ("villages", "contacts", "reservoirs")}
    titled["critical_rainfall"] = layers["critical_rainfall"]
    gpkg = load_region(write_gpkg(titled, tmp_path / "r.gpkg"))
    assert gpkg.villages["code"].tolist() == CODES and len(gpkg.contacts) == 6 and len(gpkg.reservoirs) == 2
    folder = tmp_path / "d"
    folder.mkdir()
    layers["villages"].to_file(folder / "行政村.geojson")
    (folder / "临界雨量.csv").write_bytes(layers["critical_rainfall"].to_csv(index=False).encode("gbk"))
    region = load_region(folder)
    assert region.villages["name"].tolist() == ["东村", "西村", "南村", "北村"]
    assert len(region.critical_rainfall) == 8


def test_utf8_shapefile_without_cpg_with_wide_fields(tmp_path: Path) -> None:
    layers = valid_layers()
    layers["villages"]["note"] = ["备注" * 40] * 4  # a 240-byte field: its width byte is not valid UTF-8
    folder = write_dir(layers, tmp_path / "utf8", vector=".shp", table=".csv", encoding="utf-8")
    (folder / "villages.cpg").unlink()
    region = load_region(folder)
    assert region.villages["name"].tolist() == ["东村", "西村", "南村", "北村"]
    assert region.villages["note"].iloc[0] == "备注" * 40


def test_gbk_shapefile_marked_ansi_by_arcgis(tmp_path: Path) -> None:
    folder = write_dir(valid_layers(), tmp_path / "ansi", vector=".shp", table=".csv", encoding="gbk")
    dbf = folder / "villages.dbf"
    data = bytearray(dbf.read_bytes())
    data[29] = 0x57  # language driver id "ANSI"
    dbf.write_bytes(bytes(data))
    assert load_region(folder).villages["name"].tolist() == ["东村", "西村", "南村", "北村"]


def test_chinese_column_headers_of_office_spreadsheets(tmp_path: Path) -> None:
    layers = valid_layers()
    layers["contacts"] = layers["contacts"].rename(columns={
        "name": "姓名", "phone": "手机号码", "role": "角色", "admin_code": "行政区划代码",
        "feature_layer": "对象图层", "feature_id": "对象编号", "household_id": "户号", "lon": "经度",
        "lat": "纬度"})
    layers["critical_rainfall"] = layers["critical_rainfall"].rename(columns={
        "village_code": "村代码", "duration_h": "时段(h)", "soil": "土壤", "prepare_mm": "准备转移（mm）",
        "immediate_mm": "立即转移(毫米)"})
    layers["villages"] = layers["villages"].rename(columns={"population": "人口（人）", "households": "户数"})
    region = load_region(write_dir(layers, tmp_path / "zh", table=".xlsx"))
    assert region.contacts["phone"].tolist()[0] == "0571-87654321"
    assert region.contacts["household_id"].dropna().tolist() == ["0007"]
    assert region.critical_rainfall["immediate_mm"].tolist()[:2] == [45.0, 70.0]
    assert region.villages["population"].tolist() == [820, 455, 1203, 96]
