"""Named fault-injection points: ``RISKMAP_FAULT=after-commit`` kills the process (SIGKILL) right there.

The crash test (``tests/test_service_crash.py``) starts ``riskmap serve`` with this variable set,
lets it die at the named instant, restarts it without, and checks that no decision was lost or
repeated.  The points, in the order a cycle passes them:

``after-ingest``
    the forecast is read and normalised (nothing stored yet);
``after-levels``
    the levels are computed (nothing stored yet);
``before-commit``
    the run is recorded as ``started`` and its messages rendered, the decision not yet committed;
``after-commit``
    run, warnings, events, outbox and CAP rows are committed; no SMS sent yet;
``after-gateway-accept``
    the gateway accepted an SMS whose ``sent`` mark is not yet committed — the one place an SMS
    can be sent twice (the duplicate window of one lease, see :mod:`riskmap.dispatcher`).

The points an operator's act handed to the service passes (:mod:`riskmap.service.requests`),
:data:`REQUEST_POINTS`:

``request-before-commit``
    the request is taken up (its act's time fixed), the act decided and rendered, its transaction
    (act and ``applied`` mark) written but not committed;
``request-after-commit``
    the act and the request's ``applied`` mark are committed; its CAP files are not written yet.

``RISKMAP_FAULT=NAME:N`` kills at the N-th time the point is reached (default the first).
Unset (the normal case) every call is a dictionary look-up and nothing else.

Examples
--------
>>> parse_fault("after-commit")
('after-commit', 1)
>>> parse_fault("after-gateway-accept:3")
('after-gateway-accept', 3)
>>> parse_fault("")
>>> parse_fault("after-lunch")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: RISKMAP_FAULT='after-lunch': unknown fault point (known: after-ingest, after-levels, ...)
>>> fault_point("after-commit", env={})          # no fault set: returns at once
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Mapping

ENV = "RISKMAP_FAULT"
POINTS = ("after-ingest", "after-levels", "before-commit", "after-commit", "after-gateway-accept")
"""The points a forecast cycle passes, in order."""
REQUEST_POINTS = ("request-before-commit", "request-after-commit")
"""The points a request handed to the service passes, in order."""

_hits: dict[str, int] = {}
_lock = threading.Lock()


def parse_fault(value: str) -> tuple[str, int] | None:
    """``NAME`` or ``NAME:N`` → ``(name, n)``; empty → None; an unknown name raises ValueError."""
    value = value.strip()
    if not value:
        return None
    name, _, n = value.partition(":")
    if name not in POINTS + REQUEST_POINTS:
        known = ", ".join(POINTS + REQUEST_POINTS)
        raise ValueError(f"{ENV}={value!r}: unknown fault point (known: {known})")
    try:
        count = int(n) if n else 1
    except ValueError:
        raise ValueError(f"{ENV}={value!r}: the count after ':' must be a whole number") from None
    return name, max(1, count)


def fault_point(name: str, env: Mapping[str, str] | None = None) -> None:
    """SIGKILL this process if ``RISKMAP_FAULT`` names this point (and this is its N-th passage)."""
    value = (os.environ if env is None else env).get(ENV)
    if not value:
        return
    parsed = parse_fault(value)
    if parsed is None or parsed[0] != name:
        return
    with _lock:
        _hits[name] = _hits.get(name, 0) + 1
        if _hits[name] < parsed[1]:
            return
    sys.stderr.write(f"riskmap: fault injection: SIGKILL at {name}\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)
