"""The click group and its shared options."""

from __future__ import annotations

import click

from riskmap import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="riskmap")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """riskmap: per-village flood and geohazard warnings from forecast rainfall."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def _register() -> None:
    from riskmap.cli import (  # noqa: F401
        analysis_cmd,
        check_cmd,
        output_cmd,
        run_cmd,
        serve_cmd,  # noqa: F401  (riskmap serve, riskmap status; #7)
        silence_cmd,
        sms_cmd,
        store_cmd,
    )


_register()
