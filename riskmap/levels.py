"""Warning levels: 0 none, 1 blue Ⅳ, 2 yellow Ⅲ, 3 orange Ⅱ, 4 red Ⅰ (4 most severe).

The convention follows 中国气象局令第16号 (2007), art. 3: four levels, Ⅰ the most
severe.  Rule files name levels by colour; code compares integers.

Examples
--------
>>> Level.from_name("orange")
<Level.ORANGE: 3>
>>> Level.RED.grade, Level.RED.color_zh, Level.BLUE.severity_zh
('Ⅰ', '红色', '一般')
>>> Level.from_name("橙色") > Level.YELLOW
True
"""

from __future__ import annotations

from enum import IntEnum

from riskmap.errors import InputError

_COLORS = ("none", "blue", "yellow", "orange", "red")
_GRADES = ("", "Ⅳ", "Ⅲ", "Ⅱ", "Ⅰ")
_COLORS_ZH = ("无", "蓝色", "黄色", "橙色", "红色")
_SEVERITY_ZH = ("", "一般", "较重", "严重", "特别严重")
_HEX = ("#ffffff", "#1e6fd9", "#f5d000", "#ff8c00", "#e0001b")


class Level(IntEnum):
    """A warning level; the integer value orders severity."""

    NONE = 0
    BLUE = 1
    YELLOW = 2
    ORANGE = 3
    RED = 4

    @property
    def color(self) -> str:
        """English colour name: none, blue, yellow, orange, red."""
        return _COLORS[self]

    @property
    def grade(self) -> str:
        """Roman grade Ⅳ … Ⅰ, empty for none."""
        return _GRADES[self]

    @property
    def color_zh(self) -> str:
        """Chinese colour name, e.g. 红色."""
        return _COLORS_ZH[self]

    @property
    def severity_zh(self) -> str:
        """Chinese severity word: 一般, 较重, 严重, 特别严重."""
        return _SEVERITY_ZH[self]

    @property
    def hex(self) -> str:
        """Display colour for maps."""
        return _HEX[self]

    @classmethod
    def from_name(cls, name: str | int) -> Level:
        """Parse a colour (English or Chinese), a grade, or an integer 0-4."""
        if isinstance(name, int) and not isinstance(name, bool):
            if 0 <= name <= 4:
                return cls(name)
            raise InputError(f"level {name!r} is outside 0-4")
        raw = str(name).strip().removesuffix("级")
        key = raw.lower()
        if key in _COLORS:
            return cls(_COLORS.index(key))
        if raw in _COLORS_ZH:
            return cls(_COLORS_ZH.index(raw))
        if raw in _GRADES[1:]:
            return cls(_GRADES.index(raw))
        if key in ("0", "1", "2", "3", "4"):
            return cls(int(key))
        raise InputError(
            f"unknown level {name!r}: use none, blue, yellow, orange or red (or 蓝色/黄色/橙色/红色, Ⅳ-Ⅰ)"
        )


LEVELS = (Level.BLUE, Level.YELLOW, Level.ORANGE, Level.RED)
"""The four warning levels, least severe first."""
