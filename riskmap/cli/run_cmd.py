"""``riskmap run`` and ``riskmap demo``: one warning cycle, with a progress display and a summary."""

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
from riskmap.cycle import STAGES, CycleReport, CycleRequest, run_cycle
from riskmap.levels import Level

_STAGE_ZH = {"rules": "规则", "region": "图层", "forecast": "预报", "weights": "权重", "rainfall": "面雨量",
             "context": "风险要素", "assess": "研判", "store": "入库", "dispatch": "短信", "outputs": "成果"}


def _run_with_progress(req: CycleRequest) -> CycleReport:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("[bold]{task.description}"), BarColumn(),
               TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn())
    with Progress(*columns, console=console(), transient=True) as bar:
        task = bar.add_task("cycle", total=len(STAGES))
        seen: list[str] = []

        def progress(stage: str) -> None:
            if seen:
                bar.advance(task)
            seen.append(stage)
            bar.update(task, description=f"{stage} {_STAGE_ZH.get(stage, '')}")

        report = run_cycle(req, progress)
        bar.advance(task)
    return report


def print_summary(report: CycleReport, out_dir: Path) -> None:
    """The rich summary: villages per level, changes, messages, files, seconds."""
    from rich.table import Table

    con = console()
    title = "run already done: nothing new decided" if report.already_done else "run complete"
    con.print(f"[bold]riskmap[/bold] {title} — run {report.run_id[:12]} at now={report.now.isoformat()}")
    t = Table(title="villages per level 各级预警村数")
    for col in ("level", "color", "villages"):
        t.add_column(col)
    for lv in range(4, -1, -1):
        lvl = Level(lv)
        name = f"{lvl.color_zh} {lvl.grade}" if lv else "无 none"
        style = "white" if lv == 0 else lvl.color
        t.add_row(str(lv), f"[{style}]{name}[/]", str(report.per_level.get(lv, 0)))
    con.print(t)
    if report.hazards:
        con.print("hazards: " + ", ".join(f"{h} {n}" for h, n in sorted(report.hazards.items())))
    changes = ", ".join(f"{k} {n}" for k, n in sorted(report.changes.items())) or "none"
    con.print(f"warning changes: {changes}")
    con.print(f"messages queued: {report.messages_queued} (held for approval: {report.messages_held}); "
              f"SMS handed to the gateway: {report.sms_sent}, failed: {report.sms_failed}; "
              f"CAP messages: {report.cap_messages}")
    for name, path in report.files.items():
        con.print(f"  {name:7s} {path}")
    con.print(f"store: {report.db_url}")
    total = sum(report.seconds.values())
    con.print(f"done in {total:.1f} s (" + ", ".join(f"{k} {v:.2f}" for k, v in report.seconds.items()) + ")")


@cli.command("run")
@region_option()
@click.option("--forecast", "forecast", required=True, multiple=True,
              type=click.Path(exists=True, path_type=Path), help="Forecast file(s); repeat for several.")
@click.option("--observed", type=click.Path(exists=True, path_type=Path), help="Observed rainfall file.")
@click.option("--config", "config", type=click.Path(path_type=Path), help="riskmap.toml settings file.")
@rules_dir_option
@click.option("--db", "db", default="",
              help="Store URL (sqlite:///…, postgresql://…); default OUT/riskmap.sqlite.")
@click.option("--now", "now", default=None, help="Decision time with offset, e.g. 2024-07-15T08:00+08:00; "
              "default: the forecast's reference time.")
@click.option("--forecast-option", "fopts", multiple=True, metavar="KEY=VALUE",
              help="Option for open_forecast (repeatable), e.g. variable=tp or interval=1h.")
@click.option("--drill", is_flag=True, help="Drill run: messages marked 【演练】, CAP status Exercise.")
@click.option("--no-map", is_flag=True, help="Skip the HTML map.")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Output folder.")
def run(region: Path | None, forecast: tuple[Path, ...], observed: Path | None, config: Path | None,
        rules: Path | None, db: str, now: str | None, fopts: tuple[str, ...], drill: bool, no_map: bool,
        out: Path) -> None:
    """Run one warning cycle on your region and forecast."""
    settings = load_config(config)
    req = CycleRequest(region=required_region(region, settings), forecast=forecast, out_dir=out,
                       settings=settings, rules_dir=_rules(rules, settings), observed=observed, db_url=db,
                       now=parse_now(now), forecast_options=forecast_options(fopts), drill=drill,
                       write_map=not no_map)
    print_summary(_run_with_progress(req), out)


def _rules(rules: Path | None, settings: Any) -> Any:
    from riskmap.rules import find_rules_dir

    return find_rules_dir(rules, settings.paths.rules_dir or None, Path.cwd())


@cli.command("demo")
@click.option("--out", "out", default="riskmap-demo", show_default=True, type=click.Path(path_type=Path),
              help="Folder for the demo county, its store and the outputs.")
@click.option("--config", "config", type=click.Path(path_type=Path), help="riskmap.toml settings file.")
@rules_dir_option
@click.option("--now", "now", default=None,
              help="Decision time with offset; default the forecast's reference time.")
@click.option("--no-map", is_flag=True, help="Skip the HTML map.")
def demo(out: Path, config: Path | None, rules: Path | None, now: str | None, no_map: bool) -> None:
    """Build (or reuse) the embedded demo county and run one cycle on it."""
    from dataclasses import replace

    from riskmap.config import PathSettings
    from riskmap.demo import write_demo

    settings = load_config(config)
    if config is None:  # keep the demo self-contained: its weights cache lives beside it
        settings = replace(settings, paths=PathSettings(cache_dir=str(out / "cache"),
                                                         rules_dir=settings.paths.rules_dir))
    with console().status("building the demo county 生成演示县…"):
        paths = write_demo(out / "data")
    req = CycleRequest(region=paths.region, forecast=(paths.forecast,), out_dir=out, settings=settings,
                       rules_dir=_rules(rules, settings), observed=paths.observed, now=parse_now(now),
                       write_map=not no_map)
    print_summary(_run_with_progress(req), out)
