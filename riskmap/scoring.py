"""Risk score 0–100 per village: hazard intensity × exposure, for ranking within a level.

Formula (pure, documented in DESIGN.md too)::

    r      = value_mm / threshold_mm of the condition that gave a hazard's level (≥ 1; 1 if unknown)
    I_h    = (level_h + min(r − 1, 1)) / 5                    intensity of one hazard, in [0.2, 1]
    I      = max over the village's hazards of I_h            (0 when no hazard is above 0)
    X      = population + threatened_people
             + w_zone · households · [in a reservoir zone or detention area]
             + w_site · vulnerable_sites                      exposure in people-equivalents
    E      = X / (X + X0)                                     in [0, 1)
    score  = round(100 · I · (0.5 + 0.5 · E))

so the level dominates (a red village scores 40–100, a blue one 10–40), and within a level the score
rises with how far the threshold was exceeded (up to double) and with the people exposed.

Examples
--------
>>> rows = pd.DataFrame({"village_code": ["a", "a", "b"], "level": [4, 2, 1],
...                      "value_mm": [200.0, 60.0, 50.0], "threshold_mm": [100.0, 50.0, 50.0]})
>>> ctx = pd.DataFrame({"population": [1000, 0], "households": [300, 0]}, index=["a", "b", "c"][:2])
>>> risk_score(rows, ctx).tolist()
[75, 10]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class ScoreWeights:
    """Exposure weights of the risk score."""

    zone_household: float = 3.0
    """People-equivalents per household in a reservoir zone or detention area."""
    vulnerable_site: float = 200.0
    """People-equivalents per vulnerable site (school, hospital, care home …)."""
    half_exposure: float = 1000.0
    """X0: the exposure at which E = 0.5."""


def _col(ctx: pd.DataFrame, name: str) -> np.ndarray:
    if name not in ctx.columns:
        return np.zeros(len(ctx))
    return pd.to_numeric(ctx[name], errors="coerce").fillna(0).to_numpy(dtype=float)


def exposure(context: pd.DataFrame, weights: ScoreWeights = ScoreWeights()) -> np.ndarray:
    """E in [0, 1) per village (context order)."""
    in_zone = (_col(context, "in_reservoir_zone") > 0) | (_col(context, "detention_overlap") > 0)
    x = (
        _col(context, "population")
        + _col(context, "threatened_people")
        + weights.zone_household * _col(context, "households") * in_zone
        + weights.vulnerable_site * _col(context, "vulnerable_sites")
    )
    x = np.maximum(x, 0.0)
    return x / (x + weights.half_exposure)


def intensity(rows: pd.DataFrame, codes: pd.Index) -> np.ndarray:
    """I in [0, 1] per village (``codes`` order) from the hazard rows."""
    out = np.zeros(len(codes))
    if not len(rows):
        return out
    value = pd.to_numeric(rows["value_mm"], errors="coerce").to_numpy(dtype=float)
    thr = pd.to_numeric(rows["threshold_mm"], errors="coerce").to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(np.isfinite(value) & np.isfinite(thr) & (thr > 0), value / thr, 1.0)
    i_h = (rows["level"].to_numpy(dtype=float) + np.clip(r - 1.0, 0.0, 1.0)) / 5.0
    pos = codes.get_indexer(rows["village_code"].astype(str))
    ok = pos >= 0
    np.maximum.at(out, pos[ok], i_h[ok])
    return out


def risk_score(
    rows: pd.DataFrame, context: pd.DataFrame, weights: ScoreWeights = ScoreWeights()
) -> np.ndarray:
    """Score 0–100 (int) per village of ``context`` (index = codes) from the hazard rows (module formula)."""
    codes = pd.Index(context.index.astype(str))
    i = intensity(rows, codes)
    e = exposure(context, weights)
    return np.rint(100.0 * i * (0.5 + 0.5 * e)).astype(int)
