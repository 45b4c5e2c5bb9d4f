"""`riskmap silences / unsilence` (riskmap/cli/silence_cmd.py) and the stored clearing of a silence
(schema v3: ``silences.cleared_reason``), on SQLite and PostgreSQL.

The region is tests/cli_fixtures.py's: four villages; reservoir 002's downstream zone lies in village 1.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from cli_fixtures import NOW, jsonl, rm
from cli_fixtures import cli_commands_fixture as cli_commands_fixture  # autouse: these commands
from cli_fixtures import db_fixture as db_fixture  # db: SQLite and PostgreSQL
from cli_fixtures import region_fixture as region_fixture  # region: the tiny one, per module
from region_data import CODES
from sqlalchemy import create_engine, text

from riskmap.lifecycle import LifecyclePolicy, Silence
from riskmap.store import RunMeta, Store, apply_run, hold_store
from riskmap.store.migrations import CURRENT, schema_version

pytestmark = pytest.mark.filterwarnings("ignore:.*landline cannot receive SMS")
V0, V1, V2, V3 = CODES
T0 = datetime(2026, 7, 1, 0, tzinfo=UTC)  # NOW in UTC


def silence(capsys, db: str, *args: str, until: str = "2026-07-01T20:00+08:00", reason: str = "已全部转移",
            now: str = NOW) -> str:
    """``riskmap silence …``; the 12-character id it prints."""
    code, out = rm(capsys, "silence", *args, "--until", until, "--reason", reason, "--by", "王工",
                   "--now", now, "--db", db)
    assert code == 0, out
    return out.rsplit("(silence ", 1)[1].split(")")[0]


def listed(capsys, db: str, *args: str, now: str = NOW) -> list[dict]:
    code, out = rm(capsys, "silences", "--json", *args, "--now", now, "--db", db)
    assert code == 0, out
    return jsonl(out)


def one_run(db: str, at: datetime, forecast: str) -> tuple[list[str], list[str]]:
    """An automatic yellow torrent run for V2 and V3: (villages changed, villages held back by a silence)."""
    levels = pd.DataFrame({"village_code": [V2, V3], "hazard": ["torrent"] * 2, "level": [2, 2],
                           "rule": ["t/1"] * 2, "window_h": [3.0] * 2, "value_mm": [80.0] * 2,
                           "threshold_mm": [70.0] * 2, "window_end": [at] * 2, "reason": ["3 h 80 mm"] * 2})
    store = Store.open(db)
    try:
        d = apply_run(store, RunMeta(now=at, source="test", forecast_hash=forecast), levels,
                      LifecyclePolicy()).decision
    finally:
        store.close()
    assert d is not None
    return [c.village_code for c in d.changes], [c.village_code for c in d.suppressed]


def test_list_clear_and_history(capsys, db, region):
    sid = silence(capsys, db, "--village", V2, reason="已全部转移 [bold]")
    res = silence(capsys, db, "--feature", "reservoirs:002", "--region", str(region), "--hazard", "reservoir",
                  until="2026-07-01T12:00+08:00", reason="检修")
    rows = listed(capsys, db)
    assert [(r["id"][:12], r["state"], r["villages"], r["hazards"]) for r in rows] == [
        (sid, "active", [V2], []), (res, "active", [V1], ["reservoir"])]
    assert rows[0]["until"] == "2026-07-01T20:00:00+08:00" and rows[0]["operator"] == "王工"
    assert rows[0]["reason"] == "已全部转移 [bold]" and rows[1]["target"] == "reservoirs:002"
    code, out = rm(capsys, "silences", "--now", NOW, "--db", db)
    assert code == 0 and sid in out and res in out and "全部/all" in out and "reservoir" in out
    assert "已全部转移 [bold]" in out and "2026-07-01 20:00" in out  # as written, never as markup

    # the silence holds back an automatic issue for V2 …
    assert one_run(db, T0 + timedelta(hours=1), "f1") == ([V3], [V2])
    # … until an operator clears it by its 12-character id (or any longer or shorter unique prefix)
    code, out = rm(capsys, "unsilence", sid, "--by", "李主任", "--reason", "险情加重 <&>",
                   "--now", "2026-07-01T10:00+08:00", "--db", db)
    assert code == 0 and f"silence {sid} " in out and "cleared by 李主任 at 2026-07-01 10:00" in out, out
    assert one_run(db, T0 + timedelta(hours=3), "f2") == ([V2], [])

    later = "2026-07-01T13:00+08:00"  # the reservoir silence has expired by then
    assert listed(capsys, db, now=later) == []
    code, out = rm(capsys, "silences", "--now", later, "--db", db)
    assert code == 0 and "2 expired or cleared: riskmap silences --all" in out
    every = {r["id"][:12]: r for r in listed(capsys, db, "--all", now=later)}
    assert every[res]["state"] == "expired" and every[res]["cleared_at"] is None
    assert every[sid]["state"] == "cleared" and every[sid]["cleared_by"] == "李主任"
    assert every[sid]["cleared_reason"] == "险情加重 <&>"
    assert every[sid]["cleared_at"] == "2026-07-01T10:00:00+08:00"
    code, out = rm(capsys, "silences", "--all", "--now", later, "--db", db)
    assert code == 0 and "expired" in out and "cleared 2026-07-01 10:00 by 李主任: 险情加重 <&>" in out

    # history: the silence, the run it held back, its clearing with who and why, the issue after it
    code, out = rm(capsys, "history", V2, "--db", db)
    assert code == 0 and "unsilence" in out and "险情加重 <&>" in out and f"silence {sid} cleared" in out
    store = Store.open(db)
    try:
        trail = [(e.kind, e.operator, e.suppressed) for e in store.history(V2)]
    finally:
        store.close()
    assert trail == [("silence", "王工", False), ("issue", "", True), ("unsilence", "李主任", False),
                     ("issue", "", False)]


def test_clearing_twice_records_once(capsys, db):
    sid = silence(capsys, db, "--village", V0)
    code, out = rm(capsys, "unsilence", sid[:6], "--by", "李主任", "--reason", "险情加重",
                   "--now", "2026-07-01T09:00+08:00", "--db", db)
    assert code == 0 and "cleared by 李主任" in out
    code, out = rm(capsys, "unsilence", sid, "--by", "赵工", "--reason", "再次解除",
                   "--now", "2026-07-01T09:30+08:00", "--db", db)
    assert code == 0 and "already cleared by 李主任 at 2026-07-01 09:00 (险情加重): nothing new" in out, out
    store = Store.open(db)
    try:
        (rec,) = store.silence_records()
        kinds = [e.kind for e in store.history(V0)]
    finally:
        store.close()
    assert (rec.cleared_by, rec.cleared_reason) == ("李主任", "险情加重")
    assert rec.cleared_at == datetime(2026, 7, 1, 1, tzinfo=UTC) and kinds == ["silence", "unsilence"]
    # a silence that ended by itself has nothing to clear
    old = silence(capsys, db, "--village", V1, until="2026-07-01T09:00+08:00")
    code, out = rm(capsys, "unsilence", old, "--by", "李主任", "--reason", "x", "--now",
                   "2026-07-01T10:00+08:00", "--db", db)
    assert code == 0 and "ended by itself at 2026-07-01 09:00: nothing to clear" in out
    assert sorted(r["state"] for r in listed(capsys, db, "--all", now="2026-07-01T10:00+08:00")) == [
        "cleared", "expired"]


def _two_ids_sharing_a_prefix() -> tuple[Silence, Silence, str]:
    """Two silences (made in code) whose ids share their first 4 characters."""
    seen: dict[str, Silence] = {}
    for i in range(100_000):
        s = Silence(f"village:{V3}", (V3,), T0 + timedelta(days=1), "预置", "王工", T0 + timedelta(seconds=i))
        if s.id[:4] in seen:
            return seen[s.id[:4]], s, s.id[:4]
        seen[s.id[:4]] = s
    raise AssertionError("no shared prefix")  # pragma: no cover - about 300 tries suffice


def test_unknown_short_and_ambiguous_ids_are_exit_2(capsys, db):
    a, b, prefix = _two_ids_sharing_a_prefix()
    store = Store.open(db)
    try:
        store.add_silence(a)
        store.add_silence(b)
    finally:
        store.close()
    later = "2026-07-01T12:00+08:00"
    for ref, needle in ((prefix, f"ID {prefix!r}: ambiguous ("), ("0000000000ff", "no such silence"),
                        ("zz%_", "no such silence"), (prefix[:3], "at least 4 characters")):
        code, out = rm(capsys, "unsilence", ref, "--by", "王工", "--reason", "x", "--now", later, "--db", db)
        assert code == 2, out
        errors = [line for line in out.splitlines() if line.strip()]
        assert len(errors) == 1 and errors[0].startswith("riskmap: error: ") and needle in errors[0], out
    code, out = rm(capsys, "unsilence", prefix, "--by", "李主任", "--reason", "x", "--now", later, "--db", db)
    assert a.id[:12] in out and b.id[:12] in out
    # one more character than they share names exactly one
    code, out = rm(capsys, "unsilence", b.id[:5], "--by", "李主任", "--reason", "x", "--now", later,
                   "--db", db)
    assert code == 0 and f"silence {b.id[:12]} " in out
    assert [r["state"] for r in listed(capsys, db, "--all", now=later)] == ["active", "cleared"]
    code, out = rm(capsys, "unsilence", a.id, "--by", " ", "--reason", "x", "--now", later, "--db", db)
    assert code == 2 and "--by and --reason must not be empty" in out


def test_unsilence_works_while_serve_holds_the_store(capsys, db, tmp_path):
    """Like silence, unsilence writes one row the service only reads: done directly, not handed over."""
    sid = silence(capsys, db, "--village", V0)
    store = Store.open(db)
    try:
        with hold_store(store, "riskmap serve pid 99"):
            code, out = rm(capsys, "unsilence", sid, "--by", "李主任", "--reason", "x", "--now", NOW,
                           "--db", db)
            assert code == 0 and "cleared by 李主任" in out and "Traceback" not in out, out
            assert listed(capsys, db) == []  # no silence in force any more
    finally:
        store.close()
    code, out = rm(capsys, "silences", "--db", f"sqlite:///{tmp_path / 'nothing.sqlite'}")
    assert code == 2 and "no store at" in out and not (tmp_path / "nothing.sqlite").exists()
    code, out = rm(capsys, "unsilence", sid, "--by", "x", "--reason", "x", "--db",
                   f"sqlite:///{tmp_path / 'nothing.sqlite'}")
    assert code == 2 and "no store at" in out


def test_a_v2_store_is_upgraded_and_keeps_its_silences(capsys, db):
    """A store written before v3 (no ``silences.cleared_reason``) gains the column on open; a silence
    cleared then keeps an empty reason; clearing afterwards stores one."""
    old = Silence(f"village:{V0}", (V0,), T0 + timedelta(days=1), "旧静默", "王工", T0)
    new = Silence(f"village:{V1}", (V1,), T0 + timedelta(days=1), "新静默", "王工", T0)
    store = Store.open(db)
    try:
        store.add_silence(old)
        store.add_silence(new)
        assert store.clear_silence(old.id, "李主任", T0 + timedelta(hours=1))
    finally:
        store.close()
    engine = create_engine(db)
    with engine.begin() as conn:  # back to the v2 shape
        conn.execute(text("ALTER TABLE silences DROP COLUMN cleared_reason"))
        conn.execute(text("DELETE FROM schema_version WHERE version >= 3"))
    assert schema_version(engine) == 2 and CURRENT >= 3
    engine.dispose()

    store = Store.open(db)  # migrates
    try:
        assert schema_version(store.engine) == CURRENT
        recs = {r.silence.reason: r for r in store.silence_records()}
    finally:
        store.close()
    assert (recs["旧静默"].cleared_by, recs["旧静默"].cleared_reason) == ("李主任", "")
    code, out = rm(capsys, "unsilence", new.id[:12], "--by", "赵工", "--reason", "退水",
                   "--now", "2026-07-01T10:00+08:00", "--db", db)
    assert code == 0, out
    states = {r["reason"]: (r["state"], r["cleared_reason"]) for r in listed(capsys, db, "--all")}
    assert states == {"旧静默": ("cleared", ""), "新静默": ("cleared", "退水")}
