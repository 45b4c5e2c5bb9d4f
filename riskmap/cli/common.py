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
from riskmap.errors import InputError
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
