"""explain_village: the plain-words chain for one village, in Chinese and English."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from rules_fixtures import NOW, hourly_windows
from test_rules_context import CODES, tiny_region

from riskmap.context import ContextParams, compute_context
from riskmap.errors import InputError
from riskmap.rules import evaluate, explain_village, features_from_windows, load_rules, packaged_rules_dir


@pytest.fixture(scope="module")
def case():
    rules = load_rules(packaged_rules_dir())
    region = tiny_region()
    ctx = compute_context(region, ContextParams.from_ruleset(rules))
    hourly = np.zeros((5, 96))
    hourly[2, 26:29] = 20.0  # V3 (holds the 病险 reservoir ra): 60 mm in 3 h ending 5 h after now
    hourly[0, 26:29] = 25.0  # V1: 75 mm in 3 h
    durations = sorted({w for _, w, _ in rules.rain_keys()})
    horizons = sorted({h for _, _, h in rules.rain_keys()})
    eff = xr.DataArray(np.array([30.0, 0, 0, 0, 0]), coords={"village": CODES}, dims="village")
    f = features_from_windows(
        rules,
        ctx,
        now=NOW,
        windows=hourly_windows(hourly, durations, horizons),
        effective=eff,
        critical_rainfall=region.critical_rainfall,
    )
    return rules, f, ctx


def test_chinese_chain_for_the_reservoir_village(case) -> None:
    rules, f, ctx = case
    a = evaluate(rules, f, ctx, now=NOW, language="zh-CN")
    text = explain_village(a, f, ctx, CODES[3], "zh-CN")
    lines = text.splitlines()
    assert lines[0].startswith(f"村 {CODES[3]} 四村：总体红色(Ⅰ级)")
    assert "不是气象部门发布的预警信号" in text
    assert "水库=甲水库" in text and "病险水库=True" in text
    assert "水库周边3小时累计雨量(村平均) 60.0毫米 (时段止于07月01日13时) ≥ 50.0毫米" in text
    assert "升级 +1: 病险水库，提高一级" in text
    assert "→ 红色(Ⅰ级): 水库下游风险红色" in text
    assert "山洪灾害风险 [torrent, torrent-critical]" in text and "→ 不适用于本村" in text


def test_english_chain_and_critical_rainfall(case) -> None:
    rules, f, ctx = case
    a = evaluate(rules, f, ctx, now=NOW, language="en-US")
    text = explain_village(a, f, ctx, CODES[0], "en-US")
    assert text.splitlines()[0].startswith(f"Village {CODES[0]} 一村: orange (Ⅱ)")
    assert "soil state=normal" in text  # R_eff 30 mm: 28 ≤ 30 < 52
    assert "≥ 21.0 mm (0.6 × prepare critical rainfall) ✓  (torrent-prepare-60/1h)" in text
    assert "conditions not applying here: torrent-county-red/1h" in text  # the county table is skipped
    assert "→ orange (Ⅱ): rainstorm flood risk orange" in text


def test_unknown_village(case) -> None:
    rules, f, ctx = case
    a = evaluate(rules, f, ctx, now=NOW)
    with pytest.raises(InputError, match="'999' is not in the region"):
        explain_village(a, f, ctx, "999", "zh-CN")


def test_language_differs_from_the_assessment(case) -> None:
    rules, f, ctx = case
    a = evaluate(rules, f, ctx, now=NOW, language="zh-CN")
    text = explain_village(a, f, ctx, CODES[3], "en-US")
    assert "→ red (Ⅰ): reservoir-small-orange" in text and "水库下游风险红色" not in text
