"""The ``riskmap`` command line: a thin face over the library.

Errors print one clear line and exit with the error's code (2 bad input, 3 service
unavailable, 4 refused, 1 internal); ``--debug`` shows the traceback.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

import click

from riskmap.cli.app import cli
from riskmap.errors import RiskmapError

__all__ = ["cli", "main"]


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """Data warnings print as one line naming their kind (the code location only with --debug)."""
    click.echo(f"riskmap: warning: {category.__name__}: {message}", err=True)


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the ``riskmap`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if not debug:
        warnings.showwarning = _show_warning
    try:
        return cli.main(args=args, prog_name="riskmap", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("riskmap: aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if exc.exit_code in (1, 2) else exc.exit_code)
    except RiskmapError as exc:
        if debug:
            raise
        click.echo(f"riskmap: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("riskmap: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the one place that turns a bug into exit 1
        if debug:
            raise
        click.echo(f"riskmap: internal error: {type(exc).__name__}: {exc} (run with --debug for details)",
                   err=True)
        sys.exit(1)
