"""Toggleable map layers: compact inline GeoJSON drawn by the vendored riskmap JS (canvas, no images).

Each feature layer of the region becomes one overlay in the layer control; points are circle markers
(no marker images), lines and areas are canvas paths.  Data goes into the page as JSON that is safe inside a
``<script>`` element (``<``, ``>``, ``&`` escaped), and every text is escaped again in the popup.

Examples
--------
>>> safe_json({"name": "</script>&"})
'{"name":"\\\\u003c/script\\\\u003e\\\\u0026"}'
>>> [s.layer for s in FEATURE_LAYER_STYLES][:3]
['reservoir_zones', 'detention_areas', 'rivers']
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from folium.map import Layer
from folium.template import Template

from riskmap.schema import RESERVOIR_SCALES

COORD_DECIMALS = 5
"""Decimal places of displayed longitudes/latitudes (about 1 m)."""

_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def safe_json(obj: object) -> str:
    """JSON text that can sit inside an HTML ``<script>`` element (no ``</script>``, no ``&``)."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for char, repl in _JSON_ESCAPES.items():
        text = text.replace(char, repl)
    return text


def to_display(gdf: gpd.GeoDataFrame, simplify_m: float = 0.0) -> gpd.GeoSeries:
    """Geometries simplified (in the metric CRS, topology kept) and reprojected to EPSG:4326."""
    geom = gdf.geometry
    if simplify_m > 0 and len(geom):
        geom = geom.simplify(simplify_m, preserve_topology=True)
    if geom.crs is not None:
        geom = geom.to_crs(4326)
    return geom


def feature_collection(geoms: gpd.GeoSeries, properties: Sequence[dict[str, object]]) -> str:
    """A GeoJSON FeatureCollection string, coordinates rounded to :data:`COORD_DECIMALS`."""
    values = np.asarray(geoms.values, dtype=object)
    rounded = shapely.transform(values, lambda c: np.round(c, COORD_DECIMALS))
    texts = shapely.to_geojson(rounded)
    feats = [
        '{"type":"Feature","geometry":' + (g if g is not None else "null")
        + ',"properties":' + safe_json(p) + "}"
        for g, p in zip(texts, properties, strict=True)
    ]
    return '{"type":"FeatureCollection","features":[' + ",".join(feats) + "]}"


def clean(value: object) -> object:
    """A JSON-ready scalar: NaN/None → None, numpy numbers → Python, other values as text."""
    if value is None:
        return None
    if isinstance(value, float | np.floating):
        return None if np.isnan(value) else round(float(value), 3)
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if pd.isna(value):
        return None
    return str(value)


class JsLayer(Layer):
    """An overlay built in the page by ``riskmap.<factory>(data, options)`` from the vendored JS."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            var {{ this.get_name() }} = riskmap.{{ this.factory }}({{ this.data }}, {{ this.options }});
        {% endmacro %}
        """
    )

    def __init__(self, factory: str, data: str, options: dict[str, object], name: str, show: bool = True):
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "RiskmapLayer"
        self.factory = factory
        self.data = data
        self.options = safe_json(options)


@dataclass(frozen=True)
class LayerStyle:
    """How one feature layer of the region is drawn."""

    layer: str
    title: str
    kind: str
    """``point``, ``line`` or ``area`` (mines may mix points and areas)."""
    style: dict[str, object]
    fields: tuple[tuple[str, str], ...] = field(default=())


_POINT = {"radius": 5, "weight": 1.5, "opacity": 1.0, "fillOpacity": 0.9}
FEATURE_LAYER_STYLES: tuple[LayerStyle, ...] = (
    LayerStyle("reservoir_zones", "水库下游危险区 Reservoir danger zones", "area",
               {"color": "#6a51a3", "weight": 1.5, "dashArray": "5 4", "fillColor": "#9e9ac8",
                "fillOpacity": 0.12},
               (("水库 Reservoir", "reservoir_id"), ("编号 Id", "id"))),
    LayerStyle("detention_areas", "蓄滞洪区 Detention areas", "area",
               {"color": "#006d2c", "weight": 1.5, "dashArray": "2 4", "fillColor": "#74c476",
                "fillOpacity": 0.12},
               (("编号 Id", "id"),)),
    LayerStyle("rivers", "河流 Rivers", "line", {"color": "#2c7fb8", "weight": 2, "opacity": 0.9},
               (("等级 Grade", "grade"), ("编号 Id", "id"))),
    LayerStyle("reservoirs", "水库 Reservoirs (大小按规模, 洋红粗边=病险)", "point",
               {**_POINT, "color": "#08306b", "fillColor": "#4292c6"},
               (("规模 Scale", "scale"), ("状态 Status", "status"), ("库容 Storage m³", "storage_m3"),
                ("编号 Id", "id"))),
    LayerStyle("hazard_sites", "地质灾害隐患点 Geohazard sites", "point",
               {**_POINT, "color": "#4d2600", "fillColor": "#a65e2e"},
               (("类型 Kind", "kind"), ("威胁人口 People", "threatened_people"),
                ("威胁户数 Households", "threatened_households"), ("编号 Id", "id"))),
    LayerStyle("mines", "矿山 Mines", "point",
               {**_POINT, "color": "#000000", "fillColor": "#525252", "fillOpacity": 0.7},
               (("类型 Kind", "kind"), ("从业人员 Workers", "workers"), ("编号 Id", "id"))),
    LayerStyle("flood_points", "易涝点 Flood points", "point",
               {**_POINT, "radius": 4, "color": "#014636", "fillColor": "#02818a"},
               (("类型 Kind", "kind"), ("编号 Id", "id"))),
    LayerStyle("shelters", "避险安置点 Shelters", "point",
               {**_POINT, "color": "#00441b", "fillColor": "#41ab5d"},
               (("容量 Capacity", "capacity"), ("编号 Id", "id"))),
    LayerStyle("vulnerable_sites", "重点防护对象 Vulnerable sites", "point",
               {**_POINT, "radius": 4, "color": "#3f007d", "fillColor": "#807dba"},
               (("类型 Kind", "kind"), ("编号 Id", "id"))),
)
"""Drawing order of the feature layers: areas under everything, then lines, then points."""

_RESERVOIR_RADIUS = {1: 12, 2: 10, 3: 8, 4: 6, 5: 5}


def reservoir_scale_code(scale: object) -> int | None:
    """Scale code 1 (大(1)型) … 5 (小(2)型) from a name or code; None when unknown.

    Examples
    --------
    >>> reservoir_scale_code("中型"), reservoir_scale_code(5), reservoir_scale_code("?")
    (3, 5, None)
    """
    if scale is None or (isinstance(scale, float) and np.isnan(scale)):
        return None
    text = str(scale).strip()
    if text in RESERVOIR_SCALES:
        return RESERVOIR_SCALES[text]
    try:
        code = int(float(text))
    except ValueError:
        return None
    return code if 1 <= code <= 5 else None


def _feature_style(spec: LayerStyle, row: pd.Series) -> dict[str, object] | None:
    if spec.layer != "reservoirs":
        return None
    style: dict[str, object] = {}
    code = reservoir_scale_code(row.get("scale"))
    if code is not None:
        style["radius"] = _RESERVOIR_RADIUS[code]
    if str(row.get("status", "")).strip() == "病险":
        style.update({"color": "#c51b8a", "weight": 4})
    return style or None


def feature_layer(spec: LayerStyle, gdf: gpd.GeoDataFrame, *, simplify_m: float = 0.0,
                  names: dict[str, str] | None = None, show: bool = True) -> JsLayer:
    """One region layer as a toggleable overlay; ``names`` maps reservoir ids to names for zone popups."""
    geoms = to_display(gdf, simplify_m if spec.kind != "point" else 0.0)
    props: list[dict[str, object]] = []
    for _, row in gdf.iterrows():
        p: dict[str, object] = {"name": clean(row.get("name", row.get("id")))}
        for _label, col in spec.fields:
            if col in row.index:
                p[col] = clean(row[col])
        if spec.layer == "reservoir_zones" and names:
            rid = clean(row.get("reservoir_id"))
            p["name"] = f"{names.get(str(rid), rid)} 下游危险区"
        style = _feature_style(spec, row)
        if style:
            p["_s"] = style
        props.append(p)
    options = {"key": spec.layer, "title": spec.title, "style": spec.style,
               "fields": [list(f) for f in spec.fields], "area": spec.kind == "area"}
    return JsLayer("featureLayer", feature_collection(geoms, props), options, name=spec.title, show=show)
