"""Options and helpers shared by the commands."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from riskmap.config import Settings, load_settings
from riskmap.errors import ConfigError, InputError
from riskmap.timeutil import parse_instant


@functools.cache
def console() -> Console:
    """The console the CLI prints to."""
    return Console(highlight=False)


def load_config(path: Path | None) -> Settings:
    """Settings from ``--config``, else ``./riskmap.toml`` when present, else the defaults."""
    if path is None and Path("riskmap.toml").is_file():
        path = Path("riskmap.toml")
    return load_settings(path)


def parse_now(text: str | None) -> datetime | None:
    """``--now`` must carry an offset."""
    return None if text is None else parse_instant(text)


def forecast_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``--forecast-option key=value`` pairs; numbers and booleans are converted."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--forecast-option {pair!r}: write it as key=value")
        v: Any = value.strip()
        low = v.lower()
        if low in ("true", "false"):
            v = low == "true"
        else:
            try:
                v = int(v)
            except ValueError:
                try:
                    v = float(v)
                except ValueError:
                    pass
        out[key.strip()] = v
    return out


def rules_dir_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--rules DIR``: the rule folder (else the config's, ./warning_rules, the packaged defaults)."""
    return click.option("--rules", "rules", type=click.Path(exists=True, file_okay=False, path_type=Path),
                        help="Rule folder (default: config, ./warning_rules, packaged defaults).")(f)


def region_option(what: str = "Region GeoPackage or layer folder") -> Callable[..., Any]:
    """``--region PATH``, optional on the command line: :func:`region_path` falls back to ``paths.region``."""
    return click.option("--region", "region", type=click.Path(exists=True, path_type=Path), default=None,
                        help=f"{what} (default: paths.region of the settings).")


def region_path(given: str | Path | None, settings: Settings, cwd: Path | None = None) -> Path | None:
    """The region of a command: ``--region``, else the settings' ``paths.region`` (a relative path is
    taken from the working folder, as for ``paths.rules_dir``), else None.

    >>> from dataclasses import replace
    >>> s = Settings()
    >>> region_path(None, s) is None, region_path("r.gpkg", s)
    (True, PosixPath('r.gpkg'))
    >>> region_path(None, replace(s, paths=replace(s.paths, region="/nowhere/r.gpkg")))
    Traceback (most recent call last):
    ...
    riskmap.errors.ConfigError: <defaults>: 'paths.region' /nowhere/r.gpkg does not exist
    """
    if given is not None:
        return Path(given)
    if not settings.paths.region:
        return None
    p = Path(settings.paths.region).expanduser()
    if not p.is_absolute():
        p = (cwd or Path.cwd()) / p
    if not p.exists():
        raise ConfigError(f"{settings.source}: 'paths.region' {p} does not exist")
    return p


def required_region(given: str | Path | None, settings: Settings) -> Path:
    """:func:`region_path` for a command that cannot work without a region (exit 2 when none is set)."""
    p = region_path(given, settings)
    if p is None:
        raise InputError("--region: a region is needed (pass --region PATH or set paths.region in "
                         "riskmap.toml)")
    return p
