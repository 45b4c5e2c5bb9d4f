"""Rule files: every malformed file gives a RuleError naming file, rule and key; folders and lookup order."""

from __future__ import annotations

import filecmp
from pathlib import Path

import pytest

from riskmap.errors import RuleError
from riskmap.rules import find_rules_dir, load_rules, packaged_rules_dir
from riskmap.rules.loader import build_ruleset
from riskmap.rules.parse import parse_rule_text

REPO = Path(__file__).resolve().parents[1]

GOOD = """\
kind: hazard_rules
id: rs
hazard: rainstorm
levels:
  red:
    - {id: rs-red, feature: rain, statistic: max, window_h: 3, threshold_mm: 100}
  orange:
    - {id: rs-orange, feature: rain, statistic: max, window_h: 3, threshold_mm: 50}
"""


def test_good_file_parses() -> None:
    rule = parse_rule_text(GOOD, "rs.yaml")
    assert rule is not None and [s.level for s in rule.levels] == [4, 3]
    assert rule.levels[0].horizon_h == 12 and rule.levels[1].horizon_h == 24


@pytest.mark.parametrize(
    ("name", "old", "new", "key", "words"),
    [
        (
            "unknown feature",
            "feature: rain, statistic: max, window_h: 3, threshold_mm: 100",
            "feature: rainfall, statistic: max, window_h: 3, threshold_mm: 100",
            "levels.red[0].feature",
            "unknown feature",
        ),
        ("unknown hazard", "hazard: rainstorm", "hazard: typhoon", "hazard", "unknown hazard 'typhoon'"),
        (
            "unknown statistic",
            "statistic: max, window_h: 3, threshold_mm: 100",
            "statistic: median, window_h: 3, threshold_mm: 100",
            "levels.red[0].statistic",
            "unknown statistic 'median'",
        ),
        ("unknown level", "  orange:", "  amber:", "levels.amber", "unknown level 'amber'"),
        (
            "not rising",
            "threshold_mm: 50}",
            "threshold_mm: 120}",
            "levels.red[0].threshold_mm",
            "does not rise",
        ),
        (
            "equal is not rising",
            "threshold_mm: 50}",
            "threshold_mm: 100}",
            "levels.red[0].threshold_mm",
            "does not rise",
        ),
        ("bad unit", "threshold_mm: 100}", "threshold: 100 in}", "levels.red[0].threshold", "bad unit 'in'"),
        (
            "bad unit key",
            "threshold_mm: 100}",
            "threshold_mm: 100, unit: inch}",
            "levels.red[0].unit",
            "bad unit",
        ),
        (
            "unknown key",
            "threshold_mm: 100}",
            "threshold_mm: 100, windw: 3}",
            "levels.red[0].windw",
            "unknown key",
        ),
        (
            "bad window",
            "window_h: 3, threshold_mm: 100",
            "window_h: three, threshold_mm: 100",
            "levels.red[0].window_h",
            "whole number of hours",
        ),
        (
            "unknown context feature",
            "hazard: rainstorm",
            "hazard: rainstorm\napplies_where: [{feature: slope, at_least: 1}]",
            "applies_where[0].feature",
            "unknown feature 'slope'",
        ),
        (
            "bad horizon",
            "hazard: rainstorm",
            "hazard: rainstorm\nhorizons_h: {red: -3}",
            "horizons_h.red",
            "must be positive",
        ),
    ],
)
def test_each_malformed_file_names_file_rule_and_key(
    name: str, old: str, new: str, key: str, words: str
) -> None:
    text = GOOD.replace(old, new, 1)
    assert text != GOOD, name
    with pytest.raises(RuleError) as info:
        parse_rule_text(text, "warning_rules/rs.yaml")
    msg = str(info.value)
    assert msg.startswith("warning_rules/rs.yaml: rule 'rs', key ")
    assert f"key '{key}'" in msg and words in msg, msg


def test_yaml_syntax_error_names_the_line() -> None:
    text = GOOD.replace("  orange:\n", "  orange\n    - [unclosed\n")
    with pytest.raises(
        RuleError, match=r"broken\.yaml: rule '\?', key '\(yaml\)': YAML syntax error at line \d+"
    ):
        parse_rule_text(text, "broken.yaml")


def test_duplicate_ids_across_files() -> None:
    other = GOOD.replace("id: rs\n", "id: rs2\n").replace("hazard: rainstorm", "hazard: waterlogging")
    other = other.replace("rs-orange", "wl-orange")
    with pytest.raises(RuleError) as info:
        build_ruleset([("a.yaml", GOOD), ("b.yaml", other)])
    msg = str(info.value)
    assert (
        msg.startswith("b.yaml: rule 'rs2', key 'id'") and "duplicate id 'rs-red'" in msg and "a.yaml" in msg
    )


def test_duplicate_hazard_without_override() -> None:
    other = GOOD.replace("id: rs\n", "id: rs2\n").replace("rs-", "x-")
    with pytest.raises(RuleError, match=r"b\.yaml: rule 'rs2', key 'hazard': duplicate hazard 'rainstorm'"):
        build_ruleset([("a.yaml", GOOD), ("b.yaml", other)])


def test_local_override_wins_and_disabled_is_skipped() -> None:
    local = GOOD.replace("id: rs\n", "id: local\noverrides: rainstorm\n").replace("rs-", "local-")
    rs = build_ruleset([("a.yaml", GOOD), ("b.yaml", local)])
    assert rs.rule("rainstorm").id == "local"
    off = local.replace("overrides: rainstorm\n", "overrides: rainstorm\nenabled: false\n")
    assert build_ruleset([("a.yaml", GOOD), ("b.yaml", off)]).rule("rainstorm").id == "rs"


def test_missing_dependency_and_other_kinds() -> None:
    mine = """kind: hazard_rules
id: m
hazard: mine
levels:
  orange: [{feature: hazard_level, hazard: rainstorm, at_least: orange}]
"""
    with pytest.raises(RuleError, match=r"m\.yaml: rule 'm', key 'levels': reads the 'rainstorm' level"):
        build_ruleset([("m.yaml", mine)])
    rs = build_ruleset(
        [
            ("m.yaml", mine),
            ("a.yaml", GOOD),
            ("routing.yaml", "kind: routing\nroutes: []\n"),
            ("templates.yaml", "sms: {}\n"),
        ]
    )
    assert rs.hazards == ("rainstorm", "mine")  # dependency order, other kinds skipped


def test_file_without_kind_is_an_error() -> None:
    with pytest.raises(RuleError, match=r"x\.yaml: rule 'rs', key 'kind'"):
        build_ruleset([("x.yaml", GOOD.replace("kind: hazard_rules\n", ""))])


def test_packaged_and_office_folders_are_identical() -> None:
    packaged = Path(str(packaged_rules_dir()))
    office = REPO / "warning_rules"
    rule_files = sorted(
        p.name for p in packaged.glob("*.yaml") if "kind: hazard_rules" in p.read_text("utf-8")
    )
    office_rules = sorted(
        p.name for p in office.glob("*.yaml") if "kind: hazard_rules" in p.read_text("utf-8")
    )
    assert rule_files == office_rules and len(rule_files) == 7
    match, mismatch, errors = filecmp.cmpfiles(packaged, office, rule_files, shallow=False)
    assert mismatch == [] and errors == []
    assert load_rules(office).hazards == load_rules(packaged).hazards


def test_every_shipped_file_cites_a_source_and_explains_the_statistic() -> None:
    for p in Path(str(packaged_rules_dir())).glob("*.yaml"):
        text = p.read_text("utf-8")
        if "kind: hazard_rules" in text:
            head = "\n".join(line for line in text.splitlines() if line.startswith("#"))
            assert "Source" in head, p.name
            assert "Statistic" in head or "statistic" in head, p.name


def test_lookup_order(tmp_path: Path) -> None:
    cli, cfg = tmp_path / "cli", tmp_path / "cfg"
    cli.mkdir()
    cfg.mkdir()
    assert find_rules_dir(cli, cfg, tmp_path) == cli
    assert find_rules_dir(None, "cfg", tmp_path) == cfg
    assert find_rules_dir(None, None, tmp_path).name == "rules_default"
    local = tmp_path / "warning_rules"
    local.mkdir()
    (local / "rainstorm.yaml").write_text(GOOD, encoding="utf-8")
    assert find_rules_dir(None, None, tmp_path) == local
    assert load_rules(find_rules_dir(None, None, tmp_path)).rule("rainstorm").id == "rs"
    with pytest.raises(RuleError, match="--rules"):
        find_rules_dir(tmp_path / "nope", None, tmp_path)


@pytest.mark.parametrize(
    ("spec", "window_h", "mm"),
    [
        ("threshold: 5 cm", 3, 50.0),
        ("threshold: '50 mm'", 3, 50.0),
        ("threshold: 20 mm/h", 3, 60.0),
        ("threshold_mm: 20, unit: mm/h", 6, 120.0),
        ("threshold: {intensity_duration: {a: 14.82, b: 0.39}}", 6, round(14.82 * 6**0.61, 3)),
    ],
)
def test_threshold_units(spec: str, window_h: int, mm: float) -> None:
    text = f"""kind: hazard_rules
id: u
hazard: waterlogging
levels:
  red: [{{feature: rain, statistic: max, window_h: {window_h}, {spec}}}]
"""
    rule = parse_rule_text(text, "u.yaml")
    assert rule.levels[0].conditions[0].threshold.mm == pytest.approx(mm)


def test_lists_of_windows_expand_with_ids() -> None:
    rule = parse_rule_text(
        GOOD.replace(
            "{id: rs-red, feature: rain, statistic: max, window_h: 3, threshold_mm: 100}",
            "{id: rs-red, feature: rain, statistic: max, window_h: [1, 6], threshold_mm: [100, 150]}",
        ),
        "rs.yaml",
    )
    red = rule.levels[0].conditions
    assert [(c.id, c.window_h, c.threshold.mm) for c in red] == [
        ("rs-red/1h", 1, 100.0),
        ("rs-red/6h", 6, 150.0),
    ]
    with pytest.raises(RuleError, match=r"key 'levels.red\[0\].threshold_mm': 1 thresholds for 2 windows"):
        parse_rule_text(
            GOOD.replace("window_h: 3, threshold_mm: 100", "window_h: [1, 6], threshold_mm: [100]"), "rs.yaml"
        )


def test_duplicate_yaml_key_is_an_error_not_silently_dropped() -> None:
    text = (
        GOOD + "  red:\n    - {id: rs-red2, feature: rain, statistic: max, window_h: 1, threshold_mm: 90}\n"
    )
    with pytest.raises(
        RuleError, match=r"d\.yaml: rule '\?', key '\(yaml\)': .* line 9.*duplicate key 'red'"
    ):
        parse_rule_text(text, "d.yaml")


@pytest.mark.parametrize("encoding", ["utf-8-sig", "gb18030"])
def test_files_saved_by_windows_editors_load(tmp_path: Path, encoding: str) -> None:
    text = "# 暴雨洪涝风险（本地）\n" + GOOD.replace("id: rs\n", "id: rs\naction_zh: 转移人员\n")
    (tmp_path / "rainstorm.yaml").write_bytes(text.encode(encoding))
    assert load_rules(tmp_path).rule("rainstorm").action_zh == "转移人员"
