"""Hold a store for one service process: a second ``serve`` on the same database is refused (exit 4).

The hold is an operating-system or server lock, so it vanishes with its process (even
after ``kill -9``): on SQLite an exclusive ``flock`` on ``<database>.lock`` beside the
file (which also names the holder); on PostgreSQL a session advisory lock, with the
holder's name in ``application_name``.

Examples
--------
>>> import tempfile, pathlib
>>> from riskmap.store import Store
>>> store = Store.open(pathlib.Path(tempfile.mkdtemp()) / "riskmap.sqlite")
>>> hold = hold_store(store, "serve host-a pid 42")
>>> held_by(store)
'serve host-a pid 42'
>>> hold_store(store, "serve host-b pid 7")
Traceback (most recent call last):
...
riskmap.errors.StoreLocked: store ...riskmap.sqlite is held by serve host-a pid 42; stop that process first
>>> hold.release(); held_by(store) is None
True
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, text

from riskmap.errors import StoreLocked
from riskmap.store.db import guard
from riskmap.store.store import Store

LOCK_KEY = 0x52534B4D  # "RSKM": the advisory lock id riskmap uses on PostgreSQL


def default_holder() -> str:
    """``riskmap serve`` on this host and process."""
    return f"riskmap serve on {socket.gethostname()} pid {os.getpid()}"


def _lock_path(store: Store) -> Path:
    return Path(str(store.engine.url.database) + ".lock")


class ServiceHold:
    """A held store; :meth:`release` (or leaving the ``with`` block) lets it go."""

    def __init__(self, store: Store, holder: str, fh: IO[str] | None = None,
                 conn: Connection | None = None) -> None:
        self.store, self.holder, self._fh, self._conn = store, holder, fh, conn

    def release(self) -> None:
        """Release the hold (idempotent)."""
        if self._fh is not None:
            self._fh.seek(0)
            self._fh.truncate()
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
            finally:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> ServiceHold:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _pg_holder(conn: Connection) -> str | None:
    row = conn.execute(text(
        "SELECT a.application_name, a.pid, a.client_addr FROM pg_locks l "
        "JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.classid = 0 AND l.objid = :k AND l.granted"),
        {"k": LOCK_KEY}).first()
    if row is None:
        return None
    return row.application_name or f"PostgreSQL backend pid {row.pid} from {row.client_addr}"


def hold_store(store: Store, holder: str | None = None) -> ServiceHold:
    """Hold the store for this process or raise :class:`~riskmap.errors.StoreLocked` naming the holder."""
    holder = holder or default_holder()
    if store.engine.dialect.name == "sqlite":
        path = _lock_path(store)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        fh = os.fdopen(fd, "r+", encoding="utf-8")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = fh.read().strip() or "another process"
            fh.close()
            raise StoreLocked(f"store {store.url} is held by {who}; stop that process first") from None
        fh.seek(0)
        fh.truncate()
        fh.write(holder)
        fh.flush()
        return ServiceHold(store, holder, fh=fh)
    with guard(f"{store.url} hold"):
        conn = store.engine.connect()
        conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.execute(text("SELECT set_config('application_name', :n, false)"), {"n": holder[:63]})
        if not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}).scalar():
            who = _pg_holder(conn) or "another process"
            conn.close()
            raise StoreLocked(f"store {store.url} is held by {who}; stop that process first")
        return ServiceHold(store, holder, conn=conn)


def held_by(store: Store) -> str | None:
    """Who holds the store (None when nobody does); for ``riskmap status`` and for refusing writers."""
    if store.engine.dialect.name == "sqlite":
        path = _lock_path(store)
        if not path.exists():
            return None
        with path.open("r", encoding="utf-8") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return fh.read().strip() or "another process"
            fcntl.flock(fh, fcntl.LOCK_UN)
            return None
    with guard(f"{store.url} held_by"), store.engine.connect() as conn:
        return _pg_holder(conn)


def ensure_not_held(store: Store) -> None:
    """Refuse (:class:`~riskmap.errors.StoreLocked`, exit 4) when a service holds the store.

    For ``riskmap run`` while ``serve`` may run: a second decider on the store would overwrite the
    service's decisions.  (``riskmap issue`` and ``lift`` hand their act to the service instead:
    :mod:`riskmap.cli.handover`.)
    """
    who = held_by(store)
    if who is not None:
        raise StoreLocked(f"store {store.url} is held by {who}: it runs the cycles on this store — put the "
                          "forecast into its inbox, or stop it first")
