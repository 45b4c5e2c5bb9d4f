"""The embedded demo region: a deterministic synthetic county (青山县) and a typhoon forecast.

:func:`build_demo` generates every layer of :mod:`riskmap.schema` in EPSG:4490
(CGCS2000 lon/lat) plus a 72-hour CF forecast and the rain-gauge observations of
the 72 hours before it, from one seed through one :class:`numpy.random.Generator`
(no clock, no global random state): same seed, same content, as
:func:`content_hash` shows.  :func:`write_demo` writes it to a folder as
``region.gpkg`` + ``forecast.nc`` + ``observed.csv`` and reuses files already there.
See ``layers/demo.md`` for what the county contains.

Examples
--------
>>> demo = build_demo()
>>> len(demo.villages) >= 1900, demo.villages.crs.to_epsg()
(True, 4490)
>>> sorted(demo.layers())[:3]
['contacts', 'critical_rainfall', 'detention_areas']
>>> str(demo.forecast["precipitation_amount"].attrs["units"])
'mm'
>>> demo.observed["time"].iloc[-1], demo.observed["station"].iloc[0]
('2024-07-15T08:00:00+08:00', 'QS001')
>>> region = demo.to_region()
>>> region.crs.is_projected, len(region.villages) == len(demo.villages)
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import xarray as xr

from riskmap.demo.contacts import (
    PHONE_PREFIX,
    hazard_mask,
    make_contacts,
    make_critical_rainfall,
    riverside_mask,
)
from riskmap.demo.features import Features, make_features
from riskmap.demo.gauges import gauge_table
from riskmap.demo.hydro import Hydro, make_hydro
from riskmap.demo.storm import REFERENCE_TIME, Core, forecast_dataset
from riskmap.demo.terrain import km_to_lonlat, make_terrain
from riskmap.demo.villages import COUNTY_CODE, COUNTY_NAME, Villages, make_villages
from riskmap.errors import RegionError
from riskmap.schema import LAYERS

if TYPE_CHECKING:
    from riskmap.region import Region

DEFAULT_SEED = 20240715
CORE_A_MM_H, CORE_A_SIGMA_KM = 65.0, 2.3
"""The convective core over the county town and the subsidence area."""
CORE_B_MM_H, CORE_B_SIGMA_KM = 45.0, 2.6
"""The convective core over the 病险 reservoir and the hazard-site cluster."""
CORE_C_MM_H, CORE_C_SIGMA_KM = 16.0, 4.5
"""A broad, slow rain cell crossing the south of the county later (hours 12-24)."""
CRS_EPSG = 4490

__all__ = [
    "COUNTY_CODE",
    "COUNTY_NAME",
    "DEFAULT_SEED",
    "PHONE_PREFIX",
    "REFERENCE_TIME",
    "DemoPaths",
    "DemoRegion",
    "build_demo",
    "content_hash",
    "write_demo",
]


@dataclass(frozen=True, eq=False)
class DemoRegion:
    """Every layer of the demo county (EPSG:4490 lon/lat) and its forecast."""

    villages: gpd.GeoDataFrame
    rivers: gpd.GeoDataFrame
    reservoirs: gpd.GeoDataFrame
    reservoir_zones: gpd.GeoDataFrame
    flood_points: gpd.GeoDataFrame
    hazard_sites: gpd.GeoDataFrame
    mines: gpd.GeoDataFrame
    detention_areas: gpd.GeoDataFrame
    shelters: gpd.GeoDataFrame
    vulnerable_sites: gpd.GeoDataFrame
    contacts: pd.DataFrame
    critical_rainfall: pd.DataFrame
    forecast: xr.Dataset
    """CF-1.8 dataset with ``precipitation_amount`` (time, lat, lon), mm per hour ending at ``time``."""
    observed: pd.DataFrame
    """Gauge table of the 72 h before the reference time: ``station, lon, lat, time, mm, name``
    (``time`` ISO 8601 text with +08:00, the end of each hour; see :mod:`riskmap.demo.gauges`)."""
    seed: int
    county_code: str = COUNTY_CODE
    county_name: str = COUNTY_NAME

    def layers(self) -> dict[str, pd.DataFrame]:
        """Every region layer by its schema name (in :data:`riskmap.schema.LAYERS` order)."""
        return {name: getattr(self, name) for name in LAYERS}

    def to_region(self, *, check: bool = True) -> Region:
        """The demo as a loaded :class:`~riskmap.region.Region` (metric CRS), without writing files.

        With ``check`` every rule of :func:`riskmap.check.check_raw` runs first; a problem raises
        :class:`~riskmap.errors.RegionError` (the demo has none).
        """
        from riskmap.region import region_from_raw
        from riskmap.region_io import RawLayer, RawRegion

        source = f"riskmap.demo(seed={self.seed})"
        raw = RawRegion(
            source, {name: RawLayer(name, frame, source) for name, frame in self.layers().items()}
        )
        if check:
            from riskmap.check import check_raw

            report = check_raw(raw)
            if not report.ok:
                lines = "\n".join(p.format() for p in report.errors[:20])
                raise RegionError(f"{source}: {len(report.errors)} errors in the demo region:\n{lines}")
        return region_from_raw(raw)

    @property
    def reference_time(self) -> pd.Timestamp:
        """The forecast reference time (UTC, timezone-aware)."""
        return pd.Timestamp(REFERENCE_TIME).tz_localize("UTC")


def _lonlat(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    def fn(xy: np.ndarray) -> np.ndarray:
        lon, lat = km_to_lonlat(xy[:, 0], xy[:, 1])
        return np.column_stack([lon, lat])

    geoms = shapely.transform(frame.geometry.to_numpy(), fn)
    out = gpd.GeoDataFrame(frame.drop(columns="geometry"), geometry=list(geoms), crs=CRS_EPSG)
    return out.reset_index(drop=True)


def _hazard_centre(sites: gpd.GeoDataFrame) -> tuple[float, float]:
    xy = np.column_stack([sites.geometry.x, sites.geometry.y])
    d = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
    near = (d < 5.0).sum(1)
    i = int(np.argmax(near))
    return float(xy[i, 0]), float(xy[i, 1])


def _storm_cores(villages: Villages, hydro: Hydro, feats: Features) -> tuple[Core, ...]:
    """The storm's convective cores: two stalling over the hazards to exercise (within 12 h), one broad."""
    tx, ty = villages.town_xy
    sx, sy = feats.subsidence_xy
    dam = hydro.reservoirs.geometry[(hydro.reservoirs["id"] == hydro.unsafe_target).to_numpy()].iloc[0]
    zones = hydro.reservoir_zones
    zone = zones.geometry[(zones["reservoir_id"] == hydro.unsafe_target).to_numpy()].iloc[0].centroid
    rx, ry = (dam.x + zone.x) / 2, (dam.y + zone.y) / 2
    hx, hy = _hazard_centre(feats.hazard_sites)
    town_core = Core(
        CORE_A_MM_H,
        CORE_A_SIGMA_KM,
        ((2.0, tx + 12.0, ty - 9.0), (4.0, tx, ty), (6.5, tx, ty), (7.5, sx, sy), (9.5, sx, sy)),
    )
    hill_core = Core(
        CORE_B_MM_H,
        CORE_B_SIGMA_KM,
        ((2.5, rx + 8.0, ry - 6.0), (4.5, rx, ry), (7.0, rx, ry), (8.0, hx, hy), (10.0, hx, hy)),
    )
    minx, miny, maxx, maxy = villages.county.bounds
    south = miny + 0.3 * (maxy - miny)
    broad_core = Core(
        CORE_C_MM_H,
        CORE_C_SIGMA_KM,
        ((13.0, minx + 6.0, south), (23.0, maxx - 10.0, south + 4.0)),
    )
    return town_core, hill_core, broad_core


def build_demo(seed: int = DEFAULT_SEED) -> DemoRegion:
    """Generate the demo county and its forecast from ``seed`` (pure, deterministic, a few seconds).

    Parameters
    ----------
    seed : int
        Seed of the one :class:`numpy.random.Generator` that drives everything.

    Returns
    -------
    DemoRegion
        Every layer following :mod:`riskmap.schema`, in EPSG:4490, and the forecast.
    """
    rng = np.random.default_rng(seed)
    terrain = make_terrain(rng)
    villages = make_villages(rng, terrain)
    hydro = make_hydro(rng, terrain, villages)
    feats = make_features(rng, terrain, villages)
    riverside = riverside_mask(villages, hydro)
    hazard = hazard_mask(villages, feats.hazard_sites)
    km_layers = {
        "rivers": hydro.rivers,
        "reservoirs": hydro.reservoirs,
        "reservoir_zones": hydro.reservoir_zones,
        "flood_points": feats.flood_points,
        "hazard_sites": feats.hazard_sites,
        "mines": feats.mines,
        "detention_areas": hydro.detention_areas,
        "shelters": feats.shelters,
        "vulnerable_sites": feats.vulnerable_sites,
    }
    contacts = make_contacts(rng, villages, hydro, km_layers, riverside, hazard)
    critical = make_critical_rainfall(rng, villages.frame["code"][riverside].tolist())
    forecast = forecast_dataset(rng, terrain, _storm_cores(villages, hydro, feats))
    observed = gauge_table(rng, terrain, villages)
    ll = {name: _lonlat(frame) for name, frame in km_layers.items()}
    return DemoRegion(
        villages=_lonlat(villages.frame),
        contacts=contacts,
        critical_rainfall=critical,
        forecast=forecast,
        observed=observed,
        seed=seed,
        **ll,
    )


def __getattr__(name: str) -> Any:
    # writer functions live in riskmap.demo.writer; imported lazily to keep this module light
    if name in ("write_demo", "content_hash", "DemoPaths"):
        from riskmap.demo import writer

        return getattr(writer, name)
    raise AttributeError(name)
