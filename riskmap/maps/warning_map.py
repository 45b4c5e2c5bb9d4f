"""The interactive warning map: villages filled by warning colour, region layers, rainfall, legends — offline.

The page carries everything it needs (Leaflet 1.9.4 and riskmap's own JS/CSS are inlined from package
data; folium's CDN links for Leaflet, jQuery, Bootstrap and Font Awesome are dropped), draws on a canvas
(``preferCanvas``), and has no basemap unless a tile URL is given.  Phone numbers never reach the page:
popups count contacts only.

Examples
--------
>>> import pandas as pd
>>> from riskmap.maps.example import example_region
>>> region = example_region()
>>> levels = pd.DataFrame({"village_code": region.villages["code"], "level": [4, 0]})
>>> m = warning_map(region, levels, title="演示 Demo", run_time=pd.Timestamp("2026-07-01T00:00Z"))
>>> html = m.get_root().render()
>>> offline_violations(html)
[]
>>> "2026-07-01 08:00" in html
True
"""

from __future__ import annotations

import html
import re
import warnings
from datetime import datetime

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import xarray as xr
from branca.element import Figure, MacroElement
from folium.template import Template

from riskmap.errors import DataWarning, InputError
from riskmap.maps import assets
from riskmap.maps.example import example_region  # noqa: F401  (re-exported for examples)
from riskmap.maps.layers import (
    FEATURE_LAYER_STYLES,
    JsLayer,
    clean,
    feature_collection,
    feature_layer,
    safe_json,
    to_display,
)
from riskmap.maps.legend import (
    layers_legend_html,
    level_config,
    level_legend_html,
    rain_legend_html,
    title_html,
)
from riskmap.maps.offline import OfflineMap, RawHtml, offline_violations, write_map  # noqa: F401
from riskmap.maps.rain_overlay import colorize, max_accumulation, overlay_image, rain_classes
from riskmap.region import Region

VILLAGES_LAYER_NAME = "行政村预警 Village warnings"
_RAIN_COL = re.compile(r"^rain_(\d+(?:\.\d+)?)h(?:_mm)?$")
_ACK_COLS = ("ack", "acknowledged", "ack_status")


class _MapChrome(MacroElement):
    """Title, legends and the township filter/search, wired to the map and its layers."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            (function (map) {
                riskmap.registry.map = map;
                riskmap.title(map, {{ this.title }});
                riskmap.htmlControl(map, "bottomright", "rm-legend rm-level-legend", {{ this.level_legend }});
                {%- if this.rain_layer %}
                riskmap.htmlControl(map, "bottomright", "rm-legend rm-rain-legend", {{ this.rain_legend }},
                                    {{ this.rain_layer }});
                {%- endif %}
                {%- if this.layers_legend %}
                riskmap.htmlControl(map, "bottomleft", "rm-legend rm-layers-legend",
                                    {{ this.layers_legend }});
                {%- endif %}
                riskmap.filterControl(map, {{ this.villages }}, {{ this.townships }});
            }({{ this._parent.get_name() }}));
        {% endmacro %}
        """
    )

    def __init__(self, **parts: object):
        super().__init__()
        self._name = "RiskmapChrome"
        for key, value in parts.items():
            setattr(self, key, value)


def local_time_label(run_time: datetime | pd.Timestamp | str, tz: str = "Asia/Shanghai") -> str:
    """The run time as people read it, e.g. ``2026-07-01 08:00 北京时间 (UTC+08:00)``.

    Examples
    --------
    >>> local_time_label("2026-07-01T00:00:00Z")
    '2026-07-01 08:00 北京时间 (UTC+08:00)'
    >>> local_time_label("2026-07-01T00:00:00+00:00", tz="UTC")
    '2026-07-01 00:00 UTC (UTC+00:00)'
    """
    ts = pd.Timestamp(run_time)
    if ts.tzinfo is None:
        raise InputError(f"run_time {run_time!r} has no time zone: give it an offset, e.g. +08:00")
    local = ts.tz_convert(tz)
    offset = local.strftime("%z")
    zone = "北京时间" if tz in ("Asia/Shanghai", "Asia/Chongqing", "PRC") else tz
    return f"{local:%Y-%m-%d %H:%M} {zone} (UTC{offset[:3]}:{offset[3:]})"


def village_table(region: Region, levels: pd.DataFrame) -> pd.DataFrame:
    """Villages joined with their levels (level 0 when missing, with a warning) and their contact counts.

    Raises
    ------
    InputError
        When ``levels`` lacks ``village_code`` or ``level``, repeats a code, or has a level outside 0-4.
    """
    for col in ("village_code", "level"):
        if col not in levels.columns:
            raise InputError(f"levels: missing column {col!r} (expected the columns of OUT/levels.csv)")
    lv = levels.copy()
    lv["village_code"] = lv["village_code"].astype(str).str.strip()
    dup = lv["village_code"][lv["village_code"].duplicated()]
    if len(dup):
        raise InputError(f"levels: village_code {dup.iloc[0]} appears more than once")
    bad = ~lv["level"].isin([0, 1, 2, 3, 4])
    if bad.any():
        row = lv[bad].iloc[0]
        raise InputError(f"levels: village_code {row['village_code']}: level {row['level']} is not 0-4")
    codes = region.villages["code"].astype(str)
    known = set(codes)
    unknown = [c for c in lv["village_code"] if c not in known]
    if unknown:
        warnings.warn(f"levels: {len(unknown)} village codes are not in the region (first {unknown[0]}); "
                      "they are not drawn", DataWarning, stacklevel=3)
    lv = lv.set_index("village_code")
    missing = [c for c in codes if c not in lv.index]
    if missing:
        warnings.warn(f"levels: {len(missing)} villages of the region have no row (first {missing[0]}); "
                      "they are drawn as level 0", DataWarning, stacklevel=3)
    table = pd.DataFrame(region.villages.drop(columns="geometry"))
    table["code"] = codes.values
    if "township" not in table.columns:  # no names: townships by their 9-digit code prefix
        table["township"] = codes.str[:9].values
    joined = lv.reindex(codes.values)
    joined.index = table.index
    table["level"] = joined["level"].fillna(0).astype(int).values
    for col in ("hazards", "reasons", "score", *_ACK_COLS):
        if col in joined.columns:
            table[f"_lv_{col}"] = joined[col].values
    rain_cols = sorted((c for c in joined.columns if _RAIN_COL.match(str(c))),
                       key=lambda c: float(_RAIN_COL.match(str(c)).group(1)))  # type: ignore[union-attr]
    windows = [(f"{_RAIN_COL.match(c).group(1)} h", joined[c].tolist())  # type: ignore[union-attr]
               for c in rain_cols]
    table["_rain"] = [[[label, clean(values[i])] for label, values in windows] for i in range(len(joined))]
    contacts = region.contacts
    if "admin_code" in contacts.columns and len(contacts):
        counts = contacts["admin_code"].astype(str).str.strip().value_counts()
        table["_contacts"] = codes.map(counts).fillna(0).astype(int).values
    else:
        table["_contacts"] = 0
    return table


def village_properties(table: pd.DataFrame) -> list[dict[str, object]]:
    """The compact popup/style properties of each village (keys read by ``warning_map.js``).

    ``c`` code, ``n`` name, ``t`` township, ``l`` level, ``h`` hazards, ``r`` reasons, ``s`` score,
    ``w`` expected rain per window ``[[label, mm], …]``, ``p`` population, ``hh`` households,
    ``k`` number of contacts (never their numbers), ``a`` acknowledgement status.
    """
    ack = next((f"_lv_{c}" for c in _ACK_COLS if f"_lv_{c}" in table.columns), None)
    n = len(table)
    sources = {"n": "name", "t": "township", "h": "_lv_hazards", "r": "_lv_reasons", "s": "_lv_score",
               "p": "population", "hh": "households", "a": ack}
    columns = {key: table[col].tolist() if col is not None and col in table.columns else [None] * n
               for key, col in sources.items()}
    codes, levels, contacts, rain = (table[c].tolist() for c in ("code", "level", "_contacts", "_rain"))
    props = []
    for i in range(n):
        p: dict[str, object] = {"c": codes[i], "l": int(levels[i]), "k": int(contacts[i])}
        for key, values in columns.items():
            value = clean(values[i])
            if value is not None and value != "":
                p[key] = value
        if rain[i]:
            p["w"] = rain[i]
        props.append(p)
    return props


def auto_simplify_m(villages: gpd.GeoDataFrame) -> float:
    """Display simplification tolerance (m): none up to 2,000 villages, then 2 % of a typical village's width.

    Capped at 100 m.
    """
    if len(villages) <= 2000:
        return 0.0
    areas = villages.geometry.area
    areas = areas[areas > 0]
    if not len(areas):
        return 0.0
    return float(min(100.0, 0.02 * np.sqrt(np.median(areas))))


def warning_map(region: Region, levels: pd.DataFrame, *, rain: xr.DataArray | None = None,
                title: str, run_time: datetime | pd.Timestamp | str, tz: str = "Asia/Shanghai",
                tiles: str | None = None, tiles_attr: str | None = None, rain_window_h: float | None = 24,
                simplify_m: float | None = None, show_rain: bool = False) -> folium.Map:
    """Build the offline warning map.

    Parameters
    ----------
    region
        The region; every vector layer is reprojected to EPSG:4326 for display.
    levels
        One row per village with the columns of ``OUT/levels.csv``; optional extra columns
        ``rain_<N>h`` (expected rain per window, mm) and ``ack`` (acknowledgement status) go into popups.
    rain
        Optional rainfall with a CRS (rioxarray): (time, y, x) in mm per interval, drawn as the largest
        ``rain_window_h``-hour accumulation (the total when None), or (y, x) already accumulated.
    title, run_time, tz
        The title and the run's time (timezone-aware), shown in ``tz`` (Beijing time by default).
    tiles, tiles_attr
        An optional basemap tile URL template and its attribution; no basemap when None (offline).
    simplify_m
        Display simplification tolerance in metres; :func:`auto_simplify_m` when None.
    show_rain
        Whether the rainfall overlay is on when the page opens (it is always in the layer control).

    Returns
    -------
    folium.Map
        Write it with :func:`write_map`.
    """
    stamp = local_time_label(run_time, tz)
    villages = region.villages
    if not len(villages):
        raise InputError("villages: the region has no villages to draw")
    tol = auto_simplify_m(villages) if simplify_m is None else float(simplify_m)
    table = village_table(region, levels)
    order = np.argsort(table["level"].to_numpy(), kind="stable")  # most severe drawn last (on top)
    geoms = to_display(villages, tol)
    west, south, east, north = geoms.total_bounds

    m = OfflineMap(location=[(south + north) / 2, (west + east) / 2], tiles=None, prefer_canvas=True,
                   control_scale=True, zoom_snap=0.25)
    fig = m.get_root()
    assert isinstance(fig, Figure)
    fig.header.add_child(RawHtml(assets.inline_style(assets.leaflet_css())), name="leaflet_css")
    fig.header.add_child(RawHtml(assets.inline_style(assets.riskmap_css())), name="riskmap_css")
    fig.header.add_child(RawHtml(assets.inline_script(assets.leaflet_js())), name="leaflet_js")
    fig.header.add_child(RawHtml(assets.inline_script(assets.riskmap_js())), name="riskmap_js")
    fig.title = html.escape(title)  # branca writes <title> unescaped
    if tiles:
        folium.TileLayer(tiles=tiles, attr=tiles_attr or "basemap", name="底图 Basemap",
                         overlay=False, control=False).add_to(m)

    rain_layer = None
    rain_legend = ""
    if rain is not None:
        acc = max_accumulation(rain, rain_window_h)
        bins, colors = rain_classes(rain_window_h)
        values, bounds, peak = overlay_image(acc)
        if rain_window_h and rain.ndim == 3:
            label = f"最大{rain_window_h:g}小时雨量 Max {rain_window_h:g} h rain"
        else:
            label = "累计雨量 Rain total"
        folium.map.CustomPane("rmRain", z_index=350, pointer_events=False).add_to(m)
        rain_layer = folium.raster_layers.ImageOverlay(
            colorize(values, bins, colors, alpha=150), bounds=bounds, name=f"{label} (max {peak:.0f} mm)",
            pane="rmRain", interactive=False, show=show_rain, zindex=1)
        rain_layer.add_to(m)
        rain_legend = rain_legend_html(bins, colors, label)

    present = [s for s in FEATURE_LAYER_STYLES if len(region.layer(s.layer))]
    names = {}
    if len(region.reservoirs) and "name" in region.reservoirs.columns:
        res = region.reservoirs
        names = dict(zip(res["id"].astype(str), res["name"].astype(str), strict=True))
    for spec in (s for s in present if s.kind == "area"):
        feature_layer(spec, region.layer(spec.layer), simplify_m=tol, names=names).add_to(m)
    props = village_properties(table)
    data = feature_collection(geoms.iloc[order], [props[i] for i in order])
    villages_layer = JsLayer("villageLayer", data, level_config(len(villages)), name=VILLAGES_LAYER_NAME)
    villages_layer.add_to(m)
    for spec in (s for s in present if s.kind != "area"):
        feature_layer(spec, region.layer(spec.layer), simplify_m=tol, names=names).add_to(m)

    counts = table["level"].value_counts().to_dict()
    townships = sorted({str(t) for t in table.get("township", pd.Series(dtype=str)).dropna()})
    symbols = [(s.title, s.kind, s.style) for s in present]
    _MapChrome(
        title=safe_json(title_html(title, f"运行时间 Run time: {stamp}")),
        level_legend=safe_json(level_legend_html({int(k): int(v) for k, v in counts.items()})),
        rain_layer=rain_layer.get_name() if rain_layer is not None else "",
        rain_legend=safe_json(rain_legend),
        layers_legend=safe_json(layers_legend_html(symbols)) if symbols else "",
        villages=villages_layer.get_name(),
        townships=safe_json(townships),
    ).add_to(m)
    folium.LayerControl(position="topright", collapsed=False).add_to(m)
    m.fit_bounds([[south, west], [north, east]])
    return m
