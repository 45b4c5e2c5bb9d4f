"""Table-driven: every condition of every shipped rule set fires at its threshold and not just below it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from rules_fixtures import NOW, context_frame, flat_features

from riskmap.levels import Level
from riskmap.rules import evaluate, load_rules, packaged_rules_dir
from riskmap.rules.loader import build_ruleset
from riskmap.rules.model import LEVEL_FEATURE, Condition, ContextTest, LevelSpec

RULES = load_rules(packaged_rules_dir())
BEIJING = build_ruleset(
    [
        (
            "rainstorm_beijing.yaml",
            (packaged_rules_dir() / "rainstorm_beijing.yaml")
            .read_text(encoding="utf-8")
            .replace("enabled: false", "enabled: true"),
        )
    ]
)

CRITICAL = pd.DataFrame(
    {
        "village_code": "431129100201",
        "duration_h": np.repeat([1, 3, 6], 3),
        "soil": ["dry", "normal", "wet"] * 3,
        "prepare_mm": [40, 35, 30, 65, 60, 50, 95, 90, 80],
        "immediate_mm": [55, 50, 45, 90, 85, 75, 130, 125, 115],
    }
)
"""李青 et al. 2017 worked example (prepare = the published indicator), immediate made up to exceed it."""


def _cases(ruleset):
    for rule in ruleset.rules:
        for spec in rule.levels:
            for cond in spec.conditions:
                if cond.feature != LEVEL_FEATURE:
                    yield pytest.param(ruleset, rule, spec, cond, id=f"{rule.id}:{cond.id}")


def _context_for(tests: tuple[ContextTest, ...], base: dict) -> dict:
    for t in tests:
        base[t.feature] = t.value
    return base


def _threshold_mm(cond: Condition) -> float:
    if cond.threshold.critical:
        row = CRITICAL[(CRITICAL.duration_h == cond.window_h) & (CRITICAL.soil == "normal")]
        return float(row[f"{cond.threshold.critical}_mm"].iloc[0]) * cond.threshold.fraction
    return float(cond.threshold.mm)


@pytest.mark.parametrize(("ruleset", "rule", "spec", "cond"), list(_cases(RULES)) + list(_cases(BEIJING)))
def test_fires_at_threshold_not_below(ruleset, rule, spec: LevelSpec, cond: Condition) -> None:
    ctx = context_frame(2, **_context_for(rule.applies_where + cond.where, {}))
    if cond.at == "reservoir":
        ctx["reservoir_village"] = ctx.index[0]
    thr = _threshold_mm(cond)
    critical = CRITICAL if cond.threshold.critical else None
    values = np.array([thr, thr - 0.1])
    if cond.feature == "rain":
        feats = flat_features(ruleset, ctx, {(cond.statistic, cond.window_h): values}, critical=critical)
    else:
        feats = flat_features(ruleset, ctx, effective={cond.statistic: values})
    if cond.at == "reservoir":  # the reservoir's rain is read from village 1 for both: make village 2 its own
        feats.reservoir_index[1] = 1
    out = evaluate(ruleset, feats, ctx, now=NOW).hazard_levels
    got = out[out.hazard == rule.hazard].set_index("village_code")["level"].reindex(ctx.index, fill_value=0)
    assert got.iloc[0] == spec.level, f"{cond.id}: {thr} mm should give {Level(spec.level).color}"
    assert got.iloc[1] < spec.level, f"{cond.id}: {thr - 0.1} mm must not give {Level(spec.level).color}"
    row = out[(out.hazard == rule.hazard) & (out.village_code == ctx.index[0])].iloc[0]
    assert row.rule == cond.id and row.threshold_mm == pytest.approx(thr)
    assert row.value_mm == pytest.approx(thr) and row.statistic == cond.statistic
    assert row.internal == spec.internal


@pytest.mark.parametrize(
    ("level", "window_h", "mm"), [("blue", 12, 50), ("yellow", 6, 50), ("orange", 3, 50), ("red", 3, 100)]
)
def test_national_rainstorm_table_is_shipped(level: str, window_h: int, mm: float) -> None:
    spec = RULES.rule("rainstorm").level_spec(int(Level.from_name(level)))
    assert [(c.window_h, c.threshold.mm) for c in spec.conditions] == [(window_h, mm)]


def test_shipped_horizons_and_internal_blue() -> None:
    spec = {s.level: s for s in RULES.rule("rainstorm").levels}
    assert {lv: s.horizon_h for lv, s in spec.items()} == {4: 12, 3: 24, 2: 48, 1: 72}
    geo = RULES.rule("geohazard")
    assert [s.level for s in geo.levels if s.internal] == [1]


@pytest.mark.parametrize(
    ("rainstorm_mm", "mm24", "expected"),
    [(100.0, 0.0, 4), (99.9, 0.0, 3), (50.0, 0.0, 3), (49.9, 0.0, 0), (49.9, 50.0, 3), (49.9, 49.9, 0)],
)
def test_mine_follows_rainstorm_or_24h(rainstorm_mm: float, mm24: float, expected: int) -> None:
    ctx = context_frame(1, mines=1)
    feats = flat_features(RULES, ctx, {("max", 3): rainstorm_mm, ("max", 24): mm24})
    out = evaluate(RULES, feats, ctx, now=NOW).hazard_levels
    mine = out[out.hazard == "mine"]
    assert (mine.level.iloc[0] if len(mine) else 0) == expected
    if expected:
        assert "停产撤人" in mine.reason.iloc[0] and mine.action.iloc[0] == "停产撤人"
