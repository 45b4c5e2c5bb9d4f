"""Words of CAP messages: event names, categories, level mappings and defence guidance (zh-CN, en-US).

Mapping (components.md): blue Minor/Expected/Prepare, yellow Moderate/Expected/Prepare,
orange Severe/Immediate/Prepare, red Extreme/Immediate/Evacuate; mines stop work and
withdraw (Evacuate) from orange; a lift or expiry is AllClear.

Examples
--------
>>> cap_codes(4, "torrent")
('Extreme', 'Immediate', ('Evacuate',))
>>> cap_codes(3, "mine")
('Severe', 'Immediate', ('Evacuate',))
>>> headline("zh-CN", "issue", "torrent", 0, 3, "双河村", "青山县防指")
'青山县防指发布双河村山洪灾害橙色预警'
>>> headline("en-US", "lift", "torrent", 3, 0, "Shuanghe", "Qingshan")
'Qingshan lifts the orange mountain torrent warning for Shuanghe'
"""

from __future__ import annotations

import math

from riskmap.levels import Level

EVENTS: dict[str, tuple[str, str]] = {
    "rainstorm": ("暴雨", "rainstorm"),
    "torrent": ("山洪灾害", "mountain torrent"),
    "geohazard": ("地质灾害", "geological hazard"),
    "reservoir": ("水库下游洪水", "reservoir downstream flood"),
    "waterlogging": ("城乡内涝", "waterlogging"),
    "mine": ("矿山暴雨", "mine rainstorm"),
}
"""Hazard id -> (Chinese, English) event name."""

CATEGORIES: dict[str, tuple[str, ...]] = {
    "rainstorm": ("Met",), "torrent": ("Met", "Geo"), "geohazard": ("Geo",), "reservoir": ("Met", "Infra"),
    "waterlogging": ("Met", "Infra"), "mine": ("Met", "Safety"),
}

_SEVERITY = ("Minor", "Minor", "Moderate", "Severe", "Extreme")
_URGENCY = ("Past", "Expected", "Expected", "Immediate", "Immediate")
_RESPONSE = ("AllClear", "Prepare", "Prepare", "Prepare", "Evacuate")

GUIDANCE: dict[str, tuple[str, ...]] = {
    "zh-CN": (
        "预警已解除，请继续关注天气变化，注意次生灾害。",
        "注意防范，关注雨情变化，检查危险地段和危旧房屋。",
        "将危险地带和危房内人员转移到安全场所。",
        "危险地带的单位停课、停业，防范山洪、滑坡、泥石流等灾害，做好人员转移准备。",
        "停止集会、停课、停业（特殊行业除外），做好山洪、滑坡、泥石流等灾害的防御和抢险工作；"
        "立即转移危险地带和危房内人员；关闭地下商场、地下停车场、易涝点、隧道和涵洞。",
    ),
    "en-US": (
        "The warning is lifted; keep following the weather and watch for secondary hazards.",
        "Be prepared; follow the rain and check dangerous slopes and dilapidated houses.",
        "Move people in dangerous places and dilapidated houses to safety.",
        "Units in danger zones stop classes and business; guard against torrents, landslides and debris "
        "flows; prepare to evacuate.",
        "Stop gatherings, classes and business (except special trades); defend against torrents, landslides "
        "and debris flows; evacuate danger zones and dilapidated houses now; close underground malls, car "
        "parks, flood-prone points, tunnels and culverts.",
    ),
}
"""Defence guidance by level (standards.md, national rainstorm signal); index 0 = lifted."""

HAZARD_GUIDANCE: dict[str, tuple[str, str]] = {
    "mine": ("矿山立即停产撤人，严禁人员下井。", "Mines stop production and withdraw everyone underground."),
    "reservoir": ("水库下游危险区人员做好转移准备，听从指挥。",
                  "People in the reservoir's downstream danger zone prepare to leave and follow "
                  "instructions."),
    "geohazard": ("远离滑坡、崩塌、泥石流隐患点。",
                  "Keep away from landslide, rockfall and debris-flow sites."),
}

_VERB_ZH = {"issue": "发布", "escalate": "升级", "downgrade": "降级", "lift": "解除", "expire": "到期解除"}
_VERB_EN = {"issue": "issues", "escalate": "raises", "downgrade": "lowers", "lift": "lifts", "expire": "ends"}


def cap_codes(level: int, hazard: str) -> tuple[str, str, tuple[str, ...]]:
    """(severity, urgency, responseTypes) for a level 0-4 (0 = all clear) and a hazard."""
    response = _RESPONSE[level]
    if hazard == "mine" and level >= 3:
        response = "Evacuate"
    return _SEVERITY[level], _URGENCY[level], (response,)


def headline(lang: str, kind: str, hazard: str, old: int, new: int, place: str, issuer: str) -> str:
    """The one-line headline of a change."""
    zh, en = EVENTS[hazard]
    if lang == "zh-CN":
        if kind in ("issue",):
            return f"{issuer}发布{place}{zh}{Level(new).color_zh}预警"
        if kind in ("lift", "expire"):
            return f"{issuer}{_VERB_ZH[kind]}{place}{zh}{Level(old).color_zh}预警"
        return (f"{issuer}将{place}{zh}预警由{Level(old).color_zh}{_VERB_ZH[kind]}为"
                f"{Level(new).color_zh}")
    if kind == "issue":
        return f"{issuer} issues a {Level(new).color} {en} warning for {place}"
    if kind in ("lift", "expire"):
        return f"{issuer} {_VERB_EN[kind]} the {Level(old).color} {en} warning for {place}"
    return (f"{issuer} {_VERB_EN[kind]} the {en} warning for {place} from {Level(old).color} to "
            f"{Level(new).color}")


def description(lang: str, reason: str, window_h: float, value_mm: float, threshold_mm: float) -> str:
    """The reason with the rainfall numbers behind it."""
    parts = [reason] if reason else []
    if not any(math.isnan(v) for v in (window_h, value_mm, threshold_mm)):
        if lang == "zh-CN":
            parts.append(f"{window_h:g}小时雨量{value_mm:.1f}毫米，达到{threshold_mm:.1f}毫米的预警阈值。")
        else:
            parts.append(f"{window_h:g} h rainfall {value_mm:.1f} mm reaches the {threshold_mm:.1f} mm "
                         "threshold.")
    return " ".join(parts)


def instruction(lang: str, level: int, hazard: str) -> str:
    """Defence guidance for a level (0 = lifted) and hazard."""
    text = GUIDANCE[lang][level]
    extra = HAZARD_GUIDANCE.get(hazard)
    if extra and level > 0:
        text = f"{text}{'' if lang == 'zh-CN' else ' '}{extra[0 if lang == 'zh-CN' else 1]}"
    return text
