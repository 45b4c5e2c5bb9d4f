"""The region data contract: which layers exist, their geometry and columns.

One declarative table used by the loader (:mod:`riskmap.region`), the checker
(:mod:`riskmap.check`), the demo generator and the docs (``layers/README.md``).

Examples
--------
>>> LAYERS["villages"].required
('code', 'name', 'population', 'households')
>>> sorted(n for n, s in LAYERS.items() if s.kind == "table")
['contacts', 'critical_rainfall']
"""

from __future__ import annotations

from dataclasses import dataclass

POINT = ("Point",)
LINE = ("LineString", "MultiLineString")
POLYGON = ("Polygon", "MultiPolygon")


@dataclass(frozen=True)
class LayerSpec:
    """One layer of a region."""

    name: str
    kind: str
    """``vector`` (a GeoDataFrame) or ``table`` (a DataFrame)."""
    geometry: tuple[str, ...]
    """Allowed geometry types (empty for tables)."""
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    mandatory: bool = False
    """Whether the layer itself must be present."""
    id_column: str | None = "id"
    """Column unique within the layer, used by links."""
    title_zh: str = ""


LAYERS: dict[str, LayerSpec] = {
    s.name: s
    for s in (
        LayerSpec("villages", "vector", POLYGON + POINT, ("code", "name", "population", "households"),
                  ("township", "county"), mandatory=True, id_column="code", title_zh="行政村"),
        LayerSpec("rivers", "vector", LINE, ("id", "name"), ("grade",), title_zh="河流"),
        LayerSpec("reservoirs", "vector", POINT, ("id", "name", "scale"), ("storage_m3", "status"),
                  title_zh="水库"),
        LayerSpec("reservoir_zones", "vector", POLYGON, ("id", "reservoir_id"), title_zh="水库下游危险区"),
        LayerSpec("flood_points", "vector", POINT, ("id", "name", "kind"), title_zh="易涝点"),
        LayerSpec("hazard_sites", "vector", POINT,
                  ("id", "name", "kind", "threatened_people", "threatened_households"),
                  title_zh="地质灾害隐患点"),
        LayerSpec("mines", "vector", POINT + POLYGON, ("id", "name", "kind", "workers"), title_zh="矿山"),
        LayerSpec("detention_areas", "vector", POLYGON, ("id", "name"), title_zh="蓄滞洪区"),
        LayerSpec("shelters", "vector", POINT, ("id", "name", "capacity"), title_zh="避险安置点"),
        LayerSpec("vulnerable_sites", "vector", POINT, ("id", "name", "kind"), title_zh="重点防护对象"),
        LayerSpec("contacts", "table", (), ("name", "phone", "role"),
                  ("admin_code", "feature_layer", "feature_id", "household_id", "lon", "lat", "drill"),
                  id_column=None, title_zh="责任人与联系人"),
        LayerSpec("critical_rainfall", "table", (),
                  ("village_code", "duration_h", "soil", "prepare_mm", "immediate_mm"),
                  id_column=None, title_zh="临界雨量"),
    )
}
"""Every layer riskmap knows, by name."""

RESERVOIR_SCALES: dict[str, int] = {
    "大(1)型": 1, "大（1）型": 1, "大1型": 1,
    "大(2)型": 2, "大（2）型": 2, "大2型": 2,
    "中型": 3,
    "小(1)型": 4, "小（1）型": 4, "小1型": 4,
    "小(2)型": 5, "小（2）型": 5, "小2型": 5,
}
"""Reservoir scale names (SL 252-2017) to codes 1-5; the codes themselves are accepted too."""

RESERVOIR_STATUS = ("正常", "病险")

ROLES: dict[str, str] = {
    "county_duty": "县值班",
    "township_duty": "乡镇值班",
    "village_head": "村责任人",
    "grid_member": "网格员",
    "household": "户",
    "keeper": "责任人",
}
"""Contact roles: id → Chinese name (either is accepted in the contacts table)."""

SOIL_STATES = ("dry", "normal", "wet")
"""Antecedent soil states of the critical-rainfall table (较干, 一般, 较湿)."""

HAZARD_KINDS = ("滑坡", "泥石流", "崩塌", "地面塌陷")
MINE_KINDS = ("井工", "露天", "尾矿库", "采煤沉陷区")
FLOOD_POINT_KINDS = ("易涝点", "涵洞", "下穿通道", "地下空间")

FEATURE_LAYERS = ("rivers", "reservoirs", "reservoir_zones", "flood_points", "hazard_sites", "mines",
                  "detention_areas", "shelters", "vulnerable_sites")
"""Layers whose features can have a keeper (责任人) in ``contacts``."""
