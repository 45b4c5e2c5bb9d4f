"""The rules of :mod:`riskmap.check`, one function per family, vectorised over whole columns.

Each rule takes raw frames (see :mod:`riskmap.region_io`) and returns a list of
:class:`~riskmap.region_io.Problem`; Python loops run only over the rows found wrong.

Examples
--------
>>> frame = pd.DataFrame({"id": ["a", "a", None], "name": ["x", "y", "z"]})
>>> for p in check_values("rivers", frame, Labels("rivers", frame)):
...     print(p.format())
ERROR rivers [#3 z] id: missing id
ERROR rivers [a #1] id: duplicate id 'a' (2 rows)
ERROR rivers [a #2] id: duplicate id 'a' (2 rows)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import shapely
from shapely.validation import explain_validity

from riskmap.phones import normalize_phones, phone_problem
from riskmap.region_io import Problem
from riskmap.region_values import code_hint, numbers, role_ids, scale_codes, soil_ids
from riskmap.schema import HAZARD_KINDS, LAYERS, MINE_KINDS, RESERVOIR_STATUS, ROLES, SOIL_STATES

__all__ = ["Labels", "rows", "check_geometry", "check_values", "COUNT_COLUMNS"]

COUNT_COLUMNS = ("population", "households", "threatened_people", "threatened_households", "workers",
                 "capacity")
"""Columns holding counts of people, households or places: whole numbers ≥ 0."""

_TYPE_IDS = {"Point": 0, "LineString": 1, "LinearRing": 2, "Polygon": 3, "MultiPoint": 4,
             "MultiLineString": 5, "MultiPolygon": 6, "GeometryCollection": 7}
_KINDS = {"hazard_sites": HAZARD_KINDS, "mines": MINE_KINDS}
ROLE_LIST = ", ".join(f"{k} {v}" for k, v in ROLES.items())


class Labels:
    """Row labels of a layer, made only for the rows reported.

    Villages are labelled by code, features by id, contacts and critical-rainfall
    rows by ``#N`` (the N-th record) and a name or village code; a missing or
    duplicated key gets ``#N`` too.
    """

    def __init__(self, layer: str, frame: pd.DataFrame) -> None:
        self.frame = frame
        spec = LAYERS[layer]
        self.key = spec.id_column if spec.id_column in frame.columns else None
        self.extra = {"critical_rainfall": "village_code"}.get(layer, "name")
        self._dup: np.ndarray | None = None

    def __call__(self, idx: Sequence[int] | np.ndarray) -> list[str]:
        f = self.frame
        extra = f[self.extra] if self.extra in f.columns else None
        if self.key is None:
            return [f"#{i + 1}" + (f" {extra.iat[i]}" if extra is not None and pd.notna(extra.iat[i]) else "")
                    for i in idx]
        keys = f[self.key]
        if self._dup is None:
            self._dup = keys.duplicated(keep=False).to_numpy()
        out = []
        for i in idx:
            k = keys.iat[i]
            if pd.isna(k):
                name = extra.iat[i] if extra is not None else None
                out.append(f"#{i + 1}" + (f" {name}" if pd.notna(name) else ""))
            else:
                out.append(f"{k} #{i + 1}" if self._dup[i] else str(k))
        return out


def rows(layer: str, labels: Labels, mask: pd.Series | np.ndarray, column: str,
         message: str | Callable[[int], str], severity: str = "error") -> list[Problem]:
    """One Problem per True row of *mask*; *message* is a str or a function of the row position."""
    idx = np.flatnonzero(np.asarray(mask, dtype=bool))
    if idx.size == 0:
        return []
    texts = [message] * idx.size if isinstance(message, str) else [message(int(i)) for i in idx]
    return [Problem(layer, lab, column, text, severity) for lab, text in zip(labels(idx), texts, strict=True)]


def _g(v: float) -> str:
    return f"{v:g}"


def check_geometry(layer: str, frame: pd.DataFrame, labels: Labels) -> list[Problem]:
    """CRS declared and plausible; geometries present, non-empty, of an allowed type, valid."""
    out: list[Problem] = []
    spec = LAYERS[layer]
    geom = frame.geometry
    if geom.crs is None:
        out.append(Problem(layer, "", "geometry", "no CRS declared: add the .prj / the layer's SRS "
                           "(e.g. EPSG:4490 CGCS2000, EPSG:4326 WGS 84 or a Gauss–Krüger zone)"))
    elif geom.crs.is_geographic and len(frame):
        x0, y0, x1, y1 = geom.total_bounds
        if np.isfinite([x0, y0, x1, y1]).all() and (x0 < -180 or x1 > 180 or y0 < -90 or y1 > 90):
            out.append(Problem(layer, "", "geometry", f"coordinates ({x0:.0f}, {y0:.0f}) … "
                               f"({x1:.0f}, {y1:.0f}) are not degrees but the CRS {geom.crs.name} "
                               "is geographic: wrong .prj?"))
    arr = np.asarray(geom.array, dtype=object)
    missing = shapely.is_missing(arr)
    empty = ~missing & shapely.is_empty(arr)
    out += rows(layer, labels, missing, "geometry", "missing geometry")
    out += rows(layer, labels, empty, "geometry", "empty geometry")
    present = ~missing & ~empty
    allowed = [_TYPE_IDS[t] for t in spec.geometry]
    wrong = present & ~np.isin(shapely.get_type_id(arr), allowed)
    out += rows(layer, labels, wrong, "geometry", lambda i: f"wrong geometry type {arr[i].geom_type} "
                f"(a {layer} feature is {' or '.join(spec.geometry)})")
    invalid = present & ~wrong & ~shapely.is_valid(arr)
    out += rows(layer, labels, invalid, "geometry", lambda i: (
                f"invalid geometry: {explain_validity(arr[i])}; repair it at the source "
                "(shapely make_valid or buffer(0), QGIS 'Fix geometries')"))
    return out


def _ids(layer: str, frame: pd.DataFrame, labels: Labels) -> list[Problem]:
    col = LAYERS[layer].id_column
    if col is None or col not in frame.columns:
        return []
    keys = frame[col]
    missing = keys.isna()
    out: list[Problem] = []
    if layer == "villages":
        out += rows(layer, labels, missing, col, "missing village code")
        bad = ~missing & ~keys.str.fullmatch(r"\d{12}").fillna(False).astype(bool)
        out += rows(layer, labels, bad, col, lambda i: f"malformed village code '{keys.iat[i]}': "
                    f"expected 12 digits (统计用区划代码 PPCCDDTTTVVV){code_hint(keys.iat[i])}")
    else:
        out += rows(layer, labels, missing, col, f"missing {col}")
    counts = keys.map(keys.value_counts()).fillna(0).astype(int)
    dup = ~missing & (counts > 1)
    what = "village code" if layer == "villages" else col
    out += rows(layer, labels, dup, col, lambda i: f"duplicate {what} '{keys.iat[i]}' ({counts.iat[i]} rows)")
    return out


def _prefix_rule(frame: pd.DataFrame, labels: Labels, codes: pd.Series, col: str,
                 width: int) -> list[Problem]:
    names = frame[col] if col == "county" or "county" not in frame.columns else (
        frame["county"].fillna("") + "/" + frame[col])
    df = pd.DataFrame({"k": names, "p": codes.str[:width]}).dropna()
    if df.empty:
        return []
    sizes = df.groupby(["k", "p"]).size().sort_values(ascending=False, kind="stable").reset_index()
    major = sizes.drop_duplicates("k").set_index("k")["p"]
    expected = df["k"].map(major).reindex(frame.index)
    bad = (df["p"] != df["k"].map(major)).reindex(frame.index, fill_value=False)
    return rows("villages", labels, bad, col, lambda i: (
        f"{col} '{frame[col].iat[i]}' but code prefix {codes.iat[i][:width]}; "
        f"most villages of '{frame[col].iat[i]}' have {expected.iat[i]}"), "warning")


def _prefix_consistency(frame: pd.DataFrame, labels: Labels) -> list[Problem]:
    """Villages named in one township (county) should share its 9- (6-) digit code prefix."""
    out: list[Problem] = []
    codes = frame["code"].where(frame["code"].str.fullmatch(r"\d{12}").fillna(False).astype(bool))
    for col, width in (("county", 6), ("township", 9)):
        if col in frame.columns:
            out += _prefix_rule(frame, labels, codes, col, width)
    return out


def _count_column(layer: str, frame: pd.DataFrame, labels: Labels, col: str) -> list[Problem]:
    raw = frame[col]
    v, bad = numbers(raw)
    out = rows(layer, labels, bad, col, lambda i: f"not a number: '{raw.iat[i]}'")
    if col in LAYERS[layer].required:
        out += rows(layer, labels, v.isna() & ~bad, col, "missing value")
    out += rows(layer, labels, v < 0, col, lambda i: f"negative count: {_g(v.iat[i])}")
    out += rows(layer, labels, (v >= 0) & (v % 1 != 0), col, lambda i: f"not a whole number: {_g(v.iat[i])}")
    return out


def _counts(layer: str, frame: pd.DataFrame, labels: Labels) -> list[Problem]:
    out: list[Problem] = []
    for col in COUNT_COLUMNS:
        if col in frame.columns:
            out += _count_column(layer, frame, labels, col)
    return out


def _number_column(layer: str, frame: pd.DataFrame, labels: Labels, col: str, *, required: bool,
                   low: float, low_ok: bool = True, high: float = np.inf,
                   what: str = "must be ≥ 0") -> tuple[pd.Series, list[Problem]]:
    """Parse a numeric column; report text, missing (if required) and values below *low* or above *high*."""
    if col not in frame.columns:
        return pd.Series(np.nan, index=frame.index), []
    raw = frame[col]
    v, bad = numbers(raw)
    out = rows(layer, labels, bad, col, lambda i: f"not a number: '{raw.iat[i]}'")
    if required:
        out += rows(layer, labels, v.isna() & ~bad, col, "missing value")
    below = ((v < low) if low_ok else (v <= low)) | (v > high)
    out += rows(layer, labels, below, col, lambda i: f"{_g(v.iat[i])}: {what}")
    return v, out


def _reservoirs(frame: pd.DataFrame, labels: Labels) -> list[Problem]:
    out: list[Problem] = []
    if "scale" in frame.columns:
        raw = frame["scale"]
        unknown = scale_codes(raw).isna()
        out += rows("reservoirs", labels, unknown & raw.isna(), "scale", "missing scale")
        out += rows("reservoirs", labels, unknown & raw.notna(), "scale", lambda i: (
            f"unknown reservoir scale '{raw.iat[i]}' "
            "(expected 大(1)型, 大(2)型, 中型, 小(1)型, 小(2)型 or 1–5)"))
    if "status" in frame.columns:
        st = frame["status"]
        bad = st.notna() & ~st.str.normalize("NFKC").isin(RESERVOIR_STATUS)
        out += rows("reservoirs", labels, bad, "status",
                    lambda i: f"unknown status '{st.iat[i]}' (expected {' or '.join(RESERVOIR_STATUS)})")
    storage, found = _number_column("reservoirs", frame, labels, "storage_m3", required=False, low=0)
    out += found
    if "scale" in frame.columns:
        out += _scale_vs_storage(frame, labels, scale_codes(frame["scale"]), storage)
    return out


_SCALE_NAMES = {1: "大(1)型", 2: "大(2)型", 3: "中型", 4: "小(1)型", 5: "小(2)型"}
_STORAGE_EDGES = np.array([1e6, 1e7, 1e8, 1e9])
"""Total storage (m³) separating the SL 252-2017 classes 5 | 4 | 3 | 2 | 1."""


def _scale_vs_storage(frame: pd.DataFrame, labels: Labels, codes: pd.Series,
                      storage: pd.Series) -> list[Problem]:
    """Warn where the declared scale disagrees with the total storage (SL 252-2017)."""
    known = codes.notna() & storage.notna() & (storage >= 0)
    implied = pd.Series(5 - np.searchsorted(_STORAGE_EDGES, storage.fillna(0).to_numpy(), side="right"),
                        index=frame.index)
    bad = known & (implied != codes.fillna(0).astype(int))
    return rows("reservoirs", labels, bad, "scale", lambda i: (
        f"scale {_SCALE_NAMES[int(codes.iat[i])]} but storage_m3 {_g(storage.iat[i])} makes it "
        f"{_SCALE_NAMES[int(implied.iat[i])]} (SL 252-2017)"), "warning")


def _contacts(frame: pd.DataFrame, labels: Labels) -> list[Problem]:
    out: list[Problem] = []
    if "role" in frame.columns:
        raw = frame["role"]
        ids = role_ids(raw)
        out += rows("contacts", labels, raw.isna(), "role", "missing role")
        out += rows("contacts", labels, ids.isna() & raw.notna(), "role",
                    lambda i: f"unknown role '{raw.iat[i]}' (expected {ROLE_LIST})")
        admin = frame["admin_code"] if "admin_code" in frame.columns else pd.Series(np.nan, index=frame.index)
        not_village = ~admin.str.fullmatch(r"\d{12}").fillna(False).astype(bool)
        out += rows("contacts", labels, (ids == "household") & not_village, "admin_code",
                    "a household contact needs the 12-digit admin_code of its village")
        if "feature_layer" in frame.columns:
            no_feature = frame["feature_layer"].isna()
        else:
            no_feature = pd.Series(True, index=frame.index)
        out += rows("contacts", labels, (ids == "keeper") & no_feature, "feature_layer",
                    "a keeper (责任人) should name their feature (feature_layer + feature_id)", "warning")
    if "phone" in frame.columns:
        raw = frame["phone"]
        bad = normalize_phones(raw).isna()
        out += rows("contacts", labels, bad, "phone",
                    lambda i: phone_problem(raw.iat[i]) or "malformed phone")
    for col, lim, word in (("lon", 180.0, "longitude"), ("lat", 90.0, "latitude")):
        out += _number_column("contacts", frame, labels, col, required=False, low=-lim, high=lim,
                              what=f"not a {word} in degrees (WGS 84 / CGCS2000)")[1]
    return out


def _critical_rainfall(frame: pd.DataFrame, labels: Labels) -> list[Problem]:
    layer = "critical_rainfall"
    dur, out = _number_column(layer, frame, labels, "duration_h", required=True, low=0, low_ok=False,
                              what="duration must be > 0 hours")
    prep, found = _number_column(layer, frame, labels, "prepare_mm", required=True, low=0)
    out += found
    imm, found = _number_column(layer, frame, labels, "immediate_mm", required=True, low=0)
    out += found
    out += rows(layer, labels, prep > imm, "prepare_mm", lambda i: (
        f"prepare_mm {_g(prep.iat[i])} > immediate_mm {_g(imm.iat[i])}: the 准备转移 threshold "
        "must not exceed the 立即转移 threshold"))
    if "soil" in frame.columns:
        raw = frame["soil"]
        soil = soil_ids(raw)
        out += rows(layer, labels, soil.isna(), "soil", lambda i: (
            "missing soil state" if pd.isna(raw.iat[i]) else
            f"unknown soil state '{raw.iat[i]}' (expected {', '.join(SOIL_STATES)} or 较干, 一般, 较湿)"))
        if "village_code" in frame.columns:
            key = pd.DataFrame({"v": frame["village_code"], "d": dur, "s": soil})
            dup = key.notna().all(axis=1) & key.duplicated(keep=False)
            out += rows(layer, labels, dup, "duration_h", lambda i: (
                f"duplicate threshold for village {key.v.iat[i]}, {_g(dur.iat[i])} h, soil {soil.iat[i]}"))
    return out


def check_values(layer: str, frame: pd.DataFrame, labels: Labels) -> list[Problem]:
    """Keys, counts and the layer's own value rules (scales, roles, phones, soil, thresholds …)."""
    out = _ids(layer, frame, labels) + _counts(layer, frame, labels)
    if layer == "villages" and "code" in frame.columns:
        out += _prefix_consistency(frame, labels)
    elif layer == "reservoirs":
        out += _reservoirs(frame, labels)
    elif layer == "contacts":
        out += _contacts(frame, labels)
    elif layer == "critical_rainfall":
        out += _critical_rainfall(frame, labels)
    if layer in _KINDS and "kind" in frame.columns:
        kind, known = frame["kind"], _KINDS[layer]
        out += rows(layer, labels, kind.notna() & ~kind.isin(known), "kind",
                    lambda i: f"unknown kind '{kind.iat[i]}' (known: {', '.join(known)})", "warning")
    return out
