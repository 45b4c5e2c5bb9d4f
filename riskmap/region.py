"""The Region: every layer of an office's area, loaded, validated and in one metric CRS."""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import pandas as pd
from pyproj import CRS


@dataclass(frozen=True, eq=False)
class Region:
    """All layers of a region, reprojected once to a metric CRS.

    Vector layers are GeoDataFrames (empty with the right columns when the
    region lacks the layer); ``contacts`` and ``critical_rainfall`` are
    DataFrames.  ``villages.code`` is a 12-character string, unique, and the
    villages keep the order of the source file.
    """

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
    crs: CRS
    """The metric working CRS of every vector layer."""
    source: str = ""
    """Where the region was loaded from."""

    def layer(self, name: str) -> pd.DataFrame:
        """Return a layer by its schema name."""
        return getattr(self, name)  # type: ignore[no-any-return]
