"""``riskmap serve`` (the operational service) and ``riskmap status`` (what it is doing)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from riskmap.cli.app import cli
from riskmap.cli.common import forecast_options


@cli.command("serve")
@click.option("--config", "config", required=True, type=click.Path(path_type=Path),
              help="riskmap.toml with a [service] section.")
@click.option("--inbox", type=click.Path(file_okay=False, path_type=Path),
              help="Drop folder (overrides service.inbox).")
@click.option("--db", "db", default="", help="Store URL (overrides service.db and [store] url).")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (overrides service.out).")
@click.option("--forecast-option", "fopts", multiple=True, metavar="KEY=VALUE",
              help="open_forecast option for every source (repeatable).")
@click.option("--log-json", is_flag=True, help="Log JSON lines (also service.log_json).")
def serve(config: Path, inbox: Path | None, db: str, out: Path | None, fopts: tuple[str, ...],
          log_json: bool) -> None:
    """Run the warning service: watch the inbox, run cycles, send SMS, until SIGTERM or Ctrl-C."""
    from riskmap.errors import ConfigError
    from riskmap.service.config import load_service_config, with_overrides
    from riskmap.service.logging import setup_logging
    from riskmap.service.main import run_service

    settings, sc, problems = load_service_config(config)
    if problems:
        raise ConfigError("the service cannot start:\n  " + "\n  ".join(problems))
    sc = with_overrides(sc, inbox=inbox, db=db, out=out, forecast_options=forecast_options(fopts))
    setup_logging(json_lines=log_json or sc.log_json)
    sys.exit(run_service(settings, sc))


@cli.command("status")
@click.option("--config", "config", type=click.Path(path_type=Path), help="riskmap.toml of the service.")
@click.option("--db", "db", default="", help="Store URL (default: the config's).")
@click.option("--heartbeat", "heartbeat", type=click.Path(path_type=Path),
              help="The service's heartbeat file (default: beside a SQLite store, or OUT/serve.json).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(config: Path | None, db: str, heartbeat: Path | None, as_json: bool) -> None:
    """Show the service's figures: runs, warnings, outbox, receipts, next jobs, pending requests."""
    from riskmap.errors import InputError
    from riskmap.service.config import load_service_config, with_overrides
    from riskmap.service.heartbeat import heartbeat_path
    from riskmap.service.requests import format_requests, request_figures
    from riskmap.service.runner import db_url_for
    from riskmap.service.status import format_text, gather
    from riskmap.store import Store

    if config is None and not db:
        if Path("riskmap.toml").is_file():
            config = Path("riskmap.toml")
        else:
            raise InputError("status: give --db URL or --config FILE")
    settings, sc, _problems = load_service_config(config)
    sc = with_overrides(sc, db=db)
    url = db_url_for(settings, sc)
    if "://" not in url:
        url = f"sqlite:///{Path(url).expanduser().resolve()}"
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        raise InputError(f"status: no store at {url}")
    store = Store.open(url)
    try:
        st = gather(store, heartbeat or heartbeat_path(url, sc.out))
        st["requests"] = request_figures(store)  # riskmap issue / lift handed to the service
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(st, ensure_ascii=False, indent=1, default=str))
    else:
        click.echo("\n".join([format_text(st), *format_requests(st["requests"], settings.tz)]))
