"""Terrain and rivers of the demo county, in a local kilometre frame.

The demo county is generated in a local planar frame (x east, y north, in km,
origin at the south-west corner of the terrain grid) and converted to
longitude/latitude (EPSG:4490) at the very end by :func:`km_to_lonlat`, a fixed
affine map.  Everything here is pure NumPy/SciPy driven by one
:class:`numpy.random.Generator`.

The surface is a valley falling eastwards, a mountain range in the north, a
lower range in the south-west and smooth random relief.  Depressions are
filled exactly (priority flood), water follows the steepest descent (D8) and,
across flats, the order in which a noise-driven flood reached each cell (see
:func:`_route`: no parallel channels along grid rows on the flat valley floor).
Cells draining more than :data:`CHANNEL_KM2` become channels, traced upstream
from their outlets into a main river (grade 1), tributaries (grade 2) and
sub-tributaries (grade 3).

Examples
--------
>>> import numpy as np
>>> t = make_terrain(np.random.default_rng(1))
>>> t.dem.shape == (t.ny, t.nx), bool(t.acc.max() > 1000)
(True, True)
>>> lon, lat = km_to_lonlat(np.array([0.0]), np.array([0.0]))
>>> float(lon[0]), float(lat[0])
(113.17, 25.25)
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

CELL_KM = 0.25
"""Terrain grid spacing (km)."""
WIDTH_KM = 66.0
HEIGHT_KM = 56.0
LON_SW = 113.17
LAT_SW = 25.25
KM_PER_DEG_LON = 100.5
"""Kilometres per degree of longitude at 25.5° N (approximate, fixed)."""
KM_PER_DEG_LAT = 110.8
CHANNEL_KM2 = 5.0
"""Contributing area (km²) from which a cell is a channel."""
MIN_RIVER_KM = 2.0

_OFFSETS = np.array([(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)])
_DIST = np.hypot(_OFFSETS[:, 0], _OFFSETS[:, 1])


def km_to_lonlat(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map local km coordinates to lon/lat (degrees, CGCS2000), rounded to 1e-7°."""
    lon = np.round(LON_SW + np.asarray(x, dtype=float) / KM_PER_DEG_LON, 7)
    lat = np.round(LAT_SW + np.asarray(y, dtype=float) / KM_PER_DEG_LAT, 7)
    return lon, lat


def lonlat_to_km(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`km_to_lonlat` (without rounding)."""
    return (np.asarray(lon) - LON_SW) * KM_PER_DEG_LON, (np.asarray(lat) - LAT_SW) * KM_PER_DEG_LAT


@dataclass(frozen=True, eq=False)
class River:
    """A traced river: grid cells from source to mouth, its grade and parent index."""

    cells: np.ndarray
    grade: int
    parent: int


@dataclass(frozen=True, eq=False)
class Terrain:
    """The terrain grid and its drainage (row 0 is the southern row)."""

    nx: int
    ny: int
    xc: np.ndarray
    """Cell-centre x (km), shape (nx,)."""
    yc: np.ndarray
    dem: np.ndarray
    """Elevation (m), shape (ny, nx)."""
    slope_deg: np.ndarray
    receiver: np.ndarray
    """Flat index of the downstream neighbour of each cell, -1 at outlets."""
    acc: np.ndarray
    """Contributing area in cells (flat)."""
    rivers: tuple[River, ...]

    def cell_xy(self, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Centre coordinates (km) of flat cell indices."""
        r, c = np.divmod(np.asarray(cells), self.nx)
        return self.xc[c], self.yc[r]

    def cell_at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Flat index of the cell containing each point (clipped to the grid)."""
        c = np.clip((np.asarray(x) / CELL_KM).astype(int), 0, self.nx - 1)
        r = np.clip((np.asarray(y) / CELL_KM).astype(int), 0, self.ny - 1)
        return r * self.nx + c

    def sample(self, grid: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Value of a (ny, nx) grid at points (nearest cell)."""
        return grid.ravel()[self.cell_at(x, y)]

    def downstream(self, cell: int, length_km: float) -> np.ndarray:
        """Cells along the flow path from ``cell`` for about ``length_km``."""
        path = [int(cell)]
        travelled = 0.0
        while travelled < length_km:
            nxt = int(self.receiver[path[-1]])
            if nxt < 0:
                break
            (x0, x1), (y0, y1) = self.cell_xy(np.array([path[-1], nxt]))
            travelled += float(np.hypot(x1 - x0, y1 - y0))
            path.append(nxt)
        return np.array(path)


def _smooth(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    f = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="reflect")
    return (f - f.mean()) / f.std()


def _surface(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    shape = x.shape
    ph = rng.uniform(0, 2 * np.pi, 3)
    valley_y = 25.0 + 5.0 * np.sin(2 * np.pi * x / 55.0 + ph[0]) + 2.0 * np.sin(2 * np.pi * x / 17.0 + ph[1])
    d = np.abs(y - valley_y)
    z = 160.0 + 1.4 * (WIDTH_KM - x) + 14.0 * d + 0.25 * d**2
    ridge_y = 46.0 + 3.0 * np.sin(2 * np.pi * x / 40.0 + ph[2])
    along = np.clip(1.0 - ((x - 28.0) / 34.0) ** 2, 0.0, 1.0)
    z += 850.0 * along * np.exp(-0.5 * ((y - ridge_y) / 4.5) ** 2)
    z += 420.0 * np.exp(-0.5 * (((x - 12.0) / 7.0) ** 2 + ((y - 9.0) / 5.0) ** 2))
    mountains = np.clip((z - 250.0) / 500.0, 0.0, 1.0)
    z += 70.0 * _smooth(rng, shape, 12.0) + 25.0 * _smooth(rng, shape, 3.0) + 5.0 * _smooth(rng, shape, 1.0)
    z += mountains * (160.0 * _smooth(rng, shape, 2.5) + 50.0 * _smooth(rng, shape, 1.2))
    return np.asarray(np.maximum(z, 40.0))


def _route(dem: np.ndarray, tiebreak: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Priority-flood fill and D8 receivers without flat artefacts; returns (filled, receiver, order).

    Depressions are filled exactly to their spill level (Barnes et al. 2014, no epsilon).
    A cell with a strictly lower neighbour on the filled surface drains to the steepest one (D8);
    a cell on a flat (every filled lake) drains to the neighbour that flooded it.  Inside a flat the
    flood advances in the order of ``tiebreak`` (:func:`make_terrain` passes the unfilled ground, so
    water crossing a lake follows the lowest line of its bed): flow paths across a flat meander and
    converge into one channel instead of running down grid rows side by side, as they do on an
    epsilon-filled flat.  ``order`` lists the cells downstream first (every receiver precedes its donors).

    Examples
    --------
    >>> dem = np.full((5, 5), 9.0)  # row 0 is the southern row
    >>> dem[1:4, 1:4] = 5.0
    >>> dem[2, 2], dem[0, 1] = 2.0, 1.0  # a pit, and an outlet in the southern rim
    >>> filled, rec, order = _route(dem, dem)
    >>> float(filled[2, 2])  # the pit is filled to its spill level
    5.0
    >>> int(_accumulate(rec, order)[1])  # all 25 cells drain through the outlet
    25

    """
    ny, nx = dem.shape
    flat_dem, flat_tb = dem.ravel().astype(float), tiebreak.ravel().astype(float)
    filled = flat_dem.copy()
    parent = np.full(ny * nx, -1, dtype=np.int64)
    closed = np.zeros(ny * nx, dtype=bool)
    border = np.zeros((ny, nx), dtype=bool)
    border[[0, -1], :] = border[:, [0, -1]] = True
    seeds = np.flatnonzero(border.ravel())
    closed[seeds] = True
    heap = [(flat_dem[i], flat_tb[i], int(i)) for i in seeds.tolist()]
    heapq.heapify(heap)
    order: list[int] = []
    neighbours = [(int(dr), int(dc)) for dr, dc in _OFFSETS]
    while heap:
        e, _, i = heapq.heappop(heap)
        order.append(i)
        r, c = divmod(i, nx)
        for dr, dc in neighbours:
            rr, cc = r + dr, c + dc
            if 0 <= rr < ny and 0 <= cc < nx:
                j = rr * nx + cc
                if not closed[j]:
                    closed[j] = True
                    parent[j] = i
                    if filled[j] < e:
                        filled[j] = e
                    heapq.heappush(heap, (filled[j], flat_tb[j], j))
    grid = filled.reshape(ny, nx)
    pad = np.pad(grid, 1, mode="constant", constant_values=np.inf)
    drops = np.empty((8, ny, nx))
    for k, (dr, dc) in enumerate(_OFFSETS):
        drops[k] = (grid - pad[1 + dr : 1 + dr + ny, 1 + dc : 1 + dc + nx]) / _DIST[k]
    best = np.argmax(drops, axis=0)
    rr = np.arange(ny)[:, None] + _OFFSETS[best, 0]
    cc = np.arange(nx)[None, :] + _OFFSETS[best, 1]
    rec = np.where(np.max(drops, axis=0) > 0, rr * nx + cc, -1).ravel()
    rec = np.where(rec >= 0, rec, parent)
    return grid, rec, np.array(order, dtype=np.int64)


def _accumulate(rec: np.ndarray, order: np.ndarray) -> np.ndarray:
    acc = np.ones(rec.size, dtype=np.int64)
    for i in order[::-1].tolist():
        r = rec[i]
        if r >= 0:
            acc[r] += acc[i]
    return acc


def _trace(rec: np.ndarray, acc: np.ndarray, nx: int) -> tuple[River, ...]:
    threshold = CHANNEL_KM2 / CELL_KM**2
    channel = acc >= threshold
    donors: dict[int, list[int]] = {}
    for i in np.flatnonzero(channel & (rec >= 0)).tolist():
        donors.setdefault(int(rec[i]), []).append(i)
    outlets = np.flatnonzero(channel & (rec < 0))
    outlets = outlets[np.argsort(-acc[outlets], kind="stable")]
    rivers: list[River] = []
    queue: list[tuple[int, int, int, int]] = [
        (int(o), -1, 1 if k == 0 else 2, -1) for k, o in enumerate(outlets)
    ]
    while queue:
        start, mouth, grade, parent = queue.pop(0)
        path = [start]
        joins: list[int] = []
        while True:
            ups = sorted(donors.get(path[-1], []), key=lambda i: (-acc[i], i))
            if not ups:
                break
            joins += [u for u in ups[1:]]
            path.append(ups[0])
        cells = np.array(path[::-1] + ([mouth] if mouth >= 0 else []))
        steps = np.hypot(*np.diff(np.divmod(cells, nx), axis=1)) if cells.size > 1 else np.zeros(1)
        if steps.sum() * CELL_KM < MIN_RIVER_KM:
            continue
        rivers.append(River(cells, grade, parent))
        idx = len(rivers) - 1
        if grade < 3:
            queue += [(u, int(rec[u]), grade + 1, idx) for u in joins]
    return tuple(rivers)


def make_terrain(rng: np.random.Generator) -> Terrain:
    """Generate the terrain, its drainage and the river network."""
    nx, ny = int(round(WIDTH_KM / CELL_KM)), int(round(HEIGHT_KM / CELL_KM))
    xc = (np.arange(nx) + 0.5) * CELL_KM
    yc = (np.arange(ny) + 0.5) * CELL_KM
    x, y = np.meshgrid(xc, yc)
    dem = _surface(rng, x, y)
    _, rec, order = _route(dem, dem)
    acc = _accumulate(rec, order)
    gy, gx = np.gradient(dem, CELL_KM * 1000.0)
    slope = np.degrees(np.arctan(np.hypot(gx, gy)))
    return Terrain(nx, ny, xc, yc, dem, slope, rec, acc, _trace(rec, acc, nx))
