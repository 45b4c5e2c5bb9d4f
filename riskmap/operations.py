"""The guts of the store-facing commands, minus argument parsing ("tools" in rasterio's sense).

``riskmap issue / lift / silence / approve / confirm / outbox / receipts`` call these; each takes
an open :class:`~riskmap.store.Store` and explicit times (``now`` is a parameter, never the clock).

- :func:`store_url` — which store a command uses (``--db``, the config, ``./riskmap.sqlite``).
- :func:`target_villages` — ``--village`` codes and ``--feature LAYER:ID`` targets to village codes.
- :func:`manual_renderer` — the :class:`~riskmap.render.Renderer` that makes SMS and CAP for manual acts.
- :func:`find_run`, :func:`approve` — 领导审签: release a run's held messages; the approver and the wait
  are logged.
- :func:`acknowledge`, :func:`acknowledge_reply`, :func:`acknowledged_ids` — acknowledgements (a reply
  of 1/收到, or a phone call-back 叫应) stored as receipts with status ``acknowledged``.
- :func:`delivery_rates` — delivery and acknowledgement rates per township.
- :func:`outbox_view` — outbox rows as plain dicts with masked phone numbers.

Examples
--------
>>> import tempfile, pathlib
>>> from datetime import datetime, timezone
>>> from riskmap.store import OutboxRow, Store, outbox_key
>>> from riskmap.store.records import RunMeta, run_key
>>> store = Store.open(pathlib.Path(tempfile.mkdtemp()) / "riskmap.sqlite")
>>> t0 = datetime(2026, 7, 1, 8, tzinfo=timezone.utc)
>>> meta = RunMeta(now=t0, source="demo")
>>> run = store.begin_run(run_key(meta), meta, at=t0)
>>> row = OutboxRow(outbox_key(run.id, "c1", "13800001234", "sms"), "13800001234", "【防指】红色预警",
...                 contact_name="张三", village_code="330110001001", hazard="torrent", level=4,
...                 status="held")
>>> store.queue(run.id, [row], at=t0)
1
>>> a = approve(store, run.id[:8], "李主任", t0.replace(minute=20))
>>> a.released, a.wait.total_seconds()
(1, 1200.0)
>>> outbox_view(store.outbox())[0]["phone"]
'138****1234'
>>> store.close()
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import func, select

from riskmap.errors import InputError, PhoneNumberError
from riskmap.phones import mask_phone, normalize_phone
from riskmap.store import Store
from riskmap.store import tables as t
from riskmap.store.db import guard
from riskmap.store.records import OutboxRecord, RunRecord

log = logging.getLogger("riskmap.operations")

DEFAULT_DB = "riskmap.sqlite"
"""The store used when neither ``--db`` nor the config's ``store.url`` names one (in the working folder)."""
_MOBILE_IN_TEXT = re.compile(r"(?<!\d)(1[3-9]\d)(\d{4})(\d{4})(?!\d)")
ACK = "acknowledged"
"""The receipt status of an acknowledgement (reply 1/收到, or a call-back 叫应)."""

__all__ = ["ACK", "DEFAULT_DB", "Acknowledgement", "Approval", "acknowledge", "acknowledge_reply",
           "acknowledgements",
           "acknowledged_ids", "approve", "delivery_rates", "find_run", "manual_renderer", "mask_text",
           "outbox_view",
           "store_url", "target_villages"]


# -- which store ------------------------------------------------------------------------------------
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


# -- targets and rendering --------------------------------------------------------------------------
def target_villages(villages: Sequence[str], features: Sequence[str],
                    region: Any = None) -> tuple[tuple[str, ...], str]:
    """Village codes named by ``--village`` and ``--feature`` (in order, no repeats) and a target label.

    Without a region only 12-digit village codes are accepted; with one, each code must exist and
    features resolve with :func:`riskmap.targets.resolve_target` (a detention area → every village
    in it; ``reservoirs:ID`` → the villages of the reservoir's downstream zones).

    >>> target_villages(["330110001001", "330110001001"], [])
    (('330110001001',), 'village:330110001001')
    >>> target_villages([], ["detention_areas:D1"])
    Traceback (most recent call last):
    ...
    riskmap.errors.InputError: --feature detention_areas:D1: a feature target needs --region PATH
    """
    if not villages and not features:
        raise InputError("--village / --feature: name at least one village code or LAYER:ID feature")
    codes: list[str] = []
    for v in villages:
        code = v.strip().removeprefix("village:")
        if not (len(code) == 12 and code.isdigit()):
            raise InputError(f"--village {v!r}: a village code has 12 digits")
        if region is not None:
            from riskmap.targets import resolve_target

            resolve_target(region, code)  # raises when the region has no such village
        codes.append(code)
    for f in features:
        layer, sep, ident = f.partition(":")
        if not sep or not layer.strip() or not ident.strip():
            raise InputError(f"--feature {f!r}: write it as LAYER:ID, e.g. detention_areas:D1")
        if region is None:
            raise InputError(f"--feature {f}: a feature target needs --region PATH")
        from riskmap.targets import resolve_target

        try:
            codes.extend(resolve_target(region, f.strip()))
        except InputError as exc:
            raise InputError(f"--feature {exc}") from None
    label = ",".join([*(f"village:{c}" for c in dict.fromkeys(v.strip().removeprefix("village:")
                                                              for v in villages)), *features])
    return tuple(dict.fromkeys(codes)), label


def manual_renderer(region: Any, settings: Any, rules_dir: Any, drill: bool = False) -> Any:
    """The :class:`~riskmap.render.Renderer` for manual acts: the run's routing, templates and rules."""
    from riskmap.render import Renderer
    from riskmap.routing_rules import load_routing
    from riskmap.rules import load_rules, packaged_rules_dir
    from riskmap.templates import load_templates

    rules_dir = rules_dir if rules_dir is not None else packaged_rules_dir()
    local = Path(str(rules_dir))
    routing = load_routing(local if (local / "routing.yaml").is_file() else None)
    templates = load_templates(local if (local / "templates.yaml").is_file() else None,
                               language=settings.office.language, timezone=settings.office.timezone)
    return Renderer(region, routing, templates, settings, ruleset=load_rules(rules_dir), drill=drill)


# -- approval (领导审签) -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Approval:
    """What :func:`approve` did."""

    run_id: str
    operator: str
    at: datetime
    released: int
    """Messages moved from ``held`` to ``queued``."""
    wait: timedelta | None
    """From the first held message's queueing to the approval (None when nothing was held)."""
    already: bool = False
    """This operator had approved the run before (nothing new recorded)."""


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


def approve(store: Store, ref: str, operator: str, at: datetime, reason: str = "") -> Approval:
    """Approve a run (领导审签) and queue its held messages in one transaction; log approver and wait.

    The wait (first held message queued → approval) is stored in the approval's reason and logged.
    """
    if not operator.strip():
        raise InputError("--by: the approver's name is required")
    run = find_run(store, ref)
    with guard(f"{store.url} approve {run.id}"), store.engine.connect() as conn:
        first = conn.execute(select(func.min(t.outbox.c.created_at))
                             .where(t.outbox.c.run_id == run.id, t.outbox.c.status == "held")).scalar()
    if isinstance(first, str):  # SQLite returns the aggregate as stored text
        first = datetime.fromisoformat(first)
    wait = at - first if first is not None else None
    already = any(a["operator"] == operator and a["kind"] == "release" for a in store.approvals(run.id))
    if already or first is None:
        return Approval(run.id, operator, at, 0, wait, already)
    note = f"waited {wait.total_seconds():.0f} s" if wait is not None else ""
    released = store.approve_run(run.id, operator, at, reason="; ".join(x for x in (reason, note) if x))
    log.info("run %s approved by %s after %s: %d held message(s) released", run.id[:12], operator, wait,
             released)
    return Approval(run.id, operator, at, released, wait)


# -- acknowledgement ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Acknowledgement:
    """One acknowledged message."""

    outbox_id: int
    contact_name: str
    phone_masked: str
    village_code: str
    hazard: str
    level: int
    run_id: str
    via: str
    new: bool
    """False when the same acknowledgement was recorded before."""


def _phone_or_none(text: str) -> str | None:
    try:
        return normalize_phone(text)
    except PhoneNumberError:
        return None


def _latest_warning_message(store: Store, phone: str | None, name: str | None) -> OutboxRecord:
    with guard(f"{store.url} acknowledge"), store.engine.connect() as conn:
        q = select(t.outbox).where(t.outbox.c.level > 0, t.outbox.c.drill.is_(False))
        q = q.where(t.outbox.c.phone == phone) if phone else q.where(t.outbox.c.contact_name == name)
        rows = list(conn.execute(q.order_by(t.outbox.c.id.desc()).limit(500)))
        active = {(r.village_code, r.hazard) for r in conn.execute(
            select(t.warnings.c.village_code, t.warnings.c.hazard)
            .where(t.warnings.c.state == "active", t.warnings.c.level > 0))}
    who = mask_phone(phone) if phone else name
    if not rows:
        raise InputError(f"CONTACT {who}: no warning message to this contact in the store")
    if not phone and len({r.phone for r in rows}) > 1:
        raise InputError(f"CONTACT {who}: several phone numbers have this name; give the phone number")
    for r in rows:  # newest first: the most recent message about a warning still in force
        if (r.village_code, r.hazard) in active or (not r.village_code and active):
            return OutboxRecord(**{k: r._mapping[k] for k in OutboxRecord.__dataclass_fields__})
    raise InputError(f"CONTACT {who}: none of the warnings sent to this contact is still active")


def acknowledge(store: Store, contact: str, operator: str, at: datetime,
                via: str = "callback") -> Acknowledgement:
    """Record that ``contact`` (a phone number or a contact name) acknowledged their latest active warning.

    ``via`` is ``callback`` (叫应: ``operator`` phoned and confirmed) or ``reply`` (an SMS 1/收到).  The
    acknowledgement is a receipt with status :data:`ACK` on that outbox message, so it is idempotent
    per message, channel and operator and counts in :func:`delivery_rates`.
    """
    if not operator.strip():
        raise InputError("--by: the name of who confirmed is required")
    text = contact.strip()
    if not text:
        raise InputError("CONTACT: give a phone number or a contact name")
    phone = _phone_or_none(text) if any(c.isdigit() for c in text) else None
    if phone is None and sum(c.isdigit() for c in text) >= 7:
        raise InputError(f"CONTACT {mask_phone(text)}: not a valid phone number")
    rec = _latest_warning_message(store, phone, None if phone else text)
    new = store.add_receipt(rec.id, ACK, f"{via} by {operator}", at)
    log.info("%s acknowledged outbox %d (%s %s level %d) via %s by %s", mask_phone(rec.phone), rec.id,
             rec.village_code, rec.hazard, rec.level, via, operator)
    return Acknowledgement(rec.id, rec.contact_name, mask_phone(rec.phone), rec.village_code, rec.hazard,
                           rec.level, rec.run_id, via, new)


def acknowledge_reply(store: Store, phone: str, text: str, at: datetime) -> Acknowledgement | None:
    """For the receiver's ``on_reply``: a reply meaning 收到 acknowledges; None when it does not or when
    the number has no active warning."""
    from riskmap.receiver import is_acknowledgement

    if not is_acknowledgement(text):
        return None
    try:
        return acknowledge(store, phone, "sms reply", at, via="reply")
    except InputError as exc:
        log.info("reply not counted: %s", exc)
        return None


def acknowledged_ids(store: Store, outbox_ids: Sequence[int] | None = None) -> set[int]:
    """Outbox ids with an acknowledgement (for escalation: who has not answered)."""
    q = select(t.receipts.c.outbox_id).where(t.receipts.c.status == ACK).distinct()
    if outbox_ids is not None:
        q = q.where(t.receipts.c.outbox_id.in_(list(outbox_ids)))
    with guard(f"{store.url} acknowledged"), store.engine.connect() as conn:
        return {int(r[0]) for r in conn.execute(q)}


def acknowledgements(store: Store, village_code: str) -> list[dict[str, Any]]:
    """The acknowledgements of messages about one village, oldest first (for its audit trail).

    Each: ``at``, ``outbox_id``, ``run_id``, ``contact``, ``phone`` (masked), ``hazard``, ``level`` and
    ``how`` (e.g. ``callback by 王工``, ``reply by sms reply``).
    """
    q = (select(t.receipts.c.at, t.receipts.c.raw, t.outbox.c.id, t.outbox.c.run_id, t.outbox.c.contact_name,
                t.outbox.c.phone, t.outbox.c.hazard, t.outbox.c.level)
         .join(t.outbox, t.outbox.c.id == t.receipts.c.outbox_id)
         .where(t.receipts.c.status == ACK, t.outbox.c.village_code == village_code)
         .order_by(t.receipts.c.at, t.receipts.c.id))
    with guard(f"{store.url} acknowledgements {village_code}"), store.engine.connect() as conn:
        return [{"at": r.at, "outbox_id": r.id, "run_id": r.run_id, "contact": r.contact_name,
                 "phone": mask_phone(r.phone), "hazard": r.hazard, "level": r.level, "how": r.raw}
                for r in conn.execute(q)]


# -- views ------------------------------------------------------------------------------------------------
def delivery_rates(store: Store, run_id: str | None = None, townships: Mapping[str, str] | None = None,
                   drill: bool = False) -> pd.DataFrame:
    """Delivery and acknowledgement rates per township (the 9-digit prefix of the message's village).

    Columns ``township, name, messages, held, sent, delivered, failed, acknowledged, delivery_rate,
    ack_rate``: ``messages`` counts every message not held; ``sent`` those the gateway accepted (sent
    or delivered); ``delivery_rate = delivered / messages`` and ``ack_rate = acknowledged / messages``
    (NaN when no message).  Messages without a village (duty summaries) are under township ``""``.
    A last row ``total`` sums all.  Drill messages are counted only with ``drill=True`` (and then only
    they).  ``townships`` maps codes to names.
    """
    ack = select(t.receipts.c.outbox_id).where(t.receipts.c.status == ACK).distinct().subquery()
    dlv = select(t.receipts.c.outbox_id).where(t.receipts.c.status == "delivered").distinct().subquery()
    q = (select(t.outbox.c.village_code, t.outbox.c.status, ack.c.outbox_id.label("ack"),
                dlv.c.outbox_id.label("dlv"))
         .outerjoin(ack, ack.c.outbox_id == t.outbox.c.id).outerjoin(dlv, dlv.c.outbox_id == t.outbox.c.id)
         .where(t.outbox.c.drill.is_(drill)))
    if run_id:
        q = q.where(t.outbox.c.run_id == run_id)
    with guard(f"{store.url} receipts"), store.engine.connect() as conn:
        rows = pd.DataFrame(conn.execute(q).all(), columns=["village_code", "status", "ack", "dlv"])
    cols = ["township", "name", "messages", "held", "sent", "delivered", "failed", "acknowledged",
            "delivery_rate", "ack_rate"]
    names = dict(townships or {})
    rows["township"] = rows["village_code"].fillna("").str[:9]
    rows["held"] = rows["status"] == "held"
    rows["messages"] = ~rows["held"]
    rows["delivered"] = (rows["status"] == "delivered") | rows["dlv"].notna()
    rows["sent"] = rows["status"].isin(["sent", "delivered"]) | rows["delivered"]
    rows["failed"] = (rows["status"] == "failed") & ~rows["delivered"]
    rows["acknowledged"] = rows["ack"].notna()
    counts = ["messages", "held", "sent", "delivered", "failed", "acknowledged"]
    table = rows.groupby("township", sort=True)[counts].sum().astype(int).reset_index()
    table.loc[len(table)] = ["total", *[int(table[c].sum()) for c in counts]]
    table["name"] = [names.get(c, "合计" if c == "total" else "") for c in table["township"]]
    m = table["messages"].where(table["messages"] > 0)
    table["delivery_rate"] = table["delivered"] / m
    table["ack_rate"] = table["acknowledged"] / m
    return table[cols]


def mask_text(text: str) -> str:
    """Mask every mainland mobile number inside a text (a message may quote a duty phone).

    >>> mask_text("请拨13800001234或0571-87654321")
    '请拨138****1234或0571-87654321'
    """
    return _MOBILE_IN_TEXT.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)


def outbox_view(records: Sequence[OutboxRecord]) -> list[dict[str, Any]]:
    """Outbox rows as plain dicts for display or JSON; phone numbers masked (138****0000)."""
    out = []
    for r in records:
        out.append({"id": r.id, "run": r.run_id, "status": r.status, "attempts": r.attempts,
                    "contact": r.contact_name, "phone": mask_phone(r.phone), "role": r.role,
                    "village": r.village_code, "hazard": r.hazard, "level": r.level, "segments": r.segments,
                    "drill": r.drill, "next_attempt_at": r.next_attempt_at, "text": mask_text(r.text)})
    return out
