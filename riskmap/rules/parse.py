"""Parse and validate one rule file (YAML text or parsed data) into a :class:`HazardRule`.

Rule files start with ``kind: hazard_rules``; see :mod:`riskmap.rules.loader` for folders and the
file format reference in ``warning_rules/RULES.md``.  Every error is a
:class:`~riskmap.errors.RuleError` naming the file, the rule and the key.

Examples
--------
>>> text = '''
... kind: hazard_rules
... id: demo
... hazard: rainstorm
... levels:
...   red:
...     - {feature: rain, statistic: max, window_h: 3, threshold_mm: 100}
...   orange:
...     - {feature: rain, statistic: max, window_h: 3, threshold_mm: 150}
... '''
>>> parse_rule_text(text, "demo.yaml")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
riskmap.errors.RuleError: demo.yaml: rule 'demo', key 'levels.red[0].threshold_mm': 100 mm at red ...
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from riskmap.errors import InputError, RuleError
from riskmap.levels import Level
from riskmap.rules.model import (
    CONTEXT_FEATURES,
    CRITICAL_COLUMNS,
    DEFAULT_HORIZONS_H,
    HAZARDS,
    LEVEL_FEATURE,
    LOCATIONS,
    RAIN_FEATURES,
    STATISTICS,
    Condition,
    ContextTest,
    Escalation,
    HazardRule,
    LevelSpec,
    Threshold,
)

RULE_KIND = "hazard_rules"
"""The ``kind`` of a rule file."""
OTHER_FILES = ("routing.yaml", "templates.yaml")
"""Files in the rules folder that belong to other modules (skipped even without ``kind``)."""
CONTEXT_PARAMS = tuple(
    "river_distance_m hazard_site_distance_m mine_distance_m downstream_distance_m "
    "downstream_buffer_m point_village_radius_m".split()
)
"""Keys allowed in a rule file's ``context:`` section (see :class:`riskmap.context.ContextParams`)."""
UNITS = {"mm": 1.0, "cm": 10.0, "mm/h": None}
"""Threshold units: millimetres, centimetres, or an intensity (mm/h × window hours)."""

_TOP = set(
    "kind id hazard enabled overrides applies_where horizons_h internal action_zh action_en context "
    "soil_state escalate levels source description".split()
)
_COND = set("id feature statistic window_h threshold_mm threshold unit at hazard at_least where why".split())
_TEST_OPS = {"at_least": ">=", "at_most": "<=", "equals": "=="}
_NUM_UNIT = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z/]+)\s*$")


class _Ctx:
    def __init__(self, file: str, rule: str) -> None:
        self.file, self.rule = file, rule

    def err(self, key: str, msg: str) -> RuleError:
        return RuleError(f"{self.file}: rule '{self.rule}', key '{key}': {msg}")


def _level(ctx: _Ctx, key: str, name: Any) -> int:
    try:
        lv = Level.from_name(name)
    except InputError:
        raise ctx.err(key, f"unknown level {name!r} (use blue, yellow, orange or red)") from None
    if lv == Level.NONE:
        raise ctx.err(key, "level 'none' cannot be given by a rule")
    return int(lv)


def _number(ctx: _Ctx, key: str, value: Any, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ctx.err(key, f"must be a number, got {value!r}")
    if positive and value <= 0:
        raise ctx.err(key, f"must be positive, got {value!r}")
    return float(value)


def _tests(ctx: _Ctx, key: str, raw: Any) -> tuple[ContextTest, ...]:
    if raw is None:
        return ()
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list):
        raise ctx.err(key, "must be a list of tests like {feature: hazard_sites, at_least: 1}")
    out = []
    for i, t in enumerate(raw):
        k = f"{key}[{i}]"
        if not isinstance(t, dict) or "feature" not in t:
            raise ctx.err(k, "a test needs 'feature' and one of at_least, at_most, equals")
        feat = t["feature"]
        if feat not in CONTEXT_FEATURES:
            raise ctx.err(f"{k}.feature", f"unknown feature {feat!r} (known: {', '.join(CONTEXT_FEATURES)})")
        ops = [o for o in t if o in _TEST_OPS]
        extra = set(t) - {"feature"} - set(_TEST_OPS)
        if extra:
            raise ctx.err(f"{k}.{sorted(extra)[0]}", "unknown key (use feature and at_least/at_most/equals)")
        if len(ops) != 1:
            raise ctx.err(k, "a test needs exactly one of at_least, at_most, equals")
        value = t[ops[0]]
        if isinstance(value, bool):
            value = int(value)
        out.append(ContextTest(feat, _TEST_OPS[ops[0]], _number(ctx, f"{k}.{ops[0]}", value, positive=False)))
    return tuple(out)


def _threshold(ctx: _Ctx, key: str, c: dict[str, Any], window_h: int, idx: int) -> Threshold:
    has_mm, has_thr = "threshold_mm" in c, "threshold" in c
    if has_mm == has_thr:
        raise ctx.err(key, "give exactly one of threshold_mm or threshold")
    unit = c.get("unit", "mm")
    if unit not in UNITS:
        raise ctx.err(f"{key}.unit", f"bad unit {unit!r} (use {', '.join(UNITS)})")
    if has_mm:
        raw = c["threshold_mm"]
        if isinstance(raw, list):
            raw = raw[idx] if idx < len(raw) else None
        value = _number(ctx, f"{key}.threshold_mm", raw)
        if "unit" in c and c["unit"] != "mm/h":
            raise ctx.err(f"{key}.unit", f"threshold_mm is in mm; unit {unit!r} contradicts it")
        factor = float(window_h) if unit == "mm/h" else 1.0
        if unit == "mm/h" and not window_h:
            raise ctx.err(f"{key}.unit", "mm/h needs a window_h")
        return Threshold(mm=value * factor)
    t = c["threshold"]
    if isinstance(t, list):
        t = t[idx] if idx < len(t) else None
    if isinstance(t, str):
        m = _NUM_UNIT.match(t)
        if not m:
            raise ctx.err(f"{key}.threshold", f"write a number and a unit like '50 mm', got {t!r}")
        num, u = float(m.group(1)), m.group(2)
        if u not in UNITS:
            raise ctx.err(f"{key}.threshold", f"bad unit {u!r} in {t!r} (use {', '.join(UNITS)})")
        if num <= 0:
            raise ctx.err(f"{key}.threshold", "must be positive")
        if u == "mm/h" and not window_h:
            raise ctx.err(f"{key}.threshold", "mm/h needs a window_h")
        factor = float(window_h) if u == "mm/h" else (UNITS[u] or 1.0)
        return Threshold(mm=num * factor)
    if isinstance(t, dict) and "critical" in t:
        col = t["critical"]
        if col not in CRITICAL_COLUMNS:
            raise ctx.err(
                f"{key}.threshold.critical", f"unknown critical column {col!r} (use prepare or immediate)"
            )
        frac = _number(ctx, f"{key}.threshold.fraction", t.get("fraction", 1.0))
        if set(t) - {"critical", "fraction"}:
            raise ctx.err(f"{key}.threshold", f"unknown key {sorted(set(t) - {'critical', 'fraction'})[0]!r}")
        return Threshold(critical=col, fraction=frac)
    if isinstance(t, dict) and "intensity_duration" in t:
        idc = t["intensity_duration"]
        if not isinstance(idc, dict) or set(idc) != {"a", "b"}:
            raise ctx.err(f"{key}.threshold.intensity_duration", "needs a and b of I = a·D^-b (mm/h, h)")
        a = _number(ctx, f"{key}.threshold.intensity_duration.a", idc["a"])
        b = _number(ctx, f"{key}.threshold.intensity_duration.b", idc["b"], positive=False)
        if not window_h:
            raise ctx.err(f"{key}.window_h", "an intensity-duration threshold needs a window_h")
        return Threshold(mm=round(a * window_h ** (1.0 - b), 3))
    raise ctx.err(
        f"{key}.threshold",
        f"must be like '50 mm', {{critical: prepare}} or {{intensity_duration: {{a: .., b: ..}}}}, got {t!r}",
    )


def _conditions(ctx: _Ctx, color: str, raw: Any, counter: list[int]) -> list[Condition]:
    if not isinstance(raw, list) or not raw:
        raise ctx.err(f"levels.{color}", "must be a non-empty list of conditions")
    out: list[Condition] = []
    for i, c in enumerate(raw):
        key = f"levels.{color}[{i}]"
        if not isinstance(c, dict):
            raise ctx.err(key, "a condition must be a mapping")
        extra = set(c) - _COND
        if extra:
            raise ctx.err(f"{key}.{sorted(extra)[0]}", f"unknown key (known: {', '.join(sorted(_COND))})")
        feat = c.get("feature")
        if feat not in RAIN_FEATURES and feat != LEVEL_FEATURE:
            raise ctx.err(
                f"{key}.feature",
                f"unknown feature {feat!r} (use {', '.join(RAIN_FEATURES)} or {LEVEL_FEATURE})",
            )
        where = _tests(ctx, f"{key}.where", c.get("where"))
        why = str(c.get("why", ""))
        if feat == LEVEL_FEATURE:
            hz = c.get("hazard")
            if hz not in HAZARDS:
                raise ctx.err(f"{key}.hazard", f"unknown hazard {hz!r} (known: {', '.join(HAZARDS)})")
            lv = _level(ctx, f"{key}.at_least", c.get("at_least"))
            counter[0] += 1
            out.append(
                Condition(
                    id=str(c.get("id", f"{ctx.rule}/{color}/{counter[0]}")),
                    feature=feat,
                    hazard=hz,
                    threshold=Threshold(level=lv),
                    where=where,
                    why=why,
                )
            )
            continue
        stat = c.get("statistic")
        if stat not in STATISTICS:
            raise ctx.err(f"{key}.statistic", f"unknown statistic {stat!r} (use mean or max)")
        at = c.get("at", "village")
        if at not in LOCATIONS:
            raise ctx.err(f"{key}.at", f"unknown location {at!r} (use {' or '.join(LOCATIONS)})")
        wins: list[Any]
        if feat == "rain":
            w = c.get("window_h")
            wins = w if isinstance(w, list) else [w]
            for w1 in wins:
                if isinstance(w1, bool) or not isinstance(w1, int) or w1 <= 0:
                    raise ctx.err(
                        f"{key}.window_h", f"must be a whole number of hours (or a list), got {w!r}"
                    )
            for name in ("threshold_mm", "threshold"):
                if isinstance(c.get(name), list) and len(c[name]) != len(wins):
                    raise ctx.err(f"{key}.{name}", f"{len(c[name])} thresholds for {len(wins)} windows")
        else:
            if "window_h" in c:
                raise ctx.err(f"{key}.window_h", "effective_rain has no window")
            wins = [0]
        for j, w1 in enumerate(wins):
            thr = _threshold(ctx, key, c, int(w1), j)
            if thr.critical and feat != "rain":
                raise ctx.err(f"{key}.threshold", "critical rainfall applies to rain windows only")
            counter[0] += 1
            cid = c.get("id", f"{ctx.rule}/{color}/{counter[0]}")
            if "id" in c and len(wins) > 1:
                cid = f"{c['id']}/{w1}h"
            out.append(
                Condition(
                    id=str(cid),
                    feature=feat,
                    statistic=stat,
                    window_h=int(w1),
                    threshold=thr,
                    at=at,
                    where=where,
                    why=why,
                )
            )
    return out


def _check_rising(ctx: _Ctx, levels: list[LevelSpec]) -> None:
    seen: dict[tuple[object, ...], tuple[int, float, str]] = {}
    for spec in sorted(levels, key=lambda s: s.level):
        for i, c in enumerate(spec.conditions):
            prev = seen.get(c.key)
            color = Level(spec.level).color
            if prev is not None and prev[1] >= c.threshold.order and prev[0] != spec.level:
                name = (
                    "threshold_mm"
                    if c.threshold.kind == "mm"
                    else ("at_least" if c.threshold.kind == "level" else "threshold.fraction")
                )
                what = (
                    f"{c.window_h} h {c.statistic} rain"
                    if c.feature == "rain"
                    else f"{c.hazard} level"
                    if c.feature == LEVEL_FEATURE
                    else f"{c.statistic} effective rain"
                )
                raise ctx.err(
                    f"levels.{color}[{i}].{name}",
                    f"{c.threshold.describe('en-US')} at {color} does not rise above "
                    f"{prev[2]} at {Level(prev[0]).color} ({what})",
                )
            seen[c.key] = (spec.level, c.threshold.order, c.threshold.describe("en-US"))


def parse_rule_data(data: Any, file: str) -> HazardRule | None:
    """Validate one parsed rule file; None if its ``kind`` is not ``hazard_rules`` or it is disabled."""
    if not isinstance(data, dict):
        raise RuleError(f"{file}: rule '?', key '(top)': a rule file must be a mapping")
    if data.get("kind") != RULE_KIND:
        if "kind" in data or Path(file).name in OTHER_FILES:
            return None
        raise RuleError(
            f"{file}: rule '{data.get('id', '?')}', key 'kind': missing; rule files start with "
            f"'kind: {RULE_KIND}'"
        )
    rid = data.get("id")
    if not isinstance(rid, str) or not rid:
        raise RuleError(f"{file}: rule '?', key 'id': every rule file needs an id")
    ctx = _Ctx(file, rid)
    extra = set(data) - _TOP
    if extra:
        raise ctx.err(sorted(extra)[0], f"unknown key (known: {', '.join(sorted(_TOP))})")
    hazard = data.get("hazard")
    if hazard not in HAZARDS:
        raise ctx.err("hazard", f"unknown hazard {hazard!r} (known: {', '.join(HAZARDS)})")
    horizons = dict(DEFAULT_HORIZONS_H)
    hraw = data.get("horizons_h", {}) or {}
    if not isinstance(hraw, dict):
        raise ctx.err("horizons_h", "must map levels to hours, e.g. {red: 12}")
    for name, hours in hraw.items():
        horizons[_level(ctx, f"horizons_h.{name}", name)] = _number(ctx, f"horizons_h.{name}", hours)
    internal = {_level(ctx, "internal", n) for n in (data.get("internal") or [])}
    lraw = data.get("levels")
    if not isinstance(lraw, dict) or not lraw:
        raise ctx.err("levels", "must map level colours to lists of conditions")
    counter = [0]
    specs: list[LevelSpec] = []
    for color, conds in lraw.items():
        lv = _level(ctx, f"levels.{color}", color)
        if any(s.level == lv for s in specs):
            raise ctx.err(f"levels.{color}", "level given twice")
        specs.append(
            LevelSpec(lv, tuple(_conditions(ctx, str(color), conds, counter)), horizons[lv], lv in internal)
        )
    specs.sort(key=lambda s: -s.level)
    _check_rising(ctx, specs)
    esc = []
    for i, e in enumerate(data.get("escalate") or []):
        k = f"escalate[{i}]"
        if not isinstance(e, dict) or "when" not in e:
            raise ctx.err(k, "an escalation needs 'when' (tests) and 'by'")
        by = e.get("by", 1)
        if isinstance(by, bool) or not isinstance(by, int) or not 1 <= by <= 3:
            raise ctx.err(f"{k}.by", f"must be 1, 2 or 3 levels, got {by!r}")
        esc.append(
            Escalation(
                id=str(e.get("id", f"{rid}/escalate/{i + 1}")),
                when=_tests(ctx, f"{k}.when", e["when"]),
                by=by,
                reason_zh=str(e.get("reason_zh", "")),
                reason_en=str(e.get("reason_en", "")),
            )
        )
    if "overrides" in data and data["overrides"] != hazard:
        raise ctx.err("overrides", f"a file can only override its own hazard {hazard!r}")
    return HazardRule(
        id=rid,
        hazard=hazard,
        levels=tuple(specs),
        file=file,
        applies_where=_tests(ctx, "applies_where", data.get("applies_where")),
        escalations=tuple(esc),
        action_zh=str(data.get("action_zh", "")),
        action_en=str(data.get("action_en", "")),
    )


class _StrictLoader(yaml.SafeLoader):
    """A YAML loader that refuses duplicate keys (PyYAML would silently keep the last one)."""


def _strict_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (the earlier one would be ignored)", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _strict_mapping)


def load_yaml(text: str, file: str) -> Any:
    """Parse YAML strictly; syntax errors and duplicate keys raise :class:`RuleError` naming the line."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown line"
        problem = getattr(exc, "problem", None) or str(exc)
        raise RuleError(f"{file}: rule '?', key '(yaml)': YAML syntax error at {where}: {problem}") from None


def parse_rule_text(text: str, file: str) -> HazardRule | None:
    """Parse YAML text of one rule file (syntax errors and duplicate keys name the line)."""
    return parse_rule_data(load_yaml(text, file), file)
