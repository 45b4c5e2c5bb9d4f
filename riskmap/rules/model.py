"""The rule model: frozen dataclasses a rule file is parsed into.

A :class:`RuleSet` holds one :class:`HazardRule` per hazard id.  A hazard rule has
one :class:`LevelSpec` per level it can give (with the level's lead-time horizon and
whether it is internal), each with the :class:`Condition` s of which *any one*
gives the level.  A condition compares a village feature (a rainfall window
accumulation, effective rainfall, or another hazard's level) with a
:class:`Threshold`; :class:`ContextTest` s on static context restrict where a rule or a
condition applies, and :class:`Escalation` s raise a level where a test holds
(e.g. a 病险 reservoir).

Examples
--------
>>> c = Condition(id="rs/red/1", feature="rain", statistic="max", window_h=3, threshold=Threshold(mm=100.0))
>>> c.describe("en-US")
'3 h rainfall (village maximum) >= 100 mm'
>>> c.describe("zh-CN")
'3小时累计雨量(村内最大)≥100毫米'
>>> ContextTest("hazard_sites", ">=", 1).describe("en-US")
'hazard_sites >= 1'
"""

from __future__ import annotations

from dataclasses import dataclass, field

HAZARDS: dict[str, tuple[str, str]] = {
    "rainstorm": ("暴雨洪涝风险", "rainstorm flood risk"),
    "torrent": ("山洪灾害风险", "mountain torrent risk"),
    "geohazard": ("地质灾害风险", "geological hazard risk"),
    "reservoir": ("水库下游风险", "reservoir downstream risk"),
    "waterlogging": ("城乡内涝风险", "waterlogging risk"),
    "mine": ("矿山暴雨风险", "mine rainstorm risk"),
}
"""Hazard ids rule files may use → (Chinese name, English name)."""

STATISTICS: dict[str, tuple[str, str]] = {
    "mean": ("村平均", "village mean"),
    "max": ("村内最大", "village maximum"),
}
"""Statistics of rainfall over a village → (Chinese, English) words."""

RAIN_FEATURES = ("rain", "effective_rain")
"""Rainfall features: window accumulations (need ``window_h``) and effective rainfall."""

LEVEL_FEATURE = "hazard_level"
"""Feature naming another hazard's level at the same village (e.g. the mine rule reads rainstorm)."""

LOCATIONS = ("village", "reservoir")
"""Where a rainfall feature is read: over the village, or over its governing reservoir's village."""

CONTEXT_FEATURES: dict[str, tuple[str, str]] = {
    "population": ("人口", "population"),
    "households": ("户数", "households"),
    "touches_river": ("临河", "touches a river"),
    "river_distance_m": ("距河距离(米)", "distance to river (m)"),
    "in_reservoir_zone": ("位于水库下游危险区", "in a reservoir downstream zone"),
    "reservoir_scale": ("水库规模代码", "reservoir scale code"),
    "reservoir_unsafe": ("病险水库", "unsafe (病险) reservoir"),
    "hazard_sites": ("附近地质灾害隐患点数", "hazard sites nearby"),
    "threatened_people": ("隐患点威胁人数", "people threatened by hazard sites"),
    "threatened_households": ("隐患点威胁户数", "households threatened by hazard sites"),
    "mines": ("矿山数", "mines in or near the village"),
    "mine_workers": ("矿山人数", "mine workers"),
    "flood_points": ("易涝点数", "flood points inside"),
    "detention_overlap": ("位于蓄滞洪区", "overlaps a detention area"),
    "vulnerable_sites": ("重点防护对象数", "vulnerable sites inside"),
    "shelter_distance_m": ("距避险点距离(米)", "distance to the nearest shelter (m)"),
    "has_critical_rainfall": ("有临界雨量指标", "has critical-rainfall indicators"),
    "soil_state": ("土壤状态(0干1中2湿)", "soil state (0 dry, 1 normal, 2 wet)"),
}
"""Numeric per-village context features usable in ``where`` / ``applies_where`` / ``escalate``."""

CRITICAL_COLUMNS = ("prepare", "immediate")
"""Columns of the critical-rainfall table a threshold can name (准备转移, 立即转移)."""

DEFAULT_HORIZONS_H: dict[int, float] = {1: 72.0, 2: 48.0, 3: 24.0, 4: 12.0}
"""Default lead-time horizon per level (blue 72 h, yellow 48 h, orange 24 h, red 12 h)."""

_OPS_ZH = {">=": "≥", "<=": "≤", "==": "="}


@dataclass(frozen=True)
class ContextTest:
    """A test on one static context feature, e.g. ``hazard_sites >= 1``."""

    feature: str
    op: str
    """``>=``, ``<=`` or ``==``."""
    value: float

    def describe(self, language: str = "zh-CN") -> str:
        """Plain words for the test."""
        v = f"{self.value:g}"
        if language.startswith("zh"):
            return f"{CONTEXT_FEATURES.get(self.feature, (self.feature,))[0]}{_OPS_ZH[self.op]}{v}"
        return f"{self.feature} {self.op} {v}"


@dataclass(frozen=True)
class Threshold:
    """A constant (``mm``), a per-village critical rainfall (``critical`` × ``fraction``) or a level."""

    mm: float | None = None
    critical: str | None = None
    """``prepare`` or ``immediate`` from the region's critical-rainfall table (per village soil state)."""
    fraction: float = 1.0
    level: int | None = None
    """For ``hazard_level`` conditions: the other hazard's level must be at least this."""

    @property
    def kind(self) -> str:
        """``mm``, ``critical`` or ``level``."""
        if self.level is not None:
            return "level"
        return "critical" if self.critical else "mm"

    @property
    def order(self) -> float:
        """The number compared across levels when checking that thresholds rise."""
        if self.level is not None:
            return float(self.level)
        return self.fraction if self.critical else float(self.mm or 0.0)

    def describe(self, language: str = "zh-CN") -> str:
        """Plain words for the threshold."""
        zh = language.startswith("zh")
        if self.level is not None:
            from riskmap.levels import Level

            lv = Level(self.level)
            return f"{lv.color_zh}及以上" if zh else f"{lv.color} or above"
        if self.critical:
            name = ("准备转移" if self.critical == "prepare" else "立即转移") if zh else self.critical
            frac = "" if self.fraction == 1.0 else (f"×{self.fraction:g}")
            return f"{name}临界雨量{frac}" if zh else f"{name} critical rainfall{frac}"
        return f"{self.mm:g}毫米" if zh else f"{self.mm:g} mm"


@dataclass(frozen=True)
class Condition:
    """One trigger: feature (statistic, window, location) ≥ threshold, where the ``where`` tests hold."""

    id: str
    feature: str
    statistic: str = ""
    window_h: int = 0
    threshold: Threshold = field(default_factory=Threshold)
    at: str = "village"
    hazard: str = ""
    """For ``hazard_level``: the hazard whose level is read."""
    where: tuple[ContextTest, ...] = ()
    why: str = ""

    @property
    def key(self) -> tuple[object, ...]:
        """Conditions with equal keys must have thresholds rising with level."""
        return (
            self.feature,
            self.statistic,
            self.window_h,
            self.at,
            self.hazard,
            self.threshold.kind,
            self.threshold.critical,
            self.where,
        )

    def describe(self, language: str = "zh-CN") -> str:
        """Plain words: what is compared with what."""
        zh = language.startswith("zh")
        if self.feature == LEVEL_FEATURE:
            name = HAZARDS.get(self.hazard, (self.hazard, self.hazard))
            return (
                f"{name[0]}等级{self.threshold.describe(language)}"
                if zh
                else f"{name[1]} level {self.threshold.describe(language)}"
            )
        stat = STATISTICS.get(self.statistic, (self.statistic, self.statistic))
        where_zh = "水库周边" if self.at == "reservoir" else ""
        where_en = " over the reservoir" if self.at == "reservoir" else ""
        if self.feature == "effective_rain":
            what = f"{where_zh}有效降雨量({stat[0]})" if zh else f"effective rainfall{where_en} ({stat[1]})"
        else:
            what = (
                f"{where_zh}{self.window_h}小时累计雨量({stat[0]})"
                if zh
                else f"{self.window_h} h rainfall{where_en} ({stat[1]})"
            )
        return (
            f"{what}≥{self.threshold.describe(language)}"
            if zh
            else f"{what} >= {self.threshold.describe(language)}"
        )


@dataclass(frozen=True)
class LevelSpec:
    """One level of a hazard rule: any condition gives it, within the lead-time horizon."""

    level: int
    conditions: tuple[Condition, ...]
    horizon_h: float
    """Rain in windows ending later than ``now + horizon_h`` cannot give this level."""
    internal: bool = False
    """Shown to the office and on the map, never sent to the public."""


@dataclass(frozen=True)
class Escalation:
    """Raise a level by ``by`` (at most to red) where every test in ``when`` holds."""

    id: str
    when: tuple[ContextTest, ...]
    by: int = 1
    reason_zh: str = ""
    reason_en: str = ""


@dataclass(frozen=True)
class SoilStateSpec:
    """How a village's antecedent soil state is chosen from its (antecedent) effective rainfall."""

    normal_from_mm: float
    wet_from_mm: float
    statistic: str = "mean"
    source: str = ""


@dataclass(frozen=True)
class HazardRule:
    """All levels of one hazard, from one rule file."""

    id: str
    hazard: str
    levels: tuple[LevelSpec, ...]
    """Most severe first."""
    file: str = ""
    applies_where: tuple[ContextTest, ...] = ()
    escalations: tuple[Escalation, ...] = ()
    action_zh: str = ""
    action_en: str = ""

    def name(self, language: str = "zh-CN") -> str:
        """The hazard's display name."""
        zh, en = HAZARDS[self.hazard]
        return zh if language.startswith("zh") else en

    def level_spec(self, level: int) -> LevelSpec | None:
        """The spec of one level, or None."""
        return next((s for s in self.levels if s.level == level), None)

    @property
    def needs(self) -> tuple[str, ...]:
        """Other hazards whose levels this rule reads."""
        return tuple(
            sorted({c.hazard for s in self.levels for c in s.conditions if c.feature == LEVEL_FEATURE})
        )


@dataclass(frozen=True)
class RuleSet:
    """Every enabled hazard rule of a rule folder, in evaluation order."""

    rules: tuple[HazardRule, ...]
    soil: SoilStateSpec | None = None
    context_params: tuple[tuple[str, float], ...] = ()
    """Distances for the static context (from the files' ``context:`` sections)."""
    source: str = ""

    @property
    def hazards(self) -> tuple[str, ...]:
        """Hazard ids in evaluation order."""
        return tuple(r.hazard for r in self.rules)

    def rule(self, hazard: str) -> HazardRule:
        """The rule of one hazard."""
        for r in self.rules:
            if r.hazard == hazard:
                return r
        raise KeyError(hazard)

    def rain_keys(self) -> set[tuple[str, int, float]]:
        """(statistic, window_h, horizon_h) of every rainfall window a condition reads."""
        return {
            (c.statistic, c.window_h, s.horizon_h)
            for r in self.rules
            for s in r.levels
            for c in s.conditions
            if c.feature == "rain"
        }

    def critical_windows(self) -> set[int]:
        """Durations whose critical rainfall is read."""
        return {
            c.window_h for r in self.rules for s in r.levels for c in s.conditions if c.threshold.critical
        }
