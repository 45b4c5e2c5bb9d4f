"""The routing file (``warning_rules/routing.yaml``): who gets which warning; loaded and checked.

See the packaged ``riskmap/rules_default/routing.yaml`` for the documented
format.  Errors are :class:`~riskmap.errors.RuleError` naming the file and key.

Examples
--------
>>> r = load_routing()
>>> r.roles_for(Level.ORANGE)
('village_head', 'grid_member', 'household_in_zone')
>>> r.zones["reservoir"].layer, r.keepers["reservoir"].via
('reservoir_zones', 'reservoir_zones')
>>> r.release_for(Level.RED), r.repeat_after(Level.RED)
('auto', datetime.timedelta(seconds=10800))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from riskmap.errors import InputError, RuleError
from riskmap.levels import LEVELS, Level
from riskmap.rule_files import read_rule_file
from riskmap.schema import FEATURE_LAYERS, ROLES

VILLAGE_ROLES = ("village_head", "grid_member", "household", "household_in_zone")
HAZARD_IDS = ("rainstorm", "torrent", "geohazard", "reservoir", "waterlogging", "mine")
CHANGE_KINDS = ("issue", "escalate", "downgrade", "repeat", "lift", "expire")
_ROLE_BY_ZH = {zh: rid for rid, zh in ROLES.items()}
_KNOWN = {"version", "village_roles", "hazard_zones", "keepers", "duty", "village_point_radius_m", "send_on",
          "all_clear_on", "repeat_after_h", "release", "escalation"}


@dataclass(frozen=True)
class Zone:
    """A hazard's danger zone: features of ``layer`` buffered by ``buffer_m``."""

    layer: str
    buffer_m: float = 0.0


@dataclass(frozen=True)
class KeeperRule:
    """Keepers of ``layer`` features get the hazard's warning from ``min_level``."""

    layer: str
    buffer_m: float = 0.0
    min_level: Level = Level.BLUE
    via: str = ""
    """``reservoir_zones``: find reservoirs through their zones touching the village."""


@dataclass(frozen=True)
class Escalation:
    levels: tuple[Level, ...] = (Level.ORANGE, Level.RED)
    after_min: float = 30.0
    from_role: str = "village_head"
    to_role: str = "township_duty"


@dataclass(frozen=True)
class Routing:
    """The checked routing rules."""

    source: str
    village_roles: Mapping[Level, tuple[str, ...]]
    zones: Mapping[str, Zone]
    zone_fallback: str
    keepers: Mapping[str, KeeperRule]
    duty: Mapping[str, Level]
    """Duty role → lowest level counted in its summary."""
    village_point_radius_m: float
    send_on: tuple[str, ...]
    all_clear_on: tuple[str, ...]
    repeat_after_h: Mapping[Level, float]
    release: Mapping[Level, str]
    escalation: Escalation

    def roles_for(self, level: int) -> tuple[str, ...]:
        """Village roles that receive a warning of ``level``."""
        return self.village_roles.get(Level(level), ()) if level > 0 else ()

    def repeat_after(self, level: int) -> timedelta:
        """How long before a still-active warning of ``level`` is sent again."""
        return timedelta(hours=self.repeat_after_h.get(Level(level), 24.0))

    def release_for(self, level: int) -> str:
        """``auto`` or ``hold`` (wait for approval)."""
        return self.release.get(Level(level), "auto")


def role_id(value: object, where: str = "") -> str:
    """A role id from an id or its Chinese name.

    >>> role_id("网格员"), role_id("household")
    ('grid_member', 'household')
    """
    s = str(value).strip()
    if s in ROLES:
        return s
    if s.lower() in ROLES:
        return s.lower()
    if s in _ROLE_BY_ZH:
        return _ROLE_BY_ZH[s]
    raise RuleError(f"{where}unknown role {value!r} (known: {', '.join(ROLES)})")


def _level(value: Any, where: str) -> Level:
    try:
        return Level.from_name(value)
    except InputError:
        raise RuleError(f"{where}: unknown level {value!r} (blue, yellow, orange, red)") from None


def _num(value: Any, where: str, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise RuleError(f"{where}: must be a number >= {minimum:g}, got {value!r}")
    return float(value)


def _map(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RuleError(f"{where}: must be a mapping")
    return value


def _hazard(h: Any, where: str) -> str:
    if h not in HAZARD_IDS:
        raise RuleError(f"{where}: unknown hazard {h!r} (known: {', '.join(HAZARD_IDS)})")
    return str(h)


def _layer(v: Any, where: str) -> str:
    if v not in FEATURE_LAYERS:
        raise RuleError(f"{where}: unknown layer {v!r} (known: {', '.join(FEATURE_LAYERS)})")
    return str(v)


def _kinds(v: Any, where: str) -> tuple[str, ...]:
    if not isinstance(v, list) or any(k not in CHANGE_KINDS for k in v):
        raise RuleError(f"{where}: must be a list of {', '.join(CHANGE_KINDS)}, got {v!r}")
    return tuple(v)


def routing_from_dict(data: Mapping[str, Any], src: str = "<dict>") -> Routing:
    """Build checked :class:`Routing` from a parsed YAML mapping."""
    if not isinstance(data, Mapping):
        raise RuleError(f"{src}: must be a mapping")
    for key in data:
        if key not in _KNOWN:
            raise RuleError(f"{src}: unknown key {key!r} (known: {', '.join(sorted(_KNOWN))})")
    vr: dict[Level, tuple[str, ...]] = {}
    for k, roles in _map(data.get("village_roles"), f"{src}: village_roles").items():
        where = f"{src}: village_roles.{k}"
        if not isinstance(roles, list):
            raise RuleError(f"{where}: must be a list of roles")
        out = []
        for r in roles:
            rid = r if r == "household_in_zone" else role_id(r, f"{where}: ")
            if rid not in VILLAGE_ROLES:
                raise RuleError(f"{where}: {r!r} is not a village role ({', '.join(VILLAGE_ROLES)})")
            out.append(rid)
        vr[_level(k, where)] = tuple(out)
    hz = _map(data.get("hazard_zones"), f"{src}: hazard_zones")
    fallback = hz.get("fallback", "village")
    if fallback not in ("village", "none"):
        raise RuleError(f"{src}: hazard_zones.fallback must be village or none, got {fallback!r}")
    zones = {}
    for h, z in _map(hz.get("zones"), f"{src}: hazard_zones.zones").items():
        where = f"{src}: hazard_zones.zones.{h}"
        z = _map(z, where)
        zones[_hazard(h, where)] = Zone(_layer(z.get("layer"), f"{where}.layer"),
                                        _num(z.get("buffer_m", 0), f"{where}.buffer_m"))
    keepers = {}
    for h, k in _map(data.get("keepers"), f"{src}: keepers").items():
        where = f"{src}: keepers.{h}"
        kd = _map(k, where)
        via = kd.get("via", "")
        if via not in ("", "reservoir_zones"):
            raise RuleError(f"{where}.via: only reservoir_zones is supported, got {via!r}")
        keepers[_hazard(h, where)] = KeeperRule(
            _layer(kd.get("layer"), f"{where}.layer"), _num(kd.get("buffer_m", 0), f"{where}.buffer_m"),
            _level(kd.get("min_level", "blue"), f"{where}.min_level"), via)
    duty = {}
    for role, d in _map(data.get("duty"), f"{src}: duty").items():
        where = f"{src}: duty.{role}"
        if role_id(role, f"{where}: ") not in ("county_duty", "township_duty"):
            raise RuleError(f"{where}: only county_duty and township_duty get summaries")
        duty[role_id(role)] = _level(_map(d, where).get("min_level", "blue"), f"{where}.min_level")
    rep = {_level(k, f"{src}: repeat_after_h"): _num(v, f"{src}: repeat_after_h.{k}", 0.0)
           for k, v in _map(data.get("repeat_after_h"), f"{src}: repeat_after_h").items()}
    release = {}
    for k, v in _map(data.get("release"), f"{src}: release").items():
        if v not in ("auto", "hold"):
            raise RuleError(f"{src}: release.{k} must be auto or hold, got {v!r}")
        release[_level(k, f"{src}: release")] = str(v)
    esc = _map(data.get("escalation"), f"{src}: escalation")
    escalation = Escalation(
        tuple(_level(x, f"{src}: escalation.levels") for x in esc.get("levels", ["orange", "red"])),
        _num(esc.get("after_min", 30), f"{src}: escalation.after_min"),
        role_id(esc.get("from_role", "village_head"), f"{src}: escalation.from_role: "),
        role_id(esc.get("to_role", "township_duty"), f"{src}: escalation.to_role: "))
    return Routing(
        source=src, village_roles=vr, zones=zones, zone_fallback=str(fallback), keepers=keepers, duty=duty,
        village_point_radius_m=_num(data.get("village_point_radius_m", 1000),
                                    f"{src}: village_point_radius_m"),
        send_on=_kinds(data.get("send_on", ["issue", "escalate", "downgrade", "repeat"]), f"{src}: send_on"),
        all_clear_on=_kinds(data.get("all_clear_on", ["lift", "expire"]), f"{src}: all_clear_on"),
        repeat_after_h={lv: rep.get(lv, 24.0) for lv in LEVELS},
        release={lv: release.get(lv, "auto") for lv in LEVELS}, escalation=escalation)


def load_routing(path: str | Path | None = None) -> Routing:
    """Load ``routing.yaml`` (a file, or a rules folder holding one; None = the packaged default)."""
    src, data = read_rule_file(path, "routing.yaml")
    return routing_from_dict(data or {}, src)
