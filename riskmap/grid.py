"""The grid definition of a forecast: CRS, snapped cell edges and shape, as one frozen value.

A forecast in the team's contract (see :func:`riskmap.forecast.open_forecast`) is a
DataArray with dims ``(time, y, x)``, 1-D ``x``/``y`` coordinates of cell centres and a
CRS via rioxarray.  :class:`GridDef` captures what the coverage weights depend on and
nothing else, so two forecasts on the same grid share their cached weights.

Edges are derived from the centre coordinates and *snapped*: the spacing and origin are
fitted to all coordinates (least squares) and rounded to 1e-9 of a cell, so coordinates
written with float noise (``100.00499999999``, ``100.01500000001`` …) give exactly the
regular edges they mean — no sliver cells, and the same :attr:`GridDef.key`.

Cell numbering follows the DataArray: cell ``k = row * nx + col`` where ``row``/``col``
index the DataArray's own ``y``/``x`` order (ascending or descending).

Examples
--------
>>> import numpy as np, xarray as xr, rioxarray  # noqa: F401
>>> da = xr.DataArray(np.zeros((1, 2, 3), "float32"), dims=("time", "y", "x"),
...                   coords={"x": [100.005, 100.0150000001, 100.025], "y": [30.015, 30.005]})
>>> g = GridDef.from_dataarray(da.rio.write_crs("EPSG:4326"))
>>> g.shape, g.x_edges.tolist()
((2, 3), [100.0, 100.01, 100.02, 100.03])
>>> g.bounds
(100.0, 30.0, 100.03, 30.02)
>>> g.y_descending, g.is_geographic
(True, True)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

import numpy as np
from pyproj import CRS

from riskmap.errors import ForecastError

SNAP_TOL = 1e-3
"""Snapping tolerance, as a fraction of one cell (over the whole grid for the spacing)."""

REGULAR_TOL = 1e-2
"""Largest deviation of a centre coordinate from the fitted regular grid, as a fraction of a cell."""


def _snap(value: float, tol: float) -> float:
    """The number with the fewest decimals within ``tol`` of ``value``.

    >>> _snap(100.00000381469727, 1e-5), _snap(-2345678.5, 0.3), _snap(0.0833333333333, 1e-9)
    (100.0, -2345678.5, 0.083333333)
    """
    for digits in range(-9, 16):
        r = round(value, digits)
        if abs(r - value) <= tol:
            return float(r)
    return float(value)


def _fit_axis(values: np.ndarray, name: str, where: str) -> tuple[float, float]:
    """Return (first edge, signed spacing) of a regular axis, fitted and snapped."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise ForecastError(f"{where}: coordinate '{name}' must be 1-D and not empty")
    if not np.all(np.isfinite(v)):
        raise ForecastError(f"{where}: coordinate '{name}' has NaN or infinite values")
    if v.size == 1:
        raise ForecastError(f"{where}: coordinate '{name}' has one value; the cell size is unknown")
    i = np.arange(v.size, dtype=np.float64)
    ic, vc = i - i.mean(), v - v.mean()          # least-squares line, closed form
    step = float(ic @ vc / (ic @ ic))
    start = float(v.mean() - step * i.mean())
    if step == 0:
        raise ForecastError(f"{where}: coordinate '{name}' does not change")
    resid = np.abs(v - (start + step * i)).max()
    if resid > REGULAR_TOL * abs(step):
        raise ForecastError(
            f"{where}: coordinate '{name}' is not regularly spaced "
            f"(off by up to {resid / abs(step):.3g} cells); regrid it first"
        )
    step = _snap(step, SNAP_TOL * abs(step) / v.size)
    edge0 = _snap(start - step / 2, SNAP_TOL * abs(step))
    return edge0, step


@lru_cache(maxsize=64)
def _normal_wkt(wkt: str) -> str:
    """The WKT2 pyproj writes for a CRS given as WKT (a pure function of the text: memoised)."""
    return CRS.from_user_input(wkt).to_wkt()


@dataclass(frozen=True)
class GridDef:
    """A regular grid: CRS, first cell edge, signed spacing, shape.

    Parameters
    ----------
    crs_wkt
        The grid CRS as WKT2 (normalised by pyproj).
    x0, y0
        Outer edge of the first column / first row, in the DataArray's order (snapped).
    dx, dy
        Signed spacing between consecutive columns / rows (``dy < 0`` for north-up data).
    nx, ny
        Number of columns and rows.
    """

    crs_wkt: str
    x0: float
    y0: float
    dx: float
    dy: float
    nx: int
    ny: int

    @classmethod
    def from_dataarray(cls, da: Any, *, where: str = "forecast") -> GridDef:
        """Grid definition of a DataArray with 1-D ``x``/``y`` centres and a rioxarray CRS.

        Raises :class:`~riskmap.errors.ForecastError` (naming ``where``) when the CRS is
        missing or the coordinates are not a regular grid.
        """
        crs = da.rio.crs if hasattr(da, "rio") else None
        if crs is None:
            raise ForecastError(f"{where}: the grid has no CRS (write one with da.rio.write_crs)")
        for dim in ("x", "y"):
            if dim not in da.coords:
                raise ForecastError(f"{where}: no '{dim}' coordinate of cell centres")
        x0, dx = _fit_axis(da["x"].values, "x", where)
        y0, dy = _fit_axis(da["y"].values, "y", where)
        return cls(
            crs_wkt=_normal_wkt(crs.to_wkt()),
            x0=x0, y0=y0, dx=dx, dy=dy, nx=int(da.sizes["x"]), ny=int(da.sizes["y"]),
        )

    @property
    def shape(self) -> tuple[int, int]:
        """(ny, nx)."""
        return (self.ny, self.nx)

    @property
    def ncells(self) -> int:
        """Number of cells, ``ny * nx``."""
        return self.ny * self.nx

    @property
    def x_edges(self) -> np.ndarray:
        """``nx + 1`` column edges in the DataArray's order."""
        return self.x0 + self.dx * np.arange(self.nx + 1)

    @property
    def y_edges(self) -> np.ndarray:
        """``ny + 1`` row edges in the DataArray's order."""
        return self.y0 + self.dy * np.arange(self.ny + 1)

    @property
    def x_centres(self) -> np.ndarray:
        """``nx`` column centres in the DataArray's order."""
        return self.x0 + self.dx * (np.arange(self.nx) + 0.5)

    @property
    def y_centres(self) -> np.ndarray:
        """``ny`` row centres in the DataArray's order."""
        return self.y0 + self.dy * (np.arange(self.ny) + 0.5)

    @property
    def x_descending(self) -> bool:
        """Whether x decreases along the DataArray's columns."""
        return self.dx < 0

    @property
    def y_descending(self) -> bool:
        """Whether y decreases along the DataArray's rows (north-up)."""
        return self.dy < 0

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of the outer cell edges."""
        xe, ye = self.x_edges[[0, -1]], self.y_edges[[0, -1]]
        return (float(xe.min()), float(ye.min()), float(xe.max()), float(ye.max()))

    @property
    def cell_area(self) -> float:
        """Planar area of one cell in CRS units squared."""
        return abs(self.dx * self.dy)

    @cached_property
    def crs(self) -> CRS:
        """The CRS as a pyproj object."""
        return CRS.from_wkt(self.crs_wkt)

    @property
    def is_geographic(self) -> bool:
        """Whether the CRS is geographic (degrees)."""
        return bool(self.crs.is_geographic)

    @property
    def transform(self) -> tuple[float, float, float, float, float, float]:
        """GDAL-style affine (a, b, c, d, e, f) mapping (col, row) to the cell's corner, DataArray order."""
        return (self.dx, 0.0, self.x0, 0.0, self.dy, self.y0)

    @cached_property
    def key(self) -> str:
        """A stable hex digest of the definition (CRS, origin, spacing, shape)."""
        text = "|".join(
            [self.crs_wkt, repr(self.x0), repr(self.y0), repr(self.dx), repr(self.dy),
             str(self.nx), str(self.ny)]
        )
        return hashlib.sha256(text.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """Plain mapping (for storing next to cached weights)."""
        return {"crs_wkt": self.crs_wkt, "x0": self.x0, "y0": self.y0, "dx": self.dx, "dy": self.dy,
                "nx": self.nx, "ny": self.ny}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GridDef:
        """Inverse of :meth:`to_dict`."""
        return cls(crs_wkt=str(d["crs_wkt"]), x0=float(d["x0"]), y0=float(d["y0"]), dx=float(d["dx"]),
                   dy=float(d["dy"]), nx=int(d["nx"]), ny=int(d["ny"]))

    def north_up_to_cell(self, ee_cell: np.ndarray) -> np.ndarray:
        """Map cell numbers of the north-up, west-to-east raster (exactextract's ``cell_id``) to ours."""
        r, c = np.divmod(np.asarray(ee_cell, dtype=np.int64), self.nx)
        if not self.y_descending:
            r = self.ny - 1 - r
        if self.x_descending:
            c = self.nx - 1 - c
        return r * self.nx + c
