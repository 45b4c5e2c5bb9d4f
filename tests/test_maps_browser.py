"""The warning map in real headless Chromium (Debian's /usr/bin/chromium driven by Python Playwright).

Networking is off (offline context, every request intercepted): the page must draw everything from its own
file.  Checks: no console errors, no request leaves the machine, villages drawn in their warning colours
(pixels of a screenshot), popups open on click and show escaped text, layers toggle, filter and search work.
When Chromium or Playwright is missing these tests FAIL under CI=true and skip otherwise.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from maps_fixture import (
    CODES,
    EVIL,
    LEVELS,
    NAMES,
    X0,
    Y0,
    make_levels,
    make_rain,
    make_region,
    utm_lonlat,
    village_lonlat,
)

from riskmap.levels import Level
from riskmap.maps import warning_map, write_map
from riskmap.maps.legend import FILL_OPACITY

pytestmark = pytest.mark.chromium

CHROMIUM = os.environ.get("RISKMAP_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-default-apps", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 900}
BACKGROUND = (0xF4, 0xF4, 0xF0)  # .folium-map background in warning_map.css


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (required in CI)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Python package playwright is not installed")
    if not Path(CHROMIUM).exists():
        _missing(f"Chromium not found at {CHROMIUM}")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def map_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    m = warning_map(make_region(), make_levels(), rain=make_rain(), rain_window_h=3,
                    title="清江县山洪灾害预警 <第1期>", run_time="2026-07-01T00:00:00Z")
    return write_map(m, tmp_path_factory.mktemp("map") / "map.html")


@dataclass
class Session:
    page: Any
    errors: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def point(self, i: int) -> tuple[float, float]:
        """Screen position of the centre of village i."""
        return self.screen(*village_lonlat(i))

    def screen(self, lon: float, lat: float) -> tuple[float, float]:
        """Screen position of a lon/lat point."""
        p = self.page.evaluate("([lat, lon]) => riskmap.registry.map.latLngToContainerPoint([lat, lon])",
                               [lat, lon])
        box = self.page.evaluate("() => riskmap.registry.map.getContainer().getBoundingClientRect().toJSON()")
        return box["x"] + p["x"], box["y"] + p["y"]

    def pixels(self) -> Any:
        from PIL import Image

        return Image.open(io.BytesIO(self.page.screenshot())).convert("RGB")


@pytest.fixture
def session(browser: Any, map_path: Path) -> Iterator[Session]:
    context = browser.new_context(viewport=VIEWPORT, offline=True, device_scale_factor=1)
    page = context.new_page()
    s = Session(page)
    page.on("console", lambda msg: s.errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: s.errors.append(str(exc)))
    page.on("request", lambda req: s.requested.append(req.url))
    page.on("dialog", lambda d: (s.dialogs.append(d.message), d.dismiss()))

    def route(r: Any) -> None:
        if r.request.url.startswith(("file:", "data:")):
            r.continue_()
        else:
            s.outside.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    page.goto(map_path.as_uri())
    page.wait_for_function("() => window.riskmap && riskmap.registry.map && riskmap.registry.villages")
    page.wait_for_timeout(300)
    yield s
    context.close()


def _close(color: tuple[int, ...], want: tuple[int, ...], tol: int = 12) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(color, want, strict=False))


def _blend(hex_color: str, alpha: float) -> tuple[int, int, int]:
    rgb = [int(hex_color[i:i + 2], 16) for i in (1, 3, 5)]
    return tuple(round(alpha * c + (1 - alpha) * b) for c, b in zip(rgb, BACKGROUND, strict=True))  # type: ignore


def _expected(level: Level) -> tuple[int, int, int]:
    return _blend(level.hex, FILL_OPACITY[level])


def _patch_color(img: Any, x: float, y: float) -> tuple[int, int, int]:
    """Median colour of a 7x7 patch around (x, y)."""
    values = [img.getpixel((int(x) + dx, int(y) + dy)) for dx in range(-3, 4) for dy in range(-3, 4)]
    return tuple(sorted(v[k] for v in values)[len(values) // 2] for k in range(3))  # type: ignore


def test_page_loads_offline_without_errors_or_outside_requests(session: Session, map_path: Path) -> None:
    page = session.page
    assert page.evaluate("() => L.version") == "1.9.4"
    assert page.locator(".rm-title").inner_text().startswith("清江县山洪灾害预警 <第1期>")
    assert "北京时间" in page.locator(".rm-title").inner_text()
    assert page.locator(".rm-level-legend").count() == 1
    assert page.locator("canvas").count() >= 1  # canvas renderer
    assert page.locator(".leaflet-marker-icon").count() == 0  # no marker images
    assert session.errors == []
    assert session.outside == []
    assert all(u.startswith(("file:", "data:")) for u in session.requested), session.requested
    assert session.dialogs == []


def test_villages_drawn_in_their_warning_colours(session: Session) -> None:
    img = session.pixels()
    palette = {lv: _expected(lv) for lv in Level}
    for i, lv in enumerate(LEVELS):
        got = _patch_color(img, *session.point(i))
        nearest = min(palette, key=lambda k: sum((a - b) ** 2 for a, b in zip(got, palette[k], strict=True)))
        assert nearest == Level(lv), (NAMES[i], got, palette)
        assert _close(got, palette[Level(lv)]), (NAMES[i], got, palette[Level(lv)])
    assert session.errors == []


def test_popup_opens_on_click_with_escaped_content(session: Session) -> None:
    page = session.page
    page.mouse.click(*session.point(0))
    popup = page.locator(".leaflet-popup-content")
    popup.wait_for(timeout=3000)
    text = popup.inner_text()
    assert "红村" in text and CODES[0] in text
    assert "红色预警 Ⅰ级 Red (I)" in text
    assert "hz_<b>:1" in text and "<i>" in text  # shown as text, not markup
    assert popup.locator("b, i").count() == 0
    assert "1,000" in text and "300" in text  # population, households
    assert "预计雨量 Rain 24 h" in text and "120.0 mm" in text
    assert "联系人 Contacts" in text and "13800138000" not in text

    page.mouse.click(*session.point(4))  # the village named <script>alert(1)</script>&"
    page.wait_for_function("() => document.querySelector('.leaflet-popup-content').innerText"
                           ".includes('alert')")
    title = page.locator(".leaflet-popup-content .rm-popup-title").inner_text()
    assert title.startswith(EVIL)
    assert page.locator(".leaflet-popup-content script").count() == 0
    assert "无预警 None" in page.locator(".leaflet-popup-content").inner_text()
    assert session.dialogs == [] and session.errors == [] and session.outside == []


def test_feature_popup_and_layer_toggle(session: Session) -> None:
    page = session.page
    labels = page.locator(".leaflet-control-layers-overlays label")
    assert labels.count() == 11  # rain, 9 region layers, villages
    red = session.point(0)
    villages = page.locator(".leaflet-control-layers-overlays label", has_text="Village warnings")
    villages.locator("input").uncheck()
    assert _close(_patch_color(session.pixels(), *red), BACKGROUND)
    villages.locator("input").check()
    assert _close(_patch_color(session.pixels(), *red), _expected(Level.RED))

    rain = page.locator(".leaflet-control-layers-overlays label", has_text="Max 3 h rain")
    villages.locator("input").uncheck()
    assert page.locator(".rm-rain-legend").count() == 0  # off when the page opens
    rain.locator("input").check()
    assert page.locator(".rm-rain-legend").count() == 1
    assert page.locator("img.leaflet-image-layer").get_attribute("src").startswith("data:image/png")
    # by hand (see make_rain): cell (X0+1250, Y0+1750): 5 x 20 x 9500/11500 x (0.5 + 0.5 x 4500/5500) = 75 mm,
    # class 70-140 (#fa00fa); cell (X0+8250, Y0+1750): 19.8 mm, class 15-30 (#61b8ff); a north-south
    # flip would put 49 mm (class 30-70) at the first.  Image alpha 150/255 over the background.
    page.wait_for_timeout(200)
    img = session.pixels()
    for (x, y), hex_color in (((X0 + 1250, Y0 + 1750), "#fa00fa"), ((X0 + 8250, Y0 + 1750), "#61b8ff")):
        got = _patch_color(img, *session.screen(*utm_lonlat(x, y)))
        assert _close(got, _blend(hex_color, 150 / 255)), (x, y, got, hex_color)
    villages.locator("input").check()
    rain.locator("input").uncheck()
    assert page.locator(".rm-rain-legend").count() == 0

    # the hazard site popup, through the page's own layer (the point sits below the villages)
    text = page.evaluate("""() => { const l = riskmap.registry.hazard_sites.getLayers()[0];
                                     l.openPopup(); return l.getPopup().getElement().innerText; }""")
    assert "后山滑坡" in text and "威胁人口 People" in text and "35" in text
    assert session.errors == [] and session.outside == []


def test_township_filter_and_search(session: Session) -> None:
    page = session.page
    page.select_option("select.rm-township", "城关镇")
    assert page.locator(".rm-search-result").inner_text() == "2 个村 villages"
    opacity = page.evaluate("""() => Object.fromEntries(riskmap.registry.villages.getLayers()
                                 .map(l => [l.feature.properties.n, l.options.fillOpacity]))""")
    assert opacity["蓝村"] == 0.05 and opacity["红村"] == FILL_OPACITY[Level.RED]  # others faded
    assert _close(_patch_color(session.pixels(), *session.point(0)), _expected(Level.RED))
    page.select_option("select.rm-township", "")
    page.fill("input.rm-search", "蓝村")
    page.press("input.rm-search", "Enter")
    page.locator(".leaflet-popup-content").wait_for(timeout=3000)
    assert "蓝村" in page.locator(".leaflet-popup-content .rm-popup-title").inner_text()
    assert page.locator(".rm-search-result").inner_text() == "1 个结果 found"
    page.fill("input.rm-search", "不存在")
    page.click("button.rm-search-go")
    assert page.locator(".rm-search-result").inner_text() == "未找到 not found"
    assert session.errors == [] and session.outside == []


@pytest.fixture(scope="module")
def demo_map(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """The embedded demo county (every layer, its forecast) with levels set by hand (code order mod 5)."""
    import pandas as pd

    from riskmap.demo import write_demo
    from riskmap.forecast import open_forecast
    from riskmap.region import load_region

    paths = write_demo(tmp_path_factory.mktemp("demo"))
    region = load_region(paths.region)
    forecast = open_forecast(paths.forecast)
    codes = region.villages["code"].astype(str)
    levels = pd.DataFrame({"village_code": codes, "level": [i % 5 for i in range(len(codes))]})
    m = warning_map(region, levels, rain=forecast, title="青山县 山洪灾害预警",
                    run_time=forecast.attrs["reference_time"])
    return write_map(m, tmp_path_factory.mktemp("demo_map") / "map.html"), region


@pytest.mark.slow
def test_demo_county_map_in_chromium(browser: Any, demo_map: tuple[Path, Any]) -> None:
    import numpy as np

    from riskmap.maps.layers import FEATURE_LAYER_STYLES

    path, region = demo_map
    context = browser.new_context(viewport=VIEWPORT, offline=True, device_scale_factor=1)
    page = context.new_page()
    s = Session(page)
    page.on("console", lambda msg: s.errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: s.errors.append(str(exc)))
    context.route("**/*", lambda r: r.continue_() if r.request.url.startswith(("file:", "data:"))
                  else (s.outside.append(r.request.url), r.abort()))
    try:
        page.goto(path.as_uri())
        page.wait_for_function("() => window.riskmap && riskmap.registry.villages")
        assert page.evaluate("() => riskmap.registry.villages.getLayers().length") == len(region.villages)
        present = [spec for spec in FEATURE_LAYER_STYLES if len(region.layer(spec.layer))]
        assert len(present) == 9  # the demo has every layer
        labels = page.locator(".leaflet-control-layers-overlays label")
        assert labels.count() == len(present) + 2  # + villages + rain
        img = np.asarray(s.pixels()).astype(int)
        for lv in (Level.RED, Level.ORANGE, Level.YELLOW, Level.BLUE):
            want = np.array(_expected(lv))
            assert ((np.abs(img - want) <= 8).all(axis=2)).sum() > 500, lv
        for spec in present:  # every layer's popup, built from the demo's real attributes
            text = page.evaluate("""(key) => { const l = riskmap.registry[key].getLayers()[0];
                                     l.openPopup(); return l.getPopup().getElement().innerText; }""",
                                 spec.layer)
            assert spec.title in text and "编号 Id" in text, spec.layer
        for i in range(labels.count()):  # every overlay toggles off and on
            labels.nth(i).locator("input").click()
            labels.nth(i).locator("input").click()
        assert s.errors == [] and s.outside == []
    finally:
        context.close()
