"""Tests of the demo region generator (riskmap.demo)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import rioxarray  # noqa: F401  (registers the .rio accessor)
import scipy.sparse as sp
import shapely
import xarray as xr
from exactextract import exact_extract
from exactextract.raster import NumPyRasterSource
from pyproj import CRS
from scipy import ndimage

from riskmap.demo import (
    COUNTY_CODE,
    DEFAULT_SEED,
    PHONE_PREFIX,
    DemoRegion,
    build_demo,
    content_hash,
    write_demo,
)
from riskmap.demo.writer import frame_hash
from riskmap.errors import RiskmapIOError
from riskmap.schema import FEATURE_LAYERS, LAYERS, RESERVOIR_SCALES, ROLES, SOIL_STATES

EXPECTED_HASHES = {
    "villages": "9054e348436c31f3f9d0caf641026a263a0f377b8274ef77a07a4a8a0bf02ff6",
    "rivers": "fa7a4e8725e311d4ebe8e4fe8d513fb64e163ab710ce92474c9aca71ae5a9254",
    "reservoirs": "6c8d19a5e1876892385ee4487658458794e713b9951efa57ee0ab83acc4ea481",
    "reservoir_zones": "445266c9ab03fb9969506c3723c259ad9cc234baa67679f4bc690bf7c82d7732",
    "flood_points": "38856899ce172e06c9c02bfed734dbcbf53b252eba99d5e8b8dfa542f522f6dd",
    "hazard_sites": "d7af651bf7649b079246da220b9bb2ec4ffbb6b7fe40bee42828c93c58a01340",
    "mines": "c125e79f20b876cd64343377c5c55594a81b57cadc26dfb2a804be1e22035fb6",
    "detention_areas": "4af2148b8aefe535fb8347b280894b22cc036d370d7fdeb8941b2ea8b5fd200b",
    "shelters": "2d94d7b4fc30ba387f0a6aa40d967c207ff02e3b9d321dd2ed3b0ecfba378fd0",
    "vulnerable_sites": "6ecd5b7de2c811af339a379a4dfaf5444252f681684a3a11eb5636b3b4978826",
    "contacts": "14e0becbc8778073decd4708979fbea91abb5cc0d4545409f39ef32dd33bb1ce",
    "critical_rainfall": "0a24067ce50d216e1d605033ed4072745588ca2f43b98d61ec62061640772bb8",
    "forecast": "c457786a717c9fb8d8015f61e8c5518a0b08bdd4c27dfa9e830aacd4f953b997",
    "observed": "95b632fd379173c3ff6b6e97535e1d7a8e0b8945627347285a350b0c09b59e9f",
}
"""Content hashes of build_demo(20240715); change only with riskmap.demo.writer.GENERATOR_VERSION."""

MOBILE = re.compile(r"^1[3-9]\d{9}$")
METRIC = 32649  # UTM 49N, for distances in tests
HORIZONS_H = {1: 72, 2: 48, 3: 24, 4: 12}
"""Lead-time horizons of the shipped rainstorm rules (blue … red): each level is reached within them."""


@pytest.fixture(scope="module")
def built() -> tuple[DemoRegion, float]:
    t0 = time.perf_counter()
    demo = build_demo()
    return demo, time.perf_counter() - t0


@pytest.fixture(scope="module")
def demo(built: tuple[DemoRegion, float]) -> DemoRegion:
    return built[0]


def _village_levels(demo: DemoRegion) -> np.ndarray:
    """National rainstorm level per village from coverage-weighted means (exactextract coverage)."""
    da = demo.forecast["precipitation_amount"]
    lon, lat = da["lon"].to_numpy(), da["lat"].to_numpy()
    res = float(lon[1] - lon[0])
    assert np.allclose(np.diff(lon), res) and np.allclose(np.diff(lat), -res)
    ids = np.arange(lat.size * lon.size, dtype=np.float64).reshape(lat.size, lon.size)
    src = NumPyRasterSource(
        ids, xmin=lon[0] - res / 2, ymin=lat[-1] - res / 2, xmax=lon[-1] + res / 2, ymax=lat[0] + res / 2
    )
    villages = demo.villages
    is_point = (villages.geom_type == "Point").to_numpy()
    polys = np.flatnonzero(~is_point)
    out = exact_extract(src, villages.iloc[polys], ["values", "coverage"], output="pandas")
    rows, cols, vals = [], [], []
    for k, (v, c) in enumerate(zip(out["values"], out["coverage"], strict=True)):
        rows += [polys[k]] * len(v)
        cols += np.asarray(v, dtype=int).tolist()
        vals += list(c)
    for i in np.flatnonzero(is_point):
        g = villages.geometry.iloc[i]
        rows.append(i)
        cols.append(int((lat[0] + res / 2 - g.y) / res) * lon.size + int((g.x - lon[0] + res / 2) / res))
        vals.append(1.0)
    w = sp.csr_matrix((vals, (rows, cols)), shape=(len(villages), ids.size))
    w = sp.diags(1.0 / np.asarray(w.sum(axis=1)).ravel()) @ w
    mean = w @ da.to_numpy().reshape(da.shape[0], -1).T.astype(np.float64)
    cum = np.cumsum(np.pad(mean, ((0, 0), (1, 0))), axis=1)

    def window(n: int, horizon_h: int) -> np.ndarray:
        # windows of n hours ending at most horizon_h after the reference time (= now in `riskmap demo`)
        ends = np.arange(n, min(horizon_h, mean.shape[1]) + 1)
        return np.asarray((cum[:, ends] - cum[:, ends - n]).max(axis=1))

    level = np.zeros(len(villages), dtype=int)
    level[window(12, HORIZONS_H[1]) >= 50] = 1
    level[window(6, HORIZONS_H[2]) >= 50] = 2
    level[window(3, HORIZONS_H[3]) >= 50] = 3
    level[window(3, HORIZONS_H[4]) >= 100] = 4
    return level


@pytest.fixture(scope="module")
def levels(demo: DemoRegion) -> np.ndarray:
    return _village_levels(demo)


# --- determinism ---


def test_content_hash_is_the_recorded_constant(demo: DemoRegion) -> None:
    assert content_hash(demo) == EXPECTED_HASHES


def test_a_different_seed_differs_everywhere() -> None:
    other = content_hash(build_demo(7))
    assert set(other) == set(EXPECTED_HASHES)
    assert all(other[k] != EXPECTED_HASHES[k] for k in other)


def test_build_is_fast_and_keeps_no_global_state(built: tuple[DemoRegion, float]) -> None:
    demo, seconds = built
    assert seconds < 10.0
    assert demo.seed == DEFAULT_SEED
    np.random.seed(1)  # the global NumPy state must not matter
    a = np.random.random()
    np.random.seed(1)
    assert frame_hash(build_demo().villages) == EXPECTED_HASHES["villages"]
    assert np.random.random() == a


def test_frame_hash_depends_on_values_and_geometry_not_column_order() -> None:
    g = gpd.GeoDataFrame({"id": ["a", "b"], "n": [1, 2]}, geometry=[shapely.Point(0, 0), shapely.Point(1, 1)])
    assert frame_hash(g) == frame_hash(g[["n", "geometry", "id"]])
    moved = g.copy()
    moved.loc[1, "geometry"] = shapely.Point(1, 1.0000001)
    changed = g.copy()
    changed.loc[0, "n"] = 3
    assert len({frame_hash(g), frame_hash(moved), frame_hash(changed)}) == 3


# --- schema ---


def test_every_layer_follows_the_schema(demo: DemoRegion) -> None:
    layers = demo.layers()
    assert list(layers) == list(LAYERS)
    for name, spec in LAYERS.items():
        frame = layers[name]
        assert len(frame) > 0, name
        missing = set(spec.required) - set(frame.columns)
        assert not missing, f"{name}: missing {missing}"
        if spec.kind == "vector":
            assert isinstance(frame, gpd.GeoDataFrame), name
            assert frame.crs.to_epsg() == 4490, name
            assert set(frame.geom_type) <= set(spec.geometry), name
            assert frame.is_valid.all() and not frame.is_empty.any(), name
        else:
            assert not isinstance(frame, gpd.GeoDataFrame), name
        if spec.id_column:
            assert frame[spec.id_column].is_unique, name
            assert all(isinstance(v, str) for v in frame[spec.id_column]), name


def test_villages_codes_names_and_counts(demo: DemoRegion) -> None:
    v = demo.villages
    assert 1900 <= len(v) <= 2100
    assert v["code"].str.fullmatch(r"\d{12}").all() and v["code"].is_unique
    assert (v["code"].str[:6] == COUNTY_CODE).all()
    town = v["code"].str[6:9].astype(int)
    vil = v["code"].str[9:].astype(int)
    jiedao, zhen, xiang = town < 100, (town >= 100) & (town < 200), (town >= 200) & (town < 400)
    assert (jiedao | zhen | xiang).all() and jiedao.any() and zhen.any() and xiang.any()
    assert v.loc[jiedao, "township"].str.endswith("街道").all()
    assert (
        v.loc[zhen, "township"].str.endswith("镇").all() and v.loc[xiang, "township"].str.endswith("乡").all()
    )
    assert 12 <= v["township"].nunique() <= 20
    assert v.groupby("township")["code"].apply(lambda c: c.str[:9].nunique() == 1).all()
    committee = vil >= 200
    assert ((vil >= 1) & (vil <= 399)).all() and not ((vil >= 200) & jiedao).any()
    assert (
        v.loc[committee, "name"].str.endswith("村").all()
        and v.loc[~committee, "name"].str.endswith("社区").all()
    )
    assert not v.duplicated(["township", "name"]).any()
    assert (v["county"] == demo.county_name).all()
    ratio = v["population"] / v["households"]
    assert (v["population"] > 0).all() and ratio.between(2.8, 3.6).all()
    assert 3 <= (v.geom_type == "Point").sum() <= 10


def test_reservoirs_all_scales_on_rivers_with_zones(demo: DemoRegion) -> None:
    res = demo.reservoirs
    assert {RESERVOIR_SCALES[s] for s in res["scale"]} == {1, 2, 3, 4, 5}
    bounds = {1: (1e9, np.inf), 2: (1e8, 1e9), 3: (1e7, 1e8), 4: (1e6, 1e7), 5: (1e5, 1e6)}
    for scale, storage in zip(res["scale"], res["storage_m3"], strict=True):
        lo, hi = bounds[RESERVOIR_SCALES[scale]]
        assert lo <= storage < hi, (scale, storage)
    assert set(res["status"]) == {"正常", "病险"}
    rivers = shapely.unary_union(demo.rivers.to_crs(METRIC).geometry.to_numpy())
    assert (res.to_crs(METRIC).distance(rivers) < 150.0).all()
    zones = demo.reservoir_zones
    assert sorted(zones["reservoir_id"]) == sorted(res["id"])
    dams = res.set_index("id").geometry.loc[zones["reservoir_id"]].to_numpy()
    assert shapely.contains(zones.geometry.to_numpy(), dams).all()
    assert set(demo.rivers["grade"]) == {1, 2, 3}


def test_hazard_sites_mines_points_areas(demo: DemoRegion) -> None:
    from riskmap.schema import FLOOD_POINT_KINDS, HAZARD_KINDS, MINE_KINDS

    hs = demo.hazard_sites
    assert set(hs["kind"]) == set(HAZARD_KINDS)
    assert (hs["threatened_people"] > 0).all() and (hs["threatened_households"] > 0).all()
    assert (hs["threatened_households"] <= hs["threatened_people"]).all()
    mines = demo.mines
    assert set(mines["kind"]) == set(MINE_KINDS) and (mines["workers"] >= 0).all()
    assert set(mines.loc[mines["kind"] == "采煤沉陷区"].geom_type) == {"Polygon"}
    assert (mines.loc[mines["kind"] == "井工", "workers"] > 0).all()
    fp = demo.flood_points
    assert set(fp["kind"]) == set(FLOOD_POINT_KINDS)
    town = demo.villages[demo.villages["code"].str[6:9] < "100"]
    assert gpd.sjoin(fp, town, predicate="within").index.nunique() == len(fp)
    main = demo.rivers[demo.rivers["grade"] == 1]
    assert len(demo.detention_areas) == 1 and demo.detention_areas.intersects(main.union_all()).all()
    assert demo.detention_areas["name"].str.endswith("蓄滞洪区").all()
    assert (demo.shelters["capacity"] > 0).all()
    joined = gpd.sjoin(demo.shelters, demo.villages[["township", "geometry"]], predicate="within")
    assert set(joined["township"]) == set(demo.villages["township"])
    assert set(demo.vulnerable_sites["kind"]) == {"学校", "医院", "养老院", "景区", "工地", "危房"}


def test_contacts_roles_phones_and_links(demo: DemoRegion) -> None:
    c = demo.contacts
    assert 5000 <= len(c) <= 30000
    assert set(c["role"]) == set(ROLES)
    assert c["phone"].map(lambda p: bool(MOBILE.match(p))).all()
    assert c["phone"].str.startswith(PHONE_PREFIX).all() and c["phone"].is_unique
    codes = set(demo.villages["code"])
    admin = c["admin_code"]
    assert (admin[c["role"] == "county_duty"] == COUNTY_CODE).all()
    assert set(admin[c["role"] == "township_duty"]) == {code[:9] for code in codes}
    for role in ("village_head", "grid_member"):
        assert set(admin[c["role"] == role]) == codes, role
    hh = c[c["role"] == "household"]
    assert (
        set(hh["admin_code"]) <= codes and hh["household_id"].is_unique and hh["household_id"].notna().all()
    )
    assert hh["lon"].notna().all() and hh["lat"].notna().all()
    pts = gpd.GeoDataFrame(hh, geometry=gpd.points_from_xy(hh["lon"], hh["lat"]), crs=4490).to_crs(METRIC)
    vil = demo.villages.set_index("code").to_crs(METRIC).geometry
    assert (shapely.distance(pts.geometry.to_numpy(), vil.loc[hh["admin_code"]].to_numpy()) < 800.0).all()
    keepers = c[c["role"] == "keeper"]
    assert keepers["admin_code"].isna().all()
    layers = demo.layers()
    for layer, ids in keepers.groupby("feature_layer")["feature_id"]:
        assert layer in FEATURE_LAYERS and set(ids) <= set(layers[layer]["id"]), layer
    for layer in ("reservoirs", "hazard_sites", "mines", "flood_points", "detention_areas"):
        assert set(layers[layer]["id"]) <= set(
            keepers.loc[keepers["feature_layer"] == layer, "feature_id"]
        ), layer
    linked = c["admin_code"].notna() | (c["feature_layer"].notna() & c["feature_id"].notna())
    assert linked.all()


def test_critical_rainfall_table(demo: DemoRegion) -> None:
    cr = demo.critical_rainfall
    assert set(cr["village_code"]) <= set(demo.villages["code"])
    assert set(cr["duration_h"]) == {1, 3, 6} and set(cr["soil"]) == set(SOIL_STATES)
    assert (cr.groupby("village_code").size() == 9).all()
    from riskmap.demo.contacts import RIVERSIDE_KM

    rivers = shapely.unary_union(demo.rivers.to_crs(METRIC).geometry.to_numpy()).buffer(
        RIVERSIDE_KM * 1000 - 1
    )
    riverside = set(demo.villages.loc[demo.villages.to_crs(METRIC).intersects(rivers), "code"])
    surveyed = set(cr["village_code"])
    assert surveyed <= set(demo.villages["code"]) and 0.8 < len(surveyed) / len(riverside) < 0.97
    assert (cr["prepare_mm"] < cr["immediate_mm"]).all() and (cr["prepare_mm"] > 0).all()
    for col in ("prepare_mm", "immediate_mm"):
        wide = cr.pivot_table(index=["village_code", "duration_h"], columns="soil", values=col)
        assert ((wide["wet"] < wide["normal"]) & (wide["normal"] < wide["dry"])).all(), col
    one = cr[(cr["duration_h"] == 1) & (cr["soil"] == "normal")]["immediate_mm"]
    assert 25.0 <= one.median() <= 50.0  # around 李青 (2017): 35 mm in 1 h on normal soil


# --- the storm ---


def test_storm_produces_all_four_levels(levels: np.ndarray) -> None:
    share = np.bincount(levels, minlength=5) / levels.size
    assert share[0] >= 0.5, share
    assert 0.02 <= share[4] <= 0.08, share
    assert (share[1:4] >= 0.02).all(), share


def test_heavy_rain_reaches_every_hazard_type(demo: DemoRegion, levels: np.ndarray) -> None:
    v = demo.villages

    def hit(geoms: gpd.GeoSeries) -> np.ndarray:
        idx = v.sindex.query(geoms.to_numpy(), predicate="intersects")[1]
        return levels[np.unique(idx)]

    assert (hit(v.geometry[v["code"].str[6:9] < "100"]) >= 3).mean() > 0.5  # the county town
    assert hit(demo.mines.geometry[demo.mines["kind"] == "采煤沉陷区"]).max() >= 3
    assert (hit(demo.hazard_sites.geometry) >= 3).sum() >= 5
    unsafe = demo.reservoirs.loc[demo.reservoirs["status"] == "病险", "id"]
    zones = demo.reservoir_zones[demo.reservoir_zones["reservoir_id"].isin(unsafe)]
    assert hit(zones.geometry).max() == 4
    assert hit(demo.detention_areas.geometry).max() >= 1


def test_forecast_is_cf(demo: DemoRegion) -> None:
    ds = demo.forecast
    da = ds["precipitation_amount"]
    assert ds.attrs["Conventions"] == "CF-1.8"
    assert da.dims == ("time", "lat", "lon") and da.dtype == np.float32 and da.sizes["time"] == 72
    assert da.attrs["units"] == "mm" and da.attrs["standard_name"] == "lwe_thickness_of_precipitation_amount"
    assert da.encoding["grid_mapping"] == "crs" and CRS.from_wkt(ds["crs"].attrs["crs_wkt"]).to_epsg() == 4490
    assert da.rio.crs.to_epsg() == 4490
    ref = np.datetime64("2024-07-15T00:00:00", "ns")
    assert (
        ds["forecast_reference_time"].values == ref
        and ds.attrs["reference_time"] == "2024-07-15T00:00:00+00:00"
    )
    hour = np.timedelta64(1, "h")
    assert (ds["time"].values == ref + np.arange(1, 73) * hour).all()
    assert ds["time"].attrs["bounds"] == "time_bnds"
    bnds = ds["time_bnds"].values
    assert (bnds[:, 1] == ds["time"].values).all() and (bnds[:, 1] - bnds[:, 0] == hour).all()
    assert float(da.min()) >= 0.0 and 40.0 <= float(da.max()) <= 120.0
    lon0, lat0, lon1, lat1 = demo.villages.total_bounds
    assert (
        da["lon"].min() < lon0
        and da["lon"].max() > lon1
        and da["lat"].min() < lat0
        and da["lat"].max() > lat1
    )


# --- writing ---


def test_write_then_reuse(demo: DemoRegion, tmp_path: Path) -> None:
    first = write_demo(tmp_path / "d", demo=demo)
    assert (
        not first.reused and first.region.is_file() and first.forecast.is_file() and first.manifest.is_file()
    )
    assert sorted(p.name for p in first.directory.iterdir()) == [
        "demo.json", "forecast.nc", "observed.csv", "region.gpkg"
    ]
    stamp = [p.stat().st_mtime_ns for p in (first.region, first.forecast, first.observed)]
    t0 = time.perf_counter()
    second = write_demo(tmp_path / "d", demo=demo)
    assert second.reused and time.perf_counter() - t0 < 5.0
    assert [p.stat().st_mtime_ns for p in (second.region, second.forecast, second.observed)] == stamp
    listed = dict(pyogrio.list_layers(first.region).tolist())
    assert set(listed) == set(LAYERS) and listed["contacts"] is None and listed["critical_rainfall"] is None
    for name in LAYERS:
        assert frame_hash(pyogrio.read_dataframe(first.region, layer=name)) == EXPECTED_HASHES[name], name
    with xr.open_dataset(first.forecast, decode_coords="all") as ds:
        assert ds["precipitation_amount"].rio.crs.to_epsg() == 4490
        assert ds["time_bnds"].values[0, 0] == np.datetime64("2024-07-15T00:00:00", "ns")
        assert np.array_equal(ds["precipitation_amount"].values, demo.forecast["precipitation_amount"].values)


def test_write_replaces_changed_files(demo: DemoRegion, tmp_path: Path) -> None:
    paths = write_demo(tmp_path, demo=demo)
    with paths.region.open("ab") as f:
        f.write(b"tampered")
    again = write_demo(tmp_path, demo=demo)
    assert not again.reused
    assert write_demo(tmp_path, demo=demo).reused
    paths.manifest.write_text("{not json", encoding="utf-8")
    assert not write_demo(tmp_path, demo=demo).reused
    paths.observed.write_text("station,lon,lat,time,mm\n", encoding="utf-8")
    assert not write_demo(tmp_path, demo=demo).reused
    assert write_demo(tmp_path, demo=demo).reused
    assert not list(tmp_path.glob(".*tmp*"))


def test_write_into_a_file_fails_clearly(demo: DemoRegion, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RiskmapIOError, match="file"):
        write_demo(blocker, demo=demo)


def test_the_rainfall_engine_agrees_on_the_written_files(
    demo: DemoRegion, levels: np.ndarray, tmp_path: Path
) -> None:
    from riskmap.forecast import open_forecast
    from riskmap.rainfall import village_rainfall
    from riskmap.region import load_region

    paths = write_demo(tmp_path, demo=demo)
    region = load_region(paths.region)
    grid = open_forecast(paths.forecast)
    assert grid.attrs["reference_time"] == "2024-07-15T00:00:00+00:00" and grid.rio.crs.to_epsg() == 4490
    rain = village_rainfall(region.villages, grid)
    assert list(rain["village"].values) == list(demo.villages["code"])
    mean = rain["mean"].to_numpy().astype(np.float64)
    cum = np.cumsum(np.pad(mean, ((0, 0), (1, 0))), axis=1)
    three_h_by_noon = (cum[:, 3:13] - cum[:, :10]).max(axis=1)
    assert np.array_equal(three_h_by_noon >= 100, levels == 4)


def test_to_region_passes_the_checker_in_memory(demo: DemoRegion) -> None:
    from riskmap.check import check_raw
    from riskmap.region_io import RawLayer, RawRegion

    raw = RawRegion("demo", {n: RawLayer(n, f, "demo") for n, f in demo.layers().items()})
    report = check_raw(raw)
    assert report.ok and not report.warnings, [p.format() for p in report.problems[:5]]
    region = demo.to_region()
    assert region.crs.is_projected and list(region.villages["code"]) == list(demo.villages["code"])
    assert len(region.contacts) == len(demo.contacts)


def test_features_follow_the_terrain(demo: DemoRegion) -> None:
    from riskmap.demo.terrain import CELL_KM, CHANNEL_KM2, lonlat_to_km, make_terrain

    terrain = make_terrain(np.random.default_rng(DEFAULT_SEED))  # the generator's first draw

    def at(frame: gpd.GeoDataFrame, grid: np.ndarray) -> np.ndarray:
        x, y = lonlat_to_km(frame.geometry.x.to_numpy(), frame.geometry.y.to_numpy())
        return terrain.sample(grid, x, y)

    hs = demo.hazard_sites
    slope = at(hs, terrain.slope_deg)
    kind = hs["kind"].to_numpy()
    assert (slope[np.isin(kind, ["滑坡", "崩塌"])] >= 22.0).all()
    assert (slope[kind == "崩塌"] >= 33.0).all() and (slope[kind == "泥石流"] >= 15.0).all()
    # dams sit on the drawn (smoothed) river line, within a cell of the D8 channel cell they were placed on
    acc_near = ndimage.maximum_filter(terrain.acc.reshape(terrain.dem.shape).astype(float), size=3)
    acc_km2 = at(demo.reservoirs, acc_near) * CELL_KM**2
    assert (acc_km2 >= CHANNEL_KM2).all()
    big = demo.reservoirs["scale"].map(RESERVOIR_SCALES).to_numpy() <= 2
    assert acc_km2[big].min() > np.median(acc_km2[~big])
    cells = gpd.GeoDataFrame(geometry=demo.villages.representative_point(), crs=4490)
    elev = at(cells, terrain.dem)
    assert np.median(elev) < np.median(terrain.dem)  # villages crowd into the valleys


# --- the river network ---


def _km_lines(frame: gpd.GeoDataFrame) -> list[shapely.LineString]:
    from riskmap.demo.terrain import lonlat_to_km

    def fn(xy: np.ndarray) -> np.ndarray:
        return np.column_stack(lonlat_to_km(xy[:, 0], xy[:, 1]))

    return list(shapely.transform(frame.geometry.to_numpy(), fn))


def test_rivers_have_no_parallel_duplicates_along_grid_rows(demo: DemoRegion) -> None:
    lines = _km_lines(demo.rivers)
    ends = shapely.union_all(
        [shapely.Point(c) for line in lines for c in (line.coords[0], line.coords[-1])]
    ).buffer(1.0)
    side_by_side = 0.0  # km of river within 300 m of another river, away from confluences and sources
    for i, a in enumerate(lines):
        others = shapely.union_all([b for j, b in enumerate(lines) if j != i]).buffer(0.3)
        side_by_side += a.difference(ends).intersection(others).length
    assert side_by_side < 1.0, side_by_side  # the flat-valley artefact had ~200 km of it
    longest = 0.0  # longest straight run along a grid row or column
    for line in lines:
        d = np.diff(np.asarray(line.coords), axis=0)
        run = 0.0
        for step, axial in zip(np.hypot(d[:, 0], d[:, 1]), (np.abs(d) < 1e-9).any(axis=1), strict=True):
            run = run + step if axial else 0.0
            longest = max(longest, run)
    assert longest < 1.0, longest  # the artefact had straight rows up to 36 km long


def test_rivers_form_a_dendritic_network(demo: DemoRegion) -> None:
    lines = _km_lines(demo.rivers)
    grade = demo.rivers["grade"].to_numpy()
    county = shapely.union_all(_km_lines(demo.villages)).buffer(-0.2)
    joined, inside, angles = 0, 0, []
    for i, trib in enumerate(lines):
        if grade[i] == 1:
            continue
        first, last = shapely.Point(trib.coords[0]), shapely.Point(trib.coords[-1])
        if county.contains(first) and county.contains(last):
            inside += 1
        for end, back in ((last, trib.interpolate(trib.length - 0.5)), (first, trib.interpolate(0.5))):
            into = [b for j, b in enumerate(lines) if grade[j] < grade[i] and b.distance(end) < 0.01]
            if not into:
                continue
            joined += 1
            main, s = into[0], into[0].project(end)
            u = np.subtract(end.coords[0], back.coords[0])
            v = np.subtract(main.interpolate(s + 0.25).coords[0], main.interpolate(s - 0.25).coords[0])
            angles.append(np.degrees(np.arccos(abs(u @ v) / np.linalg.norm(u) / np.linalg.norm(v))))
            break
    assert joined >= inside > 20  # every tributary not cut by the county outline ends on its receiving river
    assert np.percentile(angles, 10) >= 20.0 and np.median(angles) >= 35.0  # joining at angles, not merging
    main = max((line for line, g in zip(lines, grade, strict=True) if g == 1), key=lambda line: line.length)
    chord = shapely.Point(main.coords[0]).distance(shapely.Point(main.coords[-1]))
    assert main.length > 40.0 and main.length / chord > 1.2  # 青江 meanders through the valley
    town = shapely.union_all(_km_lines(demo.villages[demo.villages["code"].str[6:9] < "100"]))
    assert main.intersects(town)


def test_flow_routing_fills_pits_and_converges_on_flats() -> None:
    from riskmap.demo.terrain import _accumulate, _route

    dem = np.full((9, 9), 10.0)  # a flat basin (row 0 is south) ...
    dem[[0, -1], :] = dem[:, [0, -1]] = 100.0  # ... walled in ...
    dem[0, 4] = 0.0  # ... with one outlet in the south wall ...
    dem[6, 6] = 5.0  # ... and a pit
    tiebreak = np.random.default_rng(0).random(dem.shape)
    filled, rec, order = _route(dem, tiebreak)
    assert filled[6, 6] == 10.0 and filled[4, 4] == 10.0 and filled[0, 0] == 100.0
    outlet = 4
    assert rec[outlet] == -1 and (rec >= 0).sum() == dem.size - 1
    position = np.empty(dem.size, dtype=int)
    position[order] = np.arange(dem.size)
    assert (position[rec[rec >= 0]] < position[rec >= 0]).all()  # receivers come first: no cycles
    acc = _accumulate(rec, order)
    assert acc[outlet] == dem.size  # everything drains through the one outlet
    # across the flat, flow converges into one stem before the outlet instead of running down parallel
    # grid columns (an epsilon-gradient fill gives at most 21 cells here: parallel columns of 5-6 cells)
    assert acc.reshape(dem.shape)[2:-1, 1:-1].max() >= 40
    plane = np.add.outer(np.zeros(5), np.arange(5.0) * 10.0)  # rises eastwards: every cell drains west
    _, rec, _ = _route(plane, np.zeros_like(plane))
    r, c = np.divmod(np.arange(plane.size), 5)
    assert np.array_equal(rec[c > 0], r[c > 0] * 5 + c[c > 0] - 1)


# --- observed rainfall (rain gauges) ---

NOW = "2024-07-15T00:00:00+00:00"


@pytest.fixture(scope="module")
def written(demo: DemoRegion, tmp_path_factory: pytest.TempPathFactory):
    return write_demo(tmp_path_factory.mktemp("demo") / "data", demo=demo)


def test_observed_table_is_an_hourly_gauge_export(demo: DemoRegion, written) -> None:
    from riskmap.forecast.gauges import read_gauge_table

    obs = demo.observed
    assert list(obs.columns) == ["station", "lon", "lat", "time", "mm", "name"]
    stations = obs.drop_duplicates("station")
    assert 40 <= len(stations) <= 80 and stations["station"].str.fullmatch(r"QS\d{3}").all()
    assert stations["name"].is_unique and stations["name"].str.endswith("站").all()
    assert (obs.groupby("station")[["lon", "lat", "name"]].nunique() == 1).all().all()
    # every station reports every hour of the 72 h before the reference time, in Beijing time
    times = sorted(obs["time"].unique())
    assert len(times) == 72 and (obs.groupby("station").size() == 72).all()
    assert all(t.endswith("+08:00") for t in times)
    utc = pd.DatetimeIndex([pd.Timestamp(t) for t in times]).tz_convert("UTC")
    assert utc[-1] == pd.Timestamp(NOW) and (np.diff(utc) == pd.Timedelta(hours=1)).all()
    assert (obs["mm"] >= 0).all() and np.allclose(obs["mm"] * 10, np.round(obs["mm"] * 10))
    # the gauges lie in the county, spread over it (no two closer than 4 km)
    pts = gpd.GeoSeries(gpd.points_from_xy(stations["lon"], stations["lat"]), crs=4490)
    county = shapely.unary_union(demo.villages.geometry.to_numpy()).buffer(1e-6)
    assert pts.within(county).all()
    xy = np.column_stack([pts.to_crs(METRIC).x, pts.to_crs(METRIC).y])
    d = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1)) + np.eye(len(xy)) * 1e9
    assert d.min() >= 4000.0
    # the written file: UTF-8 without BOM, the same table, and riskmap's own reader accepts it
    raw = written.observed.read_bytes()
    assert raw.startswith(b"station,lon,lat,time,mm,name\n") and "站".encode() in raw
    back = pd.read_csv(written.observed, dtype={"station": str, "time": str, "name": str})
    assert frame_hash(back) == frame_hash(obs) == EXPECTED_HASHES["observed"]
    table = read_gauge_table(written.observed)
    assert len(table) == len(obs) and table["time"].max() == np.datetime64("2024-07-15T00:00", "ns")


def test_observed_rain_is_moderate_and_uneven(demo: DemoRegion) -> None:
    wide = demo.observed.pivot(index="time", columns="station", values="mm")
    # rates a few mm/h, never a rainstorm by itself (national thresholds 50 mm in 12 h, 6 h, 3 h)
    assert wide.max().max() < 15.0 and wide.rolling(6).sum().max().max() < 30.0
    assert wide.rolling(12).sum().max().max() < 45.0
    # a wet spell over part of the county, little elsewhere
    total = wide.sum()
    assert total.max() > 90.0 and total.min() < 15.0


def _riverside_soil(demo: DemoRegion, paths) -> tuple[np.ndarray, np.ndarray]:
    from riskmap.config import Settings
    from riskmap.forecast import open_forecast, open_observed
    from riskmap.rainfall import village_rainfall
    from riskmap.region import load_region
    from riskmap.rules import load_rules, packaged_rules_dir
    from riskmap.rules.features import antecedent_rainfall, soil_states

    soil_rule = load_rules(packaged_rules_dir()).soil
    assert soil_rule is not None
    rs = Settings().rainfall
    region = load_region(paths.region)
    grid = open_forecast(paths.forecast)
    observed = open_observed(paths.observed, like=grid, tz="Asia/Shanghai")
    rain = village_rainfall(region.villages, observed)
    ante = antecedent_rainfall(rain[soil_rule.statistic], NOW, k=rs.effective_k, n_days=rs.effective_days,
                               day_boundary=rs.day_boundary)
    soil = soil_states(ante.to_numpy(), soil_rule.normal_from_mm, soil_rule.wet_from_mm)
    surveyed = np.isin(rain["village"].to_numpy(), demo.critical_rainfall["village_code"].to_numpy())
    return soil, surveyed


def test_riverside_villages_differ_in_soil_state(demo: DemoRegion, written) -> None:
    soil, riverside = _riverside_soil(demo, written)
    counts = np.bincount(soil[riverside], minlength=3)
    assert (counts > 0).sum() >= 2, counts
    assert (counts / counts.sum() >= 0.1).sum() >= 2, counts  # not one odd village: real spread


@pytest.fixture(scope="module")
def cycles(written, tmp_path_factory: pytest.TempPathFactory):
    """The demo cycle evaluated with and without the gauge table (warnings recorded)."""
    import warnings
    from dataclasses import replace

    from riskmap.config import PathSettings, Settings
    from riskmap.cycle import CycleRequest, evaluate_cycle

    out = tmp_path_factory.mktemp("cycle")
    settings = replace(Settings(), paths=PathSettings(cache_dir=str(out / "cache")))
    result = {}
    for observed in (written.observed, None):
        req = CycleRequest(region=written.region, forecast=(written.forecast,), out_dir=out,
                           settings=settings, observed=observed)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ev = evaluate_cycle(req)
        result[observed is not None] = (ev, caught)
    return result


def test_cycle_with_observed_rain_has_no_missing_observation_warning(cycles) -> None:
    from riskmap.errors import DataWarning

    ev, caught = cycles[True]
    data = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert not [m for m in data if "no observed rainfall" in m], data
    assert not [m for m in data if "between the last observation" in m], data  # no gap at now
    # the check itself works: without the gauges the warning is there
    assert any("no observed rainfall" in str(w.message) for w in cycles[False][1])
    grid = ev.rainfall.grid
    assert int(grid["observed"].sum()) == 72 and grid.sizes["time"] == 72 + 72


def test_cycle_with_observed_rain_keeps_every_level_and_hazard(cycles) -> None:
    ev, _ = cycles[True]
    a = ev.result.assessment
    assert set(a.villages["level"]) == {0, 1, 2, 3, 4}
    hl = a.hazard_levels
    assert set(hl["hazard"]) == {"rainstorm", "torrent", "geohazard", "reservoir", "waterlogging", "mine"}
    # the observed hours alone raise nothing: every rain window behind a level ends after now
    ends = pd.to_datetime(hl["window_end"], utc=True).dropna()
    assert len(ends) and (ends > pd.Timestamp(NOW)).all()
    # and the red rainstorm villages are those of the forecast alone
    before = cycles[False][0].result.assessment.hazard_levels
    red = set(hl.loc[(hl["hazard"] == "rainstorm") & (hl["level"] == 4), "village_code"])
    assert red == set(before.loc[(before["hazard"] == "rainstorm") & (before["level"] == 4), "village_code"])


def test_torrent_levels_follow_the_soil_state(cycles) -> None:
    levels = {}
    for key in (True, False):
        ev, _ = cycles[key]
        hl = ev.result.assessment.hazard_levels
        torrent = hl[hl["hazard"] == "torrent"].set_index("village_code")["level"]
        levels[key] = torrent.reindex(ev.result.features.codes).fillna(0).to_numpy(dtype=int)
    features = cycles[True][0].result.features
    soil = features.soil_state
    riverside = features.context_value("touches_river") >= 1
    assert len(set(soil[riverside].tolist())) >= 2
    change = np.sign(levels[True] - levels[False])
    table = pd.crosstab(soil[riverside], change[riverside])
    # against the normal soil assumed without gauges: dry soil only lowers, wet soil only raises levels
    assert (change[riverside & (soil == 0)] <= 0).all() and (change[riverside & (soil == 2)] >= 0).all()
    assert (change[riverside & (soil == 0)] < 0).any() and (change[riverside & (soil == 2)] > 0).any(), table
    assert (change[riverside & (soil == 1)] == 0).all()
