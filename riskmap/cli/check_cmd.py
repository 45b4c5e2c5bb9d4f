"""``riskmap check``: validate a region and report every problem at once."""

from __future__ import annotations

import sys

import click

from riskmap.cli.app import cli


@cli.command("check")
@click.option("--region", "region_path", required=True, type=click.Path(), help="GeoPackage or layer folder.")
def check(region_path: str) -> None:
    """Check a region against the layer schema; exit 2 listing every problem."""
    from riskmap.check import check_region

    report = check_region(region_path)
    for line in report.format():
        click.echo(line)
    if not report.ok:
        sys.exit(2)
