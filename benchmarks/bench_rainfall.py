"""Benchmark: riskmap's per-village rainfall against exactextract, on the reference province.

The reference province (``../shared/reference/performance.md``) is made here, deterministically:
50,000 villages (Voronoi cells of seeded random points, clipped to the box), a 600 × 500 grid of
0.01° cells in EPSG:4326, 72 hourly float32 steps of a moving storm.  The forecast is written
as a 72-band tiled GeoTIFF to a temporary folder, the villages as a GeoPackage.

Three contenders run one after the other, each in its own subprocess (peak memory is that
child's ``ru_maxrss``, which includes Python, the libraries and reading the inputs):

* ``exactextract``: ``exact_extract(tif, villages, ["mean"], strategy="raster-sequential")``
  over the 72 bands — the peer, timed including its own reading of the file;
* ``riskmap cold``: coverage weights built (exactextract ``cell_id``/``coverage``), saved to
  the cache, then the per-village ``mean`` — the forecast already decoded (not timed);
* ``riskmap warm``: cached weights loaded (including hashing the village layer for the key
  and verifying the entry) + the sparse product for ``mean`` — the forecast already decoded.
  The warm ``mean``+``max`` time is printed too.

Usage::

    .venv/bin/python benchmarks/bench_rainfall.py              # the reference size
    .venv/bin/python benchmarks/bench_rainfall.py --smoke      # tiny, for CI
    .venv/bin/python benchmarks/bench_rainfall.py --villages 5000 --nx 200 --ny 150 --steps 24
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

X0, Y1, RES = 104.0, 31.0, 0.01  # west edge, north edge, cell size (degrees)


def make_villages(n: int, nx: int, ny: int, seed: int):
    """``n`` Voronoi villages of seeded random points, clipped to the grid's box (EPSG:4326)."""
    import geopandas as gpd
    import shapely

    rng = np.random.default_rng(seed)
    box = shapely.box(X0, Y1 - ny * RES, X0 + nx * RES, Y1)
    xmin, ymin, xmax, ymax = box.bounds
    pts = np.column_stack([rng.uniform(xmin, xmax, n), rng.uniform(ymin, ymax, n)])
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=box))
    cells = shapely.intersection(cells, box)
    cells = cells[~shapely.is_empty(cells)]
    # order villages by their seed point (Voronoi output order is arbitrary)
    tree = shapely.STRtree(cells)
    idx = tree.query(shapely.points(pts), predicate="intersects")
    order = np.full(len(pts), -1)
    order[idx[0]] = idx[1]
    order = order[order >= 0]
    _, first = np.unique(order, return_index=True)
    cells = cells[order[np.sort(first)]]
    codes = [f"5201{(i // 1000) % 100:02d}{i // 100 % 1000:03d}{i % 1000:03d}" for i in range(len(cells))]
    return gpd.GeoDataFrame({"code": codes, "name": [f"村{i}" for i in range(len(cells))]},
                            geometry=cells, crs="EPSG:4326")


def make_rain(nx: int, ny: int, steps: int, seed: int) -> np.ndarray:
    """(steps, ny, nx) float32 mm per hour: a few moving storm cells plus light noise."""
    rng = np.random.default_rng(seed + 1)
    yy, xx = np.meshgrid(np.arange(ny, dtype=np.float32), np.arange(nx, dtype=np.float32), indexing="ij")
    storms = [(rng.uniform(0, nx), rng.uniform(0, ny), rng.uniform(-3, 3), rng.uniform(-3, 3),
               rng.uniform(20, 80), rng.uniform(10, 60)) for _ in range(4)]
    out = np.empty((steps, ny, nx), dtype=np.float32)
    for t in range(steps):
        f = np.zeros((ny, nx), dtype=np.float32)
        for cx, cy, vx, vy, peak, radius in storms:
            d2 = (xx - (cx + vx * t)) ** 2 + (yy - (cy + vy * t)) ** 2
            f += np.float32(peak) * np.exp(-d2 / np.float32(2 * radius**2))
        f += rng.gamma(0.3, 0.5, size=(ny, nx)).astype(np.float32)
        out[t] = f
    return out


def write_inputs(folder: Path, villages: int, nx: int, ny: int, steps: int, seed: int) -> None:
    """Write ``villages.gpkg`` and the tiled multi-band ``forecast.tif``."""
    import rasterio
    from rasterio.transform import from_origin

    vil = make_villages(villages, nx, ny, seed)
    vil.to_file(folder / "villages.gpkg", layer="villages", engine="pyogrio")
    rain = make_rain(nx, ny, steps, seed)
    profile = {"driver": "GTiff", "width": nx, "height": ny, "count": steps, "dtype": "float32",
               "crs": "EPSG:4326", "transform": from_origin(X0, Y1, RES, RES), "tiled": True,
               "blockxsize": 256, "blockysize": 256, "interleave": "band"}
    with rasterio.open(folder / "forecast.tif", "w", **profile) as dst:
        dst.write(rain)


def read_forecast(folder: Path):
    """The GeoTIFF as a DataArray in the forecast contract (dims time, y, x)."""
    import pandas as pd
    import rioxarray

    da = rioxarray.open_rasterio(folder / "forecast.tif").load()
    n = da.sizes["band"]
    times = pd.date_range("2026-07-01T01:00", periods=n, freq="h")
    hour = np.full(n, np.timedelta64(1, "h"))
    da = da.rename(band="time").assign_coords(time=times, interval=("time", hour))
    return da.drop_vars("spatial_ref", errors="ignore").rio.write_crs("EPSG:4326")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker(kind: str, folder: Path) -> dict:
    """Run one contender in this process; save its means; return timings."""
    import geopandas as gpd

    villages = gpd.read_file(folder / "villages.gpkg", engine="pyogrio")
    res: dict = {"kind": kind}
    if kind == "exactextract":
        from exactextract import exact_extract

        t0, c0 = time.perf_counter(), time.process_time()
        df = exact_extract(str(folder / "forecast.tif"), villages, ["mean"], strategy="raster-sequential",
                           output="pandas")
        res["seconds"] = time.perf_counter() - t0
        res["cpu"] = time.process_time() - c0
        cols = sorted((c for c in df.columns if c.endswith("_mean")), key=lambda c: int(c.split("_")[1]))
        mean = df[cols].to_numpy(np.float64)
    else:
        from riskmap._kernels import warm_up
        from riskmap.grid import GridDef
        from riskmap.rainfall import village_rainfall
        from riskmap.weights import coverage_weights
        from riskmap.weights_cache import load_weights, save_weights, village_layer_key

        da = read_forecast(folder)
        cache = folder / "cache"
        res["kernel_load_s"] = warm_up()   # one-time per process, like the imports (not timed)
        if kind == "cold":
            t0, c0 = time.perf_counter(), time.process_time()
            grid = GridDef.from_dataarray(da)
            w = coverage_weights(villages, grid)
            save_weights(cache, w, village_layer_key(villages))
            ds = village_rainfall(villages, da, stats=("mean",), weights=w)
            res["seconds"] = time.perf_counter() - t0
            res["cpu"] = time.process_time() - c0
            res["nnz"] = int(w.matrix.nnz)
        else:
            def warm_call(key=None):
                grid = GridDef.from_dataarray(da)
                w = load_weights(cache, villages, grid, layer_key=key)
                if w is None:
                    raise SystemExit("warm: no cached weights (run cold first)")
                return w, village_rainfall(villages, da, stats=("mean",), weights=w)

            t0, c0 = time.perf_counter(), time.process_time()
            w, ds = warm_call()                    # the first call in a fresh process
            res["seconds"] = time.perf_counter() - t0
            res["cpu"] = time.process_time() - c0
            reps = []
            for _ in range(5):                     # later forecasts in the same process
                t1 = time.perf_counter()
                warm_call()
                reps.append(time.perf_counter() - t1)
            res["seconds_repeat"] = float(np.median(reps))
            key = village_layer_key(villages)
            reps = []
            for _ in range(5):                     # region loaded once: its layer key known
                t1 = time.perf_counter()
                warm_call(key)
                reps.append(time.perf_counter() - t1)
            res["seconds_key_known"] = float(np.median(reps))
            t1 = time.perf_counter()
            w2 = load_weights(cache, villages, GridDef.from_dataarray(da))
            village_rainfall(villages, da, stats=("mean", "max"), weights=w2)
            res["seconds_mean_max"] = time.perf_counter() - t1
            t2 = time.perf_counter()
            village_rainfall(None, da, stats=("mean",), weights=w)
            res["seconds_product_only"] = time.perf_counter() - t2
            t3 = time.perf_counter()
            village_layer_key(villages)
            res["seconds_layer_key"] = time.perf_counter() - t3
        mean = ds["mean"].values.astype(np.float64)
    np.save(folder / f"mean_{kind}.npy", mean)
    res["peak_mb"] = _rss_mb()
    return res


def run_child(kind: str, folder: Path) -> dict:
    """Run a contender in a fresh Python process and parse its JSON line."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, __file__, "--worker", kind, "--dir", str(folder)],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--villages", type=int, default=50_000)
    p.add_argument("--nx", type=int, default=600)
    p.add_argument("--ny", type=int, default=500)
    p.add_argument("--steps", type=int, default=72)
    p.add_argument("--seed", type=int, default=20260701)
    p.add_argument("--smoke", action="store_true", help="tiny size (300 villages, 60×50, 6 steps)")
    p.add_argument("--keep", type=Path, help="use/keep this folder instead of a temporary one")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        print(json.dumps(worker(a.worker, a.dir)))
        return 0
    if a.smoke:
        a.villages, a.nx, a.ny, a.steps = 300, 60, 50, 6

    with tempfile.TemporaryDirectory(prefix="bench_rainfall_") as tmp:
        folder = a.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        write_inputs(folder, a.villages, a.nx, a.ny, a.steps, a.seed)
        print(f"reference province: {a.villages} villages, {a.nx}×{a.ny} grid of 0.01° (EPSG:4326), "
              f"{a.steps} hourly float32 steps; inputs written in {time.perf_counter() - t0:.1f} s")
        ee = run_child("exactextract", folder)
        cold = run_child("cold", folder)
        warm = run_child("warm", folder)
        ref = np.load(folder / "mean_exactextract.npy")
        diffs = {k: float(np.nanmax(np.abs(np.load(folder / f"mean_{k}.npy") - ref)))
                 for k in ("cold", "warm")}
        nan_mismatch = int((np.isnan(np.load(folder / "mean_warm.npy")) != np.isnan(ref)).sum())

    rows = [("exactextract raster-sequential (mean)", ee), ("riskmap cold (weights built + cached)", cold),
            ("riskmap warm (cached weights + product)", warm)]
    print(f"{'contender':42s} {'seconds':>10s} {'speed-up':>10s} {'CPU s':>9s} {'CPU ratio':>10s} "
          f"{'peak MB':>9s} {'max |diff| mm':>14s}")
    for name, r in rows:
        k = r["kind"]
        diff = "reference" if k == "exactextract" else f"{diffs[k]:.2e}"
        speed, cpu_speed = ee["seconds"] / r["seconds"], ee["cpu"] / r["cpu"]
        print(f"{name:42s} {r['seconds']:10.4f} {speed:9.1f}× {r['cpu']:9.4f} {cpu_speed:9.1f}× "
              f"{r['peak_mb']:9.0f} {diff:>14s}")
    e = ee["seconds"]
    rep, kk, mm = warm["seconds_repeat"], warm["seconds_key_known"], warm["seconds_mean_max"]
    print(f"warm, later calls in the same process (median of 5): {rep:.4f} s ({e / rep:.0f}×); "
          f"with the layer key known (region loaded once): {kk:.4f} s ({e / kk:.0f}×)")
    print(f"warm mean+max: {mm:.4f} s ({e / mm:.0f}×); "
          f"product only (weights in memory): {warm['seconds_product_only']:.4f} s; "
          f"weights nnz {cold['nnz']}; NaN mismatches {nan_mismatch}")
    print(f"hashing the village layer for the cache key: {warm['seconds_layer_key']:.4f} s; "
          f"one-time numba kernel load per process (not timed, like imports): "
          f"cold {cold['kernel_load_s']:.3f} s, warm {warm['kernel_load_s']:.3f} s")
    print(f"machine load average when done: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs "
          "(other processes slow the short warm timing most)")
    print(f"ratios: warm {ee['seconds'] / warm['seconds']:.0f}× faster (target ≥ 500×), "
          f"cold {ee['seconds'] / cold['seconds']:.2f}× (target ≥ 1); "
          f"max |diff| {max(diffs.values()):.2e} mm (target ≤ 1e-3); "
          f"peak {max(r['peak_mb'] for _, r in rows):.0f} MB (target ≤ 2048)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
