"""``riskmap rainfall`` and ``riskmap explain``: the analyst's views of one forecast, no store involved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from riskmap.cli.app import cli
from riskmap.cli.common import (
    console,
    forecast_options,
    load_config,
    parse_now,
    region_option,
    required_region,
    rules_dir_option,
)
from riskmap.cycle import CycleRequest
from riskmap.errors import InputError


def _request(region: Path | None, forecast: tuple[Path, ...], observed: Path | None, config: Path | None,
             rules: Path | None, now: str | None, fopts: tuple[str, ...]) -> CycleRequest:
    from riskmap.rules import find_rules_dir

    settings = load_config(config)
    rules_dir = find_rules_dir(rules, settings.paths.rules_dir or None, Path.cwd())
    return CycleRequest(region=required_region(region, settings), forecast=forecast,
                        out_dir=Path("."), settings=settings,
                        rules_dir=rules_dir, observed=observed, now=parse_now(now),
                        forecast_options=forecast_options(fopts))


def _inputs(f: Any) -> Any:
    f = click.option("--forecast-option", "fopts", multiple=True, metavar="KEY=VALUE",
                     help="Option for open_forecast (repeatable).")(f)
    f = click.option("--now", "now", default=None, help="Decision time with offset; default the forecast's "
                     "reference time.")(f)
    f = click.option("--config", "config", type=click.Path(path_type=Path), help="riskmap.toml.")(f)
    f = click.option("--observed", type=click.Path(exists=True, path_type=Path),
                     help="Observed rainfall file.")(f)
    f = click.option("--forecast", "forecast", required=True, multiple=True,
                     type=click.Path(exists=True, path_type=Path), help="Forecast file(s).")(f)
    return region_option()(f)


def _write_table(frame: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif path.suffix == ".csv":
        frame.to_csv(path, index=False, encoding="utf-8", lineterminator="\n")
    else:
        raise InputError(f"--out {path}: use a .csv or .parquet file name")


@cli.command("rainfall")
@_inputs
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="FILE.csv or FILE.parquet; the window summary goes to FILE.windows.csv/.parquet.")
def rainfall(region: Path | None, forecast: tuple[Path, ...], observed: Path | None, config: Path | None,
             now: str | None, fopts: tuple[str, ...], out: Path) -> None:
    """Per-village rainfall (long form: village, time, stat, mm) and its rolling-window summary."""
    import pandas as pd

    from riskmap.cycle import compute_rainfall
    from riskmap.rainfall import rainfall_table
    from riskmap.windows import window_maxima, window_maxima_grid, window_table

    req = _request(region, forecast, observed, config, None, now, fopts)
    with console().status("per-village rainfall 面雨量…"):
        rf = compute_rainfall(req)
        table = rainfall_table(rf.rain)
        durations = list(req.settings.rainfall.windows_h)
        win = window_maxima(rf.rain[["mean"]], durations, now=pd.Timestamp(rf.now))
        win = win.merge(window_maxima_grid(rf.grid, rf.weights, durations, now=pd.Timestamp(rf.now)))
        summary = window_table(win)
    _write_table(table, out)
    win_path = out.with_name(f"{out.stem}.windows{out.suffix}")
    _write_table(summary, win_path)
    console().print(f"{len(rf.rain['village'])} villages × {len(rf.rain['time'])} steps → {out} "
                    f"({len(table)} rows); window summary → {win_path}")


@cli.command("explain")
@click.argument("code")
@_inputs
@rules_dir_option
@click.option("--lang", "lang", type=click.Choice(["zh-CN", "en-US"]), default=None,
              help="Language of the explanation (default: the office's).")
def explain(code: str, region: Path | None, forecast: tuple[Path, ...], observed: Path | None,
            config: Path | None, now: str | None, fopts: tuple[str, ...], rules: Path | None,
            lang: str | None) -> None:
    """Explain one village's levels: which rule, which rainfall, which threshold."""
    from riskmap.cycle import evaluate_cycle
    from riskmap.rules import explain_village

    req = _request(region, forecast, observed, config, rules, now, fopts)
    with console().status("evaluating 研判…"):
        ev = evaluate_cycle(req)
    codes = ev.result.assessment.villages["village_code"].astype(str)
    if code not in set(codes):
        raise InputError(f"village {code!r} is not in the region {req.region} (codes are 12 digits)")
    language = lang or req.settings.office.language
    click.echo(explain_village(ev.result.assessment, ev.result.features, ev.context, code, language))
