"""The dispatcher: committed outbox rows → the SMS gateway, durably and at a bounded rate.

Loop: lease due rows (:meth:`riskmap.store.Store.lease`, highest level first), send
each through the :class:`~riskmap.gateways.base.Gateway`, record the answer at once
(``sent`` with the gateway's id; transient failure → ``failed`` with
``next_attempt_at`` = now + exponential backoff with jitter; permanent failure →
``failed`` for good), and throttle to ``rate_per_s``.  :meth:`Dispatcher.wake` makes
a waiting dispatcher start at once (call it after a commit adds messages); otherwise
it sweeps every ``sweep_s`` seconds.

**The duplicate window.**  No decision is ever queued twice (the outbox's
idempotency key), and a row is marked ``sent`` right after the gateway accepts it —
committed together with up to ``mark_batch`` other answers (one fsync for many).
If the process dies between the gateway's acceptance and that commit, the row's lease
runs out (``lease_s``) and the next dispatcher sends it again (unless a delivery
report arrived meanwhile: the store then counts it as sent): an SMS can be sent twice
only in that window, once per lease.
``tests/test_dispatcher.py`` shows it happening exactly once.

A permanent failure is stored as ``failed`` with ``next_attempt_at`` far in the
future (:data:`riskmap.store.outbox.NEVER`), so it is never leased again (the store has no
separate status for it yet); so is a message whose delivery report says it failed.

Examples
--------
>>> import random
>>> p = DispatchPolicy(backoff_base_s=10, backoff_max_s=300, jitter=0.0)
>>> [backoff(n, p, random.Random(1)).total_seconds() for n in (1, 2, 3, 10)]
[10.0, 20.0, 40.0, 300.0]
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from riskmap.errors import RiskmapError
from riskmap.gateways.base import Gateway, OutgoingSms, SendResult, mask
from riskmap.service.faults import fault_point  # fault injection (#7)
from riskmap.store.outbox import NEVER

log = logging.getLogger("riskmap.dispatcher")



@dataclass(frozen=True)
class DispatchPolicy:
    """How fast, how often and how long to try."""

    rate_per_s: float = 50.0
    """Messages per second at most (0 = unthrottled)."""
    concurrency: int = 4
    """Parallel gateway requests."""
    batch: int = 200
    lease_s: float = 60.0
    max_attempts: int = 5
    backoff_base_s: float = 5.0
    backoff_max_s: float = 600.0
    jitter: float = 0.5
    """Fraction of each backoff drawn at random (0 none, 1 "full jitter")."""
    sweep_s: float = 5.0
    mark_batch: int = 64
    """Answers recorded per transaction (1 = each on its own, slowest, narrowest window)."""


def backoff(attempt: int, policy: DispatchPolicy, rng: random.Random) -> timedelta:
    """Delay before attempt ``attempt + 1``: base·2^(attempt-1), capped, less a random jitter share."""
    raw = min(policy.backoff_max_s, policy.backoff_base_s * 2 ** max(0, attempt - 1))
    return timedelta(seconds=raw * (1.0 - policy.jitter * rng.random()))


class Throttle:
    """A token bucket: at most ``rate`` acquisitions per second, bursts up to ``burst``.

    >>> t = [0.0]
    >>> th = Throttle(10, burst=1, clock=lambda: t[0], sleep=lambda s: t.__setitem__(0, t[0] + s))
    >>> for _ in range(5):
    ...     th.acquire()
    >>> round(t[0], 3)
    0.4
    """

    def __init__(self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate / 10)
        self._tokens = self.burst
        self._clock, self._sleep = clock, sleep
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Wait for one token."""
        if self.rate <= 0:
            return
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1.0
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)


@dataclass
class DispatchStats:
    """What one pass (or a whole run) did."""

    leased: int = 0
    sent: int = 0
    retry: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: DispatchStats) -> None:
        self.leased += other.leased
        self.sent += other.sent
        self.retry += other.retry
        self.failed += other.failed
        self.errors += other.errors


def to_sms(rec: Any, sender: str = "") -> OutgoingSms:
    """An :class:`OutgoingSms` from an outbox record (our id travels to the delivery report)."""
    meta = {"run": str(rec.run_id), "village": str(rec.village_code), "hazard": str(rec.hazard),
            "level": str(rec.level), "role": str(rec.role)}
    if rec.drill:
        meta["drill"] = "1"
    return OutgoingSms(str(rec.id), str(rec.phone), str(rec.text), sender, meta)


class Dispatcher:
    """Moves leased outbox rows through a gateway; see the module docstring.

    ``store`` needs ``lease(now, limit, lease_s, max_attempts)`` and
    ``mark(id, status, at, gateway_id=, error=, next_attempt_at=)``.
    """

    def __init__(self, store: Any, gateway: Gateway, policy: DispatchPolicy | None = None, *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 rng: random.Random | None = None, throttle: Throttle | None = None) -> None:
        self.store, self.gateway = store, gateway
        self.policy = policy or DispatchPolicy()
        self.clock = clock
        self.rng = rng or random.Random()
        self.throttle = throttle or Throttle(self.policy.rate_per_s)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max(1, self.policy.concurrency), thread_name_prefix="riskmap-sms")
        self.totals = DispatchStats()

    # -- one pass -------------------------------------------------------------------------------
    def _send_one(self, rec: Any) -> tuple[Any, SendResult]:
        self.throttle.acquire()
        try:
            return rec, self.gateway.send(to_sms(rec))
        except RiskmapError as exc:
            return rec, SendResult.retry(f"{type(exc).__name__}: {exc}")

    def _decide(self, rec: Any, res: SendResult, stats: DispatchStats) -> dict[str, Any]:
        """The mark for one answer (and the stats/log line)."""
        if res.accepted:
            fault_point("after-gateway-accept")  # fault point (#7)
            stats.sent += 1
            if log.isEnabledFor(logging.DEBUG):
                log.debug("outbox %s → %s accepted (%s)", rec.id, mask(str(rec.phone)), res.detail)
            return {"id": rec.id, "status": "sent", "gateway_id": res.gateway_id or "", "error": ""}
        now = self.clock()
        who = mask(str(rec.phone))
        if res.transient and rec.attempts < self.policy.max_attempts:
            nxt = now + backoff(rec.attempts, self.policy, self.rng)
            stats.retry += 1
            log.warning("outbox %s → %s: %s; retry at %s", rec.id, who, res.detail, nxt.isoformat())
            return {"id": rec.id, "status": "failed", "error": res.detail, "next_attempt_at": nxt}
        why = res.detail if not res.transient else f"gave up after {rec.attempts} attempts: {res.detail}"
        stats.failed += 1
        stats.errors.append(f"outbox {rec.id} ({who}): {why}")
        log.error("outbox %s → %s failed: %s", rec.id, who, why)
        return {"id": rec.id, "status": "failed", "error": why, "next_attempt_at": NEVER}

    def _flush(self, marks: list[dict[str, Any]]) -> None:
        """Record answers: one transaction for many (``Store.mark_many``) when the store has it."""
        if not marks:
            return
        now = self.clock()
        many = getattr(self.store, "mark_many", None)
        if many is not None:
            many(marks, now)
        else:
            for m in marks:
                self.store.mark(m["id"], m["status"], now, gateway_id=m.get("gateway_id", ""),
                                error=m.get("error", ""), next_attempt_at=m.get("next_attempt_at"))
        marks.clear()

    def dispatch_once(self) -> DispatchStats:
        """Lease one batch, send it, record every answer; returns what happened.

        Answers are committed in groups of ``mark_batch`` as they come in (one fsync each), and
        the rest when the batch is done — all within the lease, which bounds the duplicate window.
        """
        stats = DispatchStats()
        recs = self.store.lease(self.clock(), limit=self.policy.batch, lease_s=self.policy.lease_s,
                                max_attempts=self.policy.max_attempts)
        stats.leased = len(recs)
        if not recs:
            return stats
        marks: list[dict[str, Any]] = []
        if self.policy.concurrency <= 1:
            done: Iterable[tuple[Any, SendResult]] = (self._send_one(rec) for rec in recs)
        else:
            done = (f.result() for f in as_completed([self._pool.submit(self._send_one, r) for r in recs]))
        for rec, res in done:
            marks.append(self._decide(rec, res, stats))
            if len(marks) >= self.policy.mark_batch:
                self._flush(marks)
        self._flush(marks)
        self.totals.add(stats)
        return stats

    def _lease(self) -> list[Any]:
        return list(self.store.lease(self.clock(), limit=self.policy.batch, lease_s=self.policy.lease_s,
                                     max_attempts=self.policy.max_attempts))

    def pump(self, until_idle: bool = True) -> DispatchStats:
        """Keep every worker busy: lease the next batch while the last one is still in flight.

        Returns when nothing is due and nothing is in flight (``until_idle``), or when
        :meth:`stop` is called.  Answers are committed every ``mark_batch`` results, and at
        once whenever the flow pauses (so a lone red message is recorded without delay).
        """
        stats = DispatchStats()
        marks: list[dict[str, Any]] = []
        in_flight: set[Future[tuple[Any, SendResult]]] = set()
        low_water = max(1, self.policy.concurrency)
        exhausted = False
        while not self._stop.is_set():
            if not exhausted and len(in_flight) <= low_water:
                recs = self._lease()
                stats.leased += len(recs)
                in_flight.update(self._pool.submit(self._send_one, r) for r in recs)
                exhausted = not recs
            if not in_flight:
                if until_idle:
                    break
                self._flush(marks)
                self._wake.wait(self.policy.sweep_s)
                self._wake.clear()
                exhausted = False
                continue
            done, in_flight = wait(in_flight, timeout=0.05, return_when=FIRST_COMPLETED)
            for f in done:
                rec, res = f.result()
                marks.append(self._decide(rec, res, stats))
            if len(marks) >= self.policy.mark_batch or not done or not in_flight:
                self._flush(marks)
            if exhausted and len(in_flight) <= low_water:
                exhausted = False  # look again: retries may have come due, new rows committed
        for f in in_flight:  # stopping: record what was sent
            rec, res = f.result()
            marks.append(self._decide(rec, res, stats))
        self._flush(marks)
        self.totals.add(stats)
        return stats

    def drain(self) -> DispatchStats:
        """Dispatch until nothing is due (retries scheduled later are left for later)."""
        return self.pump(until_idle=True)

    # -- the service loop -------------------------------------------------------------------------
    def wake(self) -> None:
        """New messages were committed: start a pass now."""
        self._wake.set()

    def serve(self) -> None:
        """Run until :meth:`stop`: send whatever is due, wait for :meth:`wake` or ``sweep_s`` when idle."""
        while not self._stop.is_set():
            try:
                self.pump(until_idle=False)
            except RiskmapError as exc:  # store unavailable: keep the service alive, try again later
                log.error("dispatcher: %s", exc)
                self._wake.wait(self.policy.sweep_s)
                self._wake.clear()

    def start(self) -> None:
        """Run :meth:`serve` in a background thread."""
        self._stop.clear()
        self._thread = threading.Thread(target=self.serve, name="riskmap-dispatcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop and the worker pool."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._pool.shutdown(wait=True)
