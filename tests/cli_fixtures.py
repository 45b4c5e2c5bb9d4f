"""Helpers of tests/test_cli_store.py, test_cli_silences.py and test_cli_sms.py: run the CLI in-process,
the tiny region with a detention area, and a PostgreSQL schema of their own (in ``RISKMAP_TEST_PG_URL``'s
database).  Their fixtures ``cli_commands`` (autouse), ``region`` and ``db`` are imported by those modules:
``from cli_fixtures import cli_commands_fixture, db_fixture, region_fixture  # noqa: F401``.

The region is the one of ``tests/region_data.py`` (four 0.01° villages in a row, two townships) with a
detention area over the east half of village 0 and the west half of village 1 (so
``detention_areas:D02`` covers exactly villages 0 and 1; reservoir 002's downstream zone lies in
village 1), and ``drill`` flags on the contacts (only 张村 takes part in drills).
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from pg import require_pg
from region_data import CRS, valid_layers, write_gpkg
from rich.console import Console
from sqlalchemy import create_engine, make_url, text

from riskmap.cli import main, silence_cmd, sms_cmd, store_cmd
from riskmap.cli.app import cli
from riskmap.store import tables as t

NOW = "2026-07-01T08:00+08:00"
PG_DOWN = "postgresql+psycopg2://nobody@127.0.0.1:1/x"  # nothing listens on port 1
PG_SCHEMA = "riskmap_cli_tests"
"""The schema (search_path) of these tests in the test database: test_store's resets leave it alone."""
COMMANDS = {"warnings": store_cmd.warnings_cmd, "history": store_cmd.history_cmd,
            "issue": store_cmd.issue_cmd, "lift": store_cmd.lift_cmd, "silence": store_cmd.silence_cmd,
            "silences": silence_cmd.silences_cmd, "unsilence": silence_cmd.unsilence_cmd,
            "approve": sms_cmd.approve_cmd,
            "outbox": sms_cmd.outbox_cmd, "receipts": sms_cmd.receipts_cmd, "confirm": sms_cmd.confirm_cmd}


def use_these_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    """Put these commands on the group (another module may register the same names) and print wide."""
    for name, cmd in COMMANDS.items():
        monkeypatch.setitem(cli.commands, name, cmd)
    wide = lambda: Console(width=240, highlight=False)  # noqa: E731
    monkeypatch.setattr(store_cmd, "console", wide)
    monkeypatch.setattr(sms_cmd, "console", wide)
    monkeypatch.setattr(silence_cmd, "console", wide)


@pytest.fixture(name="cli_commands", autouse=True)
def cli_commands_fixture(monkeypatch: pytest.MonkeyPatch) -> None:
    """Autouse in a module that imports it: these commands on the group, wide output."""
    use_these_commands(monkeypatch)


@pytest.fixture(name="region", scope="module")
def region_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny region with its detention area, once per module."""
    return write_region(tmp_path_factory.mktemp("region"))


@pytest.fixture(name="db", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store URL, once on SQLite and once on PostgreSQL (see :func:`db_url`)."""
    return db_url(request.param, tmp_path)


def rm(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run the CLI as the console script does; (exit code, stdout + stderr)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


def jsonl(text_: str) -> list[dict]:
    """The JSON lines of an output."""
    return [json.loads(line) for line in text_.splitlines() if line.startswith("{")]


def write_region(folder: Path) -> Path:
    """The tiny region as a GeoPackage in *folder*."""
    layers = valid_layers()
    layers["detention_areas"] = gpd.GeoDataFrame(
        {"id": ["D02"], "name": ["青溪蓄滞洪区"]},
        geometry=[shapely.box(120.005, 30.002, 120.015, 30.008)], crs=CRS)
    layers["contacts"]["drill"] = [False, False, True, False, False, False]
    return write_gpkg(layers, folder / "region.gpkg")


def db_url(kind: str, tmp_path: Path) -> str:
    """A fresh store URL: SQLite in *tmp_path*, or PostgreSQL in an emptied schema of its own.

    Without ``RISKMAP_TEST_PG_URL`` the PostgreSQL variant is skipped locally and FAILS when CI=true.
    """
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'riskmap.sqlite'}"
    base = make_url(require_pg("CLI store tests"))
    admin = create_engine(base)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{PG_SCHEMA}"'))
    finally:
        admin.dispose()
    url = base.update_query_dict({"options": f"-csearch_path={PG_SCHEMA}"})
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            t.METADATA.drop_all(conn)
    finally:
        engine.dispose()
    return url.render_as_string(hide_password=False)
