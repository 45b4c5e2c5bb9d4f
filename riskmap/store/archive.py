"""Archive finished outbox messages together with their receipts: out of the store, into gzip JSON lines.

Daily housekeeping (``riskmap serve``) calls :func:`archive_outbox`.  A message is *finished* when it
is ``sent``, ``delivered``, ``superseded`` or failed for good; it is archived once it finished
(``updated_at``) before ``cutoff`` and nothing may still need it in the store:

- its warning (village and hazard) is not in force — a message without a village (a duty summary)
  stays while any warning its run changed is in force (acknowledgements and escalations look there);
- an escalation stays while the message it escalated is in the store (the escalation check would
  otherwise escalate that message again);
- a message carrying an acknowledgement stays while the same phone has a message about a warning in
  force that was sent before the acknowledgement (the acknowledgement still answers it);
- the newest outbox row and the message of the newest receipt stay, so SQLite never reuses an id.

Each batch (up to ``batch`` messages) is one transaction: the messages are locked and read with
their receipts, written as one gzip member appended to ``FOLDER/outbox-YYYYMMDD.jsonl.gz`` (mode
0600: it holds phone numbers) and fsynced; then the batch is recorded in ``archive_batches`` (file,
byte range, sha256 of those bytes, counts, ids), the messages are marked ``archived``, their receipts
deleted (schema v4 allows a receipt to leave only so) and the messages deleted.  If the process dies
after the write and before the commit, the file is longer than the store recorded; the next batch cuts
it back first, so every message is in the archive exactly once.  :func:`archived_messages` reads the
recorded batches back, checking each one's sha256.

Each line is the outbox row (times in ISO 8601) with ``receipts``: the message's delivery reports and
acknowledgements (``id``, ``status``, ``raw``, ``digest``, ``at``), oldest first.

Examples
--------
>>> import tempfile, pathlib
>>> from datetime import datetime, timedelta, timezone
>>> from riskmap.store import OutboxRow, RunMeta, Store, outbox_key, run_key
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> store = Store.open(d / "riskmap.sqlite")
>>> t0 = datetime(2026, 7, 1, tzinfo=timezone.utc)
>>> run = store.begin_run(run_key(RunMeta(now=t0)), RunMeta(now=t0))
>>> phones = ["13800000001", "13800000002", "13800000003"]
>>> rows = [OutboxRow(outbox_key(run.id, "c", p, "sms"), p, "【防指】蓝色预警") for p in phones]
>>> store.queue(run.id, rows, t0)
3
>>> a, b, c = store.lease(t0)
>>> store.mark_many([{"id": m.id, "status": "sent"} for m in (a, b, c)], t0)
3
>>> store.add_receipt(a.id, "delivered", "stat:DELIVRD", t0), store.add_receipt(c.id, "delivered", "x", t0)
(True, True)
>>> archive_outbox(store, d / "archive", t0 + timedelta(days=1), t0 + timedelta(days=91))
Archived(messages=2, receipts=1, files=('outbox-20260930.jsonl.gz',))
>>> [(m["phone"], [r["status"] for r in m["receipts"]]) for m in archived_messages(store, d / "archive")]
[('13800000001', ['delivered']), ('13800000002', [])]
>>> [m.phone for m in store.outbox()]   # the newest message stays (SQLite never reuses its id)
['13800000003']
>>> store.close()
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, text, update

from riskmap.errors import InputError
from riskmap.store import tables as t
from riskmap.store.db import guard

log = logging.getLogger("riskmap.store")

FINAL_FAILURE = datetime(9000, 1, 1, tzinfo=UTC)
"""A ``failed`` message whose next attempt is at or after this failed for good (the dispatcher parks
a permanent failure at year 9999)."""
_ACK = "ack"  # riskmap.operations.acks.ACK: the receipt status of an acknowledgement (1/收到, 叫应)
ARCHIVED = "archived"
"""The status of a message inside the archive transaction only (it is deleted before the commit)."""
_LOCK_KEY = 0x52534B41  # "RSKA": one archiver at a time on PostgreSQL
_SCAN = 2000


@dataclass(frozen=True)
class Archived:
    """What :func:`archive_outbox` moved."""

    messages: int = 0
    receipts: int = 0
    files: tuple[str, ...] = ()
    """Names of the files written to, in the archive folder."""


def _finished() -> Any:
    o = t.outbox.c
    return or_(o.status.in_(("sent", "delivered", "superseded")),
               and_(o.status == "failed", o.next_attempt_at >= FINAL_FAILURE))


def _in_force(conn: Connection) -> tuple[set[tuple[str, str]], set[str]]:
    """The warnings in force, and the runs that changed one of them (their summaries stay)."""
    w, e = t.warnings.c, t.events.c
    active = {(r.village_code, r.hazard) for r in conn.execute(
        select(w.village_code, w.hazard).where(w.state == "active", w.level > 0))}
    runs = {r[0] for r in conn.execute(
        select(e.run_id).distinct()
        .join(t.warnings, and_(w.village_code == e.village_code, w.hazard == e.hazard))
        .where(w.state == "active", w.level > 0))}
    return active, runs


def _choose(conn: Connection, cutoff: datetime, after: int, limit: int) -> tuple[list[int], int]:
    """Ids of up to ``limit`` archivable messages with ids above ``after``, and the last id looked at."""
    o, r = t.outbox.c, t.receipts.c
    newest = conn.execute(select(func.max(o.id))).scalar()
    if newest is None:
        return [], after
    last_receipt = select(func.max(r.id)).scalar_subquery()
    keep = conn.execute(select(r.outbox_id).where(r.id == last_receipt)).scalar()
    active, runs = _in_force(conn)
    chosen: list[int] = []
    while len(chosen) < limit:
        rows = conn.execute(select(o.id, o.village_code, o.hazard, o.run_id)
                            .where(_finished(), o.updated_at < cutoff, o.id > after, o.id < newest)
                            .order_by(o.id).limit(_SCAN)).all()
        for row in rows:
            after = row.id
            if row.id == keep or (row.village_code, row.hazard) in active or (
                    not row.village_code and row.run_id in runs):
                continue
            chosen.append(row.id)
            if len(chosen) == limit:
                break
        if len(rows) < _SCAN:
            break
    return chosen, after


def _still_needed(conn: Connection, rows: list[dict[str, Any]], receipts: dict[int, list[dict[str, Any]]]
                  ) -> set[int]:
    """Ids among ``rows`` that an acknowledgement or an escalation still ties to the store."""
    o, w = t.outbox.c, t.warnings.c
    need: set[int] = set()
    acked = {r["id"]: max(x["at"] for x in receipts[r["id"]] if x["status"] == _ACK)
             for r in rows if any(x["status"] == _ACK for x in receipts.get(r["id"], ()))}
    if acked:  # the first message in force to each phone that was sent (an ack after it answers it)
        phones = {r["phone"] for r in rows if r["id"] in acked}
        first = dict(conn.execute(
            select(o.phone, func.min(o.created_at))
            .join(t.warnings, and_(w.village_code == o.village_code, w.hazard == o.hazard))
            .where(o.phone.in_(phones), o.status.in_(("sent", "delivered")), w.state == "active", w.level > 0)
            .group_by(o.phone)).all())
        for r in rows:
            since = first.get(r["phone"])
            if isinstance(since, str):  # SQLite returns the aggregate as stored text
                since = datetime.fromisoformat(since)
            if r["id"] in acked and since is not None and acked[r["id"]] >= since:
                need.add(r["id"])
    going = {r["id"] for r in rows} - need
    escalated = {r["id"]: int(r["change_key"].removeprefix("escalate-")) for r in rows
                 if r["kind"] == "escalation" and r["change_key"].removeprefix("escalate-").isdigit()}
    if escalated:
        present = {x[0] for x in conn.execute(select(o.id).where(o.id.in_(set(escalated.values()))))}
        need |= {i for i, orig in escalated.items() if orig in present and orig not in going}
    return need


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


def _target(conn: Connection, folder: Path, day: str) -> tuple[Path, int]:
    """The day's archive file and where its recorded content ends (a file changed outside riskmap —
    shorter than recorded — is left alone: the next free name ``outbox-DAY.N.jsonl.gz`` is used)."""
    a = t.archive_batches.c
    n = 0
    while True:
        name = f"outbox-{day}.jsonl.gz" if n == 0 else f"outbox-{day}.{n}.jsonl.gz"
        path = folder / name
        end = int(conn.execute(select(func.max(a.end_offset)).where(a.file == name)).scalar() or 0)
        size = path.stat().st_size if path.exists() else 0
        if size >= end:
            return path, end
        log.warning("archive %s: %d bytes but the store recorded %d; it was changed outside riskmap, "
                    "writing to the next name", path, size, end)
        n += 1


def _append(path: Path, end: int, data: bytes) -> None:
    """Write ``data`` at ``end`` (cutting off what a batch that never committed left) and fsync."""
    new = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.truncate(end)
        fh.seek(end)
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    if new:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _batch(conn: Connection, folder: Path, ids: Sequence[int], cutoff: datetime, now: datetime
           ) -> tuple[int, int, str]:
    """Archive the messages ``ids`` (those still finished and old enough) in ``conn``'s transaction."""
    o, r = t.outbox.c, t.receipts.c
    q = select(t.outbox).where(o.id.in_(list(ids)), _finished(), o.updated_at < cutoff).order_by(o.id)
    if conn.dialect.name == "postgresql":
        q = q.with_for_update()  # a message locked here cannot change, nor get a receipt, until the commit
    rows = [dict(x._mapping) for x in conn.execute(q)]
    receipts: dict[int, list[dict[str, Any]]] = {}
    for x in conn.execute(select(t.receipts).where(r.outbox_id.in_([m["id"] for m in rows]))
                          .order_by(r.at, r.id)):
        receipts.setdefault(x.outbox_id, []).append(dict(x._mapping))
    need = _still_needed(conn, rows, receipts)
    rows = [m for m in rows if m["id"] not in need]
    if not rows:
        return 0, 0, ""
    lines = []
    for m in rows:
        rec = [_jsonable({k: v for k, v in x.items() if k != "outbox_id"}) for x in receipts.get(m["id"], [])]
        lines.append(json.dumps({**_jsonable(m), "receipts": rec}, ensure_ascii=False) + "\n")
    data = gzip.compress("".join(lines).encode("utf-8"), mtime=0)
    path, start = _target(conn, folder, f"{now:%Y%m%d}")
    _append(path, start, data)
    ids = [m["id"] for m in rows]
    n_rec = sum(len(receipts.get(i, ())) for i in ids)
    conn.execute(insert(t.archive_batches).values(
        at=now, file=path.name, start_offset=start, end_offset=start + len(data),
        sha256=hashlib.sha256(data).hexdigest(), messages=len(rows), receipts=n_rec, first_id=ids[0],
        last_id=ids[-1]))
    conn.execute(update(t.outbox).where(o.id.in_(ids)).values(status=ARCHIVED, updated_at=now))
    conn.execute(delete(t.receipts).where(r.outbox_id.in_(ids)))
    conn.execute(delete(t.outbox).where(o.id.in_(ids)))
    return len(rows), n_rec, path.name


def archive_outbox(store: Any, folder: Path, cutoff: datetime, now: datetime, batch: int = 500) -> Archived:
    """Move finished messages older than ``cutoff`` (see the module docstring), with their receipts, from
    the store to ``folder/outbox-YYYYMMDD.jsonl.gz`` (``now``'s UTC date), one transaction per batch.

    Idempotent: what is archived has left the store, so a second call moves nothing more.
    """
    folder.mkdir(parents=True, exist_ok=True)
    messages = receipts = 0
    files: list[str] = []
    after = 0
    while True:
        with guard(f"{store.url} archive outbox"), store.engine.begin() as conn:
            if conn.dialect.name == "sqlite":  # the write lock first: what is chosen cannot change
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
            ids, after = _choose(conn, cutoff, after, batch)
            if not ids:
                break
            n, n_rec, name = _batch(conn, folder, ids, cutoff, now)
        messages, receipts = messages + n, receipts + n_rec
        if name and name not in files:
            files.append(name)
    return Archived(messages, receipts, tuple(files))


def archived_messages(store: Any, folder: Path) -> list[dict[str, Any]]:
    """Every archived message (with its ``receipts``) the store recorded, read back from ``folder``.

    Raises
    ------
    InputError
        When a recorded file is missing or a batch's bytes do not match their recorded sha256.
    """
    a = t.archive_batches.c
    with guard(f"{store.url} archive_batches"), store.engine.connect() as conn:
        batches = conn.execute(select(t.archive_batches).order_by(a.id)).all()
    out: list[dict[str, Any]] = []
    for b in batches:
        path = folder / b.file
        try:
            with path.open("rb") as fh:
                fh.seek(b.start_offset)
                data = fh.read(b.end_offset - b.start_offset)
        except OSError as exc:
            raise InputError(f"archive {path}: cannot read batch {b.id}: {exc.strerror or exc}") from None
        if hashlib.sha256(data).hexdigest() != b.sha256:
            raise InputError(f"archive {path}: batch {b.id} (bytes {b.start_offset}–{b.end_offset}) does not "
                             "match the sha256 the store recorded; the file was changed")
        out += [json.loads(line) for line in gzip.decompress(data).decode("utf-8").splitlines()]
    return out
