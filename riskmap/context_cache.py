"""On-disk cache of the static context (IO edge), keyed by a hash of the region's content and the parameters.

The context depends only on the region and the distances (:class:`~riskmap.context.ContextParams`), not
on the forecast, so a service computes it once per region version.  Files: ``<cache_dir>/context/<key>.csv``
with a ``.json`` sidecar of column types (UTF-8).  A damaged cache entry is recomputed with a
:class:`~riskmap.errors.DataWarning`.

Examples
--------
>>> import tempfile, geopandas as gpd, shapely
>>> from riskmap.region import Region
>>> v = gpd.GeoDataFrame({"code": ["431129100201"], "name": ["东村"], "population": [5], "households": [2]},
...                      geometry=[shapely.box(0, 0, 10, 10)], crs="EPSG:32650")
>>> e = gpd.GeoDataFrame({"id": []}, geometry=[], crs="EPSG:32650")
>>> r = Region(v, e, e, e, e, e, e, e, e, e, pd.DataFrame(), pd.DataFrame(), "EPSG:32650")
>>> with tempfile.TemporaryDirectory() as d:
...     first = cached_context(r, ContextParams(), d)
...     again = cached_context(r, ContextParams(), d)
...     again.equals(first), len(list((Path(d) / "context").glob("*.csv")))
(True, 1)
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import shapely

from riskmap.context import CONTEXT_VERSION, ContextParams, compute_context
from riskmap.errors import DataWarning, RiskmapIOError
from riskmap.schema import LAYERS


def region_hash(region: Any) -> str:
    """SHA-256 of every layer's geometry (WKB), attributes and the CRS."""
    h = hashlib.sha256()
    h.update(str(getattr(region.crs, "to_wkt", lambda: region.crs)()).encode())
    for name in LAYERS:
        frame = region.layer(name)
        h.update(f"|{name}|{len(frame)}|{','.join(map(str, frame.columns))}|".encode())
        if "geometry" in frame.columns and len(frame):
            for wkb in shapely.to_wkb(frame.geometry.to_numpy(), hex=False):
                h.update(wkb or b"")
        attrs = frame.drop(columns=["geometry"], errors="ignore")
        if len(attrs.columns) and len(attrs):
            h.update(pd.util.hash_pandas_object(attrs.astype(str), index=False).to_numpy().tobytes())
    return h.hexdigest()


def context_key(region: Any, params: ContextParams) -> str:
    """The cache key: region content, parameters and the context version."""
    p = json.dumps(params.as_dict(), sort_keys=True)
    return hashlib.sha256(f"{region_hash(region)}|{p}|v{CONTEXT_VERSION}".encode()).hexdigest()[:32]


def _read(csv: Path, meta: Path) -> pd.DataFrame:
    types = json.loads(meta.read_text(encoding="utf-8"))
    dtypes = {c: (str if t == "object" else t) for c, t in types.items()}
    frame = pd.read_csv(csv, dtype=dtypes, keep_default_na=False, na_values=[], encoding="utf-8")
    frame = frame.set_index("village_code")
    if list(frame.columns) != [c for c in types if c != "village_code"]:
        raise ValueError("columns differ from the sidecar")
    return frame


def cached_context(region: Any, params: ContextParams | None = None,
                   cache_dir: str | Path | None = None) -> pd.DataFrame:
    """The static context, read from ``cache_dir`` when present, else computed and written there."""
    params = params or ContextParams()
    if cache_dir is None:
        return compute_context(region, params)
    folder = Path(cache_dir).expanduser() / "context"
    key = context_key(region, params)
    csv, meta = folder / f"{key}.csv", folder / f"{key}.json"
    if csv.exists() and meta.exists():
        try:
            return _read(csv, meta)
        except (ValueError, KeyError, OSError, json.JSONDecodeError) as exc:
            warnings.warn(f"{csv}: damaged context cache ({exc}); recomputing", DataWarning, stacklevel=2)
    ctx = compute_context(region, params)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        out = ctx.reset_index()
        types = {c: ("object" if out[c].dtype == object else str(out[c].dtype)) for c in out.columns}
        me = f"{os.getpid()}.{threading.get_ident()}"
        tmp_csv, tmp_meta = csv.with_suffix(f".csv.{me}"), meta.with_suffix(f".json.{me}")
        out.to_csv(tmp_csv, index=False, encoding="utf-8", lineterminator="\n")
        tmp_meta.write_text(json.dumps(types), encoding="utf-8")
        os.replace(tmp_meta, meta)
        os.replace(tmp_csv, csv)
    except OSError as exc:
        raise RiskmapIOError(f"{folder}: cannot write the context cache: {exc.strerror or exc}") from None
    return ctx


