"""``riskmap issue`` / ``lift`` while ``riskmap serve`` holds the store: the act is handed to the service.

Two deciders on one store would each read the warnings and overwrite the other's decision, so while
a service holds the store the CLI does not decide: it records a request in the store
(:func:`riskmap.store.requests.submit`, one transaction: operator, reason, the act's parameters and
an idempotency key) and waits — ``--wait SECONDS`` (default :data:`WAIT_S`), ``--no-wait`` to return
at once — for the service to apply it (:mod:`riskmap.service.requests`).  It then prints the summary
it prints when it does the act itself.  Through the store, this works from another machine against
the same PostgreSQL as well.

Outcomes: applied (exit 0); failed in the service (its one line, with the exit code its error has:
2 for a bad target, …); not applied within the wait (exit 3: the request stays queued, the service
applies it when it gets to it — ``riskmap status`` lists it — or it expires
:data:`~riskmap.store.requests.MAX_AGE` after it was made); ``--no-wait`` (exit 0, queued).
Running the same command again while its request is pending waits for that request (never a second
act); ``--request-key KEY`` names the request explicitly (for scripts that retry).
"""

from __future__ import annotations

import getpass
import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click

from riskmap.errors import InputError, RiskmapError, ServiceUnavailable, StoreLocked
from riskmap.operations.acts import ActParams
from riskmap.store import requests as rq

WAIT_S = 30.0
"""How long the CLI waits for the service by default."""
POLL_S = 0.25
"""How often the waiting CLI looks at its request."""
_ERRORS: dict[int, type[RiskmapError]] = {2: InputError, 3: ServiceUnavailable, 4: StoreLocked}


def handover_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--wait``, ``--no-wait`` and ``--request-key``: how an act is handed to a running service."""
    f = click.option("--request-key", "request_key", default="", metavar="KEY",
                     help="While riskmap serve holds the store: the request's idempotency key (one act per "
                     "key, ever). Default: the act itself — the same command again while it is pending, or "
                     "within 10 min after it was applied, is the same request.")(f)
    f = click.option("--no-wait", "no_wait", is_flag=True,
                     help="While riskmap serve holds the store: queue the act with it and return at once.")(f)
    return click.option("--wait", "wait_s", type=click.FloatRange(min=0), default=WAIT_S, show_default=True,
                        metavar="SECONDS", help="While riskmap serve holds the store: how long to wait for "
                        "it to apply the act.")(f)


def origin() -> str:
    """Who asks: this host, process and user (stored with the request)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"riskmap CLI on {socket.gethostname()} pid {os.getpid()} user {user}"


def hand_over(store: Any, params: ActParams, holder: str, *, wait_s: float, key: str,
              echo: Callable[[str], None], tz: Any = UTC) -> rq.RequestRecord | None:
    """Queue ``params`` with the service holding ``store`` and wait up to ``wait_s`` seconds.

    Returns the request once applied (its ``result`` is the summary to print), or None when
    ``wait_s`` is 0 and it is queued.  Raises the error the request failed with (its exit code), or
    :class:`~riskmap.errors.ServiceUnavailable` (exit 3) when it was not applied within ``wait_s``.
    """
    rec, new = rq.submit(store, params.kind, params.operator, params.reason, params.to_json(), params.key,
                         datetime.now(UTC), key=key, villages=params.villages, origin=origin())
    rid = rec.id[:12]
    if new:
        echo(f"{holder} holds the store: the {params.kind} is handed to it (已交服务执行) as request {rid}")
    else:
        made = rec.created_at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")
        echo(f"the same {params.kind} was requested at {made} as request {rid} ({rec.status}): not requested "
             "again")
    if rec.pending and not rec.applied:
        if wait_s <= 0:
            echo(f"request {rid} is queued with {holder} (--no-wait): `riskmap status` shows it until it is "
                 "applied, `riskmap history CODE` then shows the change")
            return None
        echo(f"waiting up to {wait_s:g} s for it to apply the act …")
        try:
            rec = _wait(store, rec.id, wait_s)
        except KeyboardInterrupt:
            echo(f"stopped waiting: request {rid} stays queued with {holder} (`riskmap status` shows it)")
            raise
    if rec.applied:
        return rec
    if rec.status in ("failed", "expired"):
        error = _ERRORS.get(rec.exit_code, RiskmapError)
        raise error(f"request {rid} {rec.status} in riskmap serve: {rec.error}")
    raise ServiceUnavailable(
        f"request {rid} is queued with {holder} but was not applied within {wait_s:g} s; the service applies "
        f"it when it gets to it (it expires {rq.MAX_AGE.total_seconds() / 60:g} min after it was made): "
        "`riskmap status` shows it while pending; the same command again waits for this request, not a new "
        "one")


def _wait(store: Any, request: str, wait_s: float) -> rq.RequestRecord:
    deadline = time.monotonic() + wait_s
    while True:
        rec = rq.get(store, request)
        assert rec is not None
        if rec.applied or not rec.pending or time.monotonic() >= deadline:
            return rec
        time.sleep(POLL_S)
