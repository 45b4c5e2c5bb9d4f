"""Evaluate a :class:`~riskmap.rules.model.RuleSet` over every village at once.

For each hazard (in dependency order) and each of its levels, most severe first, every condition is
evaluated as one vectorised comparison over all villages; the village gets the highest level any
condition gives, and among the conditions of that level the one with the largest value/threshold ratio
is reported.  ``≥`` means ≥: a value equal to the threshold fires (compared with a tolerance of
:data:`TOLERANCE_MM`, far below the 0.1 mm resolution of rainfall, so that float32 sums of 50 mm count as 50).
Escalations (e.g. 病险) then raise the level, but never past the lead-time horizon of the level reached:
rain in a window ending ``lead`` hours after ``now`` can give at most the highest level whose horizon ≥ lead.

Examples
--------
>>> from riskmap.rules.loader import build_ruleset
>>> rs = build_ruleset([("r.yaml", '''
... kind: hazard_rules
... id: r
... hazard: rainstorm
... levels:
...   red: [{feature: rain, statistic: max, window_h: 3, threshold_mm: 100}]
...   orange: [{feature: rain, statistic: max, window_h: 3, threshold_mm: 50}]
... ''')])
>>> from riskmap.rules.features import Features
>>> codes = np.array(["110101001001", "110101001002", "110101001003"])
>>> end = np.full(3, np.datetime64("2026-07-01T03:00", "ns"))
>>> mm = np.array([100.0, 99.9, 50.0])
>>> rain = {("max", 3, 12.0): (mm, end), ("max", 3, 24.0): (mm, end)}
>>> ctx = pd.DataFrame({"village_name": ["甲", "乙", "丙"]}, index=codes)
>>> f = Features(codes=codes, now=pd.Timestamp("2026-07-01", tz="UTC"), rain=rain, context=ctx)
>>> a = evaluate(rs, f, ctx, now=f.now, language="en-US")
>>> a.villages[["village_code", "level", "color", "hazards"]].values.tolist()
[['110101001001', 4, 'red', 'rainstorm:4'], ['110101001002', 3, 'orange', 'rainstorm:3'], \
['110101001003', 3, 'orange', 'rainstorm:3']]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from riskmap.errors import InputError
from riskmap.levels import Level
from riskmap.rules.features import Features
from riskmap.rules.model import DEFAULT_HORIZONS_H, LEVEL_FEATURE, Condition, ContextTest, HazardRule, RuleSet
from riskmap.rules.text import conditions_by_id, reasons
from riskmap.scoring import ScoreWeights, risk_score

TOLERANCE_MM = 1e-4
"""Values this close below a threshold count as reaching it (float32 sums)."""

HAZARD_COLUMNS = (
    "village_code",
    "hazard",
    "level",
    "rule",
    "statistic",
    "window_h",
    "value_mm",
    "threshold_mm",
    "window_end",
    "horizon_h",
    "internal",
    "reason",
    "action",
)
"""Columns of :attr:`Assessment.hazard_levels` (``action`` is e.g. 停产撤人 for mines, else empty)."""
VILLAGE_COLUMNS = ("village_code", "village_name", "level", "color", "grade", "hazards", "score", "reasons")
"""Columns of :attr:`Assessment.villages`, exactly those of ``OUT/levels.csv``."""


@dataclass(frozen=True, eq=False)
class Assessment:
    """The result of one evaluation: levels per (village, hazard) and per village."""

    hazard_levels: pd.DataFrame
    """One row per (village_code, hazard) with level > 0; columns :data:`HAZARD_COLUMNS`."""
    villages: pd.DataFrame
    """One row per village in region order; columns :data:`VILLAGE_COLUMNS`."""
    ruleset: RuleSet
    now: pd.Timestamp
    language: str = "zh-CN"
    tz: str = "Asia/Shanghai"


@dataclass
class _Result:
    level: np.ndarray
    base: np.ndarray
    cond: np.ndarray  # index into the rule's condition list, -1 none
    src: np.ndarray  # id of the rain condition behind it (via hazard_level: the other hazard's)
    via: np.ndarray  # hazard whose level was read ('' if none)
    via_level: np.ndarray
    statistic: np.ndarray
    window_h: np.ndarray
    value: np.ndarray
    threshold: np.ndarray
    ratio: np.ndarray
    end: np.ndarray
    escalated: np.ndarray  # ';'-joined escalation ids


def context_mask(tests: tuple[ContextTest, ...], f: Features) -> np.ndarray:
    """Villages where every test holds."""
    mask = np.ones(f.n, dtype=bool)
    for t in tests:
        v = f.context_value(t.feature)
        mask &= (v >= t.value) if t.op == ">=" else (v <= t.value) if t.op == "<=" else np.isclose(v, t.value)
    return mask


def condition_arrays(
    c: Condition, horizon_h: float, f: Features, done: dict[str, _Result]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(value, threshold, window end) of one condition for every village (NaN threshold: not applicable)."""
    if c.feature == LEVEL_FEATURE:
        ref = done[c.hazard]
        return ref.level.astype(float), np.full(f.n, float(c.threshold.level or 0)), ref.end
    if c.feature == "rain":
        value, end = f.rain_value(c.statistic, c.window_h, horizon_h, c.at)
    else:
        value, end = f.effective_value(c.statistic, c.at)
    if c.threshold.critical:
        base = f.critical.get((c.threshold.critical, c.window_h))
        thr = np.full(f.n, np.nan) if base is None else base * c.threshold.fraction
    else:
        thr = np.full(f.n, float(c.threshold.mm or 0.0))
    return value, thr, end


def cap_levels(lead_h: np.ndarray, rule: HazardRule) -> np.ndarray:
    """Highest level whose horizon covers each lead time (4 where the lead is unknown)."""
    horizons = {lv: DEFAULT_HORIZONS_H[lv] for lv in range(1, 5)}
    horizons.update({s.level: s.horizon_h for s in rule.levels})
    cap = np.zeros(len(lead_h), dtype=np.int8)
    for lv in range(1, 5):
        cap = np.where(lead_h <= horizons[lv] + 1e-9, lv, cap).astype(np.int8)
    return np.where(np.isnan(lead_h), 4, cap).astype(np.int8)


def _evaluate_rule(rule: HazardRule, f: Features, done: dict[str, _Result]) -> _Result:
    n = f.n
    applies = context_mask(rule.applies_where, f)
    r = _Result(
        level=np.zeros(n, np.int8),
        base=np.zeros(n, np.int8),
        cond=np.full(n, -1),
        src=np.full(n, "", object),
        via=np.full(n, "", object),
        via_level=np.zeros(n, np.int8),
        statistic=np.full(n, "", object),
        window_h=np.zeros(n, np.int64),
        value=np.full(n, np.nan),
        threshold=np.full(n, np.nan),
        ratio=np.zeros(n),
        end=np.full(n, np.datetime64("NaT"), "datetime64[ns]"),
        escalated=np.full(n, "", object),
    )
    idx = 0
    for spec in rule.levels:
        for c in spec.conditions:
            value, thr, end = condition_arrays(c, spec.horizon_h, f, done)
            ok = applies & context_mask(c.where, f) & np.isfinite(value) & np.isfinite(thr)
            fired = ok & (value >= thr - (0 if c.feature == LEVEL_FEATURE else TOLERANCE_MM))
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(thr > 0, value / thr, 1.0)
            upd = fired & ((r.level < spec.level) | ((r.level == spec.level) & (ratio > r.ratio)))
            if upd.any():
                r.level[upd] = spec.level
                r.cond[upd] = idx
                r.ratio[upd] = ratio[upd]
                r.end[upd] = end[upd]
                if c.feature == LEVEL_FEATURE:
                    ref = done[c.hazard]
                    for name in ("src", "statistic", "window_h", "value", "threshold"):
                        getattr(r, name)[upd] = getattr(ref, name)[upd]
                    r.via[upd] = c.hazard
                    r.via_level[upd] = ref.level[upd]
                else:
                    r.src[upd] = c.id
                    r.via[upd] = ""
                    r.statistic[upd] = c.statistic
                    r.window_h[upd] = c.window_h
                    r.value[upd] = value[upd]
                    r.threshold[upd] = thr[upd]
            idx += 1
    r.base = r.level.copy()
    for e in rule.escalations:
        m = (r.level > 0) & context_mask(e.when, f)
        if m.any():
            r.level[m] = np.minimum(4, r.level[m] + e.by)
            r.escalated[m] = np.where(r.escalated[m] == "", e.id, r.escalated[m] + ";" + e.id)
    lead = (r.end - f.now.tz_convert("UTC").tz_localize(None).to_datetime64()) / np.timedelta64(1, "h")
    lead = np.where(np.isnat(r.end), np.nan, lead.astype(float))
    r.level = np.maximum(r.base, np.minimum(r.level, cap_levels(lead, rule))).astype(np.int8)
    r.escalated[r.level == r.base] = ""
    return r


def evaluate(
    ruleset: RuleSet,
    features: Features,
    context: pd.DataFrame,
    *,
    now: Any,
    language: str = "zh-CN",
    tz: str = "Asia/Shanghai",
    weights: ScoreWeights | None = None,
) -> Assessment:
    """Levels of every hazard for every village, the overall level, the reasons and the risk score.

    Parameters
    ----------
    ruleset : validated rules (:func:`riskmap.rules.load_rules`).
    features : :class:`~riskmap.rules.features.Features` for the same villages, in region order.
    context : static context (index = village codes, column ``village_name``), as given to the features.
    now : aware instant; must equal ``features.now``.
    language : ``zh-CN`` or ``en-US`` for the reasons.
    tz : zone in which window ends are shown in reasons.
    """
    now_ts = pd.Timestamp(now)
    if now_ts.tzinfo is None:
        raise InputError(f"evaluate: now {now!r} must be timezone-aware")
    if now_ts != features.now:
        raise InputError(f"evaluate: now {now_ts} differs from the features' now {features.now}")
    codes = features.codes
    if len(context) != len(codes) or not np.array_equal(context.index.astype(str).to_numpy(), codes):
        raise InputError("evaluate: context and features list different villages")
    done: dict[str, _Result] = {}
    frames = []
    conds = conditions_by_id(ruleset.rules)
    for rule in ruleset.rules:
        res = _evaluate_rule(rule, features, done)
        done[rule.hazard] = res
        hit = np.flatnonzero(res.level > 0)
        if not len(hit):
            continue
        rule_conds = [c for s in rule.levels for c in s.conditions]
        lv = res.level[hit]
        horizon = {s.level: s.horizon_h for s in rule.levels}
        internal = {s.level for s in rule.levels if s.internal}
        frames.append(
            pd.DataFrame(
                {
                    "village_code": codes[hit],
                    "hazard": rule.hazard,
                    "level": lv.astype(int),
                    "rule": np.array([c.id for c in rule_conds], dtype=object)[res.cond[hit]],
                    "statistic": res.statistic[hit],
                    "window_h": res.window_h[hit],
                    "value_mm": res.value[hit],
                    "threshold_mm": res.threshold[hit],
                    "window_end": pd.to_datetime(res.end[hit]).tz_localize("UTC"),
                    "horizon_h": np.array(
                        [horizon.get(int(v), DEFAULT_HORIZONS_H[int(v)]) for v in range(5) if v], float
                    )[lv - 1],
                    "internal": np.isin(lv, list(internal)),
                    "reason": reasons(rule, res, hit, language=language, tz=tz, conds=conds),
                    "action": rule.action_zh if language.startswith("zh") else rule.action_en,
                    "_order": hit,
                    "_rank": ruleset.hazards.index(rule.hazard),
                }
            )
        )
    if frames:
        rows = pd.concat(frames, ignore_index=True)
    else:
        types = {
            "level": "int64",
            "window_h": "int64",
            "value_mm": "float64",
            "threshold_mm": "float64",
            "window_end": "datetime64[ns, UTC]",
            "horizon_h": "float64",
            "internal": "bool",
            "_order": "int64",
            "_rank": "int64",
        }
        rows = pd.DataFrame(
            {c: pd.Series(dtype=types.get(c, object)) for c in HAZARD_COLUMNS + ("_order", "_rank")}
        )
    rows = rows.sort_values(["_order", "level", "_rank"], ascending=[True, False, True], kind="stable")
    villages = _villages(rows, codes, context, language)
    villages["score"] = risk_score(rows, context, weights or ScoreWeights())
    hazard_levels = rows.drop(columns=["_order", "_rank"]).reset_index(drop=True)
    hazard_levels["level"] = hazard_levels["level"].astype(int)
    return Assessment(
        hazard_levels=hazard_levels,
        villages=villages[list(VILLAGE_COLUMNS)],
        ruleset=ruleset,
        now=now_ts.tz_convert("UTC"),
        language=language,
        tz=tz,
    )


def _join_by_village(pos: np.ndarray, texts: np.ndarray, n: int, sep: str) -> np.ndarray:
    """Join ``texts`` of rows (sorted by village position) per village, vectorised over villages."""
    out = np.full(n, "", dtype=object)
    if not len(pos):
        return out
    rank = pd.Series(pos).groupby(pos).cumcount().to_numpy()
    for k in range(int(rank.max()) + 1):
        sel = rank == k
        p = pos[sel]
        out[p] = texts[sel] if k == 0 else out[p] + sep + texts[sel]
    return out


def _villages(rows: pd.DataFrame, codes: np.ndarray, context: pd.DataFrame, language: str) -> pd.DataFrame:
    level = np.zeros(len(codes), dtype=int)
    pos = rows["_order"].to_numpy(dtype=int) if len(rows) else np.zeros(0, dtype=int)
    if len(rows):
        np.maximum.at(level, pos, rows["level"].to_numpy(dtype=int))
    tags = (rows["hazard"].astype(str) + ":" + rows["level"].astype(str)).to_numpy(dtype=object)
    sep = "；" if language.startswith("zh") else "; "
    hazards = _join_by_village(pos, tags, len(codes), ";")
    text = _join_by_village(
        pos, rows["reason"].to_numpy(dtype=object) if len(rows) else tags, len(codes), sep
    )
    lv = [Level(i) for i in range(5)]
    names = (
        context["village_name"].astype(str).to_numpy()
        if "village_name" in context
        else np.full(len(codes), "")
    )
    return pd.DataFrame(
        {
            "village_code": codes.astype(str),
            "village_name": names,
            "level": level,
            "color": np.array([x.color for x in lv], dtype=object)[level],
            "grade": np.array([x.grade for x in lv], dtype=object)[level],
            "hazards": hazards,
            "score": 0,
            "reasons": text,
        }
    )
