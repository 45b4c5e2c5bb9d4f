"""``riskmap warnings``, ``history``, ``issue``, ``lift``, ``silence``: the office's hands on the store.

Every command takes ``--db URL`` (default: the config's ``store.url``, else
``./riskmap.sqlite`` or ``./riskmap-demo/riskmap.sqlite`` when present).  Manual acts need
``--by NAME``; they are runs of their own (source ``manual``) and every change carries the
operator, so ``riskmap history CODE`` shows who did what and why.  Targets: a village code,
a 6/9-digit county/township code, or ``LAYER:ID`` (``detention_areas:D1``, ``reservoirs:R3``…)
with ``--region``.  With ``--region`` the acts also queue SMS and write CAP rows (as a run does).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click

from riskmap.cli.app import cli
from riskmap.cli.common import console, load_config, parse_now
from riskmap.config import Settings
from riskmap.errors import InputError
from riskmap.levels import Level

HAZARD_CHOICE = click.Choice(["rainstorm", "torrent", "geohazard", "reservoir", "waterlogging", "mine"])


def store_url(db: str, settings: Settings) -> str:
    """The store a command uses: ``--db``, the config, or a local SQLite file that exists."""
    if db:
        return db
    if settings.store.url:
        return settings.store.url
    for candidate in (Path("riskmap.sqlite"), Path("riskmap-demo") / "riskmap.sqlite"):
        if candidate.is_file():
            return f"sqlite:///{candidate.resolve()}"
    raise InputError("no store found (./riskmap.sqlite, ./riskmap-demo/riskmap.sqlite): pass --db URL")


def _open(db: str, config: Path | None) -> tuple[Any, Settings]:
    from riskmap.store import Store

    settings = load_config(config)
    return Store.open(store_url(db, settings)), settings


def _local(t: datetime | None, tz: ZoneInfo) -> str:
    return "" if t is None else t.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def _level(lv: int) -> str:
    lvl = Level(lv)
    return f"[{lvl.color}]{lvl.color_zh}{lvl.grade}[/]" if lv else "无"


def db_options(f: Any) -> Any:
    f = click.option("--config", "config", type=click.Path(path_type=Path),
                     help="riskmap.toml settings file.")(f)
    return click.option("--db", "db", default="", help="Store URL (sqlite:///…, postgresql://…).")(f)


@cli.command("warnings")
@click.option("--active", is_flag=True, help="Only warnings in force.")
@click.option("--village", "village", default=None, help="Only this village code.")
@db_options
def warnings_cmd(active: bool, village: str | None, db: str, config: Path | None) -> None:
    """List the stored warnings (times in the office's time zone)."""
    from rich.table import Table

    store, settings = _open(db, config)
    try:
        rows = store.warnings(active=active, village=village)
    finally:
        store.close()
    tz = settings.tz
    table = Table(title=f"warnings 预警 ({'active' if active else 'all'}: {len(rows)})")
    for col in ("village", "hazard", "level", "state", "since", "valid until", "by", "reason"):
        table.add_column(col, no_wrap=col != "reason")
    for w in rows:
        by = w.operator if w.manual else ""
        table.add_row(w.village_code, w.hazard, _level(w.level), w.state, _local(w.since, tz),
                      _local(w.valid_until, tz), by, w.reason)
    console().print(table)


@cli.command("history")
@click.argument("code")
@db_options
def history_cmd(code: str, db: str, config: Path | None) -> None:
    """The full audit trail of one village: every change, suppression and silence, with reasons."""
    from rich.table import Table

    store, settings = _open(db, config)
    try:
        events = store.history(code)
    finally:
        store.close()
    if not events:
        console().print(f"village {code}: no events in the store")
        return
    tz = settings.tz
    table = Table(title=f"history 履历 {code}")
    for col in ("time", "event", "hazard", "level", "by", "run", "reason", "rules"):
        table.add_column(col, no_wrap=col in ("time", "event", "by"))
    for e in events:
        kind = e.kind + (" (silenced)" if e.suppressed else "") + (" (drill)" if e.drill else "")
        lv = "" if e.kind == "silence" else f"{_level(e.old_level)} → {_level(e.new_level)}"
        table.add_row(_local(e.at, tz), kind, e.hazard, lv, e.operator, e.run_id[:12], e.reason,
                      e.rules_hash[:12])
    console().print(table)


def _targets(targets: tuple[str, ...], region_path: Path | None) -> tuple[tuple[str, ...], Any]:
    region = None
    if region_path is not None:
        from riskmap.region import load_region

        region = load_region(region_path)
    codes: list[str] = []
    for target in targets:
        if region is not None:
            from riskmap.targets import resolve_target

            codes.extend(resolve_target(region, target))
        else:
            code = target.removeprefix("village:")
            if not (len(code) == 12 and code.isdigit()):
                raise InputError(f"target {target!r}: without --region only 12-digit village codes "
                                 "are accepted")
            codes.append(code)
    return tuple(dict.fromkeys(codes)), region


def _renderer(region: Any, settings: Settings, rules: Path | None, drill: bool) -> Any:
    if region is None:
        return None
    from riskmap.render import Renderer
    from riskmap.routing_rules import load_routing
    from riskmap.rules import load_rules, packaged_rules_dir
    from riskmap.templates import load_templates

    rules_dir = rules if rules is not None else packaged_rules_dir()
    local = Path(str(rules_dir))
    routing = load_routing(local if (local / "routing.yaml").is_file() else None)
    templates = load_templates(local if (local / "templates.yaml").is_file() else None,
                               language=settings.office.language, timezone=settings.office.timezone)
    return Renderer(region, routing, templates, settings, ruleset=load_rules(rules_dir), drill=drill)


def _act(acts: list[Any], db: str, config: Path | None, now: datetime, region: Any, rules: Path | None,
         drill: bool) -> None:
    from riskmap.lifecycle import LifecyclePolicy
    from riskmap.store import apply_manual, ensure_not_held

    store, settings = _open(db, config)
    try:
        ensure_not_held(store)
        render = _renderer(region, settings, rules, drill)
        kwargs = {"render": render} if render is not None else {}
        out = apply_manual(store, acts, now, LifecyclePolicy.from_settings(settings.lifecycle), drill=drill,
                           **kwargs)
    finally:
        store.close()
    if out.decision is None:
        console().print(f"already recorded (run {out.run_id[:12]}): nothing new")
        return
    for c in out.decision.changes:
        console().print(f"{c.kind:9s} {c.village_code} {c.hazard} {_level(c.old_level)} → "
                        f"{_level(c.new_level)}  by {c.operator}")
    counts = dict(out.counts)
    console().print(f"{len(out.decision.changes)} change(s) in run {out.run_id[:12]}; messages queued "
                    f"{counts.get('outbox', 0)}, CAP {counts.get('cap', 0)}")


def _common_act(f: Any) -> Any:
    f = click.option("--drill", is_flag=True,
                     help="A drill: messages are marked 演练, warnings unchanged.")(f)
    f = click.option("--rules", "rules", type=click.Path(exists=True, file_okay=False, path_type=Path),
                     help="Rule folder for routing/templates (with --region).")(f)
    f = click.option("--region", "region", type=click.Path(exists=True, path_type=Path),
                     help="Region (needed for feature targets; also queues SMS and CAP).")(f)
    f = click.option("--now", "now", default=None, help="Time of the act with offset (default: now).")(f)
    f = click.option("--by", "by", required=True, help="The operator's name (logged).")(f)
    f = click.option("--reason", "reason", required=True, help="Why (logged, shown in messages).")(f)
    f = click.option("--target", "targets", required=True, multiple=True,
                     help="Village code, 6/9-digit area code, or LAYER:ID; repeat for several.")(f)
    return db_options(f)


def _now(text: str | None) -> datetime:
    return parse_now(text) or datetime.now(UTC)


@cli.command("issue")
@click.option("--hazard", "hazard", required=True, type=HAZARD_CHOICE)
@click.option("--level", "level", required=True, help="blue, yellow, orange, red (or 蓝色…, Ⅳ…Ⅰ, 1-4).")
@click.option("--until", "until", default=None, help="Valid until (with offset); default now + 24 h.")
@_common_act
def issue_cmd(hazard: str, level: str, until: str | None, targets: tuple[str, ...], reason: str, by: str,
              now: str | None, region: Path | None, rules: Path | None, drill: bool, db: str,
              config: Path | None) -> None:
    """Issue (or raise) a warning by hand, e.g. red for every village of a detention area."""
    from riskmap.lifecycle import ManualIssue

    lv = Level.from_name(int(level) if level.isdigit() else level)
    if lv == 0:
        raise InputError("--level: a manual issue needs a level above none (use `riskmap lift`)")
    t = _now(now)
    valid = parse_now(until) if until else None
    if valid is not None and valid <= t:
        raise InputError(f"--until {until}: must be after the act ({t.isoformat()})")
    codes, reg = _targets(targets, region)
    act = ManualIssue(",".join(targets), codes, hazard, int(lv), reason, by, valid_until=valid)
    _act([act], db, config, t, reg, rules, drill)


@cli.command("lift")
@click.option("--hazard", "hazard", default="", type=click.Choice(["", *HAZARD_CHOICE.choices]),
              help="Only this hazard (default: all).")
@_common_act
def lift_cmd(hazard: str, targets: tuple[str, ...], reason: str, by: str, now: str | None,
             region: Path | None, rules: Path | None, drill: bool, db: str, config: Path | None) -> None:
    """Lift (解除) warnings by hand."""
    from riskmap.lifecycle import ManualLift

    codes, reg = _targets(targets, region)
    _act([ManualLift(",".join(targets), codes, reason, by, hazard=hazard)], db, config, _now(now), reg, rules,
         drill)


@cli.command("silence")
@click.option("--hazard", "hazards", multiple=True, type=HAZARD_CHOICE,
              help="Only these hazards (default: all).")
@click.option("--until", "until", default=None, help="End of the silence (with offset).")
@click.option("--hours", "hours", type=float, default=None, help="Or: length of the silence in hours.")
@_common_act
def silence_cmd(hazards: tuple[str, ...], until: str | None, hours: float | None, targets: tuple[str, ...],
                reason: str, by: str, now: str | None, region: Path | None, rules: Path | None, drill: bool,
                db: str, config: Path | None) -> None:
    """Silence automatic issue/escalation for villages or a feature until a time (logged)."""
    from riskmap.lifecycle import Silence

    t = _now(now)
    if (until is None) == (hours is None):
        raise InputError("silence: give exactly one of --until or --hours")
    end = parse_now(until) if until else t + timedelta(hours=float(hours or 0))
    if end is None or end <= t:
        raise InputError("silence: the end must be after now")
    codes, _ = _targets(targets, region)
    s = Silence(",".join(targets), codes, end, reason, by, t, hazards)
    store, settings = _open(db, config)
    try:
        store.add_silence(s)
    finally:
        store.close()
    console().print(f"silenced {len(codes)} village(s) until {_local(end, settings.tz)} ({s.id[:12]}) "
                    f"by {by}")
