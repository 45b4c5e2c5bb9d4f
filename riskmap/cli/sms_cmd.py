"""``riskmap approve``, ``outbox``, ``receipts``, ``confirm``: the SMS side of the store.

- ``riskmap approve RUN --by NAME`` — 领导审签: release the messages a run holds for approval; the
  approver and the wait are logged (in the approvals table).
- ``riskmap outbox [--pending|--failed|--held] [--run RUN]`` — the queue; phone numbers masked.
- ``riskmap receipts [--run RUN] [--region PATH] [--archive DIR]`` — delivery and acknowledgement rates
  per township (``--archive``: with the messages housekeeping archived).
- ``riskmap confirm CONTACT --by NAME`` — a phone call-back confirmation (叫应), counted as an
  acknowledgement of the contact's latest active warning.

``RUN`` is a run id or its first characters (the 12 shown by ``riskmap run`` and ``riskmap issue``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click
from rich.markup import escape as esc

from riskmap.cli.app import cli
from riskmap.cli.common import console, load_config, region_option, region_path
from riskmap.cli.store_cmd import clock, db_options, level_text, local, now_option, open_store


@cli.command("approve")
@click.argument("run")
@click.option("--by", "by", required=True, help="The approver's name (logged).")
@click.option("--reason", "reason", default="", help="A note stored with the approval.")
@now_option
@db_options
def approve_cmd(run: str, by: str, reason: str, now: str | None, db: str, config: Path | None) -> None:
    """Approve a run (领导审签): its held messages are queued for sending.

    Older messages to the same phones that have not gone out yet and that the released ones replace
    (e.g. an orange still queued when the red is approved) are superseded in the same transaction.
    """
    from riskmap.operations import approve

    t = clock(now)
    store, settings = open_store(db, config, must_exist=True)
    try:
        a = approve(store, run, by, t, reason)
    finally:
        store.close()
    wait = "" if a.wait is None else f" after {_duration(a.wait.total_seconds())}"
    if a.already:
        console().print(f"run {a.run_id[:12]} was already approved by {esc(by)}: nothing new")
    elif a.wait is None:
        console().print(f"run {a.run_id[:12]} holds no messages: nothing to approve")
    else:
        sup = f", {a.superseded} older message(s) not yet sent superseded" if a.superseded else ""
        console().print(f"run {a.run_id[:12]} approved by {esc(by)} at {local(t, settings)}{wait}: "
                        f"{a.released} message(s) released{sup}")


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    h, rem = divmod(abs(s), 3600)
    m, sec = divmod(rem, 60)
    return ("-" if s < 0 else "") + (f"{h} h {m:02d} min" if h else f"{m} min {sec:02d} s")


@cli.command("outbox")
@click.option("--pending", "status", flag_value="pending", help="Queued, leased or waiting to retry.")
@click.option("--failed", "status", flag_value="failed", help="Failed (permanently or awaiting retry).")
@click.option("--held", "status", flag_value="held", help="Held for approval (riskmap approve).")
@click.option("--superseded", "status", flag_value="superseded",
              help="Not sent: a later message to the same phone replaced it.")
@click.option("--run", "run", default=None, metavar="RUN", help="Only this run (id or its first characters).")
@click.option("--limit", "limit", type=click.IntRange(min=1), default=200, show_default=True,
              help="Show at most this many (the newest).")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
@db_options
def outbox_cmd(status: str | None, run: str | None, limit: int, as_json: bool, db: str,
               config: Path | None) -> None:
    """The SMS queue (phone numbers masked)."""
    from riskmap.operations import find_run, list_outbox

    store, settings = open_store(db, config, must_exist=True)
    try:
        run_id = find_run(store, run).id if run else None
        total, view = list_outbox(store, status or "", run_id=run_id, limit=limit)
    finally:
        store.close()
    if as_json:
        for v in view:
            nxt = v["next_attempt_at"]
            click.echo(json.dumps({**v, "next_attempt_at": nxt.isoformat() if nxt else None},
                                  ensure_ascii=False))
        return
    from rich.table import Table

    shown = f", newest {limit}" if total > limit else ""
    table = Table(title=f"outbox 短信队列 ({status or 'all'}: {total}{shown})")
    for col in ("id", "run", "status", "try", "contact", "phone", "village", "level", "next try", "text"):
        table.add_column(col, no_wrap=col != "text")
    for v in view:
        state = v["status"] + (" 演练" if v["drill"] else "") + (" (permanent)" if v["permanent"] else "")
        error = esc(v["error"]) if v["error"] and v["status"] in ("failed", "superseded") else ""
        colour = "red" if v["status"] == "failed" else "dim"
        text = esc(v["text"]) + (f"\n[{colour}]{error}[/]" if error else "")
        table.add_row(str(v["id"]), v["run"][:12], state, str(v["attempts"]), esc(v["contact"]), v["phone"],
                      v["village"], level_text(v["level"]), local(v["next_attempt_at"], settings), text)
    console().print(table)


def _rate(x: float) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.0f}%"


@cli.command("receipts")
@click.option("--run", "run", default=None, metavar="RUN", help="Only this run (id or its first characters).")
@region_option("Region, for township names")
@click.option("--drill", is_flag=True, help="Drill messages instead of real ones.")
@click.option("--archive", "archive", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Also count the messages housekeeping archived there (serve's OUT/archive).")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
@db_options
def receipts_cmd(run: str | None, region: Path | None, drill: bool, archive: Path | None, as_json: bool,
                 db: str, config: Path | None) -> None:
    """Delivery and acknowledgement rates per township (acknowledged: reply 1/收到 or call-back).

    Messages archived by ``riskmap serve``'s housekeeping (finished more than ``archive_days`` ago)
    left the store with their receipts; ``--archive OUT/archive`` counts them too (each archived batch
    is checked against the sha256 the store recorded).
    """
    from riskmap.operations import delivery_rates, find_run
    from riskmap.store.archive import archived_messages

    reg = region_path(region, load_config(config))
    names = _township_names(reg) if reg is not None else {}
    store, _ = open_store(db, config, must_exist=True)
    try:
        run_id = find_run(store, run).id if run else None
        old = archived_messages(store, archive) if archive is not None else []
        table = delivery_rates(store, run_id=run_id, townships=names, drill=drill, archived=old)
    finally:
        store.close()
    if as_json:
        for rec in table.to_dict("records"):
            click.echo(json.dumps({k: (None if isinstance(v, float) and math.isnan(v) else v)
                                   for k, v in rec.items()}, ensure_ascii=False))
        return
    from rich.table import Table

    out = Table(title="receipts 送达与确认 per township" + (" (drill)" if drill else ""))
    for col in ("township", "name", "messages", "held", "sent", "delivered", "failed", "acknowledged",
                "delivered %", "acknowledged %"):
        out.add_column(col, justify="right" if col not in ("township", "name") else "left")
    for r in table.itertuples(index=False):
        code = "(duty summaries)" if r.township == "" else r.township
        counts = (r.messages, r.held, r.sent, r.delivered, r.failed, r.acknowledged)
        out.add_row(code, esc(r.name), *map(str, counts), _rate(r.delivery_rate), _rate(r.ack_rate))
    console().print(out)


def _township_names(region: Path) -> dict[str, str]:
    from riskmap.region import load_region

    v = load_region(region).villages
    if "township" not in v.columns:
        return {}
    return {str(c)[:9]: str(n) for c, n in zip(v["code"], v["township"], strict=True) if isinstance(n, str)}


@cli.command("confirm")
@click.argument("contact")
@click.option("--by", "by", required=True, help="Who made the call-back (logged).")
@now_option
@db_options
def confirm_cmd(contact: str, by: str, now: str | None, db: str, config: Path | None) -> None:
    """Record a call-back confirmation (叫应) of CONTACT (phone number or name) as an acknowledgement."""
    from riskmap.operations import acknowledge

    t = clock(now)
    store, settings = open_store(db, config, must_exist=True)
    try:
        ack = acknowledge(store, contact, by, t, via="callback")
    finally:
        store.close()
    what: Any = f"{ack.village_code} {ack.hazard} {level_text(ack.level)}" if ack.village_code else "summary"
    note = "" if ack.new else " (already recorded)"
    console().print(f"acknowledged{note}: {esc(ack.contact_name)} {ack.phone_masked} — message "
                    f"{ack.outbox_id} ({what}, run {ack.run_id[:12]}) confirmed by {esc(by)} at "
                    f"{local(t, settings)}")
