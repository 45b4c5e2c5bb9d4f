"""The demo forecast: a 72-hour hourly CF-1.8 rainfall forecast of a typhoon-like storm.

Two parts, both deterministic:

- convective cores (:class:`Core`, flat-topped Gaussian cells) in the first
  12 hours, each moving along waypoints and stalling over its targets (the demo
  aims them at the county town, the coal-mining subsidence area, a 病险
  reservoir and the densest cluster of hazard sites).  The heavy rain comes early
  on purpose: rule files cap red at a 12 h lead and orange at 24 h, and the demo
  runs with ``now`` = the reference time;
- the typhoon's outer rain bands: stripes moving north-west across the county,
  under an envelope peaking at hour :data:`BAND_ENVELOPE_PEAK_H`, enhanced over
  high ground (orographic factor).

The grid is regular 0.01° lon/lat in CGCS2000 (EPSG:4490), latitude descending
(north-up); ``precipitation_amount`` is the amount (mm) in the hour ending at
``time`` (UTC; ``time_bnds`` give the interval).  The forecast reference time
is :data:`REFERENCE_TIME`, 2024-07-15T00:00:00Z.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr
from pyproj import CRS
from scipy import ndimage

from riskmap.demo.terrain import Terrain, lonlat_to_km

REFERENCE_TIME = np.datetime64("2024-07-15T00:00:00", "ns")
"""Forecast reference (issue) time, UTC."""
STEPS = 72
RESOLUTION = 0.01
LON_EDGES = (113.14, 113.85)
LAT_EDGES = (25.22, 25.78)
CORE_SHAPE = 1.3
"""Exponent of the core profile exp(-(r²/σ²)ᵏ/2): above 1 a flatter top and sharper edge."""
BAND_ENVELOPE_PEAK_H = 20.0
BAND_ENVELOPE_SIGMA_H = 9.0
BAND_PEAK_MM_H = 6.5
BAND_SPACING_KM = 28.0
BAND_SPEED_KM_H = 16.0
SUBSTEPS = 6


def grid() -> tuple[np.ndarray, np.ndarray]:
    """Cell-centre longitudes (ascending) and latitudes (descending)."""
    nlon = int(round((LON_EDGES[1] - LON_EDGES[0]) / RESOLUTION))
    nlat = int(round((LAT_EDGES[1] - LAT_EDGES[0]) / RESOLUTION))
    lon = np.round(LON_EDGES[0] + (np.arange(nlon) + 0.5) * RESOLUTION, 6)
    lat = np.round(LAT_EDGES[1] - (np.arange(nlat) + 0.5) * RESOLUTION, 6)
    return lon, lat


@dataclass(frozen=True)
class Core:
    """A convective cell: peak rate (mm/h), radius σ (km) and its track of (hour, x km, y km) waypoints.

    The cell grows over the 2 h before its first waypoint and decays over the 2 h after its last;
    a repeated position is a stall.
    """

    peak_mm_h: float
    sigma_km: float
    waypoints: tuple[tuple[float, float, float], ...]


def _envelope(t: np.ndarray) -> np.ndarray:
    """Outer-band strength over time (hours since reference): rise, peak, fade."""
    return np.asarray(np.exp(-0.5 * ((t - BAND_ENVELOPE_PEAK_H) / BAND_ENVELOPE_SIGMA_H) ** 2))


def _core_position(t: float, waypoints: Sequence[tuple[float, float, float]]) -> tuple[float, float, float]:
    """(x, y, strength) of a convective core at hour ``t`` from (hour, x, y) waypoints."""
    hours = np.array([w[0] for w in waypoints])
    if t < hours[0] - 2.0 or t > hours[-1] + 2.0:
        return 0.0, 0.0, 0.0
    x = float(np.interp(t, hours, [w[1] for w in waypoints]))
    y = float(np.interp(t, hours, [w[2] for w in waypoints]))
    ramp = float(np.clip(min(t - hours[0] + 2.0, hours[-1] + 2.0 - t) / 2.0, 0.0, 1.0))
    return x, y, ramp


def rain_rates(
    rng: np.random.Generator,
    terrain: Terrain,
    x: np.ndarray,
    y: np.ndarray,
    cores: Sequence[Core],
) -> np.ndarray:
    """Hourly amounts (mm), shape (STEPS, *x.shape), at km points ``x``/``y``."""
    heading = np.deg2rad(rng.uniform(125.0, 145.0))  # direction the bands move towards (NW)
    along = x * np.cos(heading) + y * np.sin(heading)
    elev = ndimage.gaussian_filter(terrain.dem, 8.0)
    oro = (
        1.0 + np.clip(terrain.sample(elev, x.ravel(), y.ravel()).reshape(x.shape) - 150.0, 0.0, None) / 700.0
    )
    texture = 1.0 + 0.2 * ndimage.gaussian_filter(rng.standard_normal(x.shape), 3.0, mode="reflect") / 0.09
    texture = np.clip(texture, 0.5, 1.5)
    phase = rng.uniform(0.0, BAND_SPACING_KM)
    out = np.zeros((STEPS, *x.shape))
    for h in range(STEPS):
        acc = np.zeros(x.shape)
        for s in range(SUBSTEPS):
            t = h + (s + 0.5) / SUBSTEPS
            wave = 0.5 + 0.5 * np.cos(2 * np.pi * (along - BAND_SPEED_KM_H * t - phase) / BAND_SPACING_KM)
            acc += BAND_PEAK_MM_H * _envelope(np.array(t)) * wave**4 * oro * texture
            for core in cores:
                cx, cy, strength = _core_position(t, core.waypoints)
                if strength > 0.0:
                    r2 = ((x - cx) ** 2 + (y - cy) ** 2) / core.sigma_km**2
                    acc += core.peak_mm_h * strength * np.exp(-0.5 * r2**CORE_SHAPE)
        out[h] = acc / SUBSTEPS + 0.05
    return out


def forecast_dataset(rng: np.random.Generator, terrain: Terrain, cores: Sequence[Core]) -> xr.Dataset:
    """The CF-1.8 forecast dataset (see the module docstring)."""
    lon, lat = grid()
    glon, glat = np.meshgrid(lon, lat)
    x, y = lonlat_to_km(glon, glat)
    amount = np.round(rain_rates(rng, terrain, x, y, cores), 2).astype(np.float32)
    hour = np.timedelta64(1, "h").astype("timedelta64[ns]")
    end = REFERENCE_TIME + np.arange(1, STEPS + 1) * hour
    bounds = np.stack([end - hour, end], axis=1)
    wkt = CRS.from_epsg(4490).to_wkt()
    ds = xr.Dataset(
        {
            "precipitation_amount": (
                ("time", "lat", "lon"),
                amount,
                {
                    "standard_name": "lwe_thickness_of_precipitation_amount",
                    "long_name": "precipitation amount in the hour ending at time",
                    "units": "mm",
                    "cell_methods": "time: sum",
                },
            ),
            "time_bnds": (("time", "bnds"), bounds),
        },
        coords={
            "time": (
                "time",
                end,
                {
                    "standard_name": "time",
                    "long_name": "end of the accumulation interval (UTC)",
                    "axis": "T",
                    "bounds": "time_bnds",
                },
            ),
            "lat": (
                "lat",
                lat,
                {"standard_name": "latitude", "long_name": "latitude", "units": "degrees_north", "axis": "Y"},
            ),
            "lon": (
                "lon",
                lon,
                {
                    "standard_name": "longitude",
                    "long_name": "longitude",
                    "units": "degrees_east",
                    "axis": "X",
                },
            ),
            "forecast_reference_time": ((), REFERENCE_TIME, {"standard_name": "forecast_reference_time"}),
            "crs": (
                (),
                np.int32(0),
                {
                    "grid_mapping_name": "latitude_longitude",
                    "longitude_of_prime_meridian": 0.0,
                    "semi_major_axis": 6378137.0,
                    "inverse_flattening": 298.257222101,
                    "crs_wkt": wkt,
                    "spatial_ref": wkt,
                    "epsg_code": "EPSG:4490",
                },
            ),
        },
        attrs={
            "Conventions": "CF-1.8",
            "title": "riskmap demo: 72-hour hourly rainfall forecast of a synthetic typhoon (青山县)",
            "institution": "riskmap demo generator (synthetic data, not a real forecast)",
            "source": "riskmap.demo",
            "reference_time": "2024-07-15T00:00:00+00:00",
            "comment": "time is the END of each one-hour accumulation interval, UTC; see time_bnds",
        },
    )
    units = "hours since 2024-07-15 00:00:00"
    ds["time"].encoding.update({"units": units, "calendar": "proleptic_gregorian", "dtype": "int32"})
    ds["time_bnds"].encoding.update({"units": units, "calendar": "proleptic_gregorian", "dtype": "int32"})
    ds["forecast_reference_time"].encoding.update(
        {"units": units, "calendar": "proleptic_gregorian", "dtype": "int32"}
    )
    ds["precipitation_amount"].encoding.update(
        {
            "zlib": True,
            "complevel": 4,
            "_FillValue": None,
            "grid_mapping": "crs",
            "coordinates": "forecast_reference_time",
        }
    )
    ds["time_bnds"].encoding["_FillValue"] = None
    return ds
