"""SMS message templates: load them from ``templates.yaml``, check them, render them.

The file (``warning_rules/templates.yaml``, packaged default in
``riskmap/rules_default/``) holds, per language (zh-CN required, en-US
optional), the hazard names (灾种), the actions by level and hazard, and three
templates in the form offices use —
``【签名】{发布单位}{YYYY年MM月DD日HH时MM分}发布{灾种}{颜色}预警[{Ⅳ…Ⅰ}级/{一般…特别严重}]:{正文}``:

- ``warning`` — one message to one person, several hazards merged (the highest
  in the header, the others listed), with window, expected rain, action and the
  nearest shelter;
- ``summary`` — one message per run to a county/township duty officer;
- ``all_clear`` — a warning lifted.

When rules load, every template is rendered with the file's longest ``sample``
values (and the drill prefix) and rejected with :class:`~riskmap.errors.RuleError`
naming the file and template if it exceeds its segment budget, uses an unknown
placeholder, or words the office's rainstorm *risk* warning like the
meteorological bureau's 暴雨预警信号.  Names are sanitised before insertion
(:func:`clean_name`).  Rendering is pure: times are passed in.

Examples
--------
>>> from datetime import datetime, timezone
>>> from riskmap.levels import Level
>>> from riskmap.sms import count_segments
>>> ts = load_templates()
>>> t0 = datetime(2026, 7, 22, 12, 0, tzinfo=timezone.utc)
>>> item = Item("rainstorm", Level.RED, t0, datetime(2026, 7, 22, 18, tzinfo=timezone.utc), 126.4)
>>> text = ts.render_warning(signature="青山县防指", issuer="青山县防汛抗旱指挥部办公室", issued_at=t0,
...                          place="上河坝村", items=[item], shelter="上河坝小学")
>>> text.split(":")[0]
'【青山县防指】青山县防汛抗旱指挥部办公室2026年07月22日20时00分发布暴雨洪涝风险红色预警[Ⅰ级/特别严重]'
>>> "上河坝村22日20时至23日02时预计降雨126毫米,危险区人员请立即转移" in text
True
>>> "就近避险点:上河坝小学" in text, count_segments(text)
(True, 2)
"""

from __future__ import annotations

import re
import string
import unicodedata
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from riskmap import sms
from riskmap.errors import DataWarning, RuleError
from riskmap.levels import Level
from riskmap.rule_files import read_rule_file

TEMPLATE_NAMES = ("warning", "summary", "all_clear")
OPTIONAL_TEMPLATES = ("escalation",)
"""Templates a file may add (``escalation``: see :mod:`riskmap.escalation`)."""
FRAGMENT_NAMES = ("shelter_text", "others_text", "internal_text", "other_item", "count_item")
OPTIONAL_FRAGMENTS = {"repeat_text": {"zh-CN": "预警持续,", "en-US": "Still in force: "}}
"""Fragments a file may set, defaults by language (``repeat_text``: before the action of a repeat)."""
_FIELDS = {
    "warning": {"signature", "issuer", "time", "hazard", "color", "grade", "severity", "place", "window",
                "rain", "action", "shelter_text", "others_text"},
    "summary": {"signature", "issuer", "time", "area", "counts", "internal_text"},
    "all_clear": {"signature", "issuer", "time", "place", "hazard", "color", "grade"},
    "shelter_text": {"shelter"},
    "others_text": {"others"},
    "internal_text": {"internal"},
    "other_item": {"hazard", "color", "grade"},
    "count_item": {"n", "color", "grade"},
    "repeat_text": set(),
    "window": {"start", "end"},
    "escalation": {"signature", "place", "role", "name", "hazard", "color", "grade", "sent"},
}
_SEVERITY_EN = ("", "minor", "moderate", "severe", "extreme")
# the meteorological bureau's signal wording, which the office's risk warning must never imitate
_MET_SIGNAL = re.compile(r"暴雨(?:[蓝黄橙红]色)?预警(?:信号)?"
                         r"|rainstorm (?:blue |yellow |orange |red )?(?:warning )?signal", re.IGNORECASE)
MAX_NAME = 20


def clean_name(name: object, limit: int = MAX_NAME) -> str:
    """Make a name safe for an SMS: NFKC, no control characters or line breaks, no 【】, at most ``limit``.

    Examples
    --------
    >>> clean_name("  上河坝村\\n【假冒】{x} ")
    '上河坝村 假冒 {x}'
    >>> clean_name("很" * 25)
    '很很很很很很很很很很很很很很很很很很很…'
    >>> clean_name(None), clean_name(float("nan"))
    ('', '')
    """
    if name is None or (isinstance(name, float) and name != name):
        return ""
    text = unicodedata.normalize("NFKC", str(name))
    text = "".join(" " if unicodedata.category(c)[0] in "CZ" else c for c in text)
    text = re.sub(r"[【】\[\]<>]", " ", text)
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


@dataclass(frozen=True)
class Item:
    """One hazard's warning as it appears in a message."""

    hazard: str
    level: Level
    window_start: datetime | None = None
    window_end: datetime | None = None
    rain_mm: float | None = None
    action: str | None = None
    """Explicit action text; None means the template file's action for the hazard/level."""


@dataclass(frozen=True)
class TemplateSet:
    """The checked templates of one language."""

    source: str
    language: str
    budgets: Mapping[str, int]
    texts: Mapping[str, str]
    fragments: Mapping[str, str]
    hazards: Mapping[str, str]
    actions: Mapping[Level, str]
    hazard_actions: Mapping[str, str]
    window_format: str
    separator: str
    drill_prefix: str
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))

    # -- pieces -----------------------------------------------------------------------------------
    def hazard_name(self, hazard: str) -> str:
        """灾种 of a hazard id (the id itself when the file does not name it)."""
        return self.hazards.get(hazard, hazard)

    def color(self, level: Level) -> str:
        return level.color_zh if self.language == "zh-CN" else level.color

    def severity(self, level: Level) -> str:
        return level.severity_zh if self.language == "zh-CN" else _SEVERITY_EN[level]

    def action(self, item: Item) -> str:
        """The action text for an item."""
        if item.action:
            return clean_name(item.action, 40)
        return self.hazard_actions.get(item.hazard) or self.actions.get(Level(item.level), "")

    def time(self, t: datetime) -> str:
        """An issue time in local (Beijing) time: ``2026年07月22日20时00分``."""
        local = _aware(t).astimezone(self.tz)
        if self.language == "zh-CN":
            return local.strftime("%Y年%m月%d日%H时%M分")
        return local.strftime("%Y-%m-%d %H:%M")

    def window(self, start: datetime | None, end: datetime | None) -> str:
        if start is None or end is None:
            return ""
        return self.window_format.format(start=_aware(start).astimezone(self.tz),
                                         end=_aware(end).astimezone(self.tz))

    def _fragment(self, name: str, **values: Any) -> str:
        return self.fragments[name].format(**values)

    def _finish(self, name: str, text: str, drill: bool) -> str:
        if drill:
            text = self.drill_prefix + text
        budget = self.budgets[name]
        if sms.count_segments(text) > budget:
            n = sms.count_segments(text)
            warnings.warn(f"{self.source}: template {self.language}/{name} rendered {n} SMS parts, "
                          f"over its budget of {budget} (long names?)", DataWarning, stacklevel=3)
        return text

    # -- messages ---------------------------------------------------------------------------------
    def render_warning(self, *, signature: str, issuer: str, issued_at: datetime, place: str,
                       items: Sequence[Item], shelter: str = "", drill: bool = False,
                       repeat: bool = False) -> str:
        """One warning message; ``items`` merged, the highest level (first hazard on ties) in the header;
        ``repeat``: it repeats still-active warnings (``repeat_text``, e.g. 预警持续, before the action)."""
        if not items:
            raise ValueError("render_warning needs at least one item")
        ordered = sorted(items, key=lambda i: -int(i.level))
        top, rest = ordered[0], ordered[1:]
        lv = Level(top.level)
        others = self.separator.join(
            self._fragment("other_item", hazard=self.hazard_name(i.hazard), color=self.color(Level(i.level)),
                           grade=Level(i.level).grade)
            for i in rest)
        shelter = clean_name(shelter)
        rain = "" if top.rain_mm is None or top.rain_mm != top.rain_mm else f"{top.rain_mm:.0f}"
        text = self.texts["warning"].format(
            signature=clean_name(signature), issuer=clean_name(issuer, 40), time=self.time(issued_at),
            hazard=self.hazard_name(top.hazard), color=self.color(lv), grade=lv.grade,
            severity=self.severity(lv),
            place=clean_name(place), window=self.window(top.window_start, top.window_end), rain=rain or "-",
            action=(self.fragments.get("repeat_text", "") if repeat else "") + self.action(top),
            others_text=self._fragment("others_text", others=others) if others else "",
            shelter_text=self._fragment("shelter_text", shelter=shelter) if shelter else "")
        return self._finish("warning", text, drill)

    def render_summary(self, *, signature: str, issuer: str, issued_at: datetime, area: str,
                       counts: Mapping[int, int], internal: int = 0, drill: bool = False) -> str:
        """A duty officer's summary: villages per level in ``area`` (highest first), internal ones counted."""
        parts = [self._fragment("count_item", n=n, color=self.color(Level(lv)), grade=Level(lv).grade)
                 for lv, n in sorted(counts.items(), key=lambda kv: -int(kv[0])) if n > 0 and int(lv) > 0]
        text = self.texts["summary"].format(
            signature=clean_name(signature), issuer=clean_name(issuer, 40), time=self.time(issued_at),
            area=clean_name(area), counts=self.separator.join(parts),
            internal_text=self._fragment("internal_text", internal=internal) if internal else "")
        return self._finish("summary", text, drill)

    def render_all_clear(self, *, signature: str, issuer: str, issued_at: datetime, place: str,
                         hazards: Iterable[str], drill: bool = False) -> str:
        """A warning lifted (解除) for one place; several hazards joined."""
        names = self.separator.join(self.hazard_name(h) for h in hazards)
        text = self.texts["all_clear"].format(
            signature=clean_name(signature), issuer=clean_name(issuer, 40), time=self.time(issued_at),
            place=clean_name(place), hazard=names, color="", grade="")
        return self._finish("all_clear", text, drill)


def _aware(t: datetime) -> datetime:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"time {t!r} has no time zone")
    return t


# -- loading ----------------------------------------------------------------------------------------
def _placeholders(text: str, where: str, allowed: set[str]) -> None:
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise RuleError(f"{where}: broken braces in {text!r}: {exc}") from None
    for _, name, _, _ in parsed:
        if name is None:
            continue
        if name not in allowed:
            allowed_s = ", ".join(sorted(allowed))
            raise RuleError(f"{where}: unknown placeholder {{{name}}} (allowed: {allowed_s})")


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise RuleError(f"{where}: must be non-empty text, got {value!r}")
    return value


def _language(data: Mapping[str, Any], lang: str, src: str, default_budget: int, drill: str,
              tz: ZoneInfo) -> TemplateSet:
    where = f"{src}: languages.{lang}"
    if not isinstance(data, Mapping):
        raise RuleError(f"{where}: must be a mapping")
    hazards = {str(k): _str(v, f"{where}.hazards.{k}") for k, v in (data.get("hazards") or {}).items()}
    actions: dict[Level, str] = {}
    for k, v in (data.get("actions") or {}).items():
        try:
            actions[Level.from_name(k)] = _str(v, f"{where}.actions.{k}")
        except RuleError:
            raise
        except Exception:
            raise RuleError(f"{where}.actions: unknown level {k!r}") from None
    hazard_actions = {str(k): _str(v, f"{where}.hazard_actions.{k}")
                      for k, v in (data.get("hazard_actions") or {}).items()}
    window = _str(data.get("window", "{start:%d}日{start:%H}时至{end:%d}日{end:%H}时"), f"{where}.window")
    _placeholders(window, f"{where}.window", _FIELDS["window"])
    fragments = data.get("fragments") or {}
    texts: dict[str, str] = {}
    budgets: dict[str, int] = {}
    given = data.get("templates") or {}
    for name in given:
        if name not in TEMPLATE_NAMES + OPTIONAL_TEMPLATES:
            raise RuleError(f"{where}: unknown template {name!r} (known: "
                            f"{', '.join(TEMPLATE_NAMES + OPTIONAL_TEMPLATES)})")
    for name in TEMPLATE_NAMES + tuple(n for n in OPTIONAL_TEMPLATES if n in given):
        spec = given.get(name)
        w = f"{where}: template '{name}'"
        if spec is None:
            raise RuleError(f"{w} is missing")
        if isinstance(spec, str):
            spec = {"text": spec}
        texts[name] = _str(spec.get("text"), f"{w} text")
        _placeholders(texts[name], w, _FIELDS[name])
        budget = spec.get("budget", default_budget)
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
            raise RuleError(f"{w}: budget must be a whole number >= 1, got {budget!r}")
        budgets[name] = budget
    frags: dict[str, str] = {}
    for name in FRAGMENT_NAMES:
        frags[name] = _str(fragments.get(name), f"{where}.fragments.{name}")
        _placeholders(frags[name], f"{where}: fragment '{name}'", _FIELDS[name])
    for name, defaults in OPTIONAL_FRAGMENTS.items():
        frags[name] = _str(fragments.get(name, defaults[lang]), f"{where}.fragments.{name}")
        _placeholders(frags[name], f"{where}: fragment '{name}'", _FIELDS[name])
    for name in fragments:
        if name not in (*FRAGMENT_NAMES, *OPTIONAL_FRAGMENTS):
            known = ", ".join((*FRAGMENT_NAMES, *OPTIONAL_FRAGMENTS))
            raise RuleError(f"{where}.fragments: unknown fragment {name!r} (known: {known})")
    return TemplateSet(src, lang, budgets, texts, frags, hazards, actions, hazard_actions, window,
                       str(data.get("separator", "、")), drill, tz)


def _check(ts: TemplateSet, sample: Mapping[str, str]) -> None:
    """Render every template with the longest samples; enforce budgets and the rainstorm wording."""
    t0 = datetime(2026, 12, 28, 12, 0, tzinfo=UTC)
    s = {k: str(v) for k, v in sample.items()}
    longest_hazard = max(ts.hazards or {"rainstorm": "rainstorm"}, key=lambda h: len(ts.hazard_name(h)))
    longest_action = max(list(ts.actions.values()) + list(ts.hazard_actions.values()) or [""], key=len)
    rain = float(s.get("rain", "180"))
    items = [Item(longest_hazard, Level.RED, t0, t0 + timedelta(hours=6), rain, longest_action)]
    others = sorted((h for h in ts.hazards if h != longest_hazard), key=lambda h: -len(ts.hazard_name(h)))[:2]
    items += [Item(h, Level.ORANGE) for h in others]
    base: dict[str, Any] = {"signature": s.get("signature", "签名"), "issuer": s.get("issuer", "发布单位"),
                            "issued_at": t0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        rendered = {
            "warning": ts.render_warning(**base, place=s.get("place", ""), items=items,
                                         shelter=s.get("shelter", ""), drill=True),
            "repeat": ts.render_warning(  # never in a drill (riskmap.render repeats real warnings only)
                **base, place=s.get("place", ""), items=items, shelter=s.get("shelter", ""), repeat=True),
            "summary": ts.render_summary(**base, area=s.get("area", ""), drill=True,
                                         counts={4: 188, 3: 188, 2: 188, 1: 188},
                                         internal=int(s.get("internal", 12))),
            "all_clear": ts.render_all_clear(**base, place=s.get("place", ""), drill=True,
                                             hazards=[longest_hazard]),
        }
        if "escalation" in ts.texts:
            rendered["escalation"] = ts.drill_prefix + ts.texts["escalation"].format(
                signature=base["signature"], place=s.get("place", ""), role="村责任人", name="欧阳某某某",
                hazard=ts.hazard_name(longest_hazard), color=ts.color(Level.RED), grade="Ⅰ",
                sent="(28日20时00分发送)")
        storm = ts.render_warning(**base, place=s.get("place", ""),
                                  items=[Item("rainstorm", Level.RED, t0, t0)])
    for what, text in rendered.items():
        name = "warning" if what == "repeat" else what
        n = sms.count_segments(text)
        if n > ts.budgets[name]:
            how = "as a repeat (repeat_text)" if what == "repeat" else "(and drill prefix)"
            raise RuleError(f"{ts.source}: template {ts.language}/{name} takes {n} SMS parts with the sample "
                            f"values {how}, over its budget of {ts.budgets[name]} "
                            f"({sms.length(text)} characters): shorten it or raise 'budget'")
    if _MET_SIGNAL.search(storm) or (ts.language == "zh-CN" and "风险" not in ts.hazard_name("rainstorm")):
        raise RuleError(f"{ts.source}: template {ts.language}/warning: the rainstorm warning reads like the "
                        "meteorological bureau's 暴雨预警信号; riskmap issues the office's own "
                        "暴雨洪涝风险预警 — name the hazard '…风险' (hazards.rainstorm)")


def load_templates(path: str | Path | None = None, language: str = "zh-CN",
                   timezone: str = "Asia/Shanghai") -> TemplateSet:
    """Load and check ``templates.yaml`` (a file, or a rules folder holding one; None = packaged default).

    Every language in the file is checked; the one asked for is returned.  zh-CN must be present.
    """
    src, data = read_rule_file(path, "templates.yaml")
    if not isinstance(data, Mapping):
        raise RuleError(f"{src}: must be a mapping with 'languages'")
    known = {"version", "segment_budget", "drill_prefix", "sample", "languages"}
    for key in data:
        if key not in known:
            raise RuleError(f"{src}: unknown key {key!r} (known: {', '.join(sorted(known))})")
    budget = data.get("segment_budget", 3)
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
        raise RuleError(f"{src}: segment_budget must be a whole number >= 1, got {budget!r}")
    drill = str(data.get("drill_prefix", "【演练】"))
    langs = data.get("languages") or {}
    if "zh-CN" not in langs:
        raise RuleError(f"{src}: languages.zh-CN is required")
    tz = ZoneInfo(timezone)
    sets = {}
    for lang, spec in langs.items():
        if lang not in ("zh-CN", "en-US"):
            raise RuleError(f"{src}: unknown language {lang!r} (zh-CN, en-US)")
        sets[lang] = _language(spec, lang, src, budget, drill, tz)
        _check(sets[lang], data.get("sample") or {})
    if language not in sets:
        raise RuleError(f"{src}: no templates for language {language!r}")
    return sets[language]
