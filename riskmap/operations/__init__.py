"""The guts of the store-facing commands, minus argument parsing ("tools" in rasterio's sense).

``riskmap issue / lift / silence / unsilence / approve / confirm / outbox / receipts`` call these; each takes
an open :class:`~riskmap.store.Store` and explicit times (``now`` is a parameter, never the clock).

- :func:`store_url` — which store a command uses (``--db``, the config, ``./riskmap.sqlite``).
- :func:`target_villages` — ``--village`` codes and ``--feature LAYER:ID`` targets to village codes.
- :func:`manual_renderer` — the :class:`~riskmap.render.Renderer` that makes SMS and CAP for manual acts.
- :class:`ActParams`, :func:`perform_act` — a manual issue or lift as given, and its one path (the CLI's,
  or ``riskmap serve``'s for a request handed to it).
- :func:`find_run`, :func:`approve` — 领导审签: release a run's held messages; the approver and the wait
  are logged.
- :func:`acknowledge`, :func:`acknowledge_reply`, :func:`acknowledged_ids`, :func:`acknowledgements` —
  acknowledgements (a reply of 1/收到, or a phone call-back 叫应) stored as receipts with status
  ``ack``; :func:`unacknowledged` — messages due for escalation.
- :func:`delivery_rates` — delivery and acknowledgement rates per township.
- :func:`outbox_view` — outbox rows as plain dicts with masked phone numbers.
- :func:`find_silence`, :func:`unsilence` — a silence named by a prefix of its id; ending it early, with
  the operator and the reason recorded once.

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

from riskmap.operations.acks import (
    ACK,
    Acknowledgement,
    acknowledge,
    acknowledge_reply,
    acknowledged_ids,
    acknowledgements,
    unacknowledged,
)
from riskmap.operations.acts import ActParams, manual_renderer, perform_act, target_villages
from riskmap.operations.approval import Approval, approve
from riskmap.operations.silences import Unsilenced, find_silence, unsilence
from riskmap.operations.stores import DEFAULT_DB, find_run, sqlite_path, store_url
from riskmap.operations.views import OutboxFilter, delivery_rates, list_outbox, mask_text, outbox_view

__all__ = ["ACK", "DEFAULT_DB", "Acknowledgement", "ActParams", "Approval", "OutboxFilter", "Unsilenced",
           "acknowledge", "acknowledge_reply", "acknowledged_ids", "acknowledgements", "approve",
           "delivery_rates", "find_run", "find_silence", "list_outbox", "manual_renderer", "mask_text",
           "outbox_view", "perform_act", "sqlite_path", "store_url", "target_villages", "unacknowledged",
           "unsilence"]
