"""Which store a command uses, and runs named by a prefix of their id."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from riskmap.errors import InputError
from riskmap.store import Store
from riskmap.store import tables as t
from riskmap.store.db import guard
from riskmap.store.records import RunRecord

DEFAULT_DB = "riskmap.sqlite"
"""The store used when neither ``--db`` nor the config's ``store.url`` names one (in the working folder)."""


def store_url(db: str | None, configured: str = "", cwd: Path | None = None) -> str:
    """The store URL: ``db`` (``--db``), else ``configured`` (``store.url``), else ``./riskmap.sqlite``.

    >>> store_url("postgresql://h/x"), store_url("", "sqlite:///a.sqlite")
    ('postgresql://h/x', 'sqlite:///a.sqlite')
    >>> store_url(None, "", Path("/srv/office"))
    'sqlite:////srv/office/riskmap.sqlite'
    """
    if db:
        return db
    if configured:
        return configured
    return f"sqlite:///{(cwd or Path.cwd()).resolve() / DEFAULT_DB}"


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (or plain path); None for other databases and in-memory SQLite.

    >>> sqlite_path("sqlite:////tmp/r.sqlite"), sqlite_path("postgresql://h/x")
    (PosixPath('/tmp/r.sqlite'), None)
    """
    if "://" not in url:
        return Path(url).expanduser()
    if not url.startswith("sqlite"):
        return None
    path = url.split(":///", 1)[1] if ":///" in url else ""
    return Path(path) if path and path != ":memory:" else None


def find_run(store: Store, ref: str) -> RunRecord:
    """The run whose id is ``ref`` or starts with it (the CLI shows 12 characters)."""
    ref = ref.strip()
    if len(ref) < 4:
        raise InputError(f"RUN {ref!r}: give at least 4 characters of the run id")
    with guard(f"{store.url} find_run {ref}"), store.engine.connect() as conn:
        ids = [r.id for r in conn.execute(select(t.runs.c.id).where(t.runs.c.id.like(f"{ref}%")).limit(3))]
    if not ids:
        raise InputError(f"RUN {ref!r}: no such run in the store {store.url}")
    if len(ids) > 1:
        raise InputError(f"RUN {ref!r}: ambiguous ({', '.join(i[:12] for i in ids)} …); give more characters")
    run = store.run(ids[0])
    assert run is not None
    return run
