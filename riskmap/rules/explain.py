"""The chain of one village's levels in plain words (zh-CN or en-US), for ``riskmap explain``.

For every hazard: whether the rule applies to the village (its context tests), then each level from red
down with each condition's value, threshold and window end, whether it was reached, escalations, and the
level finally given (as in the assessment).  Times are shown in the assessment's time zone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from riskmap.errors import InputError
from riskmap.levels import Level
from riskmap.rules.engine import Assessment, context_mask
from riskmap.rules.features import SOIL_NAMES, Features
from riskmap.rules.model import CONTEXT_FEATURES, LEVEL_FEATURE, Condition, ContextTest, HazardRule
from riskmap.rules.text import format_ends, note, what

_SOIL_ZH = {"dry": "较干", "normal": "一般", "wet": "较湿"}
_LABELS = {
    "reservoir_name": ("水库", "reservoir"),
    "detention_fraction": ("蓄滞洪区占比", "share in a detention area"),
    "shelter_name": ("最近避险点", "nearest shelter"),
}


def _w(zh: bool, a: str, b: str) -> str:
    return a if zh else b


def _color(level: int, zh: bool) -> str:
    lv = Level(int(level))
    if lv == Level.NONE:
        return _w(zh, "无", "none")
    return f"{lv.color_zh}({lv.grade}级)" if zh else f"{lv.color} ({lv.grade})"


def _tests_text(tests: tuple[ContextTest, ...], f: Features, i: int, zh: bool) -> str:
    parts = []
    for t in tests:
        ok = bool(context_mask((t,), f)[i])
        parts.append(
            f"{t.describe('zh-CN' if zh else 'en-US')} "
            f"[{_w(zh, '当前', 'now')} {f.context_value(t.feature)[i]:g}] {'✓' if ok else '✗'}"
        )
    return "; ".join(parts)


def _condition_line(
    c: Condition, horizon: float, f: Features, i: int, levels: dict[str, int], tz: str, zh: bool
) -> str:
    lang = "zh-CN" if zh else "en-US"
    if c.feature == LEVEL_FEATURE:
        got = levels.get(c.hazard, 0)
        ok = got >= (c.threshold.level or 0)
        return f"{c.describe(lang)}: {_w(zh, '当前', 'now')} {_color(got, zh)} {'✓' if ok else '✗'}  ({c.id})"
    if c.feature == "rain":
        value, end = f.rain_value(c.statistic, c.window_h, horizon, c.at)
    else:
        value, end = f.effective_value(c.statistic, c.at)
    if c.threshold.critical:
        base = f.critical.get((c.threshold.critical, c.window_h))
        thr = np.nan if base is None else float(base[i]) * c.threshold.fraction
    else:
        thr = float(c.threshold.mm or 0.0)
    v = float(value[i])
    where_ok = bool(context_mask(c.where, f)[i])
    ok = where_ok and np.isfinite(v) and np.isfinite(thr) and v >= thr - 1e-4
    unit = _w(zh, "毫米", " mm")
    vtxt = f"{v:.1f}{unit}" if np.isfinite(v) else _w(zh, "无数据", "no data")
    ttxt = (
        f"{thr:.1f}{unit}{note(c, lang)}"
        if np.isfinite(thr)
        else _w(zh, "无指标", "no indicator") + note(c, lang)
    )
    ends = format_ends(np.asarray([end[i]]), tz, lang)[0]
    end_txt = f" ({_w(zh, '时段止于', 'window ending ')}{ends})" if ends else ""
    cond = f"{what(c, lang)} {vtxt}{end_txt} {'≥' if ok else '<' if where_ok else '/'} {ttxt}"
    if c.where:
        cond += f" [{_w(zh, '仅当', 'only where')} {_tests_text(c.where, f, i, zh)}]"
    return f"{cond} {'✓' if ok else '✗'}  ({c.id})"


def _hazard_block(
    rule: HazardRule,
    f: Features,
    i: int,
    levels: dict[str, int],
    rows: pd.DataFrame,
    tz: str,
    zh: bool,
    assessment_language: str,
) -> list[str]:
    lang = "zh-CN" if zh else "en-US"
    out = [f"{rule.name(lang)} [{rule.hazard}, {rule.id}]"]
    if rule.applies_where:
        applies = bool(context_mask(rule.applies_where, f)[i])
        out.append(f"  {_w(zh, '适用条件', 'applies where')}: {_tests_text(rule.applies_where, f, i, zh)}")
        if not applies:
            out.append(f"  → {_w(zh, '不适用于本村', 'does not apply to this village')}")
            return out
    for spec in rule.levels:
        flags = _w(zh, "，内部", ", internal") if spec.internal else ""
        out.append(
            f"  {_color(spec.level, zh)} ({_w(zh, '提前量上限', 'horizon')} {spec.horizon_h:g} h{flags}):"
        )
        shown = [c for c in spec.conditions if bool(context_mask(c.where, f)[i])]
        out.extend(f"    - {_condition_line(c, spec.horizon_h, f, i, levels, tz, zh)}" for c in shown)
        if len(shown) < len(spec.conditions):
            skipped = ", ".join(c.id for c in spec.conditions if c not in shown)
            out.append(f"    ({_w(zh, '不适用于本村的条件', 'conditions not applying here')}: {skipped})")
    for e in rule.escalations:
        out.append(
            f"  {_w(zh, '升级', 'escalation')} +{e.by}: {(e.reason_zh if zh else e.reason_en) or e.id} — "
            f"{_tests_text(e.when, f, i, zh)}"
        )
    hit = rows[rows.hazard == rule.hazard]
    if len(hit):
        r = hit.iloc[0]
        same = assessment_language.startswith("zh") == zh
        out.append(f"  → {_color(int(r.level), zh)}: {r.reason if same else r.rule}")
        if r.internal:
            internal = _w(
                zh,
                "内部等级：仅在地图上显示，不对公众发布",
                "internal level: map only, not sent to the public",
            )
            out.append(f"    ({internal})")
    else:
        out.append(f"  → {_w(zh, '无', 'none')}")
    return out


def explain_village(
    assessment: Assessment, features: Features, context: pd.DataFrame, code: str, language: str = "zh-CN"
) -> str:
    """Explain one village's levels step by step.

    Examples
    --------
    >>> from riskmap.rules import load_rules, packaged_rules_dir, evaluate
    >>> rules = load_rules(packaged_rules_dir())
    >>> codes = np.array(["431129100201"])
    >>> ctx = pd.DataFrame({"village_name": ["石门村"], "population": [300]}, index=codes)
    >>> end = np.array([np.datetime64("2026-07-01T06:00", "ns")])
    >>> rain = {k: (np.array([60.0 if k[:2] == ("max", 3) else 0.0]), end) for k in rules.rain_keys()}
    >>> now = pd.Timestamp("2026-07-01", tz="UTC")
    >>> f = Features(codes=codes, now=now, rain=rain, effective={"mean": np.zeros(1)}, context=ctx)
    >>> a = evaluate(rules, f, ctx, now=now)
    >>> text = explain_village(a, f, ctx, "431129100201", "en-US")
    >>> print(text.splitlines()[0])
    Village 431129100201 石门村: orange (Ⅱ), score 39
    >>> "3 h rainfall (village maximum) 60.0 mm (window ending 2026-07-01 14:00 CST) ≥ 50.0 mm ✓" in text
    True
    """
    zh = language.startswith("zh")
    codes = features.codes
    pos = np.flatnonzero(codes == str(code))
    if not len(pos):
        raise InputError(f"explain: village code {code!r} is not in the region")
    i = int(pos[0])
    vrow = assessment.villages.iloc[i]
    rows = assessment.hazard_levels[assessment.hazard_levels.village_code == str(code)]
    levels = dict(zip(rows.hazard, rows.level.astype(int), strict=True))
    name = vrow.village_name
    head = (
        f"村 {code} {name}：总体{_color(int(vrow.level), zh)}，风险分 {vrow.score}"
        if zh
        else f"Village {code} {name}: {_color(int(vrow.level), zh)}, score {vrow.score}"
    )
    now_local = assessment.now.tz_convert(assessment.tz)
    now_txt = now_local.strftime("%Y年%m月%d日%H时%M分" if zh else "%Y-%m-%d %H:%M %Z")
    lines = [head, f"{_w(zh, '计算时刻', 'now')}: {now_txt}"]
    if zh:
        lines.append("(本结果为防汛办按规则计算的村级风险等级，不是气象部门发布的预警信号)")
    else:
        lines.append(
            "(the office's own risk level per village, not the meteorological service's warning signal)"
        )
    facts = []
    for col in (
        "touches_river",
        "river_distance_m",
        "in_reservoir_zone",
        "reservoir_name",
        "reservoir_scale",
        "reservoir_unsafe",
        "hazard_sites",
        "threatened_people",
        "mines",
        "flood_points",
        "detention_fraction",
        "vulnerable_sites",
        "shelter_name",
        "shelter_distance_m",
    ):
        if col in context.columns:
            val = context[col].iloc[i]
            label = {**CONTEXT_FEATURES, **_LABELS}.get(col, (col, col))[0 if zh else 1]
            if isinstance(val, float | np.floating):
                val = f"{val:.0f}" if col.endswith("_m") else f"{val:.2f}"
            facts.append(f"{label}={val}")
    if features.soil_state is not None:
        soil = SOIL_NAMES[int(features.soil_state[i])]
        facts.append(f"{_w(zh, '土壤状态', 'soil state')}={_SOIL_ZH[soil] if zh else soil}")
    if facts:
        lines.append(f"{_w(zh, '背景', 'context')}: " + ", ".join(facts))
    for rule in assessment.ruleset.rules:
        lines.extend(_hazard_block(rule, features, i, levels, rows, assessment.tz, zh, assessment.language))
    return "\n".join(lines)
