"""The demo's rain-gauge network (雨量站) and its observed rain in the 72 hours before the forecast.

A county flood-control office always has the gauge readings of the days before a forecast: they
decide the antecedent soil state (较干/一般/较湿) that picks the torrent rule's critical rainfall.
The demo's observations, hourly at :data:`N_STATIONS` gauges, cover the three hydrological days
(08:00-08:00 Beijing time) before the reference time 2024-07-15T00:00Z (08:00 Beijing time):

- **a wet spell (day 3 and day 2 before)**: a slow front in two pulses (evening of 12 July, afternoon
  of 13 July) over the **north-west** of the county, falling off towards the south-east (a logistic
  profile across the county), enhanced over high ground: up to ~90 mm at the wettest gauges,
  ~30-40 mm in the middle of the county, a few mm in the south-east;
- **scattered afternoon thundershowers (day 1 before)**: a few small cells on 14 July, 14:00-19:00;
- **the typhoon's first light rain**: 0.1-1.5 mm/h from the south-east in the last hours before the
  reference time, leading into the forecast.

Rates stay moderate on purpose (a few mm/h, under 30 mm in any 6 h at a gauge): the windows of the
rules include observed hours, and the observations alone must not raise rainstorm warnings; what
they change is the soil state (some villages dry, some normal, some wet).

The table (:func:`gauge_table`) is what an office exports: columns ``station, lon, lat, time, mm,
name``; ``time`` the END of the hour in ISO 8601 with the +08:00 offset; ``mm`` to 0.1 mm; one row per
station and hour (zeros included), sorted by time then station.

Examples
--------
>>> hours = observed_hours()
>>> len(hours), hours[0], hours[-1]
(72, '2024-07-12T09:00:00+08:00', '2024-07-15T08:00:00+08:00')
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

from riskmap.demo.storm import REFERENCE_TIME
from riskmap.demo.terrain import Terrain, km_to_lonlat
from riskmap.demo.villages import Villages

N_STATIONS = 60
"""Number of rain gauges (雨量站)."""
MIN_SPACING_KM = 4.5
"""Smallest distance between two gauges."""
STATION_PREFIX = "QS"
"""Station ids: ``QS`` + 3 digits (QS001 …), numbered north to south."""
OBSERVED_HOURS = 72
OFFSET = "+08:00"
"""The offset written in the table's ``time`` (Beijing time, as offices export)."""
FRONT_MM = 90.0
"""Wet-spell total (mm) deep in the wet side of the front, before the orographic factor."""
FRONT_WIDTH_KM = 8.0
"""Scale (km) of the logistic fall-off of the wet spell across the county."""
FRONT_PULSES = ((10.0, 5.0, -6.0, 0.34), (35.0, 5.5, 2.0, 0.34), (58.0, 4.5, -2.0, 0.32))
"""(hour, σ h, shift of the front's edge towards the south-east in km, share of the total) per pulse;
hours count from 2024-07-12T00:00Z (08:00 Beijing time, the start of the third day before)."""
SHOWER_CELLS = 4
SHOWER_PEAK_MM_H = 9.0
SHOWER_SIGMA_KM = 3.0
LEADING_RAIN_MM_H = 1.5


def observed_hours() -> list[str]:
    """Interval ends of the observed hours, ISO 8601 in Beijing time (oldest first)."""
    ends = REFERENCE_TIME + (np.arange(OBSERVED_HOURS) - OBSERVED_HOURS + 1) * np.timedelta64(1, "h")
    local = pd.DatetimeIndex(ends).tz_localize("UTC").tz_convert(OFFSET)
    return [t.isoformat() for t in local]


def gauge_stations(rng: np.random.Generator, villages: Villages) -> pd.DataFrame:
    """:data:`N_STATIONS` gauges at village committee locations, at least :data:`MIN_SPACING_KM` apart.

    Returns columns ``station, name, x, y`` (km), numbered from north to south (then west to east).
    """
    seats = villages.seats
    chosen: list[int] = []
    for i in rng.permutation(len(seats)):
        p = seats[i]
        if all(np.hypot(*(seats[j] - p)) >= MIN_SPACING_KM for j in chosen):
            chosen.append(int(i))
            if len(chosen) == N_STATIONS:
                break
    idx = np.array(chosen)
    xy = seats[idx]
    order = np.lexsort((xy[:, 0], -np.round(xy[:, 1], 1)))
    idx, xy = idx[order], xy[order]
    names = villages.frame["name"].to_numpy()[idx]
    towns = villages.frame["township"].to_numpy()[idx]
    base = [str(n).removesuffix("社区").removesuffix("村") for n in names]
    dup = pd.Series(base).duplicated(keep=False).to_numpy()
    label = [f"{t}{b}站" if d else f"{b}站" for b, t, d in zip(base, towns, dup, strict=True)]
    return pd.DataFrame({
        "station": [f"{STATION_PREFIX}{k + 1:03d}" for k in range(len(idx))],
        "name": label,
        "x": xy[:, 0],
        "y": xy[:, 1],
    })


def _across(x: np.ndarray, y: np.ndarray, villages: Villages) -> np.ndarray:
    """Distance (km) from the county's centre towards the south-east."""
    minx, miny, maxx, maxy = villages.county.bounds
    return ((x - (minx + maxx) / 2) - (y - (miny + maxy) / 2)) / np.sqrt(2.0)


def observed_rain(
    rng: np.random.Generator, terrain: Terrain, villages: Villages, x: np.ndarray, y: np.ndarray
) -> np.ndarray:
    """Hourly observed rain (mm, 0.1 mm steps) at km points, shape (:data:`OBSERVED_HOURS`, n)."""
    hours = np.arange(OBSERVED_HOURS) + 0.5
    across = _across(x, y, villages)
    elev = terrain.sample(ndimage.gaussian_filter(terrain.dem, 8.0), x, y)
    oro = 1.0 + np.clip(elev - 150.0, 0.0, 900.0) / 1800.0
    site = np.exp(0.12 * rng.standard_normal(x.size))
    rain = np.zeros((OBSERVED_HOURS, x.size))
    for t0, sigma, shift, share in FRONT_PULSES:
        profile = np.exp(-0.5 * ((hours - t0) / sigma) ** 2)
        profile /= profile.sum()
        total = FRONT_MM * share / (1.0 + np.exp((across - shift) / FRONT_WIDTH_KM))
        rain += profile[:, None] * (total * oro * site)[None, :]
    rain *= np.clip(np.exp(0.3 * rng.standard_normal(rain.shape)), 0.5, 1.8)  # hour-to-hour variability
    minx, miny, maxx, maxy = villages.county.bounds
    for _ in range(SHOWER_CELLS):  # 14 July afternoon, Beijing time: hours 54-59 from the start
        cx, cy = rng.uniform(minx + 5, maxx - 5), rng.uniform(miny + 5, maxy - 5)
        while _across(np.array(cx), np.array(cy), villages) < 0.0:  # on the drier south-east side
            cx, cy = rng.uniform(minx + 5, maxx - 5), rng.uniform(miny + 5, maxy - 5)
        start = int(rng.integers(54, 58))
        peak = SHOWER_PEAK_MM_H * rng.uniform(0.6, 1.0)
        spot = np.exp(-0.5 * ((x - cx) ** 2 + (y - cy) ** 2) / SHOWER_SIGMA_KM**2)
        for k, f in enumerate((0.5, 1.0, 0.35)):
            rain[start + k] += peak * f * spot
    lead = np.clip((hours - (OBSERVED_HOURS - 8)) / 8.0, 0.0, 1.0)  # the last 8 hours
    south_east = np.clip(0.5 + across / 40.0, 0.1, 1.0)
    rain += LEADING_RAIN_MM_H * lead[:, None] * south_east[None, :]
    return np.round(rain, 1)


def gauge_table(rng: np.random.Generator, terrain: Terrain, villages: Villages) -> pd.DataFrame:
    """The observed-rain table ``station, lon, lat, time, mm, name`` (see the module docstring)."""
    st = gauge_stations(rng, villages)
    x, y = st["x"].to_numpy(), st["y"].to_numpy()
    rain = observed_rain(rng, terrain, villages, x, y)
    lon, lat = km_to_lonlat(x, y)
    hours = observed_hours()
    n = len(st)
    return pd.DataFrame({
        "station": np.tile(st["station"].to_numpy(), OBSERVED_HOURS),
        "lon": np.tile(np.round(lon, 5), OBSERVED_HOURS),
        "lat": np.tile(np.round(lat, 5), OBSERVED_HOURS),
        "time": np.repeat(hours, n),
        "mm": rain.ravel(),
        "name": np.tile(st["name"].to_numpy(), OBSERVED_HOURS),
    })

