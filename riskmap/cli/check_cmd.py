"""``riskmap check``: validate a region and report every problem at once."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from riskmap.cli.app import cli
from riskmap.cli.common import load_config, required_region


@cli.command("check")
@click.option("--region", "region", default=None, type=click.Path(),
              help="GeoPackage or layer folder (default: paths.region of the settings).")
@click.option("--config", "config", type=click.Path(path_type=Path),
              help="riskmap.toml settings file (default ./riskmap.toml when present).")
def check(region: str | None, config: Path | None) -> None:
    """Check a region against the layer schema; exit 2 listing every problem."""
    from riskmap.check import check_region

    report = check_region(region if region is not None else required_region(None, load_config(config)))
    for line in report.format():
        click.echo(line)
    if not report.ok:
        sys.exit(2)
