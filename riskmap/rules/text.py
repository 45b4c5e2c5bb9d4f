"""Readable reasons for fired levels (zh-CN or en-US), built column-wise for all rows at once.

The words say "risk" (暴雨洪涝风险 …): riskmap's level is the office's own risk level per village, never
the meteorological service's official warning signal.

Examples
--------
>>> from riskmap.rules.model import Condition, Threshold
>>> thr = Threshold(critical="prepare", fraction=0.8)
>>> c = Condition(id="x", feature="rain", statistic="mean", window_h=6, threshold=thr)
>>> what(c, "zh-CN"), note(c, "zh-CN")
('6小时累计雨量(村平均)', '(准备转移临界雨量×0.8)')
>>> what(c, "en-US"), note(c, "en-US")
('6 h rainfall (village mean)', ' (0.8 × prepare critical rainfall)')
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from riskmap.levels import Level
from riskmap.rules.model import HAZARDS, LEVEL_FEATURE, STATISTICS, Condition, HazardRule

if TYPE_CHECKING:
    from riskmap.rules.engine import _Result


def what(c: Condition, language: str) -> str:
    """What a rainfall condition measures, in plain words."""
    zh = language.startswith("zh")
    stat = STATISTICS.get(c.statistic, (c.statistic, c.statistic))
    if c.feature == LEVEL_FEATURE:
        name = HAZARDS[c.hazard]
        return name[0] + "等级" if zh else name[1] + " level"
    place_zh, place_en = ("水库周边", " over the reservoir") if c.at == "reservoir" else ("", "")
    if c.feature == "effective_rain":
        return f"{place_zh}有效降雨量({stat[0]})" if zh else f"effective rainfall{place_en} ({stat[1]})"
    return (
        f"{place_zh}{c.window_h}小时累计雨量({stat[0]})"
        if zh
        else f"{c.window_h} h rainfall{place_en} ({stat[1]})"
    )


def note(c: Condition, language: str) -> str:
    """Where a threshold comes from, when it is not a constant."""
    t = c.threshold
    if not t.critical:
        return ""
    frac = "" if t.fraction == 1.0 else f"×{t.fraction:g}"
    if language.startswith("zh"):
        return f"({'准备转移' if t.critical == 'prepare' else '立即转移'}临界雨量{frac})"
    frac_en = "" if t.fraction == 1.0 else f"{t.fraction:g} × "
    return f" ({frac_en}{t.critical} critical rainfall)"


def conditions_by_id(rules: Any) -> dict[str, Condition]:
    """Every condition of some hazard rules by id."""
    return {c.id: c for r in rules for s in r.levels for c in s.conditions}


def format_ends(ends: np.ndarray, tz: str, language: str) -> np.ndarray:
    """Window ends (datetime64 UTC) as local text; empty for NaT."""
    idx = pd.DatetimeIndex(pd.to_datetime(ends)).tz_localize("UTC").tz_convert(tz)
    fmt = "%m月%d日%H时" if language.startswith("zh") else "%Y-%m-%d %H:%M %Z"
    out = pd.Series(idx.strftime(fmt)).fillna("").to_numpy(dtype=object)
    return out


def reasons(
    rule: HazardRule,
    res: _Result,
    hit: np.ndarray,
    *,
    language: str = "zh-CN",
    tz: str = "Asia/Shanghai",
    conds: dict[str, Condition] | None = None,
) -> np.ndarray:
    """One readable reason per fired village ``hit`` of one hazard."""
    zh = language.startswith("zh")
    conds = conds if conds is not None else {}
    conds = {**conds, **conditions_by_id([rule])}
    lv = res.level[hit].astype(int)
    levels = [Level(i) for i in range(5)]
    color = np.array([(x.color_zh if zh else x.color) for x in levels], dtype=object)
    head = rule.name(language) + ("" if zh else " ") + color[lv] + ("：" if zh else ": ")
    via = res.via[hit]
    via_text = np.full(len(hit), "", dtype=object)
    if (via != "").any():
        vl = res.via_level[hit].astype(int)
        names = (
            pd.Series(via)
            .map({h: HAZARDS[h][0 if zh else 1] for h in HAZARDS})
            .fillna("")
            .to_numpy(dtype=object)
        )
        via_text = np.where(
            via != "", names + (np.where(zh, "已达", " is ")) + color[vl] + ("，" if zh else "; "), ""
        )
    src = pd.Series(res.src[hit])
    used = {i: conds[i] for i in src.unique() if i in conds}
    src_what = src.map({i: what(c, language) for i, c in used.items()}).fillna("").to_numpy(dtype=object)
    src_note = src.map({i: note(c, language) for i, c in used.items()}).fillna("").to_numpy(dtype=object)
    unit = "毫米" if zh else " mm"
    ge = "≥" if zh else " >= "
    pre = "" if zh else " "
    ends = format_ends(res.end[hit], tz, language)
    end_open, end_close = ("(时段止于", ")") if zh else (", window ending ", "")
    esc_map = {e.id: (e.reason_zh if zh else e.reason_en) or e.id for e in rule.escalations}
    esc_s = pd.Series(res.escalated[hit])
    joiner = "；" if zh else "; "
    esc_text = {v: "".join(joiner + esc_map.get(i, i) for i in v.split(";") if i) for v in esc_s.unique()}
    esc = esc_s.map(esc_text).to_numpy(dtype=object)
    action = rule.action_zh if zh else rule.action_en
    act = ("；措施：" + action if zh else "; action: " + action) if action else ""
    heads = head + via_text + src_what
    # one f-string per fired row (string assembly only; the levels were decided column-wise)
    return np.array(
        [
            f"{h}{pre}{v:.1f}{unit}{ge}{t:.1f}{unit}{n}{end_open + e + end_close if e else ''}{x}{act}"
            for h, v, t, n, e, x in zip(
                heads, res.value[hit].tolist(), res.threshold[hit].tolist(), src_note, ends, esc, strict=True
            )
        ],
        dtype=object,
    )
