"""Benchmark: per-village rainfall in memory vs in blocks on Dask, and what national scale needs.

A large synthetic region is made here, deterministically, in a temporary folder, with the makers
of ``bench_rainfall.py``: 200,000 villages (Voronoi cells of seeded points, in random order: each
village block spans the whole grid), a 2000 × 1500 grid of 0.01° cells (≈ 1 km, EPSG:4326),
48 hourly float32 steps of moving storms, written as CF NetCDF (one uncompressed
``(1, ny, nx)`` HDF5 chunk per step, as forecasts come); the coverage weights are built once
and cached (:mod:`riskmap.weights_cache`).

Contenders, each in its own subprocess (peak memory is that child's ``ru_maxrss`` right after
its first call: Python, the libraries, the weights, the forecast, the result), all asking
``mean`` and ``max``; wall time is the median of three calls in that process (the first call,
with its one-time costs, is printed too):

* ``eager``: ``open_forecast(file)`` (decoded whole into memory, checked, laid out
  time-fastest), the cached weights, ``village_rainfall`` — the call ``riskmap run`` makes;
* ``eager (xarray load)``: the file read whole as the blocked run reads it
  (``xr.open_dataset(...).load()``, without ``open_forecast``'s checks), then the same call —
  the in-memory engine against the blocked one on equal reading;
* ``dask k=…``: ``xr.open_dataset(file, chunks={"time": k})``, the cached weights,
  ``village_rainfall`` (lazy) and ``.compute()`` on dask's threaded scheduler (two threads):
  the file is read, laid out and aggregated one time chunk at a time; three chunk sizes;
* ``dask k=…, village blocks``: the largest chunk with ``village_chunk`` = a quarter of the villages.

Wall times include reading the file, which was just written and sits in the page cache (a
national file read from disk adds its read time).  The one-time numba kernel load per process
is not timed (like an import).  Each run's ``mean`` and ``max`` are compared with the eager
ones (max |diff|; no NaN cells here, so 0 is expected: the same kernel on the same rows).

National scale
--------------
700,000 villages on a 1 km grid of about 5000 × 4000 cells, 72 hourly steps: the forecast is
20 M cells × 72 × 4 B = 5.8 GB of float32 — the eager path holds it plus its decode.  The
blocked run holds, per running task, one time chunk of the whole grid and its time-fastest copy
(``2 × cells × k × 4 B``: 160 MB per step of the chunk nationally), besides the weights and the
result (700,000 × 72 × 4 B × 2 stats = 0.4 GB, held twice while dask concatenates the blocks;
none when written blockwise with ``to_zarr``).  The report ends with an extrapolation from what
this run *measured*: the least-squares line of peak memory over the three chunk sizes gives the
bytes per cell × step in flight (its intercept the rest); the rest is split into the process
baseline (measured after imports), the weights (their bytes, scaled by villages: national
villages average 9.6 M km² / 700,000 ≈ 14 km², these 15 cells; held twice, the cache's map and
the village blocks' copies), twice the results (scaled) and what remains (other buffers, kept
as is).  Wall time is split into the kernel (timed alone
in the eager run, per weight × step) and the rest of the blocked run (read, layout,
scheduling, per cell × step), each scaled to national weights × steps and cells × steps.

Measured here (2 cores, 24 GB; two full runs, the machine shared): the blocked runs' results
equal the eager ones (max |diff| 0); peaks 955–973 MB at k=3, 1.1 GB at k=6, 1.4–1.5 GB at
k=12 against 2.5 GB eager (1.7 GB reading with xarray); 16–23 B per cell × step in flight;
wall 0.8–1.9 s at k=12 against 2.1–2.7 s eager (0.7–1.1 s reading with xarray: the blocked
run pays the per-chunk layout copies and the scheduling, and saves the memory).  Nationally
that extrapolates to a blocked peak of about 1.8–1.9 GB + 0.31–0.46 GB × k — 3.6–4.6 GB at
k=6 — and 7–17 s of computing on two cores once the file is in the page cache, where the
eager path would need about 23 GB: a national forecast runs on this machine only in blocks.

Usage::

    .venv/bin/python benchmarks/bench_blocks.py            # 200,000 villages, 2000 × 1500, 48 steps
    .venv/bin/python benchmarks/bench_blocks.py --smoke    # a few seconds, for CI
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
from bench_rainfall import RES, X0, Y1, make_rain, make_villages  # the reference province's makers

CRS = "EPSG:4326"
NATIONAL = {"villages": 700_000, "cells": 5000 * 4000, "steps": 72}


def write_inputs(folder: Path, villages: int, nx: int, ny: int, steps: int, seed: int) -> dict:
    """The forecast NetCDF and the cached weights; returns what the workers need to find them."""
    import pandas as pd
    import rioxarray  # noqa: F401
    import xarray as xr

    from riskmap.grid import GridDef
    from riskmap.weights import coverage_weights
    from riskmap.weights_cache import save_weights, village_layer_key

    t0 = time.perf_counter()
    vil = make_villages(villages, nx, ny, seed)
    t_vil = time.perf_counter() - t0
    x = X0 + RES * (np.arange(nx) + 0.5)
    y = Y1 - RES * (np.arange(ny) + 0.5)
    times = pd.date_range("2026-07-01T01:00", periods=steps, freq="h")
    da = xr.DataArray(make_rain(nx, ny, steps, seed), dims=("time", "y", "x"),
                      coords={"time": times, "y": y, "x": x}, name="precipitation",
                      attrs={"units": "mm", "standard_name": "precipitation_amount"})
    ds = da.to_dataset().rio.write_crs(CRS)           # grid_mapping on the variable, as CF writes it
    enc = {**ds["precipitation"].encoding, "chunksizes": (1, ny, nx)}
    ds.to_netcdf(folder / "forecast.nc", encoding={"precipitation": enc})
    grid = GridDef.from_dataarray(ds["precipitation"])
    del da, ds
    t0 = time.perf_counter()
    w = coverage_weights(vil, grid)
    key = village_layer_key(vil)
    save_weights(folder / "cache", w, key)
    m = w.matrix
    arrays = (m.data, m.indices, m.indptr, w.codes, w.full, w.order, w.rowsum, w.data32)
    nbytes = sum(a.nbytes for a in arrays)
    return {"layer_key": key, "villages": int(w.n_villages), "nnz": int(m.nnz), "weights_bytes": int(nbytes),
            "villages_s": t_vil, "weights_s": time.perf_counter() - t0}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _once(kind: str, folder: Path, key: str, k: int, village_chunk: int | None) -> tuple[object, dict]:
    """One call of a contender: its result Dataset and the parts timed."""
    import xarray as xr

    from riskmap.forecast import open_forecast
    from riskmap.grid import GridDef
    from riskmap.rainfall import village_rainfall
    from riskmap.weights_cache import load_weights

    nc, parts = folder / "forecast.nc", {}
    t0 = time.perf_counter()
    if kind.startswith("eager"):
        if kind == "eager":
            grid = open_forecast(nc, interval="1h", reference_time="2026-07-01T00:00Z")
        else:            # the file read as the blocked run reads it, without open_forecast's checks
            grid = xr.open_dataset(nc, decode_coords="all")["precipitation"].load()
        parts["read_s"] = time.perf_counter() - t0
        w = load_weights(folder / "cache", None, GridDef.from_dataarray(grid), layer_key=key)
        return village_rainfall(None, grid, weights=w), parts
    grid = xr.open_dataset(nc, chunks={"time": k}, decode_coords="all")["precipitation"]
    w = load_weights(folder / "cache", None, GridDef.from_dataarray(grid), layer_key=key)
    lazy = village_rainfall(None, grid, weights=w, village_chunk=village_chunk)
    parts.update(graph_s=time.perf_counter() - t0, tasks=len(lazy.__dask_graph__()),
                 chunks=[len(c) for c in lazy["mean"].chunks])
    return lazy.compute(scheduler="threads"), parts


def worker(kind: str, folder: Path, key: str, k: int, village_chunk: int | None, reps: int = 3) -> dict:
    """One contender in this process: its figures; its first result saved for the comparison.

    The first call in the fresh process gives the peak memory (``ru_maxrss`` right after it) and
    the first-call time; the wall time is the median of ``reps`` calls.
    """
    import gc

    from riskmap._kernels import warm_up
    from riskmap.grid import GridDef
    from riskmap.rainfall import aggregate
    from riskmap.weights_cache import load_weights

    warm_up()                    # the one-time kernel load (like an import), not timed
    import dask  # noqa: F401  (imported before the baseline, as the other libraries are)
    import dask.array  # noqa: F401
    import xarray as xr
    res: dict = {"kind": kind, "base_mb": _rss_mb()}
    walls = []
    for rep in range(reps):
        t0 = time.perf_counter()
        ds, parts = _once(kind, folder, key, k, village_chunk)
        walls.append(time.perf_counter() - t0)
        if rep == 0:
            res.update(parts, peak_mb=_rss_mb(), first_s=walls[0])
            for s in ("mean", "max"):
                np.save(folder / f"{s}_{kind}.npy", ds[s].values)
        del ds
        gc.collect()
    res["seconds"] = float(np.median(walls))
    if kind == "eager":          # the kernel alone, for the extrapolation
        grid = xr.open_dataset(folder / "forecast.nc", decode_coords="all")["precipitation"].load()
        w = load_weights(folder / "cache", None, GridDef.from_dataarray(grid), layer_key=key)
        vals = grid.values.reshape(grid.sizes["time"], -1)
        t0 = time.perf_counter()
        aggregate(w, vals)
        res["kernel_s"] = time.perf_counter() - t0
    return res


def run_child(folder: Path, key: str, kind: str, k: int = 0, village_chunk: int | None = None,
              extra: tuple[str, ...] = ()) -> dict:
    """Run a contender in a fresh Python process and parse its JSON line.

    The parent stays small (the inputs are made in a child too): Linux keeps a parent's peak
    RSS as the starting ``ru_maxrss`` of a child it forks.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, __file__, "--worker", kind, "--dir", str(folder), "--key", key,
           "--time-chunk", str(k), *extra]
    if village_chunk:
        cmd += ["--village-chunk", str(village_chunk)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _max_diff(folder: Path, kind: str) -> float:
    return max(float(np.max(np.abs(np.load(folder / f"{s}_{kind}.npy") - np.load(folder / f"{s}_eager.npy"))))
               for s in ("mean", "max"))


def extrapolate(info: dict, eager: dict, runs: list[tuple[int, dict]], cells: int, steps: int) -> list[str]:
    """National figures from this run's measurements (see the module doc).

    ``runs``: ``(k, figures)`` of the blocked runs with the default village blocks, by chunk size.
    """
    mb, gb = 1024.0 ** 2, 1e9
    nat = NATIONAL
    scale_v = nat["villages"] / info["villages"]
    small, big = runs[0][1], runs[-1][1]
    # memory: what the chunk adds (least-squares line of peak over k) and what it does not
    ks = np.array([k for k, _ in runs], float)
    peaks = np.array([r["peak_mb"] for _, r in runs]) * mb
    slope, icept = np.polyfit(ks, peaks, 1)
    resid = float(np.abs(peaks - (icept + slope * ks)).max())
    per_cell_step = max(0.0, slope / cells)
    results = info["villages"] * steps * 4 * 2
    fixed = float(icept)
    # the weights twice: the cache's map and the village blocks' copies (weights.take); national
    # scale has several blocks by default too
    held = 2 * info["weights_bytes"] if small["chunks"][0] > 1 else info["weights_bytes"]
    rest = fixed - small["base_mb"] * mb - held - 2 * results
    nat_results = nat["villages"] * nat["steps"] * 4 * 2
    nat_fixed = small["base_mb"] * mb + 2 * info["weights_bytes"] * scale_v + 2 * nat_results + rest
    eager_var = eager["peak_mb"] * mb - eager["base_mb"] * mb - info["weights_bytes"] - results
    eager_cell_step = max(0.0, eager_var / (cells * steps))
    nat_eager = (eager["base_mb"] * mb + info["weights_bytes"] * scale_v + nat_results
                 + eager_cell_step * nat["cells"] * nat["steps"])
    # time: the kernel per weight × step (timed alone in the eager run), the rest per cell × step
    kernel_w_step = eager["kernel_s"] / (info["nnz"] * steps)
    cell_step_s = max(0.0, big["seconds"] - kernel_w_step * info["nnz"] * steps) / (cells * steps)
    nat_s = cell_step_s * nat["cells"] * nat["steps"] + kernel_w_step * info["nnz"] * scale_v * nat["steps"]
    eager_cell_s = max(0.0, eager["seconds"] - eager["kernel_s"]) / (cells * steps)
    nat_eager_s = (eager_cell_s * nat["cells"] * nat["steps"]
                   + kernel_w_step * info["nnz"] * scale_v * nat["steps"])
    nat_block = nat["cells"] * 4 / gb
    peaks_text = ", ".join(f"{r['peak_mb']:.0f} MB at k={k}" for k, r in runs)
    return [
        f"measured memory: {per_cell_step:.1f} B per cell × step of the time chunk in flight (peaks "
        f"{peaks_text}; the line's largest miss {resid / mb:.0f} MB; one float32 copy of a step is 4 B "
        f"per cell); the rest {fixed / mb:.0f} MB = process baseline "
        f"{small['base_mb']:.0f} MB + weights {held / mb:.0f} MB ({info['weights_bytes'] / mb:.0f} MB "
        f"{'twice: the map and the blocks' if held > info['weights_bytes'] else 'once'}; "
        f"{info['nnz'] / info['villages']:.1f} cells per village) + 2 × results {2 * results / mb:.0f} MB "
        f"(the blocks and their concatenation) + {rest / mb:.0f} MB of other buffers (kept as is "
        f"nationally); "
        f"eager: {eager_cell_step:.1f} B per cell × step of the whole forecast",
        f"measured time: kernel {kernel_w_step * 1e9:.2f} ns per weight × step; the rest of the blocked run "
        f"(read, layout, scheduling) {cell_step_s * 1e9:.2f} ns per cell × step, of the eager run (decode) "
        f"{eager_cell_s * 1e9:.2f} ns",
        f"national extrapolation ({nat['villages']:,} villages, {nat['cells'] / 1e6:.0f} M cells, "
        f"{nat['steps']} steps; forecast {nat['cells'] * nat['steps'] * 4 / gb:.1f} GB, one step "
        f"{nat_block:.2f} GB): blocked "
        f"peak ≈ {nat_fixed / gb:.1f} GB + {per_cell_step * nat['cells'] / gb:.2f} GB × k (k=1: "
        f"{(nat_fixed + per_cell_step * nat['cells']) / gb:.1f} GB, k=6: "
        f"{(nat_fixed + 6 * per_cell_step * nat['cells']) / gb:.1f} GB, k=12: "
        f"{(nat_fixed + 12 * per_cell_step * nat['cells']) / gb:.1f} GB), ≈ {nat_s:.0f} s on 2 cores; "
        f"eager ≈ {nat_eager / gb:.1f} GB, ≈ {nat_eager_s:.0f} s",
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--villages", type=int, default=200_000)
    p.add_argument("--nx", type=int, default=2000)
    p.add_argument("--ny", type=int, default=1500)
    p.add_argument("--steps", type=int, default=48)
    p.add_argument("--time-chunk", type=int, default=12,
                   help="the larger time chunk (the smaller is a quarter of it)")
    p.add_argument("--village-chunk", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=20260701)
    p.add_argument("--smoke", action="store_true", help="tiny size (2,000 villages, 200×150, 12 steps)")
    p.add_argument("--keep", type=Path, help="use/keep this folder instead of a temporary one")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--key", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker == "prepare":
        print(json.dumps(write_inputs(a.dir, a.villages, a.nx, a.ny, a.steps, a.seed)))
        return 0
    if a.worker:
        print(json.dumps(worker(a.worker, a.dir, a.key, a.time_chunk, a.village_chunk or None)))
        return 0
    if a.smoke:
        a.villages, a.nx, a.ny, a.steps, a.time_chunk = 2000, 200, 150, 12, 8
    k_big, k_mid, k_small = a.time_chunk, max(1, a.time_chunk // 2), max(1, a.time_chunk // 4)
    cells = a.nx * a.ny
    with tempfile.TemporaryDirectory(prefix="bench_blocks_") as tmp:
        folder = a.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        info = run_child(folder, "", "prepare", extra=(
            "--villages", str(a.villages), "--nx", str(a.nx), "--ny", str(a.ny), "--steps", str(a.steps),
            "--seed", str(a.seed)))
        print(f"region: {info['villages']:,} villages, {a.nx}×{a.ny} grid of 0.01° ({CRS}), {a.steps} "
              f"hourly float32 steps ({cells * a.steps * 4 / 1e6:.0f} MB); villages "
              f"{info['villages_s']:.1f} s, weights built and cached {info['weights_s']:.1f} s "
              f"(nnz {info['nnz']:,}); inputs written in {time.perf_counter() - t0:.1f} s", flush=True)
        key = info["layer_key"]
        eager = run_child(folder, key, "eager")
        loaded = run_child(folder, key, "eager (xarray load)")
        small = run_child(folder, key, f"dask k={k_small}", k_small)
        mid = run_child(folder, key, f"dask k={k_mid}", k_mid)
        big = run_child(folder, key, f"dask k={k_big}", k_big)
        vb = max(1, -(-info["villages"] // 4))
        blocks = run_child(folder, key, f"dask k={k_big}, village blocks", k_big, vb)
        rows = [eager, loaded, small, mid, big, blocks]
        diffs = {r["kind"]: _max_diff(folder, r["kind"]) for r in rows[1:]}
    print(f"{'contender':30s} {'wall s':>7s} {'× eager':>8s} {'first s':>8s} {'peak MB':>8s} {'× eager':>8s} "
          f"{'tasks':>6s} {'blocks':>7s} {'max |diff| mm':>14s}")
    for r in rows:
        k = r["kind"]
        blk = f"{r['chunks'][0]}×{r['chunks'][1]}" if "chunks" in r else ""
        diff = "reference" if k == "eager" else f"{diffs[k]:.1e}"
        print(f"{k:30s} {r['seconds']:7.2f} {r['seconds'] / eager['seconds']:7.2f}× {r['first_s']:8.2f} "
              f"{r['peak_mb']:8.0f} {r['peak_mb'] / eager['peak_mb']:7.2f}× {r.get('tasks', ''):>6} "
              f"{blk:>7s} {diff:>14s}")
    print(f"wall = median of 3 calls in the contender's process, first = the first of them; peak = ru_maxrss "
          f"after the first; eager parts: open_forecast {eager['read_s']:.2f} s, xarray load "
          f"{loaded['read_s']:.2f} s, kernel alone {eager['kernel_s']:.2f} s; dask graph built in "
          f"{big['graph_s'] * 1e3:.0f} ms; process baseline after imports {eager['base_mb']:.0f} MB")
    for line in extrapolate(info, eager, [(k_small, small), (k_mid, mid), (k_big, big)], cells, a.steps):
        print(("(smoke size: noise, not a measurement) " if a.smoke else "") + line)
    print(f"ratios: dask k={k_big} wall {big['seconds'] / eager['seconds']:.2f}× eager, peak "
          f"{big['peak_mb'] / eager['peak_mb']:.2f}× eager; k={k_small} peak "
          f"{small['peak_mb'] / eager['peak_mb']:.2f}× eager; max |diff| {max(diffs.values()):.1e} mm; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
