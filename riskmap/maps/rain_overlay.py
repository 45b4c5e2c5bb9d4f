"""The rainfall overlay: the largest accumulation over a window, as a coloured image under the villages.

The colour classes follow the China Meteorological Administration's precipitation scale for the window
length (1 h, up to 12 h, longer).  The grid is reprojected to Web Mercator so the image lines up with
Leaflet's display; cells below the first class (or NaN) are transparent.

Examples
--------
>>> import numpy as np, xarray as xr
>>> da = xr.DataArray(np.ones((3, 2, 2), "float32"), dims=("time", "y", "x"),
...     coords={"time": np.array(["2026-07-01T01", "2026-07-01T02", "2026-07-01T03"], "datetime64[ns]"),
...             "y": [30.0, 30.1], "x": [110.0, 110.1]})
>>> float(max_accumulation(da, 2).max())
2.0
>>> rain_classes(24)[0][:3]
(0.1, 10.0, 25.0)
"""

from __future__ import annotations

import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from pyproj import Transformer

from riskmap.errors import ForecastError

_COLORS = ("#a6f28f", "#3dba3d", "#61b8ff", "#0000fe", "#fa00fa", "#800040")


def rain_classes(window_h: float | None) -> tuple[tuple[float, ...], tuple[str, ...]]:
    """Lower bounds (mm) and colours of the rainfall classes for a window of ``window_h`` hours."""
    if window_h is not None and window_h <= 1:
        bins: tuple[float, ...] = (0.1, 2.5, 8.0, 16.0, 20.0, 50.0)
    elif window_h is not None and window_h <= 12:
        bins = (0.1, 5.0, 15.0, 30.0, 70.0, 140.0)
    else:
        bins = (0.1, 10.0, 25.0, 50.0, 100.0, 250.0)
    return bins, _COLORS


def _step_hours(rain: xr.DataArray) -> float:
    if "interval" in rain.coords:
        hours = np.unique(rain["interval"].values.astype("timedelta64[s]").astype(np.int64)) / 3600.0
    else:
        times = rain["time"].values.astype("datetime64[s]").astype(np.int64)
        hours = np.unique(np.diff(times)) / 3600.0
    if len(hours) != 1 or hours[0] <= 0:
        raise ForecastError(
            f"rain overlay: intervals of the forecast are not uniform ({sorted(set(hours.tolist()))} h); "
            "pass a 2-D accumulation instead"
        )
    return float(hours[0])


def max_accumulation(rain: xr.DataArray, window_h: float | None) -> xr.DataArray:
    """Largest accumulation (mm) over any ``window_h``-hour window; the total when ``window_h`` is None.

    ``rain`` is either 2-D (y, x), already an accumulation, or 3-D (time, y, x) in mm per interval.
    """
    if rain.ndim == 2:
        return rain
    if rain.ndim != 3 or "time" not in rain.dims:
        raise ForecastError(f"rain overlay: expected dims (time, y, x) or (y, x), got {rain.dims}")
    if window_h is None or len(rain["time"]) < 2:
        return rain.sum("time", min_count=1)
    steps = round(window_h / _step_hours(rain))
    if steps < 1:
        raise ForecastError(f"rain overlay: window {window_h} h is shorter than one forecast interval")
    steps = min(steps, len(rain["time"]))
    return rain.rolling(time=steps, min_periods=steps).sum().max("time")


def colorize(values: np.ndarray, bins: tuple[float, ...], colors: tuple[str, ...],
             alpha: int = 200) -> np.ndarray:
    """RGBA uint8 image: each cell gets the colour of its class, transparent below ``bins[0]`` or NaN.

    Examples
    --------
    >>> img = colorize(np.array([[0.0, 12.0], [np.nan, 300.0]]), *rain_classes(24))
    >>> img[:, :, 3].tolist(), img[0, 1, :3].tolist(), img[1, 1, :3].tolist()
    ([[0, 200], [0, 200]], [61, 186, 61], [128, 0, 64])
    """
    rgb = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in colors], dtype=np.uint8)
    filled = np.where(np.isfinite(values), values, -np.inf)
    idx = np.digitize(filled, np.asarray(bins, dtype=float)) - 1
    out = np.zeros(values.shape + (4,), dtype=np.uint8)
    ok = idx >= 0
    out[ok, :3] = rgb[np.clip(idx[ok], 0, len(colors) - 1)]
    out[ok, 3] = alpha
    return out


def overlay_image(acc: xr.DataArray) -> tuple[np.ndarray, list[list[float]], float]:
    """Reproject an accumulation to Web Mercator; return (values north-up, [[S, W], [N, E]], max mm)."""
    if acc.rio.crs is None:
        raise ForecastError("rain overlay: the rainfall DataArray has no CRS (set it with da.rio.write_crs)")
    acc = acc.astype("float32").rio.write_nodata(np.nan, encoded=False)
    merc = acc.rio.reproject("EPSG:3857", nodata=np.nan)
    if merc["y"].values[0] < merc["y"].values[-1]:
        merc = merc.isel(y=slice(None, None, -1))
    left, bottom, right, top = merc.rio.bounds()
    to_ll = Transformer.from_crs("EPSG:3857", "EPSG:4326", always_xy=True)
    west, south = to_ll.transform(left, bottom)
    east, north = to_ll.transform(right, top)
    values = np.asarray(merc.values, dtype=float)
    peak = float(np.nanmax(values)) if np.isfinite(values).any() else 0.0
    return values, [[south, west], [north, east]], peak
