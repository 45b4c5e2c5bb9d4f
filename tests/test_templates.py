"""SMS templates: loading, load-time checks, rendering (riskmap.templates)."""

from __future__ import annotations

import re
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from riskmap import sms
from riskmap.errors import DataWarning, RuleError
from riskmap.levels import Level
from riskmap.templates import Item, clean_name, load_templates

ROOT = Path(__file__).resolve().parents[1]
PACKAGED = ROOT / "riskmap" / "rules_default" / "templates.yaml"
T0 = datetime(2026, 7, 22, 12, 0, tzinfo=UTC)  # 20:00 Beijing time
BASE = {"signature": "青山县防指", "issuer": "青山县防汛抗旱指挥部办公室", "issued_at": T0}
# 【签名】{发布单位}{YYYY年MM月DD日HH时MM分}发布{灾种}{颜色}预警[{级}级/{程度}]:{正文}
FORM = re.compile(r"^【(?P<sig>[^】]+)】(?P<issuer>.+?)(?P<time>\d{4}年\d\d月\d\d日\d\d时\d\d分)发布"
                  r"(?P<hazard>.+?)(?P<color>[蓝黄橙红]色)预警\[(?P<grade>[ⅠⅡⅢⅣ])级/(?P<sev>一般|较重|严重|特别严重)\]:"
                  r"(?P<body>.+)$")


def write(tmp_path: Path, data: dict) -> Path:
    p = tmp_path / "templates.yaml"
    p.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return p


def packaged() -> dict:
    return yaml.safe_load(PACKAGED.read_text(encoding="utf-8"))


def test_packaged_and_office_copies_load_and_are_identical():
    zh = load_templates()
    assert zh.language == "zh-CN"
    assert load_templates(language="en-US").language == "en-US"
    office = ROOT / "warning_rules" / "templates.yaml"
    assert office.read_text(encoding="utf-8") == PACKAGED.read_text(encoding="utf-8")
    assert load_templates(ROOT / "warning_rules").source.endswith("warning_rules/templates.yaml")


@pytest.mark.parametrize("level", [Level.BLUE, Level.YELLOW, Level.ORANGE, Level.RED])
def test_warning_follows_the_official_form(level):
    ts = load_templates()
    item = Item("torrent", level, T0 + timedelta(hours=1), T0 + timedelta(hours=4), 88.6)
    text = ts.render_warning(**BASE, place="上河坝村", items=[item], shelter="上河坝小学")
    m = FORM.match(text)
    assert m, text
    assert m["sig"] == "青山县防指"
    assert m["issuer"] == "青山县防汛抗旱指挥部办公室"
    assert m["time"] == "2026年07月22日20时00分"  # Beijing time
    assert m["hazard"] == "山洪灾害风险"
    assert m["color"] == level.color_zh and m["grade"] == level.grade and m["sev"] == level.severity_zh
    assert "上河坝村22日21时至23日00时预计降雨89毫米" in m["body"]
    assert "就近避险点:上河坝小学。" in m["body"]


def test_actions_by_level_and_mine():
    ts = load_templates()
    red = ts.render_warning(**BASE, place="村", items=[Item("rainstorm", Level.RED, T0, T0, 120)])
    yellow = ts.render_warning(**BASE, place="村", items=[Item("rainstorm", Level.YELLOW, T0, T0, 60)])
    mine = ts.render_warning(**BASE, place="青山煤矿", items=[Item("mine", Level.ORANGE, T0, T0, 70)])
    assert "立即转移" in red and "准备转移" in yellow
    assert "停产撤人" in mine
    explicit = ts.render_warning(**BASE, place="村",
                                 items=[Item("torrent", Level.ORANGE, T0, T0, 70, "立即转移")])
    assert ",立即转移。" in explicit


def test_rainstorm_is_the_offices_risk_warning_not_the_met_signal():
    ts = load_templates()
    text = ts.render_warning(**BASE, place="村", items=[Item("rainstorm", Level.RED, T0, T0, 120)])
    assert "暴雨洪涝风险红色预警" in text
    assert not re.search(r"暴雨[蓝黄橙红]色预警|暴雨预警信号", text)
    assert "非气象预警信号" in text


def test_several_hazards_merge_highest_first():
    ts = load_templates()
    items = [Item("geohazard", Level.YELLOW), Item("torrent", Level.RED, T0, T0 + timedelta(hours=3), 130),
             Item("reservoir", Level.ORANGE)]
    text = ts.render_warning(**BASE, place="下河村", items=items)
    m = FORM.match(text)
    assert m and m["hazard"] == "山洪灾害风险" and m["color"] == "红色"
    assert "同时生效:水库下游洪水风险橙色、地质灾害气象风险黄色。" in text
    assert "避险点" not in text  # no shelter known: the fragment is left out


def test_drill_prefix_and_no_shelter():
    ts = load_templates()
    text = ts.render_warning(**BASE, place="村", items=[Item("rainstorm", Level.BLUE)], drill=True)
    assert text.startswith("【演练】【青山县防指】")
    assert "预计降雨-毫米" in text  # unknown rain is shown as '-'


def test_summary_counts_villages_per_level():
    ts = load_templates()
    text = ts.render_summary(**BASE, area="青山镇", counts={Level.ORANGE: 3, Level.RED: 12, Level.BLUE: 0},
                             internal=2)
    assert "青山镇12村红色预警、3村橙色预警。另有内部预警2村。" in text
    assert sms.count_segments(text) <= 2


def test_all_clear():
    ts = load_templates()
    text = ts.render_all_clear(**BASE, place="上河坝村", hazards=["rainstorm", "torrent"])
    assert text.endswith("解除上河坝村暴雨洪涝风险、山洪灾害风险预警。")


def test_names_are_sanitised():
    ts = load_templates()
    text = ts.render_warning(**BASE, place="河村\n【县政府】{signature}", items=[Item("torrent", Level.RED)],
                             shelter="<b>小学</b>")
    assert "\n" not in text
    assert text.count("【") == 1 and text.count("】") == 1
    assert "{signature}" in text  # kept literally, never re-interpreted as a placeholder
    assert "<b>" not in text
    assert clean_name("a\u200bb\tc") == "a b c"


def test_template_over_budget_is_rejected_naming_file_and_template(tmp_path):
    data = packaged()
    extra = "请各单位继续加强值班值守,密切关注雨水情变化。"
    data["languages"]["zh-CN"]["templates"]["all_clear"]["text"] += extra
    path = write(tmp_path, data)
    with pytest.raises(RuleError) as exc:
        load_templates(path)
    msg = str(exc.value)
    assert str(path) in msg and "zh-CN/all_clear" in msg and "budget of 1" in msg


def test_budget_counts_with_the_longest_sample_names(tmp_path):
    data = packaged()
    data["sample"]["issuer"] = "青山县防汛抗旱指挥部办公室" * 3
    data["languages"]["zh-CN"]["templates"]["all_clear"]["budget"] = 1
    with pytest.raises(RuleError, match="all_clear"):
        load_templates(write(tmp_path, data))


def test_raising_the_budget_accepts_it(tmp_path):
    data = packaged()
    data["languages"]["zh-CN"]["templates"]["warning"]["budget"] = 4
    data["languages"]["zh-CN"]["templates"]["warning"]["text"] += "请注意收听广播。" * 5
    assert load_templates(write(tmp_path, data)).budgets["warning"] == 4


def test_unknown_placeholder_is_rejected(tmp_path):
    data = packaged()
    data["languages"]["zh-CN"]["templates"]["warning"]["text"] += "{village_code}"
    with pytest.raises(RuleError, match=r"template 'warning'.*unknown placeholder \{village_code\}"):
        load_templates(write(tmp_path, data))


def test_met_signal_wording_is_rejected(tmp_path):
    data = packaged()
    data["languages"]["zh-CN"]["hazards"]["rainstorm"] = "暴雨"
    with pytest.raises(RuleError, match="暴雨预警信号"):
        load_templates(write(tmp_path, data))


def test_missing_zh_and_bad_yaml_are_rule_errors(tmp_path):
    data = packaged()
    del data["languages"]["zh-CN"]
    with pytest.raises(RuleError, match="zh-CN is required"):
        load_templates(write(tmp_path, data))
    bad = tmp_path / "bad" / "templates.yaml"
    bad.parent.mkdir()
    bad.write_text("languages: [", encoding="utf-8")
    with pytest.raises(RuleError, match="not valid YAML"):
        load_templates(bad.parent)
    with pytest.raises(RuleError, match="not found"):
        load_templates(tmp_path / "nowhere.yaml")


def test_long_real_names_warn_at_render_time():
    ts = load_templates()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        ts.render_all_clear(**BASE, place="很长的村名" * 4, hazards=list(ts.hazards))
    assert any(issubclass(w.category, DataWarning) and "over its budget" in str(w.message) for w in rec)


def test_english_templates():
    ts = load_templates(language="en-US")
    text = ts.render_warning(signature="QS", issuer="Qingshan FCO", issued_at=T0, place="Shanghe",
                             items=[Item("rainstorm", Level.RED, T0, T0 + timedelta(hours=3), 120)])
    assert text.startswith("[QS] Qingshan FCO, 2026-07-22 20:00: red Rainstorm flood risk warning (Ⅰ)")
    assert "evacuate now" in text
