"""Named village features the rule conditions read, built once per cycle.

A :class:`Features` holds, for every village of the region (in region order):

* rainfall window accumulations per (statistic, window hours, lead-time horizon): the largest
  accumulation of any window ending no later than ``now + horizon`` (observed and forecast together),
  with the end time of that window — from :func:`riskmap.windows.window_maxima`;
* effective rainfall per statistic, and the antecedent soil state (0 dry, 1 normal, 2 wet) chosen by the
  rule set's ``soil_state`` boundaries;
* critical rainfall (准备转移 / 立即转移) per duration for each village's soil state, NaN where the village
  has no row;
* the static context (:mod:`riskmap.context`) as numbers, and for each village the index of the village
  holding its governing reservoir (rain "at the reservoir").

In xarray inputs, ``time``-like values are numpy datetime64[ns] meaning UTC.

Examples
--------
>>> import xarray as xr
>>> from riskmap.rules.parse import parse_rule_text
>>> from riskmap.rules.model import RuleSet
>>> rule = parse_rule_text('''
... kind: hazard_rules
... id: r
... hazard: rainstorm
... levels: {red: [{feature: rain, statistic: max, window_h: 3, threshold_mm: 100}]}
... ''', "r.yaml")
>>> ctx = pd.DataFrame({"village_name": ["甲", "乙"]}, index=pd.Index(["1", "2"], name="village_code"))
>>> end = np.datetime64("2026-07-01T03:00", "ns")
>>> ds = xr.Dataset({"max": (("village", "duration"), [[120.0], [80.0]]),
...                  "max_end": (("village", "duration"), [[end], [end]])},
...                 coords={"village": ["1", "2"], "duration": [3]})
>>> now = pd.Timestamp("2026-07-01", tz="UTC")
>>> f = features_from_windows(RuleSet((rule,)), ctx, now=now, windows={12.0: ds})
>>> f.rain_value("max", 3, 12.0)[0].tolist()
[120.0, 80.0]
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from riskmap.errors import DataWarning, InputError
from riskmap.rules.model import CONTEXT_FEATURES, RuleSet

SOIL_NAMES = ("dry", "normal", "wet")


@dataclass(frozen=True, eq=False)
class Features:
    """Per-village features, arrays aligned with ``codes``."""

    codes: np.ndarray
    now: pd.Timestamp
    rain: Mapping[tuple[str, int, float], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    """(statistic, window_h, horizon_h) → (mm float64, window end datetime64[ns] UTC)."""
    effective: Mapping[str, np.ndarray] = field(default_factory=dict)
    soil_state: np.ndarray | None = None
    critical: Mapping[tuple[str, int], np.ndarray] = field(default_factory=dict)
    """(prepare|immediate, window_h) → mm for the village's soil state; NaN where the village has none."""
    context: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Numeric context features (columns of :data:`CONTEXT_FEATURES` present), index = codes."""
    reservoir_index: np.ndarray | None = None
    """Position of the village holding each village's reservoir, -1 where none."""

    @property
    def n(self) -> int:
        """Number of villages."""
        return len(self.codes)

    def rain_value(
        self, statistic: str, window_h: int, horizon_h: float, at: str = "village"
    ) -> tuple[np.ndarray, np.ndarray]:
        """(mm, window end) of one window feature, read over the village or its reservoir."""
        try:
            values, ends = self.rain[(statistic, window_h, float(horizon_h))]
        except KeyError:
            raise InputError(
                f"features: no {window_h} h {statistic} rainfall within {horizon_h:g} h "
                f"(build the features with this rule set)"
            ) from None
        if at == "reservoir":
            return _take(values, ends, self.reservoir_index)
        return values, ends

    def effective_value(self, statistic: str, at: str = "village") -> tuple[np.ndarray, np.ndarray]:
        """(mm, NaT) of effective rainfall."""
        ends = np.full(self.n, np.datetime64("NaT"), dtype="datetime64[ns]")
        if statistic not in self.effective:
            warnings.warn(
                f"features: no {statistic} effective rainfall given; rules reading it give no level",
                DataWarning,
                stacklevel=3,
            )
            return np.full(self.n, np.nan), ends
        values = self.effective[statistic]
        if at == "reservoir":
            return _take(values, ends, self.reservoir_index)
        return values, ends

    def context_value(self, name: str) -> np.ndarray:
        """A context feature as float64 (0 where the context lacks the column)."""
        if name == "soil_state":
            return (self.soil_state if self.soil_state is not None else np.ones(self.n)).astype(float)
        if name in self.context.columns:
            return pd.to_numeric(self.context[name], errors="coerce").fillna(0).to_numpy(dtype=float)
        if name == "has_critical_rainfall" and self.critical:
            return np.any([np.isfinite(v) for v in self.critical.values()], axis=0).astype(float)
        return np.zeros(self.n)


def _take(values: np.ndarray, ends: np.ndarray, idx: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    if idx is None:
        return np.full(len(values), np.nan), np.full(
            len(values), np.datetime64("NaT"), dtype="datetime64[ns]"
        )
    ok = idx >= 0
    safe = np.where(ok, idx, 0)
    return (
        np.where(ok, values[safe], np.nan),
        np.where(ok, ends[safe], np.datetime64("NaT")).astype("datetime64[ns]"),
    )


def _duration_hours(ds: xr.Dataset) -> np.ndarray:
    d = ds["duration"].values
    if np.issubdtype(d.dtype, np.timedelta64):
        return d.astype("timedelta64[s]").astype(float) / 3600.0
    return d.astype(float)


def _utc(now: Any) -> pd.Timestamp:
    ts = pd.Timestamp(now)
    if ts.tzinfo is None:
        raise InputError(f"now {now!r} must be timezone-aware")
    return ts.tz_convert("UTC")


def _windows_features(
    ruleset: RuleSet, windows: Mapping[float, xr.Dataset], codes: np.ndarray
) -> dict[tuple[str, int, float], tuple[np.ndarray, np.ndarray]]:
    out: dict[tuple[str, int, float], tuple[np.ndarray, np.ndarray]] = {}
    by_h = {float(h): ds for h, ds in windows.items()}
    for stat, w, h in sorted(ruleset.rain_keys()):
        ds = by_h.get(float(h))
        if ds is None:
            raise InputError(f"features: no rainfall windows for the {h:g} h horizon")
        if stat not in ds:
            raise InputError(f"features: window maxima lack the {stat!r} statistic")
        hours = _duration_hours(ds)
        pos = np.flatnonzero(np.isclose(hours, w))
        if not len(pos):
            raise InputError(f"features: window maxima lack the {w} h duration (have {hours.tolist()})")
        sub = ds.isel(duration=int(pos[0]))
        village = sub["village"].values.astype(str)
        order = pd.Index(village).get_indexer(codes)
        vals = sub[stat].values.astype(float)
        end_name = f"{stat}_end"
        ends = (
            sub[end_name].values.astype("datetime64[ns]")
            if end_name in sub
            else np.full(len(village), np.datetime64("NaT"), dtype="datetime64[ns]")
        )
        found = order >= 0
        safe = np.where(found, order, 0)
        out[(stat, w, float(h))] = (
            np.where(found, vals[safe], np.nan),
            np.where(found, ends[safe], np.datetime64("NaT")).astype("datetime64[ns]"),
        )
    return out


def _per_village(value: Any, codes: np.ndarray, what: str) -> dict[str, np.ndarray]:
    """Effective/antecedent rainfall given as DataArray(village), Dataset(mean, max) or Series."""
    if value is None:
        return {}
    if isinstance(value, xr.Dataset):
        items = {k: value[k] for k in ("mean", "max") if k in value}
    elif isinstance(value, xr.DataArray):
        items = {str(value.attrs.get("statistic", "mean")): value}
    elif isinstance(value, pd.Series):
        return {"mean": value.reindex(codes).to_numpy(dtype=float)}
    else:
        raise InputError(f"features: {what} must be an xarray DataArray/Dataset over 'village' or a Series")
    out = {}
    for k, da in items.items():
        idx = pd.Index(da["village"].values.astype(str)).get_indexer(codes)
        vals = da.values.astype(float)
        out[k] = np.where(idx >= 0, vals[np.where(idx >= 0, idx, 0)], np.nan)
    return out


def soil_states(antecedent_mm: np.ndarray, normal_from_mm: float, wet_from_mm: float) -> np.ndarray:
    """Soil state per village: 0 dry (< normal_from), 1 normal, 2 wet (≥ wet_from); NaN → normal.

    Examples
    --------
    >>> soil_states(np.array([0.0, 28.0, 51.9, 52.0, np.nan]), 28, 52).tolist()
    [0, 1, 1, 2, 1]
    """
    a = np.asarray(antecedent_mm, dtype=float)
    state = np.where(a >= wet_from_mm, 2, np.where(a >= normal_from_mm, 1, 0))
    return np.where(np.isnan(a), 1, state).astype(np.int8)


def critical_thresholds(
    table: pd.DataFrame | None, codes: np.ndarray, windows: set[int], soil: np.ndarray
) -> dict[tuple[str, int], np.ndarray]:
    """Critical rainfall per (column, duration) for each village's soil state.

    Where the village's soil state has no row, the ``normal`` row is used, then any row.
    """
    out: dict[tuple[str, int], np.ndarray] = {}
    if table is None or not windows:
        return out
    from riskmap.region_io import soil_ids

    t = table.copy()
    t["village_code"] = t["village_code"].astype(str)
    t["soil"] = soil_ids(t["soil"])
    dur = pd.to_numeric(t["duration_h"], errors="coerce").to_numpy(dtype=float)
    for w in sorted(windows):
        rows = t[np.isclose(dur, w)]
        for col in ("prepare", "immediate"):
            src = f"{col}_mm"
            grid = np.full((len(codes), 3), np.nan)
            if len(rows):
                piv = rows.pivot_table(index="village_code", columns="soil", values=src, aggfunc="min")
                piv = piv.reindex(index=codes, columns=list(SOIL_NAMES))
                grid = piv.to_numpy(dtype=float)
            pick = grid[np.arange(len(codes)), soil.astype(int)]
            pick = np.where(np.isnan(pick), grid[:, 1], pick)
            out[(col, w)] = np.where(
                np.isnan(pick), np.nanmin(np.where(np.isnan(grid), np.inf, grid), axis=1), pick
            )
            out[(col, w)][np.isinf(out[(col, w)])] = np.nan
    return out


def antecedent_rainfall(
    rain_mean: xr.DataArray,
    now: Any,
    *,
    k: float,
    n_days: int,
    day_boundary: str = "08:00",
    tz: str = "Asia/Shanghai",
) -> xr.DataArray:
    """Effective rainfall from the observed part only (intervals ending at or before ``now``).

    This is the soil's wetness before the forecast rain — what chooses the torrent indicator's soil state —
    whereas the geohazard rule's effective rainfall includes the forecast day.  Without observed data
    the result is NaN (soil state then counts as normal) and a :class:`~riskmap.errors.DataWarning` is issued.
    """
    from riskmap.windows import effective_rainfall

    now64 = _utc(now).tz_localize(None).to_datetime64()
    observed = rain_mean.isel(time=np.flatnonzero(rain_mean["time"].values <= now64))
    if observed.sizes["time"] == 0:
        warnings.warn(
            "features: no observed rainfall before now; soil state taken as normal", DataWarning, stacklevel=2
        )
        return xr.DataArray(
            np.full(rain_mean.sizes["village"], np.nan),
            dims="village",
            coords={"village": rain_mean["village"].values},
        )
    return effective_rainfall(observed, now, k=k, n_days=n_days, day_boundary=day_boundary, tz=tz)


def features_from_windows(
    ruleset: RuleSet,
    context: pd.DataFrame,
    *,
    now: Any,
    windows: Mapping[float, xr.Dataset],
    effective: Any = None,
    antecedent: Any = None,
    critical_rainfall: pd.DataFrame | None = None,
) -> Features:
    """Assemble :class:`Features` from window maxima already computed per horizon.

    Parameters
    ----------
    ruleset : the rules whose features are needed.
    context : static context (:func:`riskmap.context.compute_context`), index = village codes in region order.
    now : aware instant separating observed from forecast; horizons count from it.
    windows : horizon hours → ``window_maxima`` Dataset (village, duration): mean, max, mean_end, max_end.
    effective : effective rainfall (DataArray over village, or Dataset with mean/max).
    antecedent : rainfall choosing the soil state (default: ``effective``).
    critical_rainfall : the region's critical-rainfall table.
    """
    codes = context.index.astype(str).to_numpy()
    eff = _per_village(effective, codes, "effective rainfall")
    ante = _per_village(antecedent, codes, "antecedent rainfall") if antecedent is not None else eff
    soil = np.ones(len(codes), dtype=np.int8)
    crit_w = ruleset.critical_windows()
    if ruleset.soil is not None:
        a = ante.get(ruleset.soil.statistic)
        if a is None:
            if crit_w:
                warnings.warn(
                    "features: no antecedent/effective rainfall given; soil state taken as normal",
                    DataWarning,
                    stacklevel=2,
                )
        else:
            soil = soil_states(a, ruleset.soil.normal_from_mm, ruleset.soil.wet_from_mm)
    crit = critical_thresholds(critical_rainfall, codes, crit_w, soil)
    numeric = context[[c for c in CONTEXT_FEATURES if c in context.columns]].copy()
    if crit:
        numeric["has_critical_rainfall"] = np.any([np.isfinite(v) for v in crit.values()], axis=0)
    res_idx = None
    if "reservoir_village" in context.columns:
        res_idx = pd.Index(codes).get_indexer(context["reservoir_village"].fillna("").astype(str))
    return Features(
        codes=codes,
        now=_utc(now),
        rain=_windows_features(ruleset, windows, codes),
        effective=eff,
        soil_state=soil,
        critical=crit,
        context=numeric,
        reservoir_index=res_idx,
    )


def build_features(
    ruleset: RuleSet,
    context: pd.DataFrame,
    rain: xr.Dataset,
    *,
    now: Any,
    effective: Any = None,
    antecedent: Any = None,
    critical_rainfall: pd.DataFrame | None = None,
    grid: xr.DataArray | None = None,
    weights: Any = None,
) -> Features:
    """Build :class:`Features` from per-village rainfall (``village_rainfall``): windows per horizon.

    Pass the forecast ``grid`` and its coverage ``weights`` so that the ``max`` statistic is the largest
    accumulation at any single cell of the village (:func:`riskmap.windows.window_maxima_grid`).  Without
    them, ``max`` windows are summed from the per-step village maxima — an upper bound (maxima of
    different cells may add up) — and a :class:`~riskmap.errors.DataWarning` says so.
    """
    from riskmap.windows import window_maxima

    durations = sorted({w for _, w, _ in ruleset.rain_keys()})
    horizons = sorted({h for _, _, h in ruleset.rain_keys()})
    needs_max = any(stat == "max" for stat, _, _ in ruleset.rain_keys())
    now_ts = _utc(now)
    windows = {}
    for h in horizons:
        ds = window_maxima(rain, durations, now=now_ts, horizon_h=h, grid=grid, weights=weights)
        if needs_max and "max" not in ds and "max" in rain:
            if h == horizons[0]:
                warnings.warn(
                    "features: no grid/weights given; 'max' windows summed from per-step village maxima "
                    "(an upper bound)",
                    DataWarning,
                    stacklevel=2,
                )
            upper = window_maxima(rain[["max"]].rename({"max": "mean"}), durations, now=now_ts, horizon_h=h)
            ds = ds.assign({"max": upper["mean"], "max_end": upper["mean_end"]})
        windows[h] = ds
    return features_from_windows(
        ruleset,
        context,
        now=now_ts,
        windows=windows,
        effective=effective,
        antecedent=antecedent,
        critical_rainfall=critical_rainfall,
    )
