"""From per-village rainfall to an explainable assessment (pure).

The middle of a cycle: window maxima per lead-time horizon, effective antecedent
rainfall, features, rule evaluation.  No paths, no clock: ``now`` is a parameter.

Examples
--------
See :func:`assess`; the demo integration test runs it on the whole demo county.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd
import xarray as xr

from riskmap.config import Settings
from riskmap.region import Region
from riskmap.rules import Assessment, RuleSet, build_features, evaluate
from riskmap.rules.features import Features, antecedent_rainfall
from riskmap.weights import CoverageWeights
from riskmap.windows import effective_rainfall


@dataclass(frozen=True, eq=False)
class AssessResult:
    """The assessment and what it was computed from (for explanations and maps)."""

    assessment: Assessment
    features: Features
    rain: xr.Dataset
    """Per-village rainfall (village, time): ``mean``, ``max``, ``covered_fraction``."""


def assess(region: Region, context: pd.DataFrame, rain: xr.Dataset, ruleset: RuleSet, settings: Settings,
           now: datetime, *, grid: xr.DataArray | None = None, weights: CoverageWeights | None = None
           ) -> AssessResult:
    """Evaluate every rule for every village of ``region`` at ``now``.

    Parameters
    ----------
    region
        The loaded region; its ``critical_rainfall`` table feeds the torrent rule.
    context
        Static hazard context (:func:`riskmap.context.compute_context`), indexed by village code
        in region order.
    rain
        Observed + forecast per-village rainfall (:func:`riskmap.rainfall.village_rainfall`),
        villages in region order.
    ruleset
        Validated rules.
    settings
        Effective-rainfall parameters, language and time zone come from here.
    now
        Aware instant separating observed from forecast.
    grid, weights
        The rainfall grid and its coverage weights: with them the ``max`` statistic of a window is
        the largest accumulation at any single cell the village touches (exact); without them an
        upper bound (with a :class:`~riskmap.errors.DataWarning`).
    """
    rs = settings.rainfall
    # effective rainfall (today's forecast included) drives the geohazard rule; the soil state that
    # picks the torrent thresholds comes from antecedent (observed, before today) rain only.
    effective = xr.Dataset({
        stat: effective_rainfall(rain[stat], now, k=rs.effective_k, n_days=rs.effective_days,
                                 day_boundary=rs.day_boundary, tz=settings.office.timezone)
        for stat in ("mean", "max") if stat in rain
    })
    soil_stats = {ruleset.soil.statistic} if ruleset.soil is not None else set()
    antecedent = xr.Dataset({
        stat: antecedent_rainfall(rain[stat], now, k=rs.effective_k, n_days=rs.effective_days,
                                  day_boundary=rs.day_boundary, tz=settings.office.timezone)
        for stat in sorted(soil_stats) if stat in rain
    })
    features = build_features(ruleset, context, rain, now=now, effective=effective, antecedent=antecedent,
                              critical_rainfall=region.critical_rainfall, grid=grid, weights=weights)
    assessment = evaluate(ruleset, features, context, now=pd.Timestamp(now),
                          language=settings.office.language, tz=settings.office.timezone)
    return AssessResult(assessment, features, rain)
