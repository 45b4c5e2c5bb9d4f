"""Daily housekeeping: delete old output files and archive old outbox rows.

- Files older than ``keep_days`` in the output folder's ``cap/`` and in the inbox's
  ``done/`` and ``quarantine/`` are deleted (the store keeps every decision and CAP message).
- Outbox rows finished (``sent``, ``delivered``, ``superseded``, or failed for good) more than
  ``archive_days`` ago are written to ``OUT/archive/outbox-YYYYMMDD.jsonl.gz`` (mode 0600: it
  holds phone numbers), fsynced, then deleted from the store in one transaction.  Their runs are
  done, so nothing can queue them again.  Rows with delivery receipts stay in the store: receipts
  are append-only (the audit trail), and they reference their message.

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

import gzip
import json
import logging
import os
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, delete, or_, select

from riskmap.store import tables as t

log = logging.getLogger("riskmap.service")
FINAL_FAILURE = datetime(9000, 1, 1, tzinfo=UTC)  # dispatcher.NEVER is year 9999


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
    """Move finished outbox rows older than ``older_than_days`` (and their receipts) to a gzip archive."""
    if older_than_days <= 0:
        return 0
    cutoff = now - timedelta(days=older_than_days)
    finished = or_(t.outbox.c.status.in_(("sent", "delivered", "superseded")),
                   and_(t.outbox.c.status == "failed", t.outbox.c.next_attempt_at >= FINAL_FAILURE))
    has_receipt = select(t.receipts.c.id).where(t.receipts.c.outbox_id == t.outbox.c.id).exists()
    cond = and_(finished, t.outbox.c.updated_at < cutoff, ~has_receipt)
    with store.engine.begin() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(t.outbox).where(cond).order_by(t.outbox.c.id))]
        if not rows:
            return 0
        ids = [r["id"] for r in rows]
        folder = out / "archive"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"outbox-{now:%Y%m%d}.jsonl.gz"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "ab") as raw, gzip.GzipFile(fileobj=raw, mode="ab") as gz:
            for r in rows:
                gz.write((json.dumps(r, ensure_ascii=False, default=str) + "\n").encode("utf-8"))
            gz.flush()
            raw.flush()
            os.fsync(raw.fileno())
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            conn.execute(delete(t.outbox).where(t.outbox.c.id.in_(chunk)))
    log.info("housekeeping: archived %d outbox rows older than %g days to %s", len(rows), older_than_days,
             path)
    return len(rows)
