"""The warning store: runs, warnings, the append-only event log, silences, approvals, outbox, CAP.

One code path for SQLite (the embedded default; WAL; the file is created mode 0600) and
PostgreSQL (``postgresql://…``).  :meth:`Store.commit_decision` writes state, events,
outbox and CAP messages in ONE transaction, and is idempotent: every row has a unique
key, so re-applying the same decision writes nothing new.

Examples
--------
>>> import tempfile, pathlib
>>> from datetime import datetime, timezone
>>> from riskmap.lifecycle import decide, LifecyclePolicy
>>> from riskmap.store import RunMeta, Store, run_key
>>> db = pathlib.Path(tempfile.mkdtemp()) / "riskmap.sqlite"
>>> store = Store.open(f"sqlite:///{db}")
>>> meta = RunMeta(now=datetime(2026, 7, 1, tzinfo=timezone.utc), source="demo", rules_hash="r1")
>>> run = store.begin_run(run_key(meta), meta)
>>> run.status
'started'
>>> store.commit_decision(run.id, decide({}, None, meta.now, LifecyclePolicy()))
{'events': 0, 'outbox': 0, 'cap': 0, 'superseded': 0}
>>> store.begin_run(run.id, meta) is None       # done already: nothing to do
True
>>> oct(db.stat().st_mode & 0o777)
'0o600'
>>> store.close()
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, create_engine, event, make_url, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL

from riskmap.errors import InputError, ServiceUnavailable, StoreError
from riskmap.lifecycle import Change, Decision, Key, Silence, WarningState
from riskmap.store import tables as t
from riskmap.store.db import guard, insert_ignore, insert_ignore_returning
from riskmap.store.migrations import migrate
from riskmap.store.outbox import OutboxMixin, supersede
from riskmap.store.records import CapRow, EventRecord, OutboxRow, RunMeta, RunRecord, row_dict
from riskmap.store.silences import SilenceRecord, audit_entries, read_silences, silence_row

_STATE_FIELDS = [f.name for f in dataclasses.fields(WarningState)]


def _clock() -> datetime:
    return datetime.now(UTC)


def _url(url: str | Path) -> URL:
    text = str(url)
    if "://" not in text:
        text = f"sqlite:///{Path(text).expanduser().resolve()}"
    elif text.startswith("postgres://"):  # the scheme many tools print; SQLAlchemy wants postgresql://
        text = "postgresql://" + text.removeprefix("postgres://")
    try:
        return make_url(text)
    except Exception as exc:  # noqa: BLE001 - sqlalchemy raises ArgumentError
        raise InputError(f"--db {text!r}: not a database URL ({exc})") from None


def _prepare_sqlite_file(url: URL) -> None:
    db = url.database
    if not db or db == ":memory:":
        return
    path = Path(db)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)


def _state(row: Any) -> WarningState:
    m = row._mapping
    return WarningState(**{k: m[k] for k in _STATE_FIELDS})


def _run(row: Any) -> RunRecord:
    m = row._mapping
    return RunRecord(m["id"], m["status"], m["now"], m["source"], m["drill"], m["attempts"], m["started_at"],
                     m["finished_at"], m["failure_reason"],
                     {k: m[f"{k}_hash"] for k in ("forecast", "observed", "rules", "region")})


class Store(OutboxMixin):
    """The durable store; open it with :meth:`Store.open`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str | Path) -> Store:
        """Open (create, migrate) a store: ``sqlite:///path``, a plain path, or ``postgresql://…``."""
        u = _url(url)
        kwargs: dict[str, Any] = {"future": True}
        if u.get_backend_name() == "sqlite":
            try:
                _prepare_sqlite_file(u)
            except OSError as exc:
                raise ServiceUnavailable(f"store {u.database}: cannot create the database file: "
                                         f"{exc.strerror or exc}") from None
            kwargs["connect_args"] = {"timeout": 10}
        elif u.get_backend_name() == "postgresql":
            if u.drivername == "postgresql" and importlib.util.find_spec("psycopg") is None:
                u = u.set(drivername="postgresql+psycopg2")  # SQLAlchemy 2.1 defaults to psycopg 3
            kwargs.update(pool_pre_ping=True, connect_args={"connect_timeout": 5})
        else:
            raise InputError(f"--db {u.render_as_string(hide_password=True)}: only sqlite:/// and "
                             "postgresql:// stores are supported")
        try:
            engine = create_engine(u, **kwargs)
        except ModuleNotFoundError as exc:
            raise StoreError(f"store: database driver missing ({exc.name}); install psycopg2-binary"
                             ) from None
        if u.get_backend_name() == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        store = cls(engine)
        with guard(store.url):
            migrate(engine)
        return store

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    # -- runs -------------------------------------------------------------------------------------
    def begin_run(self, run_key: str, meta: RunMeta, at: datetime | None = None) -> RunRecord | None:
        """Record a run as started; None when this run is already done (nothing to do)."""
        at = at or _clock()
        with guard(f"{self.url} begin_run {run_key}"), self.engine.begin() as conn:
            row = conn.execute(select(t.runs).where(t.runs.c.id == run_key)).first()
            if row is not None and row.status == "done":
                return None
            if row is not None:
                conn.execute(update(t.runs).where(t.runs.c.id == run_key).values(
                    status="started", failure_reason="", started_at=at, finished_at=None, duration_s=None,
                    attempts=row.attempts + 1))
            else:
                conn.execute(t.runs.insert().values(
                    id=run_key, source=meta.source, status="started", failure_reason="", now=meta.now,
                    forecast_hash=meta.forecast_hash, observed_hash=meta.observed_hash,
                    rules_hash=meta.rules_hash, region_hash=meta.region_hash, drill=meta.drill,
                    operator=meta.operator, attempts=1, created_at=at, started_at=at,
                    meta=json.dumps(dict(meta.extra), ensure_ascii=False, default=str)))
            return _run(conn.execute(select(t.runs).where(t.runs.c.id == run_key)).one())

    def run(self, run_id: str) -> RunRecord | None:
        """One run, or None."""
        with guard(f"{self.url} run {run_id}"), self.engine.connect() as conn:
            row = conn.execute(select(t.runs).where(t.runs.c.id == run_id)).first()
            return None if row is None else _run(row)

    def runs(self, limit: int = 50) -> list[RunRecord]:
        """The latest runs, newest first."""
        with guard(f"{self.url} runs"), self.engine.connect() as conn:
            rows = conn.execute(select(t.runs).order_by(t.runs.c.started_at.desc()).limit(limit))
            return [_run(r) for r in rows]

    def last_run_at(self) -> datetime | None:
        """``now`` of the newest finished automatic run (manual acts and drills excluded)."""
        with guard(f"{self.url} last_run_at"), self.engine.connect() as conn:
            q = select(t.runs.c.now).where(t.runs.c.status == "done", t.runs.c.drill.is_(False),
                                           t.runs.c.source != "manual")
            return conn.execute(q.order_by(t.runs.c.now.desc()).limit(1)).scalar()

    def fail_run(self, run_id: str, reason: str, at: datetime | None = None) -> None:
        """Mark a run failed with its reason; nothing else changes."""
        at = at or _clock()
        with guard(f"{self.url} fail_run {run_id}"), self.engine.begin() as conn:
            row = conn.execute(select(t.runs.c.started_at).where(t.runs.c.id == run_id)).first()
            if row is None:
                raise StoreError(f"store {self.url}: no run {run_id!r} to mark failed")
            conn.execute(update(t.runs).where(t.runs.c.id == run_id, t.runs.c.status != "done").values(
                status="failed", failure_reason=reason, finished_at=at,
                duration_s=(at - row.started_at).total_seconds()))

    # -- warnings ---------------------------------------------------------------------------------
    def current_warnings(self, active_only: bool = False) -> dict[Key, WarningState]:
        """Every stored warning by ``(village_code, hazard)`` (the lifecycle's ``previous``)."""
        return {(w.village_code, w.hazard): w for w in self.warnings(active=active_only)}

    def warnings(self, active: bool = False, village: str | None = None) -> list[WarningState]:
        """Warnings sorted by village and hazard; ``active`` keeps those in force."""
        q = select(t.warnings).order_by(t.warnings.c.village_code, t.warnings.c.hazard)
        if active:
            q = q.where(t.warnings.c.state == "active", t.warnings.c.level > 0)
        if village:
            q = q.where(t.warnings.c.village_code == village)
        with guard(f"{self.url} warnings"), self.engine.connect() as conn:
            return [_state(r) for r in conn.execute(q)]

    def commit_decision(self, run_id: str, decision: Decision,
                        outbox_rows: Iterable[OutboxRow | Mapping[str, Any]] = (),
                        cap_rows: Iterable[CapRow] = (), at: datetime | None = None,
                        on_commit: Callable[[Connection, str], None] | None = None) -> dict[str, int]:
        """Write the decision's states and events, the outbox and CAP rows, and mark the run done.

        One transaction: on any error nothing is written (the run stays ``started``; call
        :meth:`fail_run`).  A run already done writes nothing.  Returns counts of new rows.
        A drill run (``RunMeta.drill``) writes its events (flagged), outbox and CAP rows but never
        changes the stored warnings.  Older pending messages the new ``queued`` ones make obsolete are
        marked ``superseded`` in the same transaction (:func:`riskmap.store.outbox.supersede`); a
        ``held`` message supersedes nothing until its approval (:meth:`release_run`).
        ``on_commit(conn, run_id)``, when given, runs last in the transaction (``riskmap serve`` marks
        the request whose act this is: :func:`riskmap.store.requests.mark_applied`); it is not called
        for a run already done.
        """
        at = at or _clock()
        outbox = [row_dict(r) for r in outbox_rows]
        caps = list(cap_rows)
        with guard(f"{self.url} commit run {run_id}"), self.engine.begin() as conn:
            if conn.dialect.name == "sqlite":  # take the write lock now, so the status check below is serial
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            run = conn.execute(select(t.runs).where(t.runs.c.id == run_id).with_for_update()).first()
            if run is None:
                raise StoreError(f"store {self.url}: commit for unknown run {run_id!r}; call begin_run first")
            if run.status == "done":
                return {"events": 0, "outbox": 0, "cap": 0, "superseded": 0}
            drill = bool(run.drill)
            if not drill:  # a drill exercises messages; it never changes the office's warnings
                self._write_states(conn, run_id, decision, at)
            hashes = json.dumps({k: run._mapping[f"{k}_hash"] for k in ("forecast", "observed", "region")})
            pre = "d" if drill else ""
            ev = [_event_row(c, run_id, run.rules_hash, hashes, at, False, pre) for c in decision.changes]
            ev += [_event_row(c, run_id, run.rules_hash, hashes, at, True, pre) for c in decision.suppressed]
            n_ev = insert_ignore(conn, t.events, ev, "key")
            ob = [{**r, "run_id": run_id, "created_at": at, "updated_at": at} for r in outbox]
            new_ob = insert_ignore_returning(conn, t.outbox, ob, "idempotency_key", "id")
            ids = {r.idempotency_key: r.id for r in new_ob}
            n_ob = len(new_ob)
            due = [{**r, "id": ids[r["idempotency_key"]]} for r in ob  # held ones supersede on approval
                   if r["idempotency_key"] in ids and r.get("status", "queued") != "held"]
            n_sup = supersede(conn, run_id, due, at) if due else 0
            n_cap = insert_ignore(conn, t.cap_messages, [_cap_row(c, run_id, at) for c in caps], "identifier")
            links = [{"k_code": code, "k_hazard": c.hazard, "cap_identifier": c.identifier,
                      "cap_sent": c.sent} for c in caps for code in c.village_codes]
            if links and not drill:
                conn.execute(update(t.warnings).where(t.warnings.c.village_code == bindparam("k_code"),
                                                      t.warnings.c.hazard == bindparam("k_hazard"))
                             .values(cap_identifier=bindparam("cap_identifier"),
                                     cap_sent=bindparam("cap_sent")),
                             links)
            conn.execute(update(t.runs).where(t.runs.c.id == run_id).values(
                status="done", finished_at=at, duration_s=(at - run.started_at).total_seconds()))
            if on_commit is not None:
                on_commit(conn, run_id)
            return {"events": n_ev, "outbox": n_ob, "cap": n_cap, "superseded": n_sup}

    @staticmethod
    def _write_states(conn: Connection, run_id: str, decision: Decision, at: datetime) -> None:
        old = {(r.village_code, r.hazard): _state(r) for r in conn.execute(select(t.warnings))}
        fields = [k for k in _STATE_FIELDS if k not in ("cap_identifier", "cap_sent")]
        updates: list[dict[str, Any]] = []
        inserts: list[dict[str, Any]] = []
        for key, st in decision.new_states.items():
            if old.get(key) == st:
                continue
            values = {k: getattr(st, k) for k in fields}
            values.update(last_run=run_id, updated_at=at)
            if key in old:
                updates.append({**values, "k_code": key[0], "k_hazard": key[1]})
            else:
                inserts.append({**values, "cap_identifier": st.cap_identifier, "cap_sent": st.cap_sent})
        if inserts:
            conn.execute(t.warnings.insert(), inserts)
        if updates:
            stmt = (update(t.warnings)
                    .where(t.warnings.c.village_code == bindparam("k_code"),
                           t.warnings.c.hazard == bindparam("k_hazard"))
                    .values({k: bindparam(k) for k in [*fields, "last_run", "updated_at"]
                             if k not in ("village_code", "hazard")}))
            conn.execute(stmt, updates)

    # -- audit ------------------------------------------------------------------------------------
    def history(self, village_code: str) -> list[EventRecord]:
        """The full audit trail of one village: every event, every silence covering it and its clearing
        (kind ``unsilence``), oldest first."""
        with guard(f"{self.url} history {village_code}"), self.engine.connect() as conn:
            rows = conn.execute(select(t.events, t.runs.c.drill)
                                .join(t.runs, t.runs.c.id == t.events.c.run_id)
                                .where(t.events.c.village_code == village_code)
                                .order_by(t.events.c.at, t.events.c.id)).all()
            out = [EventRecord(r.at, r.kind, r.village_code, r.hazard, r.old_level, r.new_level, r.reason,
                               r.rule, r.run_id, r.operator, r.manual, r.suppressed, r.rules_hash,
                               json.loads(r.input_hashes or "{}"), r.valid_until, bool(r.drill))
                   for r in rows]
            silenced = [e for rec in read_silences(conn, village=village_code)
                        for e in audit_entries(rec, village_code)]
        return sorted(silenced + out, key=lambda e: e.at)  # stable: a silence precedes events at its time

    # -- silences and approvals -----------------------------------------------------------------------
    def add_silence(self, silence: Silence) -> str:
        """Store a silence (idempotent); returns its id."""
        with guard(f"{self.url} add_silence"), self.engine.begin() as conn:
            insert_ignore(conn, t.silences, [silence_row(silence)], "id")
        return silence.id

    def clear_silence(self, silence_id: str, operator: str, at: datetime | None = None,
                      reason: str = "") -> bool:
        """End a silence early, recording who, when and why; False if unknown or already cleared."""
        with guard(f"{self.url} clear_silence"), self.engine.begin() as conn:
            res = conn.execute(update(t.silences).where(t.silences.c.id == silence_id,
                                                        t.silences.c.cleared_at.is_(None))
                               .values(cleared_at=at or _clock(), cleared_by=operator, cleared_reason=reason))
            return bool(res.rowcount)

    def silences(self, now: datetime | None = None) -> list[Silence]:
        """Silences not cleared (and, given ``now``, in force at ``now``)."""
        with guard(f"{self.url} silences"), self.engine.connect() as conn:
            out = read_silences(conn, cleared=False)
        return [r.silence for r in out if now is None or r.state(now) == "active"]

    def silence_records(self, prefix: str = "") -> list[SilenceRecord]:
        """Every stored silence, cleared ones included (with who cleared it and why), oldest first;
        only those whose id starts with ``prefix`` when given."""
        with guard(f"{self.url} silence_records"), self.engine.connect() as conn:
            return read_silences(conn, prefix=prefix)

    def add_approval(self, subject: str, kind: str, decision: str, operator: str, reason: str = "",
                     at: datetime | None = None) -> bool:
        """Record an approval (``approved``/``rejected``); False when this operator already decided."""
        if decision not in ("approved", "rejected"):
            raise StoreError(f"store: approval decision must be approved or rejected, got {decision!r}")
        with guard(f"{self.url} add_approval"), self.engine.begin() as conn:
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            stmt = dialect.insert(t.approvals).values(subject=subject, kind=kind, decision=decision,
                                                      operator=operator, reason=reason, at=at or _clock())
            return bool(conn.execute(stmt.on_conflict_do_nothing()).rowcount)

    def approvals(self, subject: str) -> list[dict[str, Any]]:
        """Approvals of one subject, oldest first."""
        with guard(f"{self.url} approvals"), self.engine.connect() as conn:
            rows = conn.execute(select(t.approvals).where(t.approvals.c.subject == subject)
                                .order_by(t.approvals.c.at, t.approvals.c.id))
            return [dict(r._mapping) for r in rows]

    def cap_messages(self, run_id: str | None = None) -> list[CapRow]:
        """Stored CAP messages (of one run), in sending order."""
        q = select(t.cap_messages).order_by(t.cap_messages.c.sent, t.cap_messages.c.identifier)
        if run_id:
            q = q.where(t.cap_messages.c.run_id == run_id)
        with guard(f"{self.url} cap_messages"), self.engine.connect() as conn:
            return [CapRow(r.identifier, r.msg_type, r.status, r.sent, tuple(json.loads(r.village_codes)),
                           r.hazard, r.xml, tuple(json.loads(r.change_keys)), r.references)
                    for r in conn.execute(q)]


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def _event_row(c: Change, run_id: str, rules_hash: str, hashes: str, at: datetime,
               suppressed: bool, prefix: str = "") -> dict[str, Any]:
    nan = (lambda v: None if v != v else v)  # noqa: E731 - NaN -> NULL
    return {"key": prefix + ("s" if suppressed else "") + c.key, "run_id": run_id, "kind": c.kind,
            "suppressed": suppressed, "village_code": c.village_code, "hazard": c.hazard,
            "old_level": c.old_level, "new_level": c.new_level, "at": c.at, "valid_until": c.valid_until,
            "rule": c.rule, "reason": c.reason, "value_mm": nan(c.value_mm),
            "threshold_mm": nan(c.threshold_mm), "window_h": nan(c.window_h), "window_end": c.window_end,
            "rules_hash": rules_hash, "input_hashes": hashes, "manual": c.manual, "operator": c.operator,
            "internal": c.internal, "action": c.action,
            "recorded_at": at}


def _cap_row(c: CapRow, run_id: str, at: datetime) -> dict[str, Any]:
    return {"identifier": c.identifier, "run_id": run_id, "msg_type": c.msg_type, "status": c.status,
            "sent": c.sent, "village_codes": json.dumps(list(c.village_codes)), "hazard": c.hazard,
            "change_keys": json.dumps(list(c.change_keys)), "references": c.references, "xml": c.xml,
            "created_at": at}
