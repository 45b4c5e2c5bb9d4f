"""The escalation check (#6 逐级叫应): orange/red messages to a village head nobody acknowledged in time go to
the next person up — the township duty officer, else the county's.

:func:`escalate_due` asks the store which messages are due
(:func:`riskmap.operations.acks.unacknowledged`, after ``routing.escalation.after_min`` minutes),
builds one message per officer (:func:`riskmap.escalation.escalation_rows`) and queues them under
the run of the escalated message; their idempotency key names that message, so a check repeated
— or re-run after a crash — queues nothing twice.

Examples
--------
>>> import tempfile, pathlib
>>> from datetime import datetime, timezone
>>> from riskmap.store import Store
>>> store = Store.open(pathlib.Path(tempfile.mkdtemp()) / "riskmap.sqlite")
>>> from riskmap.routing_rules import load_routing
>>> escalate_due(store, load_routing(), None, datetime(2026, 7, 1, tzinfo=timezone.utc), signature="防指")
0
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from riskmap.errors import DataWarning


def escalate_due(store: Any, routing: Any, renderer: Callable[[], Any] | None, now: datetime, *,
                 signature: str) -> int:
    """Queue escalations of the messages due at ``now``; how many new messages were queued.

    ``routing`` are the routing rules (``routing.escalation``; None: the defaults, 30 minutes,
    orange and red, village head); ``renderer()`` gives the service's
    :class:`~riskmap.render.Renderer` (region, contacts, templates) — called only when something is due.
    """
    from riskmap.operations.acks import unacknowledged

    levels: tuple[int, ...]
    if routing is None:
        esc_after, levels, role = timedelta(minutes=30), (3, 4), "village_head"
    else:
        esc = routing.escalation
        esc_after, role = timedelta(minutes=esc.after_min), esc.from_role
        levels = tuple(int(x) for x in esc.levels)
    due = unacknowledged(store, now, esc_after, levels=levels, role=role)
    if not due:
        return 0
    from riskmap.escalation import escalation_rows

    if renderer is None:
        raise ValueError("escalation: messages are due but no renderer was given")
    r = renderer()
    villages = r.region.villages
    names = dict(zip(villages["code"], villages["name"], strict=True))
    officers = list(r.contacts.itertuples())
    queued = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        for rec in due:
            rows = escalation_rows([rec], officers, names, routing or r.routing, r.templates,
                                   signature=signature)
            if rows:
                queued += store.queue(str(rec.run_id), rows, now)
    return queued


def load_routing_of(rules_dir: Any) -> Any:
    """The routing rules of a rules folder (``routing.yaml``), else the packaged ones."""
    from pathlib import Path

    from riskmap.routing_rules import load_routing

    local = Path(str(rules_dir))
    return load_routing(local if (local / "routing.yaml").is_file() else None)
