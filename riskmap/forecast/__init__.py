"""Forecast and observed-rainfall ingest: every input normalised once to the forecast contract.

See :func:`open_forecast` for the contract and the accepted formats, :func:`check_coverage` for
villages outside the grid, :func:`open_observed`, :func:`gauges_to_grid`, :func:`gauges_to_points` and
:func:`merge_observed` for observed rainfall.

Note: ``pyproj`` is imported before anything loads ``eccodes``: with the eccodes 2.50 wheels,
loading eccodes first and pyproj second crashes the interpreter at exit (two bundled PROJ/sqlite
copies).  Importing this package first keeps the order safe.
"""

from __future__ import annotations

import pyproj  # noqa: F401  (must precede eccodes; see the module doc)
import rasterio  # noqa: F401
import rioxarray  # noqa: F401  (registers da.rio)

from riskmap.forecast.entry import open_forecast
from riskmap.forecast.gauges import gauges_to_grid, gauges_to_points, read_gauge_table
from riskmap.forecast.observed import merge_observed, open_observed
from riskmap.forecast.options import ForecastOptions, options_from_strings
from riskmap.forecast.validate import CoverageReport, check_coverage

__all__ = [
    "CoverageReport", "ForecastOptions", "check_coverage", "gauges_to_grid", "gauges_to_points",
    "merge_observed", "open_forecast", "open_observed", "options_from_strings", "read_gauge_table",
]
