"""The analyst helpers (riskmap.analyst) on tiny hand-made tables; the demo flow is the module doctest."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from riskmap.analyst import (
    LEVEL_LABELS,
    compare_levels,
    copy_rules,
    hazard_table,
    level_counts,
    levels_frame,
    with_cache_dir,
)
from riskmap.config import Settings, settings_from_dict
from riskmap.errors import InputError
from riskmap.rules import load_rules, packaged_rules_dir

CODES = ["469900001001", "469900001002", "469900001003"]


def _assessment(levels: list[int], hazard_rows: list[tuple[str, str, int]] | None = None) -> SimpleNamespace:
    villages = pd.DataFrame({
        "village_code": CODES, "village_name": ["甲村", "乙村", "丙村"], "level": levels,
        "color": [LEVEL_LABELS[v] for v in levels], "grade": ["", "", ""], "hazards": ["", "", ""],
        "score": [0, 0, 0], "reasons": ["", "", ""],
    })
    rows = hazard_rows or []
    hl = pd.DataFrame({"village_code": [r[0] for r in rows], "hazard": [r[1] for r in rows],
                       "level": [r[2] for r in rows]})
    return SimpleNamespace(villages=villages, hazard_levels=hl,
                           ruleset=SimpleNamespace(hazards=("rainstorm", "torrent")))


def test_levels_frame_joins_region_columns_by_code_not_position() -> None:
    region = SimpleNamespace(villages=pd.DataFrame({
        "code": CODES[::-1], "township": ["丙镇", "乙镇", "甲镇"], "population": [30, 20, 10],
        "households": [3, 2, 1],
    }))
    out = levels_frame(SimpleNamespace(assessment=_assessment([4, 0, 2])), region)  # an AssessResult-like
    assert out.index.tolist() == CODES
    assert out["township"].tolist() == ["甲镇", "乙镇", "丙镇"]
    assert out["population"].tolist() == [10, 20, 30]
    assert out["color_zh"].tolist() == ["红色", "无", "黄色"]
    assert list(out.columns[:5]) == ["village_name", "township", "population", "households", "level"]


def test_hazard_table_fills_zeros_and_keeps_unknown_hazards() -> None:
    a = _assessment([4, 0, 3], [(CODES[0], "rainstorm", 4), (CODES[2], "torrent", 3), (CODES[2], "mine", 2)])
    wide = hazard_table(a)
    assert wide.columns.tolist() == ["rainstorm", "torrent", "mine"]
    assert wide.loc[CODES[0]].tolist() == [4, 0, 0]
    assert wide.loc[CODES[1]].tolist() == [0, 0, 0]
    assert wide.loc[CODES[2]].tolist() == [0, 3, 2]


def test_level_counts_lists_every_level_and_sums_people() -> None:
    frame = pd.DataFrame({"level": [4, 4, 2], "population": [5, 7, 11], "households": [1, 2, 3]})
    out = level_counts(frame)
    assert out.index.tolist() == [0, 1, 2, 3, 4]
    assert out["villages"].tolist() == [0, 0, 1, 0, 2]
    assert out["population"].tolist() == [0, 0, 11, 0, 12]
    assert out["households"].tolist() == [0, 0, 3, 0, 3]
    assert out.loc[4, "grade"] == "Ⅰ" and out.loc[0, "color"] == "none"


@pytest.mark.parametrize("bad", [[5], [-1], [1.5], [float("nan")]])
def test_level_counts_rejects_levels_outside_0_to_4(bad: list[float]) -> None:
    with pytest.raises(InputError, match="0-4"):
        level_counts(pd.Series(bad))


def test_compare_levels_aligns_by_village_and_has_all_levels() -> None:
    before = pd.Series([4, 3, 0], index=CODES)
    after = pd.Series([4, 4, 0], index=CODES).iloc[::-1]          # same villages, other order
    table = compare_levels(before, after)
    assert table.index.tolist() == list(LEVEL_LABELS) and table.columns.tolist() == list(LEVEL_LABELS)
    assert table.loc["orange", "red"] == 1 and table.loc["red", "red"] == 1 and table.loc["none", "none"] == 1
    assert int(table.to_numpy().sum()) == 3


def test_compare_levels_refuses_different_villages() -> None:
    with pytest.raises(InputError, match="different villages"):
        compare_levels(pd.Series([1, 2], index=CODES[:2]), pd.Series([1, 2], index=CODES[1:]))


def test_copy_rules_copies_rule_files_only_and_refuses_a_second_copy(tmp_path: Path) -> None:
    dest = copy_rules(tmp_path / "rules")
    packaged = sorted(e.name for e in packaged_rules_dir().iterdir() if e.name.endswith((".yaml", ".yml")))
    assert sorted(p.name for p in dest.glob("*.y*ml")) == packaged
    assert load_rules(dest).hazards == load_rules(packaged_rules_dir()).hazards
    with pytest.raises(InputError, match="already holds rule files"):
        copy_rules(dest)


def test_copy_rules_from_a_folder_skips_other_files(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "rainstorm.yaml").write_text("kind: hazard_rules\n", encoding="utf-8")
    (src / "notes.md").write_text("# notes\n", encoding="utf-8")
    (src / "backup.yaml~").write_text("x", encoding="utf-8")
    (src / "sub").mkdir()
    dest = copy_rules(tmp_path / "dest", source=src)
    assert sorted(p.name for p in dest.iterdir()) == ["notes.md", "rainstorm.yaml"]
    assert (dest / "rainstorm.yaml").read_text(encoding="utf-8") == "kind: hazard_rules\n"


def test_with_cache_dir_changes_only_the_cache(tmp_path: Path) -> None:
    s = settings_from_dict({"office": {"language": "en-US"}})
    out = with_cache_dir(s, tmp_path)
    assert out.paths.cache_dir == str(tmp_path)
    assert out.office == s.office and out.rainfall == s.rainfall and out.paths.rules_dir == s.paths.rules_dir
    assert Settings().paths.cache_dir != str(tmp_path)
