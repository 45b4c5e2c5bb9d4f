"""``riskmap silences`` and ``riskmap unsilence``: silences (set by ``riskmap silence``) listed and ended.

- ``riskmap silences [--all] [--json]`` — the silences in force now (``--now``), or every one with its
  state (active, scheduled, expired, cleared); ids are shown with 12 characters.
- ``riskmap unsilence ID --by NAME --reason TEXT`` — end a silence early; ``ID`` is its id or its first
  characters (4 at the least).  Who, when and why are stored on the silence and shown by
  ``riskmap history CODE``; clearing it again records nothing.  Works while ``riskmap serve`` runs: like
  ``riskmap silence``, it writes one row (one conditional update) that the service only reads, at the
  start of each decision — a clearing takes effect from the next cycle, as when the service is stopped.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click
from rich.markup import escape as esc

from riskmap.cli.app import cli
from riskmap.cli.common import console
from riskmap.cli.store_cmd import clock, db_options, local, now_option, open_store

ALL_HAZARDS = "全部/all"
"""How a silence of every hazard shows in the table."""


@cli.command("silences")
@click.option("--all", "show_all", is_flag=True,
              help="Every silence, also expired and cleared ones, with its state.")
@click.option("--json", "as_json", is_flag=True,
              help="JSON lines instead of a table (times with offset; hazards [] = every hazard).")
@now_option
@db_options
def silences_cmd(show_all: bool, as_json: bool, now: str | None, db: str, config: Path | None) -> None:
    """List the silences in force (times in the office's time zone)."""
    t = clock(now)
    store, settings = open_store(db, config, must_exist=True)
    try:
        records = store.silence_records()
    finally:
        store.close()
    rows = [(r, r.state(t)) for r in records if show_all or r.state(t) == "active"]
    if as_json:
        tz = settings.tz

        def iso(x: datetime | None) -> str | None:
            return None if x is None else x.astimezone(tz).isoformat()

        for r, state in rows:
            s = r.silence
            click.echo(json.dumps({
                "id": r.id, "state": state, "target": s.target, "villages": list(s.village_codes),
                "hazards": list(s.hazards), "until": iso(s.until), "reason": s.reason, "operator": s.operator,
                "created": iso(s.created_at), "cleared_at": iso(r.cleared_at), "cleared_by": r.cleared_by,
                "cleared_reason": r.cleared_reason}, ensure_ascii=False))
        return
    from rich.table import Table

    which = "all" if show_all else f"in force {local(t, settings)}"
    table = Table(title=f"silences 静默 ({which}: {len(rows)})")
    cols = ["id", *(["state"] if show_all else []), "target", "villages", "hazards", "until", "reason", "by",
            "created"]
    for col in cols:  # the id is what `riskmap unsilence` needs: never cut it
        wrap = col in ("state", "target", "reason")
        table.add_column(col, no_wrap=not wrap, overflow="fold" if wrap else "ellipsis",
                         min_width=12 if col == "id" else None)
    for r, state in rows:
        s = r.silence
        if r.cleared_at is not None:  # who ended it, when and why
            state = (f"cleared {local(r.cleared_at, settings)} by {esc(r.cleared_by)}: "
                     f"{esc(r.cleared_reason)}")
        table.add_row(r.id[:12], *([state] if show_all else []), esc(s.target), str(len(s.village_codes)),
                      ", ".join(s.hazards) or ALL_HAZARDS, local(s.until, settings), esc(s.reason),
                      esc(s.operator), local(s.created_at, settings))
    console().print(table)
    if not rows and not show_all and records:
        console().print(f"({len(records)} expired or cleared: riskmap silences --all)")


@cli.command("unsilence")
@click.argument("silence_id", metavar="ID")
@click.option("--by", "by", required=True, help="The operator's name (logged).")
@click.option("--reason", "reason", required=True, help="Why (logged, shown in the audit trail).")
@now_option
@db_options
def unsilence_cmd(silence_id: str, by: str, reason: str, now: str | None, db: str,
                  config: Path | None) -> None:
    """End a silence early (ID: its id or first characters, see riskmap silences); logged."""
    from riskmap.operations import unsilence

    t = clock(now)
    store, settings = open_store(db, config, must_exist=True)
    try:
        done = unsilence(store, silence_id, by, reason, t)
    finally:
        store.close()
    r, s = done.record, done.record.silence
    what = (f"silence {r.id[:12]} ({esc(s.target)}, {len(s.village_codes)} village(s), "
            f"{', '.join(s.hazards) or 'all hazards'})")
    if done.outcome == "already cleared":
        console().print(f"{what} was already cleared by {esc(r.cleared_by)} at "
                        f"{local(r.cleared_at, settings)} ({esc(r.cleared_reason)}): nothing new")
    elif done.outcome == "expired":
        console().print(f"{what} ended by itself at {local(s.until, settings)}: nothing to clear")
    else:
        console().print(f"{what} cleared by {esc(by)} at {local(t, settings)}: automatic warnings for its "
                        "villages are no longer held back (from the next run)")
