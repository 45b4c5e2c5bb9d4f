"""On-disk cache of coverage weights (the IO edge of :mod:`riskmap.weights`).

One file per (grid definition, village layer): ``<cache_dir>/weights-<key>.rmw`` where
``key = sha256(grid key, village layer key)``; the village layer key hashes the layer's CRS,
its codes in order and every geometry (:func:`village_layer_key`).  The caller passes the folder
(``Settings.paths.cache_dir``).

* The file is a JSON header and the raw, 64-byte aligned arrays (CSR, codes, the spatial row
  order, row sums, the weights in float32), memory-mapped on load (no copy, no decompression,
  no checksum pass over the arrays); a truncated file is recognised by its size.  Loading
  50,000 villages' weights takes about a millisecond once the file is in the page cache.
* Writes are atomic: the file is written to a unique temporary name in the same folder and
  renamed over the final name (``os.replace``), so a concurrent reader sees the old file,
  the new one, or none — never half a file.  Two writers racing write the same content.
* A loaded entry is verified against the request: its stored grid definition must equal
  the requested :class:`~riskmap.grid.GridDef` and its stored village layer key the
  requested one; otherwise (a hash collision, a tampered or truncated file) it is ignored
  and rebuilt — weights are never returned for another grid.  Verification compares these
  two keys (and the grid definition); it does not re-hash the big arrays.

Examples
--------
>>> import tempfile, numpy as np, xarray as xr, rioxarray, geopandas as gpd, shapely  # noqa: F401
>>> da = xr.DataArray(np.zeros((1, 2, 2), "float32"), dims=("time", "y", "x"),
...                   coords={"x": [0.5, 1.5], "y": [1.5, 0.5]}).rio.write_crs("EPSG:32650")
>>> grid = GridDef.from_dataarray(da)
>>> v = gpd.GeoDataFrame({"code": ["110101001001"]}, geometry=[shapely.box(0, 0, 1, 2)], crs="EPSG:32650")
>>> with tempfile.TemporaryDirectory() as d:
...     w1 = cached_coverage_weights(d, v, grid)          # built and saved
...     w2 = load_weights(d, v, grid)                     # read back
...     other = GridDef.from_dataarray(da.assign_coords(x=[10.5, 11.5]))
...     (w2.matrix != w1.matrix).nnz, load_weights(d, v, other)
(0, None)
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import shapely

from riskmap.errors import RiskmapIOError
from riskmap.grid import GridDef
from riskmap.weights import (
    CoverageWeights,
    codes_buffers,
    codes_digest,
    coverage_weights,
    index_from_buffers,
    village_frame,
)

__all__ = ["village_layer_key", "cache_key", "cache_path", "load_weights", "save_weights",
           "cached_coverage_weights"]

FORMAT = "riskmap-coverage-weights-4"


def village_layer_key(villages: Any) -> str:
    """Hex digest of a village layer: CRS, codes in order, and every geometry.

    The geometry part hashes every coordinate (exact float64 bits, in order) plus, per
    village, its geometry type and its counts of parts, interior rings and coordinates —
    any edit of a vertex, a ring, a part or a code changes the key.  (Hashing WKB is as
    exact but ~5× slower.)  About 10 ms for 50,000 villages (the reference province); a
    caller that keeps a region loaded computes it once and passes it as ``layer_key=``.

    >>> import geopandas as gpd, shapely
    >>> v = gpd.GeoDataFrame({"code": ["110101001001"]}, geometry=[shapely.box(0, 0, 1, 1)], crs="EPSG:32650")
    >>> moved = v.set_geometry([shapely.box(0, 0, 1, 1.000001)], crs=v.crs)
    >>> k = village_layer_key(v)
    >>> len(k), k == village_layer_key(v.copy()), k == village_layer_key(moved)
    (40, True, False)
    """
    gdf = village_frame(villages)
    geoms = gdf.geometry.to_numpy()
    h = hashlib.sha1(usedforsecurity=False)
    h.update(gdf.crs.to_wkt().encode())
    h.update(codes_digest(gdf["code"]))
    coords = shapely.get_coordinates(geoms)
    # the counts (GEOS calls holding the GIL) run while this thread hashes the coordinates
    # (hashlib releases the GIL): ~3 ms less on 50,000 villages, same bytes hashed in the same order
    counts = _helper().submit(_structure, geoms)
    h.update(np.ascontiguousarray(coords).data)
    h.update(counts.result().data)
    return h.hexdigest()


_POOL: dict[int, ThreadPoolExecutor] = {}


def _helper() -> ThreadPoolExecutor:
    """One helper thread for :func:`village_layer_key` per process (created on first use).

    Keyed by process id: a forked child does not inherit the parent's threads, so it gets its own.
    """
    pid = os.getpid()
    if pid not in _POOL:
        _POOL.clear()
        _POOL[pid] = ThreadPoolExecutor(1, thread_name_prefix="riskmap-layer-key")
    return _POOL[pid]


def _structure(geoms: np.ndarray) -> np.ndarray:
    """Per geometry: type, number of parts, of interior rings and of coordinates (int64, 4 × n)."""
    counts = np.empty((4, len(geoms)), dtype=np.int64)
    counts[0] = shapely.get_type_id(geoms)
    counts[1] = shapely.get_num_geometries(geoms)
    counts[2] = shapely.get_num_interior_rings(geoms)
    counts[3] = shapely.get_num_coordinates(geoms)
    return counts


def cache_key(grid: GridDef, layer_key: str) -> str:
    """Key of one cache entry."""
    return hashlib.sha256(f"{FORMAT}|{grid.key}|{layer_key}".encode()).hexdigest()


def cache_path(cache_dir: str | os.PathLike[str], grid: GridDef, layer_key: str) -> Path:
    """Where the entry for this grid and layer lives."""
    return Path(cache_dir).expanduser() / f"weights-{cache_key(grid, layer_key)[:40]}.rmw"


MAGIC = b"RMWEIGHT"
ALIGN = 64


def _pack(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> list[bytes | memoryview]:
    """File layout: MAGIC, uint64 header length, JSON header, then 64-byte aligned raw arrays."""
    table: dict[str, list[Any]] = {}
    offset = 0
    for name, arr in arrays.items():
        table[name] = [arr.dtype.str, list(arr.shape), offset, arr.nbytes]
        offset += -(-arr.nbytes // ALIGN) * ALIGN
    head = json.dumps({**meta, "arrays": table, "data_bytes": offset}).encode()
    start = -(-(16 + len(head)) // ALIGN) * ALIGN
    parts: list[bytes | memoryview] = [MAGIC, np.uint64(len(head)).tobytes(), head,
                                       b"\0" * (start - 16 - len(head))]
    for arr in arrays.values():
        parts.append(np.ascontiguousarray(arr).tobytes())
        parts.append(b"\0" * (-(-arr.nbytes // ALIGN) * ALIGN - arr.nbytes))
    return parts


def _read(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
    """(header, read-only arrays) of a cache file, or None when missing, truncated or not ours.

    The file is memory-mapped (pages populated from the page cache up front, no copy); the
    arrays are views of the map, which stays valid after the file is replaced (the old inode
    lives on while mapped).
    """
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < 16:
                return None
            flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
            mm = mmap.mmap(fh.fileno(), size, flags=flags, prot=mmap.PROT_READ)
    except (OSError, ValueError):
        return None
    raw = np.frombuffer(mm, dtype=np.uint8)
    try:
        if raw[:8].tobytes() != MAGIC:
            return None
        hlen = int(raw[8:16].view(np.uint64)[0])
        meta = json.loads(raw[16:16 + hlen].tobytes())
        start = -(-(16 + hlen) // ALIGN) * ALIGN
        if raw.size != start + int(meta["data_bytes"]):
            return None
        arrays = {}
        for name, (dtype, shape, off, nbytes) in meta["arrays"].items():
            chunk = raw[start + off:start + off + nbytes]
            arrays[name] = chunk.view(np.dtype(dtype)).reshape(shape)
        return meta, arrays
    except (ValueError, KeyError, TypeError, IndexError):
        return None


def _csr_view(data: np.ndarray, indices: np.ndarray, indptr: np.ndarray,
              shape: tuple[int, int]) -> sp.csr_array | None:
    """A CSR matrix over the mapped arrays, without the copy scipy makes of views into a larger buffer.

    The arrays were written by :func:`save_weights` from a canonical matrix (sorted, no
    duplicates); their sizes are checked here, their values are covered by the keys.
    """
    if indptr.shape != (shape[0] + 1,) or len(indices) != len(data) or (len(indptr) and (
            int(indptr[0]) != 0 or int(indptr[-1]) != len(data))):
        return None
    m = sp.csr_array(shape, dtype=data.dtype)          # empty, then the mapped arrays put in place
    m.indptr, m.indices, m.data = indptr, indices, data
    m.has_sorted_indices = True
    m.has_canonical_format = True
    return m


def load_weights(cache_dir: str | os.PathLike[str], villages: Any, grid: GridDef,
                 *, layer_key: str | None = None) -> CoverageWeights | None:
    """The cached weights for this village layer on this grid, or None (missing or not matching).

    ``layer_key`` (from :func:`village_layer_key`) may be passed to skip re-hashing the layer.
    """
    layer_key = layer_key or village_layer_key(villages)
    got = _read(cache_path(cache_dir, grid, layer_key))
    if got is None:
        return None
    meta, z = got
    try:
        if meta.get("format") != FORMAT or meta.get("layer_key") != layer_key:
            return None
        if GridDef.from_dict(meta["grid"]) != grid:
            return None
        n = len(z["codes"])
        matrix = _csr_view(z["data"], z["indices"], z["indptr"], (n, grid.ncells))
        if matrix is None:
            return None
        w = CoverageWeights(matrix, grid, z["codes"], z["full"])
        if len(z["order"]) != n or len(z["rowsum"]) != n:
            return None
        # the cached properties, computed at save time (and covered by the layer key)
        if len(z["codes_offsets"]) != n + 1 or len(z["data32"]) != len(z["data"]):
            return None
        w.__dict__.update(order=z["order"], rowsum=z["rowsum"], data32=z["data32"],
                          codes_digest=bytes.fromhex(meta["codes_digest"]),
                          codes_index=index_from_buffers(z["codes_offsets"], z["codes_utf8"]))
        return w
    except (KeyError, ValueError, TypeError):
        return None


def save_weights(cache_dir: str | os.PathLike[str], weights: CoverageWeights, layer_key: str) -> Path:
    """Write the weights atomically (temporary file + rename); return the path."""
    path = cache_path(cache_dir, weights.grid, layer_key)
    m = weights.matrix
    offsets, utf8 = codes_buffers(weights.codes)
    parts = _pack({"format": FORMAT, "layer_key": layer_key, "grid": weights.grid.to_dict(),
                   "codes_digest": weights.codes_digest.hex()},
                  {"codes": weights.codes.astype(str), "full": weights.full, "data": m.data,
                   "indices": m.indices, "indptr": m.indptr, "order": weights.order,
                   "rowsum": weights.rowsum, "data32": weights.data32, "codes_offsets": offsets,
                   "codes_utf8": utf8})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                for part in parts:
                    fh.write(part)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise RiskmapIOError(f"{path}: cannot write the coverage-weights cache: {exc}") from exc
    return path


def cached_coverage_weights(cache_dir: str | os.PathLike[str], villages: Any, grid: GridDef,
                            *, layer_key: str | None = None) -> CoverageWeights:
    """Load the weights from the cache, or build and save them.

    ``layer_key`` (:func:`village_layer_key`, computed once when the region is loaded) saves
    hashing the layer on every forecast.
    """
    key = layer_key or village_layer_key(villages)
    w = load_weights(cache_dir, villages, grid, layer_key=key)
    if w is None:
        w = coverage_weights(villages, grid)
        save_weights(cache_dir, w, key)
    return w
