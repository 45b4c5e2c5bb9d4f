"""Link rules of :mod:`riskmap.check`: every reference between layers must resolve.

* ``reservoir_zones.reservoir_id`` → ``reservoirs.id``;
* ``contacts.admin_code`` → a village code, or the 9-digit township / 6-digit county prefix of one;
* ``contacts.feature_layer`` + ``feature_id`` → that layer's ``id``;
* ``critical_rainfall.village_code`` → ``villages.code``;
* a contact belongs somewhere: an ``admin_code`` and/or a feature.

Examples
--------
>>> frames = {"villages": pd.DataFrame({"code": ["510100001001"]}),
...           "critical_rainfall": pd.DataFrame({"village_code": ["510100001001", "510100001999"]})}
>>> [p.format() for p in check_links(frames)]
["ERROR critical_rainfall [#2 510100001999] village_code: unknown village code '510100001999'"]
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from riskmap.check_rules import Labels, rows
from riskmap.region_io import Problem
from riskmap.region_values import code_hint
from riskmap.schema import FEATURE_LAYERS

__all__ = ["check_links"]


def _column(frame: pd.DataFrame | None, col: str) -> pd.Series | None:
    return None if frame is None or col not in frame.columns else frame[col]


def _village_codes(frames: Mapping[str, pd.DataFrame]) -> pd.Index:
    codes = _column(frames.get("villages"), "code")
    if codes is None:
        return pd.Index([], dtype=str)
    codes = codes.dropna()
    return pd.Index(codes[codes.str.fullmatch(r"\d{12}")].unique())


def _admin_codes(frame: pd.DataFrame, codes: pd.Index, labels: Labels) -> list[Problem]:
    admin = frame["admin_code"]
    present = admin.notna()
    length = admin.str.len()
    digits = admin.str.fullmatch(r"\d+").fillna(False).astype(bool)
    malformed = present & ~(digits & length.isin([6, 9, 12]))
    out = rows("contacts", labels, malformed, "admin_code", lambda i: (
        f"malformed admin_code '{admin.iat[i]}': expected 6 (county), 9 (township) or 12 (village) digits"
        + code_hint(admin.iat[i])))
    ok = (
        ((length == 12) & admin.isin(codes))
        | ((length == 9) & admin.isin(codes.str[:9]))
        | ((length == 6) & admin.isin(codes.str[:6]))
    )
    unknown = present & ~malformed & ~ok.fillna(False).astype(bool)
    what = {12: "village with code", 9: "village in township", 6: "village in county"}
    out += rows("contacts", labels, unknown, "admin_code", lambda i: (
        f"unknown admin_code '{admin.iat[i]}': no {what[len(admin.iat[i])]} {admin.iat[i]}"))
    return out


def _features(frame: pd.DataFrame, frames: Mapping[str, pd.DataFrame], labels: Labels) -> list[Problem]:
    n = len(frame)
    layer = _column(frame, "feature_layer")
    fid = _column(frame, "feature_id")
    layer = pd.Series(np.nan, index=frame.index, dtype=object) if layer is None else layer
    fid = pd.Series(np.nan, index=frame.index, dtype=object) if fid is None else fid
    if n == 0 or (layer.isna().all() and fid.isna().all()):
        return []
    known_layer = layer.isin(FEATURE_LAYERS)
    out = rows("contacts", labels, layer.notna() & ~known_layer, "feature_layer", lambda i: (
        f"unknown feature_layer '{layer.iat[i]}' (expected one of {', '.join(FEATURE_LAYERS)})"))
    out += rows("contacts", labels, layer.notna() & fid.isna(), "feature_id",
                lambda i: f"missing feature_id for feature_layer '{layer.iat[i]}'")
    out += rows("contacts", labels, layer.isna() & fid.notna(), "feature_layer",
                lambda i: f"feature_id '{fid.iat[i]}' given without feature_layer")
    keys = []
    for name in FEATURE_LAYERS:
        ids = _column(frames.get(name), "id")
        if ids is not None:
            keys.append(name + "|" + ids.dropna())
    valid = pd.Index(pd.concat(keys).unique()) if keys else pd.Index([], dtype=str)
    linked = known_layer & fid.notna()
    missing = linked & ~(layer + "|" + fid).isin(valid).fillna(False).astype(bool)
    out += rows("contacts", labels, missing, "feature_id", lambda i: (
        f"unknown {layer.iat[i]} id '{fid.iat[i]}'"
        + ("" if layer.iat[i] in frames else f" (the region has no {layer.iat[i]} layer)")))
    return out


def check_links(frames: Mapping[str, pd.DataFrame]) -> list[Problem]:
    """Every link between layers resolves; *frames* are the raw frames of the layers present."""
    out: list[Problem] = []
    zones = frames.get("reservoir_zones")
    ref = _column(zones, "reservoir_id")
    if zones is not None and ref is not None:
        ids = _column(frames.get("reservoirs"), "id")
        known = pd.Index([] if ids is None else ids.dropna().unique())
        labels = Labels("reservoir_zones", zones)
        out += rows("reservoir_zones", labels, ref.isna(), "reservoir_id", "missing reservoir_id")
        out += rows("reservoir_zones", labels, ref.notna() & ~ref.isin(known), "reservoir_id",
                    lambda i: f"unknown reservoir id '{ref.iat[i]}' (no such id in reservoirs)")
    codes = _village_codes(frames)
    rain = frames.get("critical_rainfall")
    vc = _column(rain, "village_code")
    if rain is not None and vc is not None:
        labels = Labels("critical_rainfall", rain)
        out += rows("critical_rainfall", labels, vc.isna(), "village_code", "missing village_code")
        out += rows("critical_rainfall", labels, vc.notna() & ~vc.isin(codes), "village_code",
                    lambda i: f"unknown village code '{vc.iat[i]}'{code_hint(vc.iat[i])}")
    contacts = frames.get("contacts")
    if contacts is not None:
        labels = Labels("contacts", contacts)
        if "admin_code" in contacts.columns:
            out += _admin_codes(contacts, codes, labels)
        out += _features(contacts, frames, labels)
        nowhere = pd.Series(True, index=contacts.index)
        for col in ("admin_code", "feature_layer", "feature_id"):
            if col in contacts.columns:
                nowhere &= contacts[col].isna()
        out += rows("contacts", labels, nowhere, "admin_code", "the contact belongs nowhere: give an "
                    "admin_code (village, township or county) and/or feature_layer + feature_id")
    return out
