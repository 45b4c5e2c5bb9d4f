"""A small HTTP receiver for delivery reports and replies from phones (127.0.0.1, token-protected).

``GET /dlr?token=T&id=OUTBOX_ID&status=%d&…`` — a Kannel delivery report (the Kannel
gateway's ``dlr-url`` points here; see :meth:`Receiver.dlr_url`).  Kannel's status bits
become receipt statuses (:data:`KANNEL_DLR`) and go to
:meth:`riskmap.store.Store.add_receipt`, which records the same report only once and moves
the message to ``delivered``/``failed``.

``GET /mo?token=T&from=%p&text=%a`` — a reply (mobile-originated SMS; Kannel's
``sms-service`` ``get-url``) handed to ``on_reply(phone, text)``; :func:`is_acknowledgement`
tells whether it means 收到.

Every request without the right token gets 403; phone numbers are masked in the log.

Examples
--------
>>> kannel_status("1"), kannel_status("16"), kannel_status("8")
('delivered', 'failed', 'smsc')
>>> is_acknowledgement(" １ "), is_acknowledgement("收到!"), is_acknowledgement("2")
(True, True, False)
"""

from __future__ import annotations

import hashlib
import hmac
import http.server
import logging
import queue
import threading
import unicodedata
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from riskmap.errors import RiskmapError
from riskmap.gateways.base import mask

log = logging.getLogger("riskmap.receiver")

KANNEL_DLR = {1: "delivered", 2: "failed", 4: "queued", 8: "smsc", 16: "failed"}
"""Kannel dlr-mask bits → receipt status (1 delivered to phone, 2 not delivered, 4 queued on
SMSC, 8 accepted by SMSC, 16 rejected by SMSC)."""
_ACK = {"1", "收到", "已收到", "收", "ok", "好", "明白"}


def kannel_status(value: str) -> str:
    """The receipt status of a Kannel ``%d`` value (unknown values are kept as ``kannel:N``)."""
    try:
        return KANNEL_DLR.get(int(value), f"kannel:{value}")
    except ValueError:
        return f"kannel:{value}"


def is_acknowledgement(text: str) -> bool:
    """Whether a reply means "received" (1 / 收到 …), ignoring width, case, spaces and punctuation."""
    t = unicodedata.normalize("NFKC", text).strip().lower()
    t = "".join(c for c in t if not unicodedata.category(c).startswith(("P", "Z")))
    return t in _ACK


@dataclass
class _Job:
    outbox_id: int
    status: str
    raw: str
    at: datetime
    new: bool | None = False
    """True new, False a repeat, None about no message of this store."""
    error: str = ""
    done: threading.Event = field(default_factory=threading.Event)


def add_receipts(store: Any, items: Sequence[tuple[int, str, str, datetime]]) -> list[bool | None]:
    """Record many delivery reports in ONE transaction; per item: new, a repeat, or unknown.

    ``True`` for a new report, ``False`` for a repeat (the same report again), ``None`` for a
    report about no message of this store (archived long ago, or never sent from here): it is
    not recorded and does not stop the others.  Does what
    :meth:`riskmap.store.Store.add_receipt` does (same digest, same status update) for the whole
    batch at once.
    """
    if not hasattr(store, "engine"):  # a store-like object without a database: one by one
        return [bool(store.add_receipt(*it)) for it in items]
    from sqlalchemy import bindparam, select, update
    from sqlalchemy.dialects import postgresql, sqlite

    from riskmap.store import tables as t
    from riskmap.store.db import guard
    from riskmap.store.outbox import NEVER

    digests = [hashlib.sha256(f"{oid}|{status}|{raw}".encode()).hexdigest() for oid, status, raw, _ in items]
    with guard(f"{store.url} receipts"), store.engine.begin() as conn:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        ids = sorted({oid for oid, *_ in items})
        known: set[int] = set()
        have: set[str] = set()
        o, r = t.outbox.c, t.receipts.c
        for i in range(0, max(len(ids), len(digests)), 500):
            known.update(conn.execute(select(o.id).where(o.id.in_(ids[i:i + 500]))).scalars())
            have.update(conn.execute(select(r.digest).where(r.digest.in_(digests[i:i + 500]))).scalars())
        rows, seen = [], set(have)
        for (oid, status, raw, at), dig in zip(items, digests, strict=True):
            if dig not in seen and oid in known:
                seen.add(dig)
                rows.append({"outbox_id": oid, "status": status, "raw": raw, "digest": dig, "at": at})
        if rows:  # plain executemany (no RETURNING): the fast path; a racing twin is ignored
            conn.execute(dialect.insert(t.receipts).on_conflict_do_nothing(index_elements=["digest"]), rows)
        for status, parked in (("delivered", None), ("failed", NEVER)):   # a failed report is final
            final = [{"o_id": r["outbox_id"], "o_at": r["at"]} for r in rows if r["status"] == status]
            if final:
                values: dict[str, Any] = {"status": status, "updated_at": bindparam("o_at")}
                if parked is not None:
                    values["next_attempt_at"] = parked
                conn.execute(update(t.outbox).where(o.id == bindparam("o_id")).values(**values), final)
    new = {r["digest"] for r in rows}
    out: list[bool | None] = []
    first: set[str] = set()
    for (oid, *_), dig in zip(items, digests, strict=True):
        out.append(None if oid not in known else (dig in new and dig not in first))
        first.add(dig)
    return out


class Receiver:
    """Serve ``/dlr`` and ``/mo`` on ``host:port`` (port 0 = a free one) in a background thread."""

    def __init__(self, store: Any, token: str, host: str = "127.0.0.1", port: int = 0,
                 on_reply: Callable[[str, str], None] | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        if not token:
            raise ValueError("the receiver needs a token")
        self.store, self.token, self.on_reply, self.clock = store, token, on_reply, clock
        self.counts = {"receipts": 0, "duplicates": 0, "unknown": 0, "replies": 0, "refused": 0}
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._writer: threading.Thread | None = None
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                code, body = outer.handle(self.path)
                data = body.encode("utf-8")
                self.send_response(code)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.host, self.port = str(self.server.server_address[0]), int(self.server.server_address[1])
        self._thread: threading.Thread | None = None

    def dlr_url(self) -> str:
        """The Kannel gateway's ``dlr_url`` (``{id}`` is the outbox id)."""
        tok = urllib.parse.quote(str(self.token), safe="")
        return f"http://{self.host}:{self.port}/dlr?token={tok}&id={{id}}"

    def mo_url(self) -> str:
        """Kannel ``sms-service`` ``get-url`` for replies."""
        tok = urllib.parse.quote(str(self.token), safe="")
        return f"http://{self.host}:{self.port}/mo?token={tok}&from=%p&text=%a"

    def handle(self, path: str) -> tuple[int, str]:
        """Answer one request path: ``(HTTP status, body)``."""
        parts = urllib.parse.urlsplit(path)
        q = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        if not hmac.compare_digest(q.get("token", "").encode(), self.token.encode()):
            self.counts["refused"] += 1
            return 403, "bad token"
        if parts.path == "/dlr":
            try:
                outbox_id = int(q.get("id", ""))
            except ValueError:
                return 400, "id must be an outbox id"
            status = kannel_status(q.get("status", ""))
            raw = urllib.parse.urlencode({k: v for k, v in q.items() if k != "token"})
            job = _Job(outbox_id, status, raw, self.clock())
            self._queue.put(job)
            if not job.done.wait(30.0) or job.error:
                log.error("receipt for outbox %s not recorded: %s", outbox_id, job.error or "time-out")
                return 503, "store unavailable"
            if job.new is None:        # answered 200 all the same: the gateway must not retry it
                log.warning("receipt for outbox %s ignored: no such message (archived, or not sent from "
                            "this store)", outbox_id)
            with self._lock:
                self.counts["unknown" if job.new is None else "receipts" if job.new else "duplicates"] += 1
            return 200, "ok" if job.new is not None else "unknown message"
        if parts.path == "/mo":
            phone, text = q.get("from", ""), q.get("text", "")
            self.counts["replies"] += 1
            log.info("reply from %s (%d characters)", mask(phone), len(text))
            if self.on_reply is not None:
                self.on_reply(phone, text)
            return 200, ""
        return 404, "unknown path"

    def _write_loop(self) -> None:
        """Group commit: every receipt waiting is written in one transaction, then answered."""
        while True:
            job = self._queue.get()
            if job is None:
                return
            jobs = [job]
            while len(jobs) < 500:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                jobs.append(nxt)
            try:
                news = add_receipts(self.store, [(j.outbox_id, j.status, j.raw, j.at) for j in jobs])
            except RiskmapError as exc:
                for j in jobs:
                    j.error = str(exc)
                    j.done.set()
                continue
            for j, new in zip(jobs, news, strict=True):
                j.new = new
                j.done.set()

    def start(self) -> Receiver:
        """Serve in a background thread (and write receipts in another)."""
        self._writer = threading.Thread(target=self._write_loop, name="riskmap-receipts", daemon=True)
        self._writer.start()
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                        name="riskmap-receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join(5)
            self._thread = None
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join(5)
            self._writer = None
        self.server.server_close()
