"""``riskmap warnings``, ``history``, ``issue``, ``lift``, ``silence``: the office's hands on the store.

Every command takes ``--db URL`` (default: the config's ``store.url``, else ``./riskmap.sqlite``)
and ``--config``.  Manual acts need ``--by NAME`` and ``--reason``; each act is a run of its own
(source ``manual``) and every change carries the operator, so ``riskmap history CODE`` shows who
did what and why.  Targets: ``--village CODE`` (repeatable) and/or ``--feature LAYER:ID``
(``detention_areas:D1`` → every village in the detention area, ``reservoirs:R3`` → the villages of
the reservoir's downstream zone) with ``--region``.  With a region (``--region``, else ``paths.region``
of the settings) a manual issue or lift also queues its SMS (routing and templates of the rule folder)
and CAP messages, as a run does.
``--now`` defaults to the clock (here, at the edge, only).

While ``riskmap serve`` holds the store, ``issue`` and ``lift`` do not decide themselves: they hand the
act to the service through the store and wait for it (:mod:`riskmap.cli.handover`); ``silence`` (one
row the service only reads) is written directly.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.markup import escape as esc

from riskmap.cli.app import cli
from riskmap.cli.common import console, load_config, parse_now, region_option, region_path
from riskmap.cli.handover import handover_options
from riskmap.config import Settings
from riskmap.errors import InputError
from riskmap.levels import Level
from riskmap.lifecycle import HAZARDS

DB_HELP = ("Store URL (sqlite:///PATH or postgresql://USER@HOST/DB); "
           "default: the config's store.url, else ./riskmap.sqlite.")


def db_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--db URL`` and ``--config FILE`` (shared with the SMS commands)."""
    f = click.option("--config", "config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="riskmap.toml settings file (default ./riskmap.toml when present).")(f)
    return click.option("--db", "db", default="", metavar="URL", help=DB_HELP)(f)


def now_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--now ISO8601``: the time of the act (default: the clock)."""
    return click.option("--now", "now", default=None, metavar="ISO8601",
                        help="Time of the act with offset, e.g. 2026-07-01T08:00+08:00 (default: now).")(f)


def parse_time(option: str, text: str | None) -> datetime | None:
    """An ISO 8601 time with offset from an option; the error names the option."""
    try:
        return parse_now(text)
    except InputError as exc:
        raise InputError(f"{option}: {exc}") from None


def clock(text: str | None) -> datetime:
    """``--now`` or the clock (the CLI edge is the one place that reads it)."""
    return parse_time("--now", text) or datetime.now(UTC)


def open_store(db: str, config: Path | None, *, must_exist: bool = False) -> tuple[Any, Settings]:
    """The store and settings of a command; ``must_exist`` refuses a SQLite file that is not there
    (a read command should not create an empty store by mistake)."""
    from riskmap.operations import sqlite_path, store_url
    from riskmap.store import Store

    settings = load_config(config)
    url = store_url(db, settings.store.url)
    path = sqlite_path(url)
    if must_exist and path is not None and not path.is_file():
        demo = Path("riskmap-demo") / "riskmap.sqlite"
        hint = f"; the demo's is --db sqlite:///{demo}" if not db and demo.is_file() else ""
        raise InputError(f"--db: no store at {path} (pass --db URL, set store.url in the config, "
                         f"or run `riskmap run` first{hint})")
    return Store.open(url), settings


def local(t: datetime | None, settings: Settings) -> str:
    """A time as people read it: office time zone, minutes."""
    return "" if t is None else t.astimezone(settings.tz).strftime("%Y-%m-%d %H:%M")


def level_text(lv: int) -> str:
    """``[red]红色Ⅰ[/]`` (rich markup), or 无 for 0."""
    if not lv:
        return "无"
    lvl = Level(lv)
    return f"[{lvl.color}]{lvl.color_zh}{lvl.grade}[/]"


def _check_code(code: str) -> str:
    code = code.strip()
    if not (len(code) == 12 and code.isdigit()):
        raise InputError(f"CODE {code!r}: a village code has 12 digits")
    return code


@cli.command("warnings")
@click.option("--active", is_flag=True, help="Only warnings in force.")
@click.option("--village", "village", default=None, metavar="CODE", help="Only this village (12 digits).")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table (times with offset).")
@db_options
def warnings_cmd(active: bool, village: str | None, as_json: bool, db: str, config: Path | None) -> None:
    """List the stored warnings (times in the office's time zone)."""
    if village is not None:
        village = _check_code(village)
    store, settings = open_store(db, config, must_exist=True)
    try:
        rows = store.warnings(active=active, village=village)
    finally:
        store.close()
    if as_json:
        tz = settings.tz
        for w in rows:
            click.echo(json.dumps({
                "village": w.village_code, "hazard": w.hazard, "level": w.level,
                "color": Level(w.level).color, "state": w.state,
                "since": w.since.astimezone(tz).isoformat(),
                "valid_until": w.valid_until.astimezone(tz).isoformat() if w.valid_until else None,
                "manual": w.manual, "operator": w.operator, "rule": w.rule, "reason": w.reason,
                "cap_identifier": w.cap_identifier}, ensure_ascii=False))
        return
    from rich.table import Table

    table = Table(title=f"warnings 预警 ({'active' if active else 'all'}: {len(rows)})")
    for col in ("village", "hazard", "level", "state", "since", "valid until", "by", "reason"):
        table.add_column(col, no_wrap=col != "reason")
    for w in rows:
        table.add_row(w.village_code, w.hazard, level_text(w.level), w.state, local(w.since, settings),
                      local(w.valid_until, settings), esc(w.operator) if w.manual else "", esc(w.reason))
    console().print(table)


@cli.command("history")
@click.argument("code")
@db_options
def history_cmd(code: str, db: str, config: Path | None) -> None:
    """The full audit trail of one village: every change, suppression and silence (and its clearing),
    with who and why; acts handed to riskmap serve and not applied (yet) too."""
    from rich.table import Table

    code = _check_code(code)
    from riskmap.operations import acknowledgements
    from riskmap.store.requests import for_village

    store, settings = open_store(db, config, must_exist=True)
    try:
        events = store.history(code)
        acks = acknowledgements(store, code)
        asked = [r for r in for_village(store, code) if r.status != "done"]  # done: its events show it
    finally:
        store.close()
    if not events and not acks and not asked:
        console().print(f"village {code}: no events in the store")
        return
    table = Table(title=f"history 履历 {code}")
    for col in ("time", "event", "hazard", "level", "by", "run", "reason", "rules"):
        table.add_column(col, no_wrap=col in ("time", "event", "by", "run"))
    rows: list[tuple[Any, ...]] = []
    for e in events:
        kind = e.kind + (" (silenced)" if e.suppressed else "") + (" (drill)" if e.drill else "")
        is_silence = e.kind in ("silence", "unsilence")
        lv = "" if is_silence else f"{level_text(e.old_level)} → {level_text(e.new_level)}"
        rows.append((e.at, kind, e.hazard, lv, esc(e.operator), e.run_id[:12], esc(e.reason),
                     e.rules_hash[:12]))
    for a in acks:  # acknowledgements (reply 1 / call-back 叫应) of the village's messages
        how, _, by = str(a["how"]).partition(" by ")
        rows.append((a["at"], "acknowledged", a["hazard"], level_text(a["level"]), esc(by), a["run_id"][:12],
                     esc(f"{a['contact']} {a['phone']} ({how})"), ""))
    for q in asked:  # acts handed to riskmap serve and not applied (yet): pending, failed or expired
        lv = level_text(q.params.get("level", 0)) if q.kind == "issue" else ""
        why = q.reason + (f" — {q.error}" if q.error and q.status in ("failed", "expired") else "")
        rows.append((q.created_at, f"{q.kind} request {q.status}", q.params.get("hazard") or "all", lv,
                     esc(q.operator), f"req {q.id[:8]}", esc(why), ""))
    for r in sorted(rows, key=lambda r: r[0]):  # stable: events before acknowledgements at one time
        table.add_row(local(r[0], settings), *r[1:])
    console().print(table)


def _target_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = region_option("Region (for --feature; with it an issue or lift also queues SMS and CAP)")(f)
    f = click.option("--feature", "features", multiple=True, metavar="LAYER:ID",
                     help="A feature: detention_areas:D1 (villages in it), reservoirs:R3 (its downstream "
                     "zone's villages) …; repeatable.")(f)
    return click.option("--village", "villages", multiple=True, metavar="CODE",
                        help="Village code (12 digits); repeatable.")(f)


def _act_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = handover_options(now_option(db_options(f)))
    f = click.option("--drill", is_flag=True, help="A drill: messages marked 【演练】, CAP Exercise, "
                     "warnings unchanged.")(f)
    f = click.option("--rules", "rules", type=click.Path(exists=True, file_okay=False, path_type=Path),
                     help="Rule folder for routing/templates (default: config, ./warning_rules, packaged)."
                     )(f)
    f = click.option("--by", "by", required=True, help="The operator's name (logged).")(f)
    f = click.option("--reason", "reason", required=True, help="Why (logged, shown in the audit trail).")(f)
    return _target_options(f)


def _region(given: Path | None, config: Path | None) -> Any:
    """The loaded region of ``--region``, else of ``paths.region``; None when neither is set."""
    path = region_path(given, load_config(config))
    if path is None:
        return None
    from riskmap.region import load_region

    with console().status("loading the region 读取图层…"):
        return load_region(path)


def _act(params: Any, t: datetime, region: Path | None, rules: Path | None, db: str, config: Path | None,
         wait_s: float, no_wait: bool, request_key: str) -> None:
    """Apply a manual act, or hand it to the ``riskmap serve`` holding the store (:mod:`.handover`)."""
    from riskmap.cli.handover import hand_over
    from riskmap.operations import manual_renderer, perform_act
    from riskmap.rules import find_rules_dir
    from riskmap.store import held_by
    from riskmap.store.requests import pending, summary_of

    params.check()
    con = console()
    store, settings = open_store(db, config)
    try:
        holder = held_by(store)
        if holder is not None:  # the service decides on this store: it applies the act for us
            if region is not None or rules is not None:
                con.print("note: riskmap serve applies the act with its own region and rules "
                          "(--region and --rules are for acts the CLI applies itself)")
            rec = hand_over(store, params, holder, wait_s=0 if no_wait else wait_s, key=request_key,
                            echo=lambda text: con.print(esc(text)), tz=settings.tz)
            if rec is not None:
                _show(rec.result, rendered=True, by_service=True)
            return
        waiting = pending(store)
        reg = _region(region, config)
        render = None
        if reg is not None:
            rules_dir = find_rules_dir(rules, settings.paths.rules_dir or None, Path.cwd())
            render = manual_renderer(reg, settings, rules_dir, params.drill)
        # the act is recorded at its own time (--now, else the clock), so waits and audit times agree
        applied, _codes = perform_act(store, params, t, settings, reg, render)
        summary = summary_of(store, applied.run_id, already=applied.decision is None)
    finally:
        store.close()
    _show(summary, rendered=reg is not None)
    if waiting:
        con.print(f"note: {len(waiting)} earlier request(s) wait for riskmap serve, which is not running: it "
                  "applies them when it starts (or they expire) — riskmap status lists them")


def _show(s: Any, rendered: bool, by_service: bool = False) -> None:
    """Print what a manual act did (:func:`riskmap.store.requests.run_summary`), however it was applied."""
    con = console()
    rid = s["run_id"][:12]
    if s["already"]:
        con.print(f"already recorded (run {rid}): nothing new")
        return
    for kind, code, hazard, old, new, operator in s["changes"]:
        con.print(f"{kind:9s} {code} {hazard} {level_text(old)} → {level_text(new)}  by {esc(operator)}")
    n = s["n_changes"]
    if n > len(s["changes"]):
        con.print(f"… and {n - len(s['changes'])} more (riskmap history CODE shows each village)")
    if not n:
        con.print("no warning changed (nothing in force to lift, or already at that level)")
    con.print(f"{n} change(s) in run {rid}" + (" (drill)" if s["drill"] else ""))
    if not rendered:
        con.print("no --region (nor paths.region): no SMS or CAP queued for this act")
        return
    held = s["messages"]["held"]
    cap = "files written by riskmap serve" if by_service else "sent by riskmap serve, or with the next run"
    con.print(f"SMS queued {s['messages']['queued']}, held for approval {held}"
              + (f" (riskmap approve {rid} --by NAME)" if held else "") + f"; CAP {s['cap']} ({cap})")


@cli.command("issue")
@click.option("--hazard", "hazard", required=True, type=click.Choice(HAZARDS), help="The hazard.")
@click.option("--level", "level", required=True, help="blue, yellow, orange, red (or 蓝色…红色, Ⅳ…Ⅰ, 1-4).")
@click.option("--until", "until", default=None, metavar="ISO8601",
              help="Valid until, with offset (default: now + lifecycle.manual_validity_h).")
@_act_options
def issue_cmd(hazard: str, level: str, until: str | None, villages: tuple[str, ...],
              features: tuple[str, ...], region: Path | None, reason: str, by: str, rules: Path | None,
              drill: bool, now: str | None, db: str, config: Path | None, wait_s: float, no_wait: bool,
              request_key: str) -> None:
    """Issue (or raise) a warning by hand, e.g. red for every village of an opened detention area.

    While riskmap serve holds the store, the act is handed to it (it applies it within seconds).
    """
    from riskmap.operations import ActParams

    lv = Level.from_name(level)
    if lv == 0:
        raise InputError("--level: a manual issue needs a level above none (use `riskmap lift`)")
    t = clock(now)
    valid = parse_time("--until", until)
    if valid is not None and valid <= t:
        raise InputError(f"--until {until}: must be after the act ({t.isoformat()})")
    params = ActParams("issue", villages, features, hazard, reason, by, level=int(lv), until=valid,
                       drill=drill, now=parse_time("--now", now))
    _act(params, t, region, rules, db, config, wait_s, no_wait, request_key)


@cli.command("lift")
@click.option("--hazard", "hazard", required=True, type=click.Choice([*HAZARDS, "all"]),
              help="The hazard to lift (all: every hazard).")
@_act_options
def lift_cmd(hazard: str, villages: tuple[str, ...], features: tuple[str, ...], region: Path | None,
             reason: str, by: str, rules: Path | None, drill: bool, now: str | None, db: str,
             config: Path | None, wait_s: float, no_wait: bool, request_key: str) -> None:
    """Lift (解除) warnings by hand.

    While riskmap serve holds the store, the act is handed to it (it applies it within seconds).
    """
    from riskmap.operations import ActParams

    params = ActParams("lift", villages, features, "" if hazard == "all" else hazard, reason, by, drill=drill,
                       now=parse_time("--now", now))
    _act(params, clock(now), region, rules, db, config, wait_s, no_wait, request_key)


@cli.command("silence")
@click.option("--until", "until", required=True, metavar="ISO8601",
              help="End of the silence, with offset, e.g. 2026-07-02T08:00+08:00.")
@click.option("--hazard", "hazards", multiple=True, type=click.Choice(HAZARDS),
              help="Only these hazards (repeatable; default: all).")
@click.option("--reason", "reason", required=True, help="Why (logged).")
@click.option("--by", "by", required=True, help="The operator's name (logged).")
@_target_options
@now_option
@db_options
def silence_cmd(until: str, hazards: tuple[str, ...], reason: str, by: str, villages: tuple[str, ...],
                features: tuple[str, ...], region: Path | None, now: str | None, db: str,
                config: Path | None) -> None:
    """Silence automatic issue and escalation for villages or a feature until a time (logged)."""
    from riskmap.lifecycle import Silence
    from riskmap.operations import target_villages

    if not by.strip() or not reason.strip():
        raise InputError("--by and --reason must not be empty")
    t = clock(now)
    end = parse_time("--until", until)
    if end is None or end <= t:
        raise InputError(f"--until {until}: the end must be after now ({t.isoformat()})")
    codes, label = target_villages(villages, features, _region(region, config))
    silence = Silence(label, codes, end, reason, by, t, tuple(hazards))
    store, settings = open_store(db, config)
    try:
        sid = store.add_silence(silence)
    finally:
        store.close()
    console().print(f"silenced {len(codes)} village(s) ({', '.join(hazards) or 'all hazards'}) until "
                    f"{local(end, settings)} by {esc(by)} (silence {sid[:12]})")
