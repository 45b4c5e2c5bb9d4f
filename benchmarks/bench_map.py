"""Benchmark: the offline warning map on the 50,000-village reference province.

The province (``../shared/reference/performance.md``) is made here, deterministically: 50,000 villages
(Voronoi cells of seeded random points clipped to a 6° × 5° box at 104–110°E, 26–31°N), reprojected to
UTM 48N, in 200 townships; levels drawn at random (seeded: ~85 % none, the rest blue … red); a 600 × 500
grid of 0.01° cells with a 24-hour storm for the rainfall overlay (optional).

Measured: building the map (``warning_map``), rendering and writing the HTML (``write_map``), the file size,
the static report (``report_figure`` + ``write_report``, PNG and PDF), and in headless Chromium (Debian
``/usr/bin/chromium`` driven by Playwright, networking off) the time from
navigation until the villages are drawn (the page's ``load`` event, the village layer built, two animation
frames painted), plus console errors and outside requests (both must be zero).  Targets (issue #8):
HTML < 30 MB, render < 10 s.

Usage::

    .venv/bin/python benchmarks/bench_map.py               # the reference size
    .venv/bin/python benchmarks/bench_map.py --smoke       # 2,000 villages, for CI
    .venv/bin/python benchmarks/bench_map.py --villages 10000 --no-rain --keep /tmp/map.html
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

X0, Y1, RES = 104.0, 31.0, 0.01
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


def make_region(n: int, nx: int, ny: int, seed: int):
    """The reference province as a riskmap Region (villages only; other layers empty)."""
    import geopandas as gpd
    import pandas as pd
    import shapely
    from pyproj import CRS

    from riskmap.region import Region
    from riskmap.schema import LAYERS

    rng = np.random.default_rng(seed)
    box = shapely.box(X0, Y1 - ny * RES, X0 + nx * RES, Y1)
    xmin, ymin, xmax, ymax = box.bounds
    pts = np.column_stack([rng.uniform(xmin, xmax, n), rng.uniform(ymin, ymax, n)])
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=box))
    cells = shapely.intersection(cells, box)
    cells = cells[~shapely.is_empty(cells)]
    crs = CRS.from_epsg(32648)
    count = len(cells)
    town = rng.integers(0, 200, count)
    villages = gpd.GeoDataFrame(
        {"code": [f"{510100000000 + i:012d}" for i in range(count)],
         "name": [f"村{i}" for i in range(count)],
         "population": rng.integers(200, 3000, count), "households": rng.integers(60, 900, count),
         "township": [f"第{t}镇" for t in town]},
        geometry=cells, crs=4326).to_crs(crs)
    empty = {name: gpd.GeoDataFrame({c: [] for c in spec.required}, geometry=[], crs=crs)
             for name, spec in LAYERS.items() if spec.kind == "vector" and name != "villages"}
    tables = {name: pd.DataFrame({c: [] for c in spec.required})
              for name, spec in LAYERS.items() if spec.kind == "table"}
    return Region(villages=villages, crs=crs, **empty, **tables)


def make_levels(region, seed: int):
    import pandas as pd

    from riskmap.levels import Level

    rng = np.random.default_rng(seed + 1)
    lv = rng.choice([0, 1, 2, 3, 4], size=len(region.villages), p=[0.85, 0.06, 0.04, 0.03, 0.02])
    return pd.DataFrame({
        "village_code": region.villages["code"].values, "village_name": region.villages["name"].values,
        "level": lv, "color": [Level(v).color for v in lv], "grade": [Level(v).grade for v in lv],
        "hazards": [f"rainstorm:{v}" if v else "" for v in lv], "score": lv * 10.0,
        "reasons": [f"24小时面雨量 {v * 30} mm" if v else "" for v in lv],
        "rain_24h": lv * 30.0,
    })


def make_rain(nx: int, ny: int):
    import rioxarray  # noqa: F401
    import xarray as xr

    xs = X0 + RES * (np.arange(nx) + 0.5)
    ys = Y1 - RES * (np.arange(ny) + 0.5)
    gx, gy = np.meshgrid(xs, ys)
    storm = 180.0 * np.exp(-(((gx - 106.5) / 1.2) ** 2 + ((gy - 28.5) / 0.8) ** 2))
    da = xr.DataArray(storm.astype("float32"), dims=("y", "x"), coords={"y": ys, "x": xs})
    return da.rio.write_crs("EPSG:4326")


def render_in_chromium(path: Path, chromium: str) -> dict[str, object]:
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    outside: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run"])
        context = browser.new_context(viewport={"width": 1280, "height": 900}, offline=True)
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))

        def route(r):
            if r.request.url.startswith(("file:", "data:")):
                r.continue_()
            else:
                outside.append(r.request.url)
                r.abort()

        context.route("**/*", route)
        t0 = time.perf_counter()
        page.goto(path.as_uri(), wait_until="load", timeout=120_000)
        page.wait_for_function("() => window.riskmap && riskmap.registry.villages", timeout=120_000)
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        render_s = time.perf_counter() - t0
        drawn = page.evaluate("() => riskmap.registry.villages.getLayers().length")
        t1 = time.perf_counter()
        page.select_option("select.rm-township", "第7镇")
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        filter_s = time.perf_counter() - t1
        browser.close()
    return {"render_s": round(render_s, 2), "township_filter_s": round(filter_s, 2), "villages_drawn": drawn,
            "console_errors": errors[:5], "outside_requests": outside[:5]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--villages", type=int, default=50_000)
    ap.add_argument("--nx", type=int, default=600)
    ap.add_argument("--ny", type=int, default=500)
    ap.add_argument("--seed", type=int, default=20260701)
    ap.add_argument("--smoke", action="store_true", help="2,000 villages on a 100 x 80 grid")
    ap.add_argument("--no-rain", action="store_true")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    ap.add_argument("--keep", type=Path, help="also copy the HTML here")
    ap.add_argument("--no-report", action="store_true", help="skip timing the static PNG/PDF report")
    args = ap.parse_args()
    if args.smoke:
        args.villages, args.nx, args.ny = 2000, 100, 80

    import pandas as pd

    from riskmap.maps import warning_map, write_map

    t = time.perf_counter()
    region = make_region(args.villages, args.nx, args.ny, args.seed)
    levels = make_levels(region, args.seed)
    rain = None if args.no_rain else make_rain(args.nx, args.ny)
    make_s = time.perf_counter() - t

    t = time.perf_counter()
    m = warning_map(region, levels, rain=rain, title="参考省 Reference province", show_rain=False,
                    run_time=pd.Timestamp("2026-07-01T00:00:00Z"))
    build_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "map.html"
        t = time.perf_counter()
        write_map(m, path)
        write_s = time.perf_counter() - t
        size_mb = path.stat().st_size / 1e6
        if args.keep:
            shutil.copy(path, args.keep)
        browser = render_in_chromium(path, args.chromium)
        report: dict[str, object] = {}
        if not args.no_report:
            from riskmap.report import report_figure, write_report

            t = time.perf_counter()
            fig = report_figure(region, levels, title="参考省 Reference province", issuer="省防指",
                                run_time=pd.Timestamp("2026-07-01T00:00:00Z"))
            figure_s = time.perf_counter() - t
            t = time.perf_counter()
            png, pdf = write_report(fig, Path(tmp) / "report.png", Path(tmp) / "report.pdf")
            write_s_ = time.perf_counter() - t
            report = {"report_figure_s": round(figure_s, 2), "report_write_s": round(write_s_, 2),
                      "report_png_mb": round(png.stat().st_size / 1e6, 2),
                      "report_pdf_mb": round(pdf.stat().st_size / 1e6, 2)}
    result = {"villages": len(region.villages), "make_inputs_s": round(make_s, 2),
              "build_s": round(build_s, 2), "write_s": round(write_s, 2), "html_mb": round(size_mb, 2),
              **browser, **report,
              "targets": {"html_mb": 30, "render_s": 10}}
    print(json.dumps(result, ensure_ascii=False, indent=2))
    ok = (size_mb < 30 and browser["render_s"] < 10 and not browser["console_errors"]
          and not browser["outside_requests"] and browser["villages_drawn"] == len(region.villages))
    print("OK" if ok else "TARGET MISSED", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
