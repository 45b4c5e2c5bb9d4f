"""``riskmap map`` and ``riskmap report``: the duty room's map; the static report with a township table."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click
import pandas as pd

from riskmap.cli.app import cli
from riskmap.cli.common import console, load_config, parse_now, region_option, required_region


def _levels(path: Path) -> pd.DataFrame:
    from riskmap.levels_csv import read_levels_csv

    return read_levels_csv(path)


def _run_time(now: str | None, levels_path: Path) -> datetime:
    t = parse_now(now)
    if t is not None:
        return t
    return datetime.fromtimestamp(levels_path.stat().st_mtime, UTC)


@cli.command("map")
@region_option()
@click.option("--levels", "levels", required=True, type=click.Path(exists=True, path_type=Path),
              help="A levels.csv written by a run.")
@click.option("--forecast", "forecast", type=click.Path(exists=True, path_type=Path),
              help="Forecast for the rainfall overlay (optional).")
@click.option("--window", "window", type=float, default=24.0, show_default=True,
              help="Hours of the rainfall overlay's maximum accumulation.")
@click.option("--tiles", "tiles", default=None, help="Basemap tile URL (e.g. Tianditu with the office key).")
@click.option("--now", "now", default=None, help="Run time shown in the title (with offset); default the "
              "levels file's time.")
@click.option("--config", "config", type=click.Path(path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="HTML file to write.")
def map_(region: Path | None, levels: Path, forecast: Path | None, window: float, tiles: str | None,
         now: str | None, config: Path | None, out: Path) -> None:
    """Write the offline warning map (one self-contained HTML file)."""
    from riskmap.forecast import open_forecast
    from riskmap.maps import warning_map, write_map
    from riskmap.region import load_region
    from riskmap.timeutil import format_local

    s = load_config(config)
    run_time = _run_time(now, levels)
    rain = open_forecast(forecast) if forecast else None
    title = f"{s.office.issuer} 预警图 {format_local(run_time, s.office.timezone)}"
    reg = load_region(required_region(region, s))
    m = warning_map(reg, _levels(levels), rain=rain, title=title, run_time=run_time,
                    tz=s.office.timezone, tiles=tiles, rain_window_h=window)
    console().print(f"map → {write_map(m, out)}")


@cli.command("report")
@region_option()
@click.option("--levels", "levels", required=True, type=click.Path(exists=True, path_type=Path),
              help="A levels.csv written by a run.")
@click.option("--db", "db", default="", help="Store URL; with --run, the township table counts its messages.")
@click.option("--run", "run_id", default=None,
              help="Run id whose messages are counted (default: the latest).")
@click.option("--now", "now", default=None,
              help="Run time shown (with offset); default the levels file's time.")
@click.option("--config", "config", type=click.Path(path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="Folder for report.png/.pdf.")
def report(region: Path | None, levels: Path, db: str, run_id: str | None, now: str | None,
           config: Path | None, out: Path) -> None:
    """Static report (PNG + PDF) with legend, scale bar, north arrow and a table per township."""
    from riskmap.region import load_region
    from riskmap.report import write_report_files
    from riskmap.timeutil import format_local

    s = load_config(config)
    reg = required_region(region, s)
    run_time = _run_time(now, levels)
    messages = None
    url = db or s.store.url
    if url:
        from riskmap.store import Store

        store = Store.open(url)
        try:
            rid = run_id or next((r.id for r in store.runs(limit=50) if r.status == "done"), None)
            rows = store.outbox(run_id=rid) if rid else []
        finally:
            store.close()
        messages = pd.DataFrame({"village_code": [r.village_code for r in rows],
                                 "status": [r.status for r in rows]})
    title = f"{s.office.issuer} 预警报告 {format_local(run_time, s.office.timezone)}"
    with console().status("drawing the report 制图…"):
        files = write_report_files(out, load_region(reg), _levels(levels), title=title,
                                   issuer=s.office.issuer, run_time=run_time, tz=s.office.timezone,
                                   messages=messages)
    for name, path in files.items():
        console().print(f"{name:9s} {path}")
