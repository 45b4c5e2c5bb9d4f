"""One scheduler per store: ``serve`` holds the store for its lifetime; a second one is refused (exit 4).

The hold itself is :func:`riskmap.store.hold_store` (the store's own module): on SQLite an
exclusive ``fcntl.flock`` on ``<database>.lock`` holding the holder's host and pid, on
PostgreSQL ``pg_try_advisory_lock`` on a dedicated connection whose ``application_name``
names the holder.  Both vanish with the process, even after ``kill -9``.

Examples
--------
>>> import tempfile, pathlib
>>> from riskmap.store import Store
>>> store = Store.open(pathlib.Path(tempfile.mkdtemp()) / "riskmap.sqlite")
>>> hold = take_lock(store)
>>> holder(store) == describe_self()
True
>>> take_lock(store, "riskmap serve on other pid 1")
Traceback (most recent call last):
...
riskmap.errors.StoreLocked: store ...riskmap.sqlite is held by riskmap serve on ... pid ...; stop that ...
>>> hold.release(); holder(store) is None
True
"""

from __future__ import annotations

import os
import socket

from riskmap.store import ServiceHold, Store, held_by, hold_store


def describe_self() -> str:
    """``riskmap serve on HOST pid PID`` for this process."""
    return f"riskmap serve on {socket.gethostname()} pid {os.getpid()}"


def take_lock(store: Store, who: str | None = None) -> ServiceHold:
    """Hold ``store`` for this service or raise :class:`~riskmap.errors.StoreLocked` naming the holder."""
    return hold_store(store, who or describe_self())


def holder(store: Store) -> str | None:
    """Who holds the store now (None: no service runs on it)."""
    return held_by(store)
