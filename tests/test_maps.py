"""The offline warning map: self-contained page, escaping, popups, layers, rainfall overlay, inputs."""

from __future__ import annotations

import json
import os
import re
import stat
import warnings

import folium
import numpy as np
import pandas as pd
import pytest
import shapely
from maps_fixture import CODES, EVIL, PHONES, make_levels, make_rain, make_region, village_lonlat
from shapely.geometry import Polygon

from riskmap.errors import DataWarning, ForecastError, InputError, RiskmapError
from riskmap.levels import Level
from riskmap.maps import assets, offline_violations, warning_map, write_map
from riskmap.maps.layers import FEATURE_LAYER_STYLES as STYLES
from riskmap.maps.layers import feature_layer, reservoir_scale_code, safe_json, to_display
from riskmap.maps.rain_overlay import colorize, max_accumulation, overlay_image, rain_classes
from riskmap.maps.warning_map import auto_simplify_m, local_time_label, village_properties, village_table

RUN = pd.Timestamp("2026-07-01T00:00:00Z")


def render(**kwargs: object) -> str:
    region = kwargs.pop("region", None) or make_region()
    levels = kwargs.pop("levels", None)
    levels = make_levels() if levels is None else levels
    m = warning_map(region, levels, title=kwargs.pop("title", "清江县山洪预警"), run_time=RUN, **kwargs)
    return m.get_root().render()


def villages_json(html: str) -> dict:
    """The village FeatureCollection inlined in the page."""
    match = re.search(r"riskmap\.villageLayer\((\{\"type\":\"FeatureCollection\".*?\]\}), \{", html, re.S)
    assert match, "village layer not found in the page"
    return json.loads(match.group(1))


# --- self-contained page -------------------------------------------------------------------------------


def test_page_has_no_external_resources() -> None:
    html = render(rain=make_rain())
    assert offline_violations(html) == []
    assert not re.search(r"<script[^>]+src=", html)
    assert not re.search(r"<link[^>]+href=", html)
    for host in ("cdn.jsdelivr.net", "code.jquery.com", "cdnjs.cloudflare.com", "bootstrapcdn", "unpkg"):
        assert host not in html
    # every http(s) URL left is a namespace or a link in a comment/attribution, never a fetched resource
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", html))
    allowed = ("http://www.w3.org/2000/svg", "https://leafletjs.com", "https://bugs.chromium.org/",
               "https://bugzilla.mozilla.org/")
    assert all(u.startswith(allowed) for u in urls), urls
    assert "Leaflet 1.9.4" in html
    assert "L.tileLayer" not in html


def test_checker_catches_default_folium_page() -> None:
    page = folium.Map(location=[30, 110]).get_root().render()
    bad = offline_violations(page)
    assert any("leaflet" in b for b in bad)
    assert any("jquery" in b for b in bad)


def test_optional_tile_url_is_the_only_url() -> None:
    url = "http://t0.tianditu.gov.cn/vec_w/wmts?tk=KEY&x={x}&y={y}&l={z}"
    m = warning_map(make_region(), make_levels(), title="t", run_time=RUN, tiles=url, tiles_attr="天地图")
    html = m.get_root().render()
    assert "L.tileLayer" in html and "tianditu" in html
    assert offline_violations(html, allowed=("tianditu.gov.cn",)) == []


def test_leaflet_css_images_are_inlined_and_licence_ships() -> None:
    css = assets.leaflet_css()
    assert "url(images/" not in css and "data:image/png;base64," in css
    assert b"BSD 2-Clause" in assets.read_asset("leaflet", "LICENSE")
    assert assets.inline_script("a='</script>'").count("</script>") == 1


def test_write_map_writes_one_readable_file(tmp_path) -> None:
    m = warning_map(make_region(), make_levels(), title="t", run_time=RUN)
    out = write_map(m, tmp_path / "OUT" / "map.html")
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "Village warnings" in text
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o644
    assert [p.name for p in out.parent.iterdir()] == ["map.html"]


def test_write_map_refuses_a_page_that_loads_from_a_cdn(tmp_path) -> None:
    with pytest.raises(RiskmapError, match="network"):
        write_map(folium.Map(), tmp_path / "bad.html")
    assert not (tmp_path / "bad.html").exists()


# --- escaping and personal data ------------------------------------------------------------------------


def test_names_are_escaped_everywhere() -> None:
    html = render(title='<img src=x onerror="alert(2)">')
    assert EVIL not in html
    assert "<script>alert(1)" not in html
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=&#34;alert(2)&#34;&gt;" in html or "&lt;img src=x onerror=&quot;" in html
    data = villages_json(html)
    names = {f["properties"]["n"] for f in data["features"]}
    assert EVIL in names  # the name survives intact as data, to be escaped in the popup


def test_phone_numbers_never_reach_the_page() -> None:
    html = render()
    for phone in PHONES:
        assert phone not in html
        assert phone[-8:] not in html
    props = {f["properties"]["c"]: f["properties"] for f in villages_json(html)["features"]}
    assert props[CODES[0]]["k"] == 2  # two contacts of village 1 counted
    assert props[CODES[1]]["k"] == 0


def test_safe_json_cannot_close_a_script() -> None:
    text = safe_json({"x": "</script><!--&"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"x": "</script><!--&"}


# --- villages -------------------------------------------------------------------------------------------


def test_village_properties_carry_the_popup_content() -> None:
    props = {p["c"]: p for p in village_properties(village_table(make_region(), make_levels()))}
    red = props[CODES[0]]
    assert red["n"] == "红村" and red["t"] == "城关镇" and red["l"] == 4
    assert red["h"] == "rainstorm:4;hz_<b>:1" and red["r"].startswith("24小时雨量 120 mm")
    assert red["p"] == 1000 and red["hh"] == 300 and red["s"] == 40.0
    assert red["w"] == [["3 h", 40.0], ["24 h", 120.0]]
    none = props[CODES[4]]
    assert none["l"] == 0 and "h" not in none and "r" not in none


def test_villages_drawn_most_severe_last_with_level_colours() -> None:
    html = render()
    levels = [f["properties"]["l"] for f in villages_json(html)["features"]]
    assert levels == sorted(levels)
    for lv in Level:
        assert lv.hex in html
    assert '"fill":0.0' in html  # level 0 transparent


def test_display_coordinates_are_wgs84_rounded() -> None:
    feats = villages_json(render())["features"]
    red = next(f for f in feats if f["properties"]["l"] == 4)
    ring = np.array(red["geometry"]["coordinates"][0])
    lon, lat = village_lonlat(0)
    assert ring[:, 0].min() < lon < ring[:, 0].max() and ring[:, 1].min() < lat < ring[:, 1].max()
    assert all(len(repr(v).split(".")[-1]) <= 5 for v in ring.ravel().tolist())


def test_levels_for_missing_and_unknown_villages_warn() -> None:
    levels = make_levels().iloc[1:].copy()
    levels.loc[len(levels) + 10] = {"village_code": "999999999999", "level": 2}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = village_table(make_region(), levels)
    messages = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert any("no row" in m and CODES[0] in m for m in messages)
    assert any("999999999999" in m for m in messages)
    assert table.set_index("code").at[CODES[0], "level"] == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [(lambda d: d.drop(columns="level"), "missing column 'level'"),
     (lambda d: d.assign(level=[4, 3, 2, 1, 7]), "level 7 is not 0-4"),
     (lambda d: pd.concat([d, d.iloc[:1]]), "appears more than once")],
)
def test_bad_levels_are_input_errors(change, message) -> None:
    with pytest.raises(InputError, match=message):
        render(levels=change(make_levels()))


def test_run_time_shown_in_beijing_and_naive_time_refused() -> None:
    html = render()
    assert "2026-07-01 08:00 北京时间 (UTC+08:00)" in html
    with pytest.raises(InputError, match="no time zone"):
        local_time_label("2026-07-01T00:00:00")


def test_townships_listed_for_the_filter() -> None:
    html = render()
    assert re.search(r'riskmap\.filterControl\(map, \w+, \["城关镇","河口乡"\]\)', html)


# --- feature layers --------------------------------------------------------------------------------------


def test_every_present_layer_is_a_toggleable_overlay() -> None:
    html = render()
    control = html[html.index("L.control.layers"):]
    overlays = html[html.rindex("overlays :"):html.index("L.control.layers")]
    for spec in STYLES:
        assert json.dumps(spec.title) in overlays, spec.layer
    assert json.dumps("行政村预警 Village warnings") in overlays and control
    page = html[html.index("<body>"):]  # the map's own script, after the inlined libraries
    assert "L.marker(" not in page and "L.icon" not in page.lower()  # circle markers only, no images


def test_empty_layers_are_left_out() -> None:
    region = make_region()
    region = type(region)(**{**region.__dict__, "mines": region.mines.iloc[0:0]})
    html = render(region=region)
    assert "矿山 Mines" not in html
    assert "地质灾害隐患点 Geohazard sites" in html


def test_reservoirs_symbol_by_scale_and_mark_unsafe() -> None:
    region = make_region()
    spec = next(s for s in STYLES if s.layer == "reservoirs")
    layer = feature_layer(spec, region.reservoirs)
    data = json.loads(layer.data)
    props = {f["properties"]["name"]: f["properties"] for f in data["features"]}
    assert props["大坝水库"]["_s"] == {"radius": 12}
    assert props["小塘水库"]["_s"] == {"radius": 5, "color": "#c51b8a", "weight": 4}
    assert props["小塘水库"]["status"] == "病险"
    assert reservoir_scale_code("小(1)型") == 4 and reservoir_scale_code(6) is None


def test_zone_popup_names_its_reservoir() -> None:
    region = make_region()
    spec = next(s for s in STYLES if s.layer == "reservoir_zones")
    data = json.loads(feature_layer(spec, region.reservoir_zones, names={"rs2": "小塘水库"}).data)
    assert data["features"][0]["properties"]["name"] == "小塘水库 下游危险区"


def test_display_simplification() -> None:
    region = make_region()
    assert auto_simplify_m(region.villages) == 0.0
    wiggly = Polygon([(500_000 + 10 * i, 3_330_000 + (i % 2)) for i in range(200)] + [(502_000, 3_329_000)])
    gdf = region.villages.iloc[:1].copy()
    gdf["geometry"] = [wiggly]
    many = pd.concat([region.villages] * 500, ignore_index=True)
    assert 0 < auto_simplify_m(many) <= 100
    before = shapely.get_num_coordinates(to_display(gdf).values).sum()
    after = shapely.get_num_coordinates(to_display(gdf, 5.0).values).sum()
    assert after < before / 10


# --- rainfall overlay -----------------------------------------------------------------------------------


def test_max_accumulation_over_a_window_by_hand() -> None:
    rain = make_rain()
    west = float(rain.isel(time=0).max())  # 20 mm in the first hour at the north-west corner
    # hours alternate x1, x2: best 3 h window is 2+1+2 = 5x the first hour
    assert float(max_accumulation(rain, 3).max()) == pytest.approx(5 * west)
    assert float(max_accumulation(rain, 1).max()) == pytest.approx(2 * west)
    assert float(max_accumulation(rain, None).max()) == pytest.approx(9 * west)
    assert max_accumulation(rain.isel(time=0), 3).equals(rain.isel(time=0))
    with pytest.raises(ForecastError, match="shorter than one forecast interval"):
        max_accumulation(rain, 0.5)


def test_overlay_image_bounds_cover_the_villages_and_classes_colour() -> None:
    values, bounds, peak = overlay_image(max_accumulation(make_rain(), 3))
    (south, west), (north, east) = bounds
    for i in range(5):
        lon, lat = village_lonlat(i)
        assert west < lon < east and south < lat < north
    assert peak == pytest.approx(100.0, rel=0.05)
    bins, colors = rain_classes(3)
    img = colorize(np.array([[0.0, 4.0, 100.0]]), bins, colors)
    assert img[0, 0, 3] == 0
    assert img[0, 1, :3].tolist() == [0xA6, 0xF2, 0x8F] and img[0, 2, :3].tolist() == [250, 0, 250]


def test_rain_layer_and_legend_in_page_and_crs_required() -> None:
    html = render(rain=make_rain(), rain_window_h=3)
    assert "最大3小时雨量 Max 3 h rain" in html and "data:image/png;base64," in html
    assert "rm-rain-legend" in html
    with pytest.raises(ForecastError, match="no CRS"):
        render(rain=make_rain().drop_vars("spatial_ref"))


def test_point_villages_and_acknowledgement_status() -> None:
    region = make_region()
    points = region.villages.assign(geometry=region.villages.geometry.centroid)
    region = type(region)(**{**region.__dict__, "villages": points})
    levels = make_levels().assign(ack=["已确认 acknowledged", "", None, "未确认", ""])
    feats = villages_json(render(region=region, levels=levels))["features"]
    assert {f["geometry"]["type"] for f in feats} == {"Point"}
    acks = {f["properties"]["c"]: f["properties"].get("a") for f in feats}
    assert acks[CODES[0]] == "已确认 acknowledged" and acks[CODES[3]] == "未确认" and acks[CODES[1]] is None


def test_same_map_writes_the_same_bytes(tmp_path) -> None:
    paths = []
    for name in ("a.html", "b.html"):
        m = warning_map(make_region(), make_levels(), rain=make_rain(), title="t", run_time=RUN)
        paths.append(write_map(m, tmp_path / name))
    assert paths[0].read_bytes() == paths[1].read_bytes()
    ids = re.findall(r"_([0-9a-f]{32})(?![0-9a-f])", paths[0].read_text(encoding="utf-8"))
    assert ids and all(i.startswith("0" * 28) for i in ids)


def test_townships_from_code_prefix_when_names_are_missing() -> None:
    region = make_region()
    region = type(region)(**{**region.__dict__, "villages": region.villages.drop(columns="township")})
    html = render(region=region)
    assert re.search(r'riskmap\.filterControl\(map, \w+, \["420100001"\]\)', html)
