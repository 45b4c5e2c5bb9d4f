"""SMS length counting and segmentation (riskmap.sms)."""

from __future__ import annotations

import pytest

from riskmap import sms


def test_chinese_counts_in_ucs2_code_units():
    text = "青山县防指发布暴雨洪涝风险红色预警"
    assert sms.encoding(text) == "ucs2"
    assert sms.length(text) == len(text) == 17


def test_non_bmp_character_counts_two_units():
    assert sms.length("𠮷") == 2
    assert sms.length("𠮷" * 35) == 70
    assert sms.count_segments("𠮷" * 35) == 1
    assert sms.count_segments("𠮷" * 35 + "a") == 2


@pytest.mark.parametrize(
    ("n", "parts"),
    [(1, 1), (70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4)],
)
def test_ucs2_boundaries(n, parts):
    assert sms.count_segments("警" * n) == parts


@pytest.mark.parametrize(("n", "parts"), [(160, 1), (161, 2), (306, 2), (307, 3)])
def test_gsm7_boundaries(n, parts):
    assert sms.encoding("a" * n) == "gsm7"
    assert sms.count_segments("a" * n) == parts


def test_gsm7_extension_characters_take_two_septets():
    text = "€" * 80
    assert sms.encoding(text) == "gsm7"
    assert sms.length(text) == 160
    assert sms.count_segments(text) == 1
    assert sms.count_segments(text + "a") == 2


def test_one_chinese_character_forces_ucs2():
    text = "a" * 100 + "雨"
    assert sms.encoding(text) == "ucs2"
    assert sms.count_segments(text) == 2


def test_segments_reassemble_and_respect_part_size():
    text = "".join(chr(0x4E00 + i) for i in range(300))
    parts = sms.segments(text)
    assert "".join(parts) == text
    assert [len(p) for p in parts] == [67, 67, 67, 67, 32]


@pytest.mark.parametrize("pos", range(60, 70))
def test_surrogate_pair_never_split(pos):
    text = "警" * pos + "𠮷" + "雨" * 80
    parts = sms.segments(text)
    assert "".join(parts) == text
    for p in parts:
        units = p.encode("utf-16-be")
        assert len(units) // 2 <= sms.UCS2_PART
        # each part decodes on its own: no lone surrogate at either end
        assert units.decode("utf-16-be") == p
        first, last = ord(p[0]), ord(p[-1])
        assert not 0xD800 <= first <= 0xDFFF and not 0xD800 <= last <= 0xDFFF
    assert any("𠮷" in p for p in parts)


def test_pair_that_would_straddle_the_boundary_moves_to_next_part():
    text = "警" * 66 + "𠮷" + "警" * 10
    parts = sms.segments(text)
    assert parts[0] == "警" * 66
    assert parts[1].startswith("𠮷")


def test_empty_text_is_one_part():
    assert sms.segments("") == [""]
    assert sms.count_segments("") == 1
