"""Daily housekeeping: delete old output files and archive old outbox rows with their receipts.

- Files older than ``keep_days`` in the output folder's ``cap/`` and in the inbox's
  ``done/`` and ``quarantine/`` are deleted (the store keeps every decision and CAP message).
- Outbox rows finished (``sent``, ``delivered``, ``superseded``, or failed for good) more than
  ``archive_days`` ago move, together with their delivery reports and acknowledgements, to
  ``OUT/archive/outbox-YYYYMMDD.jsonl.gz`` (mode 0600: it holds phone numbers), one transaction per
  batch, each batch recorded in the store's ``archive_batches`` (schema v4).  Messages about a
  warning still in force, or that an acknowledgement or escalation still needs, stay.  See
  :mod:`riskmap.store.archive`.

Examples
--------
>>> import tempfile, time, os
>>> d = Path(tempfile.mkdtemp())
>>> old, new = d / "old.xml", d / "new.xml"
>>> _ = old.write_text("x"); _ = new.write_text("y")
>>> os.utime(old, (time.time() - 40 * 86400,) * 2)
>>> [p.name for p in delete_old_files([d], keep_days=30)], new.exists()
(['old.xml'], True)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from riskmap.store.archive import FINAL_FAILURE
from riskmap.store.archive import archive_outbox as archive

__all__ = ["FINAL_FAILURE", "archive_outbox", "delete_old_files"]

log = logging.getLogger("riskmap.service")


def delete_old_files(folders: Iterable[Path], keep_days: float, now: float | None = None) -> list[Path]:
    """Delete regular files older than ``keep_days`` in ``folders`` (not recursive); returns them."""
    if keep_days <= 0:
        return []
    limit = (time.time() if now is None else now) - keep_days * 86400
    gone = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for p in folder.iterdir():
            try:
                if p.is_file() and not p.name.startswith(".") and p.stat().st_mtime < limit:
                    p.unlink()
                    gone.append(p)
            except FileNotFoundError:
                continue
    return gone


def archive_outbox(store: Any, out: Path, older_than_days: float, now: datetime) -> int:
    """Move finished outbox rows older than ``older_than_days``, with their receipts, to
    ``out/archive/`` (:func:`riskmap.store.archive.archive_outbox`); returns how many messages."""
    if older_than_days <= 0:
        return 0
    done = archive(store, out / "archive", now - timedelta(days=older_than_days), now)
    if done.messages:
        log.info("housekeeping: archived %d outbox rows and %d receipts older than %g days to %s",
                 done.messages, done.receipts, older_than_days, ", ".join(done.files))
    return done.messages
