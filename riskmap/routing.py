"""Routing: which contacts receive which warning changes of a run (pure).

:func:`route` takes the run's :class:`Alert` s (one per village and hazard,
usually from :class:`riskmap.lifecycle.Change` via :meth:`Alert.from_change`),
the region (villages, feature layers, ``contacts``) and the checked
:class:`~riskmap.routing_rules.Routing`, and returns one :class:`Recipient` per
phone number:

- village roles by level (blue → village heads; yellow → + grid members; orange →
  + households in the hazard's zone; red → every household), from ``routing.yaml``;
- a feature's keeper (责任人) for the hazard about the feature (mine → 停产撤人);
- county/township duty officers one *summary* of the villages of their area;
- internal warnings only in the duty officers' summaries;
- one message per phone: several hazards and villages merge (highest first); a phone
  that gets a summary gets nothing else; warnings supersede all-clears;
- drill mode: only contacts flagged ``drill``;
- invalid or landline numbers are reported once (:class:`~riskmap.errors.DataWarning`) and skipped.

Examples
--------
>>> a = Alert("469900100200", "torrent", 3)
>>> a.kind, a.sends
('issue', True)
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from riskmap.errors import DataWarning, PhoneNumberError
from riskmap.gateways.base import mask
from riskmap.region import Region
from riskmap.routing_rules import Routing, role_id

_TRUE = {"1", "true", "yes", "y", "是", "t"}


@dataclass(frozen=True)
class Alert:
    """One village's warning for one hazard to announce in this run."""

    village_code: str
    hazard: str
    level: int
    """The new level; for ``lift``/``expire`` the level that was lifted."""
    kind: str = "issue"
    """issue, escalate, downgrade, repeat, lift or expire."""
    internal: bool = False
    window_start: datetime | None = None
    window_end: datetime | None = None
    rain_mm: float | None = None
    change_key: str = ""
    action: str | None = None

    @property
    def sends(self) -> bool:
        """Whether this is a warning (not an all-clear)."""
        return self.kind not in ("lift", "expire")

    @classmethod
    def from_change(cls, change: Any, internal: bool = False) -> Alert:
        """From a :class:`riskmap.lifecycle.Change`."""
        lifted = change.kind in ("lift", "expire")
        wh, we = float(change.window_h), change.window_end
        start = we - timedelta(hours=wh) if we is not None and math.isfinite(wh) else None
        rain = float(change.value_mm) if math.isfinite(float(change.value_mm)) else None
        return cls(str(change.village_code), str(change.hazard),
                   int(change.old_level if lifted else change.new_level), str(change.kind), internal,
                   start, we, rain, str(change.key))


@dataclass(frozen=True)
class Recipient:
    """One person (phone number) and what to tell them in this run."""

    phone: str
    """Normalised number (the real one: never log it, use :func:`~riskmap.gateways.base.mask`)."""
    name: str
    kind: str
    """``warning``, ``summary`` or ``all_clear``."""
    roles: tuple[str, ...]
    place: str
    """Village or feature named in the message (area name for a summary)."""
    alerts: tuple[Alert, ...]
    """Every alert this message covers, highest level first."""
    drill: bool = False
    shelter: str = ""
    counts: Mapping[int, int] = field(default_factory=dict)
    """Summary: villages per (highest) level."""
    internal: int = 0
    """Summary: villages with internal-only warnings."""

    @property
    def level(self) -> int:
        """The highest level this message is about."""
        if self.kind == "summary":
            return max((lv for lv, n in self.counts.items() if n), default=0)
        return max((a.level for a in self.alerts), default=0)

    @property
    def village_codes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a.village_code for a in self.alerts))

    @property
    def change_keys(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a.change_key for a in self.alerts if a.change_key))

    def items(self) -> list[Alert]:
        """One alert per hazard (its highest), highest level first — what the message lists."""
        best: dict[str, Alert] = {}
        for a in self.alerts:
            if a.hazard not in best or a.level > best[a.hazard].level:
                best[a.hazard] = a
        return sorted(best.values(), key=lambda a: (-a.level, a.hazard))

    def __repr__(self) -> str:
        return (f"Recipient({mask(self.phone)}, {self.kind}, roles={self.roles}, place={self.place!r}, "
                f"level={self.level}, alerts={len(self.alerts)})")


def _flag(v: object) -> bool:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return False
    return str(v).strip().lower() in _TRUE


def _s(v: object) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return ""
    s = str(v).strip()
    return s[:-2] if s.endswith(".0") and s[:-2].isdigit() else s


def prepare_contacts(region: Region, drill: bool = False) -> pd.DataFrame:
    """Contacts with normalised ``phone``, role ids, ``x``/``y`` in the region CRS; bad numbers dropped.

    Each invalid number or landline is reported once with a :class:`DataWarning` (masked).
    """
    from riskmap.phones import normalize_phone

    c = region.contacts.copy()
    for col in ("admin_code", "feature_layer", "feature_id", "household_id", "name"):
        c[col] = [_s(v) for v in c[col]] if col in c else ""
    c["drill"] = [_flag(v) for v in c["drill"]] if "drill" in c else False
    roles, phones, keep = [], [], []
    seen: set[str] = set()
    for i, (raw, role) in enumerate(zip(c["phone"], c["role"], strict=True)):
        try:
            rid = role_id(role)
        except Exception:  # noqa: BLE001 - riskmap check reports unknown roles
            rid = ""
        try:
            ph = normalize_phone(raw)
            problem = "a landline cannot receive SMS" if not ph.startswith("1") else ""
        except PhoneNumberError as exc:
            ph, problem = "", str(exc)
        if problem:
            ph, m = "", mask(str(raw))
            if m not in seen:
                seen.add(m)
                warnings.warn(f"contacts row {i} ({_s(c['name'].iloc[i]) or 'no name'}, {m}): {problem}; "
                              "no SMS is sent to this number", DataWarning, stacklevel=2)
        roles.append(rid)
        phones.append(ph)
        keep.append(bool(ph) and bool(rid) and (not drill or bool(c["drill"].iloc[i])))
    c["role"], c["phone"] = roles, phones
    x = np.full(len(c), np.nan)
    y = np.full(len(c), np.nan)
    if "lon" in c and "lat" in c and len(c):
        lon = pd.to_numeric(c["lon"], errors="coerce").to_numpy(float)
        lat = pd.to_numeric(c["lat"], errors="coerce").to_numpy(float)
        ok = np.isfinite(lon) & np.isfinite(lat)
        if ok.any():
            tr = Transformer.from_crs("EPSG:4326", region.crs, always_xy=True)
            x[ok], y[ok] = tr.transform(lon[ok], lat[ok])
    c["x"], c["y"] = x, y
    return c[np.asarray(keep, bool)].reset_index(drop=True)


class _Router:
    def __init__(self, region: Region, routing: Routing, contacts: pd.DataFrame) -> None:
        self.region, self.routing, self.c = region, routing, contacts
        v = region.villages
        self.vgeom = dict(zip(v["code"].astype(str), v.geometry, strict=True))
        self.vname = dict(zip(v["code"].astype(str), v["name"].astype(str), strict=True))
        self.by_admin: dict[tuple[str, str], list[int]] = defaultdict(list)
        self.by_feature: dict[tuple[str, str], list[int]] = defaultdict(list)
        for i, (role, admin, layer, fid) in enumerate(zip(contacts["role"], contacts["admin_code"],
                                                          contacts["feature_layer"], contacts["feature_id"],
                                                          strict=True)):
            if admin:
                self.by_admin[(role, admin)].append(i)
            if layer and fid:
                self.by_feature[(layer, fid)].append(i)

    def village_area(self, code: str) -> Any:
        g = self.vgeom.get(code)
        if g is not None and g.geom_type == "Point":
            return g.buffer(self.routing.village_point_radius_m)
        return g

    def features(self, layer: str, code: str, buffer_m: float) -> pd.DataFrame:
        """Features of ``layer`` within ``buffer_m`` of the village."""
        gdf = self.region.layer(layer)
        g = self.village_area(code)
        if g is None or len(gdf) == 0:
            return gdf.iloc[0:0]
        idx = gdf.sindex.query(g.buffer(buffer_m) if buffer_m else g, predicate="intersects")
        return gdf.iloc[np.sort(idx)]

    def households_in_zone(self, code: str, hazard: str) -> list[int]:
        hh = self.by_admin.get(("household", code), [])
        zone = self.routing.zones.get(hazard)
        fallback = self.routing.zone_fallback == "village"
        if zone is None:
            return list(hh) if fallback else []
        feats = self.features(zone.layer, code, zone.buffer_m)
        if len(feats) == 0:
            return list(hh) if fallback else []
        ids = {_s(f) for f in feats["id"]} if "id" in feats else set()
        shapes = feats.geometry.buffer(zone.buffer_m) if zone.buffer_m else feats.geometry
        area = shapely.union_all(shapes.to_numpy())
        out = []
        for i in hh:
            x, y = self.c["x"].iloc[i], self.c["y"].iloc[i]
            if np.isfinite(x) and np.isfinite(y):
                if shapely.intersects_xy(area, x, y):
                    out.append(i)
            elif self.c["feature_layer"].iloc[i]:
                if self.c["feature_layer"].iloc[i] == zone.layer and self.c["feature_id"].iloc[i] in ids:
                    out.append(i)
            elif fallback:
                out.append(i)
        return out

    def keepers(self, a: Alert) -> list[tuple[int, str]]:
        rule = self.routing.keepers.get(a.hazard)
        if rule is None or a.level < rule.min_level:
            return []
        out = []
        if rule.via == "reservoir_zones":
            zones = self.features("reservoir_zones", a.village_code, rule.buffer_m)
            ids = [_s(r) for r in zones.get("reservoir_id", [])]
            res = self.region.reservoirs
            names = dict(zip(res["id"].map(_s), res["name"].astype(str), strict=True)) if len(res) else {}
            feats = [(fid, names.get(fid, fid)) for fid in ids]
        else:
            f = self.features(rule.layer, a.village_code, rule.buffer_m)
            names = f["name"].astype(str) if "name" in f else f["id"].astype(str)
            feats = list(zip(f["id"].map(_s), names, strict=True)) if len(f) else []
        for fid, fname in dict(feats).items():
            out += [(i, fname) for i in self.by_feature.get((rule.layer, fid), [])]
        return out

    def village(self, a: Alert) -> list[int]:
        out: list[int] = []
        for role in self.routing.roles_for(a.level):
            if role == "household_in_zone":
                out += self.households_in_zone(a.village_code, a.hazard)
            else:
                out += self.by_admin.get((role, a.village_code), [])
        return out


def nearest_shelters(region: Region) -> dict[str, str]:
    """Village code → name of the nearest shelter (避险安置点) to the village's representative point."""
    sh = region.shelters
    if len(sh) == 0 or len(region.villages) == 0:
        return {}
    pts = region.villages.geometry.representative_point()
    idx = sh.sindex.nearest(pts.to_numpy(), return_all=False)
    names = sh["name"].astype(str).to_numpy()
    codes = region.villages["code"].astype(str).to_numpy()
    return {str(codes[v]): str(names[s]) for v, s in zip(idx[0], idx[1], strict=True)}


def route(alerts: Iterable[Alert], region: Region, routing: Routing, *, drill: bool = False,
          shelters: Mapping[str, str] | None = None, area_names: Mapping[str, str] | None = None,
          contacts: pd.DataFrame | None = None) -> list[Recipient]:
    """Who gets what: one :class:`Recipient` per phone number (see the module docstring).

    ``shelters`` maps village code → shelter name (default :func:`nearest_shelters`);
    ``area_names`` maps a 6/9-digit admin code → name for summaries (default: the
    villages' ``county``/``township`` columns, else the code).  ``contacts`` may be a
    frame from :func:`prepare_contacts` (reuse it across calls).
    """
    alerts = list(alerts)
    c = prepare_contacts(region, drill) if contacts is None else contacts
    r = _Router(region, routing, c)
    shelters = nearest_shelters(region) if shelters is None else shelters
    names = dict(area_names or {}) or _area_names(region)
    warn: dict[int, list[tuple[Alert, str]]] = defaultdict(list)
    clear: dict[int, list[tuple[Alert, str]]] = defaultdict(list)
    for a in alerts:
        if a.internal or a.village_code not in r.vgeom:
            continue
        if a.sends and a.kind not in routing.send_on:
            continue
        if not a.sends and a.kind not in routing.all_clear_on:
            continue
        bucket = warn if a.sends else clear
        vname = r.vname[a.village_code]
        for i in r.village(a):
            bucket[i].append((a, vname))
        for i, fname in r.keepers(a):
            bucket[i].append((a, fname))
    out = _summaries(alerts, routing, c, names, drill)
    taken = {x.phone for x in out}
    merged: dict[str, Recipient] = {}
    for kind, bucket in (("warning", warn), ("all_clear", clear)):
        by_phone: dict[str, list[int]] = defaultdict(list)
        for i in bucket:
            by_phone[c["phone"].iloc[i]].append(i)
        for phone, rows in sorted(by_phone.items()):
            if phone in taken or phone in merged:
                continue
            pairs = sorted({(a, place) for i in rows for a, place in bucket[i]},
                           key=lambda p: (-p[0].level, p[0].village_code, p[0].hazard, p[1]))
            top = pairs[0][0]
            merged[phone] = Recipient(
                phone, c["name"].iloc[rows[0]], kind, tuple(dict.fromkeys(c["role"].iloc[i] for i in rows)),
                pairs[0][1], tuple(dict.fromkeys(a for a, _ in pairs)), drill,
                shelters.get(top.village_code, "") if kind == "warning" else "")
    return out + list(merged.values())


def _area_names(region: Region) -> dict[str, str]:
    v = region.villages
    out: dict[str, str] = {}
    for col, n in (("county", 6), ("township", 9)):
        if col in v:
            for code, name in zip(v["code"].astype(str), v[col], strict=True):
                if _s(name):
                    out.setdefault(code[:n], _s(name))
    return out


def _summaries(alerts: list[Alert], routing: Routing, c: pd.DataFrame, names: Mapping[str, str],
               drill: bool) -> list[Recipient]:
    """One summary per duty officer whose area has warnings in this run."""
    out: list[Recipient] = []
    seen: set[str] = set()
    duty = c[c["role"].isin(list(routing.duty))]
    for row in duty.itertuples(index=False):
        admin, min_level = str(row.admin_code), routing.duty[str(row.role)]
        if not admin or row.phone in seen:
            continue
        mine = [a for a in alerts if a.village_code.startswith(admin) and a.sends
                and a.kind in routing.send_on and a.level >= min_level]
        if not mine:
            continue
        public: dict[str, int] = {}
        internal: set[str] = set()
        for a in mine:
            if a.internal:
                internal.add(a.village_code)
            else:
                public[a.village_code] = max(public.get(a.village_code, 0), a.level)
        counts: dict[int, int] = defaultdict(int)
        for lv in public.values():
            counts[lv] += 1
        seen.add(row.phone)
        out.append(Recipient(row.phone, str(row.name), "summary", (str(row.role),), names.get(admin, admin),
                             tuple(sorted(mine, key=lambda a: (-a.level, a.village_code, a.hazard))), drill,
                             counts=dict(counts), internal=len(internal - set(public))))
    return out
