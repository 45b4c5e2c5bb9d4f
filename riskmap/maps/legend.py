"""Legends and the title block of the warning map, as escaped HTML fragments (Chinese and English).

Every text that comes from data or the caller passes through :func:`html.escape`.

Examples
--------
>>> "红色" in level_legend_html() and "Red" in level_legend_html()
True
>>> "&lt;b&gt;" in title_html("<b>", "2026-07-01 08:00 北京时间")
True
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from riskmap.levels import Level

GRADES_EN = ("", "IV", "III", "II", "I")
FILL_OPACITY = {Level.NONE: 0.0, Level.BLUE: 0.55, Level.YELLOW: 0.6, Level.ORANGE: 0.6, Level.RED: 0.65}
"""Fill opacity of villages per level: level 0 is transparent (outline only)."""


def level_label(level: Level) -> str:
    """Bilingual label of a level, e.g. ``红色预警 Ⅰ级 Red (I)``; ``无预警 None`` for level 0.

    Examples
    --------
    >>> level_label(Level.ORANGE)
    '橙色预警 Ⅱ级 Orange (II)'
    >>> level_label(Level.NONE)
    '无预警 None'
    """
    if level == Level.NONE:
        return "无预警 None"
    return f"{level.color_zh}预警 {level.grade}级 {level.color.capitalize()} ({GRADES_EN[level]})"


def level_config(n_villages: int = 0) -> dict[str, object]:
    """The JS-side style table for villages: colour, fill opacity and label per level 0-4.

    Outlines get thinner and lighter above 5,000 villages so a province stays readable.
    """
    many = n_villages > 5000
    return {
        "levels": [
            {"hex": lv.hex, "fill": FILL_OPACITY[lv], "label": level_label(lv)} for lv in Level
        ],
        "stroke": "#999999" if many else "#555555",
        "weight": 0.3 if many else 0.8,
    }


def level_legend_html(counts: dict[int, int] | None = None) -> str:
    """Legend of the warning levels, most severe first, with village counts when given."""
    rows = []
    for lv in sorted(Level, reverse=True):
        opacity = max(FILL_OPACITY[lv], 0.0)
        count = f" · {counts.get(int(lv), 0)}" if counts is not None else ""
        rows.append(
            f'<div class="rm-legend-row"><span class="rm-swatch" style="background:{lv.hex};'
            f'opacity:{max(opacity, 0.25):.2f}"></span>{escape(level_label(lv))}{count}</div>'
        )
    return "<h4>预警等级 Warning level</h4>" + "".join(rows)


def layers_legend_html(symbols: Sequence[tuple[str, str, dict[str, object]]]) -> str:
    """Legend of the feature layers: ``(title, kind, style)`` with kind ``point``, ``line`` or ``area``."""
    rows = []
    for title, kind, style in symbols:
        color = escape(str(style.get("color", "#333")))
        fill = escape(str(style.get("fillColor", style.get("color", "#333"))))
        if kind == "line":
            mark = f'<span class="rm-line" style="border-top-color:{color}"></span>'
        elif kind == "area":
            mark = (f'<span class="rm-swatch" style="background:{fill};opacity:0.5;'
                    f'border-color:{color}"></span>')
        else:
            mark = f'<span class="rm-dot" style="background:{fill};border-color:{color}"></span>'
        rows.append(f'<div class="rm-legend-row">{mark}{escape(title)}</div>')
    return "<h4>图层 Layers</h4>" + "".join(rows)


def rain_legend_html(bins: Sequence[float], colors: Sequence[str], label: str) -> str:
    """Legend of the rainfall overlay: one swatch per class ``[bins[i], bins[i+1])`` in mm."""
    rows = []
    for i, color in enumerate(colors):
        lo = bins[i]
        text = f"≥ {lo:g} mm" if i + 1 >= len(bins) else f"{lo:g}–{bins[i + 1]:g} mm"
        rows.append(
            f'<div class="rm-legend-row"><span class="rm-swatch" style="background:{escape(color)}"></span>'
            f"{text}</div>"
        )
    return f"<h4>{escape(label)}</h4>" + "".join(rows)


def title_html(title: str, subtitle: str) -> str:
    """The title block: the run's title and its time line."""
    return (
        f'<div class="rm-title-main">{escape(title)}</div>'
        f'<div class="rm-title-sub">{escape(subtitle)}</div>'
    )
