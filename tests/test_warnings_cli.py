"""`riskmap warnings / history / issue / lift / silence` against a real SQLite store (and the demo region)."""

from __future__ import annotations

import pyogrio
import pytest

import riskmap.cli.warnings_cmd  # noqa: F401  (registers the commands on the group)
from riskmap.cli import main
from riskmap.store import Store, hold_store

V1, V2 = "469900100201", "469900100202"
NOW = "2026-07-01T08:00+08:00"


def rm(capsys, *args: str) -> tuple[int, str]:
    """Run the CLI as the console script does; return (exit code, stdout+stderr)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    from riskmap.cli.common import console

    monkeypatch.setenv("COLUMNS", "220")
    console.cache_clear()
    yield
    console.cache_clear()


@pytest.fixture
def db(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'riskmap.sqlite'}"


def test_manual_issue_silence_lift_and_history(capsys, db):
    code, out = rm(capsys, "issue", "--target", V1, "--target", V2, "--hazard", "torrent", "--level", "red",
                   "--reason", "开闸分洪 <&>", "--by", "李主任", "--now", NOW, "--db", db)
    assert code == 0 and out.count("issue") >= 2 and "李主任" in out
    code, again = rm(capsys, "issue", "--target", V1, "--target", V2, "--hazard", "torrent", "--level", "red",
                     "--reason", "开闸分洪 <&>", "--by", "李主任", "--now", NOW, "--db", db)
    assert code == 0 and "nothing new" in again
    code, out = rm(capsys, "warnings", "--active", "--db", db)
    assert code == 0 and V1 in out and V2 in out and "李主任" in out
    code, out = rm(capsys, "silence", "--target", V2, "--hours", "6", "--reason", "已全部转移",
                   "--by", "王工", "--now", "2026-07-01T08:30+08:00", "--db", db)
    assert code == 0 and "silenced 1 village" in out
    code, out = rm(capsys, "lift", "--target", V1, "--reason", "险情排除", "--by", "王工",
                   "--now", "2026-07-01T09:00+08:00", "--db", db)
    assert code == 0 and "lift" in out
    code, out = rm(capsys, "warnings", "--active", "--db", db)
    assert V1 not in out and V2 in out
    store = Store.open(db)
    hist = [(e.kind, e.operator) for e in store.history(V1)]
    assert hist == [("issue", "李主任"), ("lift", "王工")]
    assert [(e.kind, e.operator) for e in store.history(V2)] == [("issue", "李主任"), ("silence", "王工")]
    store.close()
    code, out = rm(capsys, "history", V2, "--db", db)
    assert code == 0 and "silence" in out and "王工" in out and "2026-07-01 08:00" in out


def test_bad_input_is_exit_2_and_a_held_store_is_exit_4(capsys, db, tmp_path):
    code, out = rm(capsys, "issue", "--target", "12345", "--hazard", "torrent", "--level", "red",
                   "--reason", "x", "--by", "x", "--db", db)
    assert code == 2 and "12-digit" in out
    code, out = rm(capsys, "issue", "--target", V1, "--hazard", "torrent", "--level", "purple",
                   "--reason", "x", "--by", "x", "--db", db)
    assert code == 2 and "unknown level" in out
    code, out = rm(capsys, "silence", "--target", V1, "--reason", "x", "--by", "x", "--db", db)
    assert code == 2 and "--until or --hours" in out
    with hold_store(Store.open(db), "riskmap serve pid 99"):
        code, out = rm(capsys, "lift", "--target", V1, "--reason", "x", "--by", "x", "--db", db)
    assert code == 4 and "riskmap serve pid 99" in out
    code, out = rm(capsys, "warnings", "--db", f"sqlite:///{tmp_path / 'f' / 'x'}", "--village", V1)
    assert code == 0  # an empty new store lists nothing
    (tmp_path / "file").write_text("x")
    code, out = rm(capsys, "warnings", "--db", f"sqlite:///{tmp_path / 'file' / 'x.sqlite'}")
    assert code == 3 and "cannot create" in out


@pytest.fixture(scope="module")
def demo_region(tmp_path_factory):
    from riskmap.demo import write_demo

    return write_demo(tmp_path_factory.mktemp("demo")).region


def test_feature_target_with_region_queues_sms_and_cap(capsys, db, demo_region):
    area = pyogrio.read_dataframe(demo_region, layer="detention_areas")
    target = f"detention_areas:{area['id'].iloc[0]}"
    code, out = rm(capsys, "issue", "--target", target, "--hazard", "torrent", "--level", "red",
                   "--reason", "蓄滞洪区启用", "--by", "李主任", "--now", NOW, "--region", str(demo_region),
                   "--db", db)
    assert code == 0, out
    store = Store.open(db)
    active = store.warnings(active=True)
    assert active and all(w.level == 4 and w.operator == "李主任" for w in active)
    caps = store.cap_messages()
    assert len(caps) == len(active) and all(c.msg_type == "Alert" for c in caps)
    assert store.outbox() and all(m.level == 4 for m in store.outbox())
    store.close()
