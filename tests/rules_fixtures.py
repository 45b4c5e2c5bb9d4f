"""Helpers for the rule tests: features made in code from tiny hand-checkable inputs."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr

from riskmap.rules.features import Features, critical_thresholds
from riskmap.rules.model import RuleSet

NOW = pd.Timestamp("2026-07-01T00:00", tz="UTC")


def codes(n: int) -> np.ndarray:
    """n valid-looking 12-digit village codes."""
    return np.array([f"4311291002{i:02d}" for i in range(1, n + 1)])


def context_frame(n: int, **columns: object) -> pd.DataFrame:
    """A context frame for n villages (names 村1 …) with extra columns (scalars or lists)."""
    c = codes(n)
    frame = pd.DataFrame(
        {"village_name": [f"村{i}" for i in range(1, n + 1)], "population": 100, "households": 30},
        index=pd.Index(c, name="village_code"),
    )
    for k, v in columns.items():
        frame[k] = v
    return frame


def flat_features(
    ruleset: RuleSet,
    context: pd.DataFrame,
    rain: Mapping[tuple[str, int], object] | None = None,
    *,
    lead_h: float = 1.0,
    effective: Mapping[str, object] | None = None,
    critical: pd.DataFrame | None = None,
    soil: np.ndarray | None = None,
) -> Features:
    """Features where window (statistic, hours) has the given per-village values at every horizon.

    Windows not given are 0 mm; every window ends ``lead_h`` hours after NOW.
    """
    c = context.index.astype(str).to_numpy()
    n = len(c)
    rain = rain or {}
    end = np.full(n, (NOW + pd.Timedelta(hours=lead_h)).tz_localize(None).to_datetime64()).astype(
        "datetime64[ns]"
    )
    values = {}
    for stat, w, h in ruleset.rain_keys():
        v = rain.get((stat, w), 0.0)
        values[(stat, w, float(h))] = (np.broadcast_to(np.asarray(v, dtype=float), (n,)).copy(), end)
    eff = {
        k: np.broadcast_to(np.asarray(v, dtype=float), (n,)).copy()
        for k, v in (effective or {"mean": 0.0}).items()
    }
    soil_arr = soil if soil is not None else np.ones(n, dtype=np.int8)
    crit = (
        critical_thresholds(critical, c, ruleset.critical_windows(), soil_arr) if critical is not None else {}
    )
    res_idx = None
    if "reservoir_village" in context:
        res_idx = pd.Index(c).get_indexer(context["reservoir_village"].fillna("").astype(str))
    ctx = context.drop(columns=[k for k in ("village_name", "reservoir_village") if k in context])
    if crit:
        ctx = ctx.assign(has_critical_rainfall=np.any([np.isfinite(v) for v in crit.values()], axis=0))
    return Features(
        codes=c,
        now=NOW,
        rain=values,
        effective=eff,
        soil_state=soil_arr,
        critical=crit,
        context=ctx,
        reservoir_index=res_idx,
    )


def hourly_windows(
    hourly: np.ndarray,
    durations: list[int],
    horizons: list[float],
    start: pd.Timestamp | None = None,
) -> dict[float, xr.Dataset]:
    """Window maxima per horizon from hourly village rainfall (village × hour), the same for mean and max.

    Hour i covers (start + i h, start + (i + 1) h] and is labelled by its end.
    """
    start = NOW - pd.Timedelta(hours=24) if start is None else start
    hourly = np.asarray(hourly, dtype=float)
    n, t = hourly.shape
    ends = np.array([(start + pd.Timedelta(hours=i + 1)).tz_localize(None).to_datetime64() for i in range(t)])
    cum = np.concatenate([np.zeros((n, 1)), np.cumsum(hourly, axis=1)], axis=1)
    out = {}
    for h in horizons:
        limit = (NOW + pd.Timedelta(hours=h)).tz_localize(None).to_datetime64()
        vals = np.zeros((n, len(durations)))
        at = np.empty((n, len(durations)), dtype="datetime64[ns]")
        for j, d in enumerate(durations):
            last = [i for i in range(d - 1, t) if ends[i] <= limit]
            sums = np.stack([cum[:, i + 1] - cum[:, i + 1 - d] for i in last], axis=1)
            k = np.argmax(sums, axis=1)
            vals[:, j] = sums[np.arange(n), k]
            at[:, j] = ends[np.array(last)[k]]
        out[float(h)] = xr.Dataset(
            {
                "mean": (("village", "duration"), vals),
                "max": (("village", "duration"), vals),
                "mean_end": (("village", "duration"), at),
                "max_end": (("village", "duration"), at),
            },
            coords={"village": codes(n), "duration": durations},
        )
    return out
