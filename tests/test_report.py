"""The static report: township table by hand, CJK font lookup, PNG colours and PDF text (pdftotext)."""

from __future__ import annotations

import os
import shutil
import subprocess
import warnings

import numpy as np
import pandas as pd
import pytest
from maps_fixture import CODES, EVIL, make_levels, make_region

from riskmap.errors import DataWarning, InputError, RiskmapIOError
from riskmap.levels import Level
from riskmap.maps.legend import FILL_OPACITY
from riskmap.report import (
    find_cjk_font,
    nice_length,
    report_figure,
    township_table,
    write_report,
    write_report_files,
)

ISSUER = "青山县防汛抗旱指挥部办公室"


def _need(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (required in CI)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def cjk() -> str:
    try:
        return find_cjk_font()
    except RiskmapIOError as exc:
        _need(str(exc))
        raise


def messages() -> pd.DataFrame:
    return pd.DataFrame({"village_code": [CODES[0], CODES[0], CODES[0], CODES[2]],
                         "status": ["delivered", "sent", "failed", "delivered"],
                         "acknowledged": [True, False, False, True]})


def test_township_table_by_hand() -> None:
    table = township_table(make_region(), make_levels(), messages()).set_index("township")
    # 城关镇: 红村 (red, 1000 people, 300 households) and 橙村 (orange, 900, 280)
    assert table.loc["城关镇", ["red", "orange", "yellow", "blue", "none"]].tolist() == [1, 1, 0, 0, 0]
    assert table.loc["城关镇", ["people", "households"]].tolist() == [1900, 580]
    assert table.loc["城关镇", ["sent", "delivered", "acknowledged"]].tolist() == [2, 1, 1]
    # 河口乡: 黄村 (yellow 800/260), 蓝村 (blue 700/240), the level-0 village not counted in people
    assert table.loc["河口乡", ["yellow", "blue", "none", "villages_warned"]].tolist() == [1, 1, 1, 2]
    assert table.loc["河口乡", ["people", "households"]].tolist() == [1500, 500]
    assert table.loc["河口乡", ["sent", "delivered", "acknowledged"]].tolist() == [1, 1, 1]
    assert table.loc["合计 Total", ["villages_warned", "people", "sent"]].tolist() == [4, 3400, 3]
    assert list(table.index) == ["城关镇", "河口乡", "合计 Total"]  # most severe first, total last


def test_township_table_without_messages_and_bad_inputs() -> None:
    table = township_table(make_region(), make_levels())
    assert table[["sent", "delivered", "acknowledged"]].isna().all().all()
    unknown = pd.DataFrame({"village_code": ["999999999999"], "status": ["sent"]})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        township_table(make_region(), make_levels(), unknown)
    assert any(issubclass(w.category, DataWarning) and "no village" in str(w.message) for w in caught)
    with pytest.raises(InputError, match="status"):
        township_table(make_region(), make_levels(), pd.DataFrame({"village_code": [CODES[0]]}))
    with pytest.raises(InputError, match="level"):
        township_table(make_region(), make_levels().drop(columns="level"))


def test_townships_fall_back_to_code_prefix() -> None:
    region = make_region()
    region = type(region)(**{**region.__dict__, "villages": region.villages.drop(columns="township")})
    table = township_table(region, make_levels())
    assert table["township"].tolist() == ["420100001", "合计 Total"]


def test_nice_scale_bar_lengths() -> None:
    lengths = [nice_length(x) for x in (10_000, 7_300, 260_000, 3)]
    assert lengths == [2000.0, 1000.0, 50000.0, 1.0]  # at least 1 m


def test_missing_cjk_font_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from matplotlib import font_manager

    monkeypatch.setattr(font_manager.fontManager, "ttflist", [])
    monkeypatch.setattr(font_manager, "findSystemFonts", lambda *a, **k: [])
    with pytest.raises(RiskmapIOError, match="fonts-noto-cjk"):
        find_cjk_font()


def test_cjk_font_found_on_disk_when_the_cache_is_stale(monkeypatch: pytest.MonkeyPatch, cjk: str) -> None:
    from matplotlib import font_manager

    kept = [f for f in font_manager.fontManager.ttflist if "CJK" not in f.name and "Han" not in f.name]
    monkeypatch.setattr(font_manager.fontManager, "ttflist", kept)
    assert find_cjk_font() == cjk


def _report(tmp_path, **kwargs):
    fig = report_figure(make_region(), make_levels(), title="清江县山洪灾害预警报告", issuer=ISSUER,
                        run_time="2026-07-01T00:00:00Z", messages=messages(), **kwargs)
    return write_report(fig, tmp_path / "report.png", tmp_path / "report.pdf")


def test_pdf_carries_the_chinese_text(tmp_path, cjk: str) -> None:
    if shutil.which("pdftotext") is None:
        _need("pdftotext (poppler-utils) is not installed")
    png, pdf = _report(tmp_path)
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True,
                          text=True).stdout
    for label in ("清江县山洪灾害预警报告", ISSUER, "北京时间", "2026-07-01 08:00", "预警等级", "红色预警",
                  "橙色预警", "分乡镇统计", "城关镇", "河口乡", "合计", "涉及人口", "送达", "2 km", "北"):
        assert label in text, label
    assert "1,900" in text  # people concerned in 城关镇


def test_png_draws_villages_in_level_colours(tmp_path, cjk: str) -> None:
    from PIL import Image

    png, _pdf = _report(tmp_path)
    img = np.asarray(Image.open(png).convert("RGB")).astype(int)
    assert img.shape[:2] == (1240, 1753)  # A4 landscape at 150 dpi
    for lv in (Level.RED, Level.ORANGE, Level.YELLOW, Level.BLUE):
        rgb = np.array([int(lv.hex[i:i + 2], 16) for i in (1, 3, 5)])
        want = np.round(FILL_OPACITY[lv] * rgb + (1 - FILL_OPACITY[lv]) * 255)
        close = (np.abs(img - want) <= 6).all(axis=2).sum()
        assert close > 5000, (lv, close)  # a 2 km village is thousands of pixels


def test_long_township_lists_are_summarised(tmp_path, cjk: str) -> None:
    if shutil.which("pdftotext") is None:
        _need("pdftotext (poppler-utils) is not installed")
    _png, pdf = _report(tmp_path, max_rows=1)
    text = subprocess.run(["pdftotext", str(pdf), "-"], check=True, capture_output=True, text=True).stdout
    assert "其余 2 个乡镇" in text


def test_names_in_report_are_plain_text(tmp_path, cjk: str) -> None:
    # the report has no markup: a name with markup characters is drawn as is, and mathtext is not triggered
    region = make_region()
    region.villages.loc[0, "township"] = "$x$<b>镇"
    fig = report_figure(region, make_levels(), title="t", issuer=EVIL, run_time="2026-07-01T00:00:00Z")
    (pdf,) = write_report(fig, pdf=tmp_path / "r.pdf")
    if shutil.which("pdftotext") is None:
        _need("pdftotext (poppler-utils) is not installed")
    text = subprocess.run(["pdftotext", str(pdf), "-"], check=True, capture_output=True, text=True).stdout
    assert "$x$<b>镇" in text and "alert(1)" in text


def test_report_files_for_the_cli(tmp_path, cjk: str) -> None:
    files = write_report_files(tmp_path / "OUT", make_region(), make_levels(), title="t", issuer=ISSUER,
                               run_time="2026-07-01T00:00:00Z", messages=messages())
    assert sorted(files) == ["pdf", "png", "townships"]
    assert files["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and files["pdf"].read_bytes()[:5] == b"%PDF-"
    csv = pd.read_csv(files["townships"], encoding="utf-8")
    assert csv["township"].tolist() == ["城关镇", "河口乡", "合计 Total"]
    assert csv.loc[0, "people"] == 1900 and csv.loc[2, "sent"] == 3
