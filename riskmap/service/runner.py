"""The service process: start-up (validate, lock, recover), the work the jobs do, graceful stop.

Start-up, in order: validate the configuration (every problem one line, exit 2), hold the
store (a second ``serve`` exits 4 naming the holder), start the delivery-report receiver and
the dispatcher, end orphaned leases (:func:`~riskmap.service.recovery.release_orphan_leases`),
re-process runs left ``started`` by a crash, then start the scheduler
(:mod:`riskmap.service.scheduler`).

What is done is known from the store and the inbox, never from the job store: a forecast file
stays in the inbox until its cycle is committed and dispatched, then moves to ``done/``; a
file that cannot be read moves to ``quarantine/`` with its reason.  A cycle interrupted at any
instant is simply run again — the run id is derived from its inputs, so the second attempt
either finishes the run or finds it done (:func:`riskmap.store.apply_run`).

SIGTERM / SIGINT: the scheduler stops taking jobs and waits for the running cycle (whose store
transaction commits or rolls back as a whole), the dispatcher finishes its batch and records
the answers, the receiver stops, leases still held are ended, the store is released.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from riskmap.config import Settings
from riskmap.errors import ConfigError, ForecastError, RiskmapError, RiskmapIOError, ServiceUnavailable
from riskmap.service.config import ServiceConfig, Source, validate
from riskmap.service.heartbeat import heartbeat_path, write_heartbeat
from riskmap.service.inbox import Inbox
from riskmap.service.logging import run_context, set_context
from riskmap.service.recovery import recover_runs, release_orphan_leases
from riskmap.service.requests import apply_requests

log = logging.getLogger("riskmap.service")


def _now() -> datetime:
    return datetime.now(UTC)


def db_url_for(settings: Settings, sc: ServiceConfig) -> str:
    """The store the service uses: ``--db`` / ``service.db``, ``[store] url``, else ``OUT/riskmap.sqlite``."""
    return sc.db or settings.store.url or f"sqlite:///{(sc.out / 'riskmap.sqlite').resolve()}"


class Service:
    """One ``riskmap serve`` process; :meth:`start`, then :meth:`stop` (see the module docstring)."""

    def __init__(self, settings: Settings, sc: ServiceConfig) -> None:
        from riskmap.region_cache import RegionCache

        self.settings, self.sc = settings, sc
        self.db_url = db_url_for(settings, sc)
        self.hb_path = heartbeat_path(self.db_url, sc.out)
        self.cycle_lock = threading.Lock()
        self.stopping = threading.Event()
        self.started_at = _now()
        self.sources: dict[str, dict[str, Any]] = {}
        self.failures: dict[str, int] = {}
        self.last_forecast: tuple[Path, Source] | None = None
        """The newest forecast processed (an observed file re-runs it with the new observation)."""
        self.observed: Path | None = None
        self.store: Any = None
        self.hold: Any = None
        self.receiver: Any = None
        self.dispatcher: Any = None
        self.scheduler: Any = None
        self.state = "starting"
        self.regions = RegionCache(keep_last_good=True)
        """The region, loaded once and kept between cycles (reloaded when its files change)."""
        self._renderer: tuple[Any, Any] | None = None   # (the LoadedRegion it was built on, renderer)
        self._routing: Any = None
        self.jobs: list[dict[str, Any]] = []
        """The scheduled jobs' next fire times, refreshed by the main thread (:meth:`refresh_jobs`)."""

    # -- start-up ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Validate, hold the store, recover, start receiver, dispatcher and scheduler."""
        from riskmap.rules import find_rules_dir
        from riskmap.service.lock import take_lock
        from riskmap.store import Store

        problems = validate(self.settings, self.sc)
        if problems:
            raise ConfigError("the service cannot start:\n  " + "\n  ".join(problems))
        self.sc.out.mkdir(parents=True, exist_ok=True)
        self.rules_dir = find_rules_dir(self.sc.rules, self.settings.paths.rules_dir or None, Path.cwd())
        self.inbox = Inbox(self.sc.inbox, self.sc.settle_s)
        self.store = Store.open(self.db_url)
        self.hold = take_lock(self.store)
        log.info("serve: holding store %s as %s", self.store.url, self.hold.holder)
        try:
            self._start_sending()
            n = release_orphan_leases(self.store, _now())
            if n:
                log.warning("recovery: %d message(s) were leased by a process that died; they are re-sent "
                            "unless a delivery report shows they went out", n)
            self.dispatcher.start()
            self._find_latest_inputs()
            with self.cycle_lock:  # before recover_runs: an act a crash interrupted is its request's to redo
                apply_requests(self)
            self.recover_runs()
            from riskmap.service.scheduler import build_scheduler

            self.scheduler = build_scheduler(self)
            self.scheduler.start()
            self.refresh_jobs()
            self.state = "running"
            self.write_heartbeat()
            log.info("serve: watching %s every %g s", self.sc.inbox, self.sc.poll_s)
        except BaseException:
            self.stop()
            raise

    def _start_sending(self) -> None:
        from riskmap.dispatcher import Dispatcher, DispatchPolicy
        from riskmap.gateways import make_gateway

        dlr_url = ""
        rc = self.sc.receiver
        if rc.enabled:
            from riskmap.receiver import Receiver

            try:
                self.receiver = Receiver(self.store, os.environ[rc.token_env], rc.host, rc.port,
                                         on_reply=self.on_reply).start()
            except OSError as exc:
                raise ServiceUnavailable(f"receiver: cannot listen on {rc.host}:{rc.port}: "
                                         f"{exc.strerror or exc}") from None
            dlr_url = self.receiver.dlr_url()
            log.info("receiver: listening on %s:%d", self.receiver.host, self.receiver.port)
        d = self.sc.dispatch
        gateway = make_gateway(self.settings.gateway, out_dir=self.sc.out, dlr_url=dlr_url)
        policy = DispatchPolicy(rate_per_s=self.settings.gateway.rate_per_s, concurrency=d.concurrency,
                                lease_s=d.lease_s, max_attempts=d.max_attempts, sweep_s=d.sweep_s,
                                mark_batch=d.mark_batch, backoff_base_s=d.backoff_base_s)
        self.dispatcher = Dispatcher(self.store, gateway, policy)

    def _find_latest_inputs(self) -> None:
        """The newest forecast and observed file already processed (for expiry checks and merges)."""
        for p in sorted(self.inbox.processed.iterdir(), key=lambda q: q.stat().st_mtime_ns):
            src = self.sc.source_for(p.name)
            if src is not None and src.kind == "forecast":
                self.last_forecast = (p, src)
            elif src is not None:
                self.observed = p

    def recover_runs(self) -> None:
        """Re-process runs left ``started`` (see :func:`riskmap.service.recovery.recover_runs`)."""
        recover_runs(self)

    # -- the work ---------------------------------------------------------------------------------
    def cycle(self, forecast: Path, source: Source, now: datetime | None = None,
              observed: Path | None = None) -> Any:
        """One cycle on one forecast file (the caller holds :attr:`cycle_lock`)."""
        from riskmap.cycle import CycleRequest, run_cycle

        region = self.sc.region or Path(".")
        # refuse_if_held=False: we are the holder; dispatch=False: our own dispatcher sends
        # (its gateway carries the dlr-url); the region stays loaded between forecasts
        req = CycleRequest(region=region, forecast=(forecast,), out_dir=self.sc.out, settings=self.settings,
                           rules_dir=self.rules_dir, observed=observed, db_url=self.db_url, now=now,
                           forecast_options=dict(source.forecast_options), write_map=self.sc.write_map,
                           refuse_if_held=False, dispatch=False, loaded_region=self.regions.get(region))
        t0 = _now()
        report = run_cycle(req, lambda stage: log.debug("cycle stage %s", stage))
        self.dispatcher.wake()
        set_context(run_id=report.run_id[:12])
        total = sum(report.seconds.values())
        log.info("cycle %s: %s; changes %s; %d message(s) queued, %d held; %.1f s",
                 report.run_id[:12], "already done" if report.already_done else "committed",
                 dict(report.changes) or "none", report.messages_queued, report.messages_held, total)
        self.sources[source.name] = {
            "file": forecast.name, "run_id": report.run_id, "now": report.now.isoformat(),
            "started_at": t0.isoformat(), "finished_at": _now().isoformat(),
            "already_done": report.already_done,
            "seconds": {k: round(v, 3) for k, v in report.seconds.items()}, "total_s": round(total, 3),
            "changes": dict(report.changes), "messages_queued": report.messages_queued,
            "per_level": {str(k): v for k, v in report.per_level.items()}}
        return report

    def process_file(self, path: Path) -> None:
        """Run the cycle a newly settled file asks for; move it to ``done/`` or ``quarantine/``."""
        name = path.name
        src = self.sc.source_for(name)
        if src is None:
            self.inbox.quarantine(path, f"no [[service.sources]] pattern matches {name!r} "
                                        f"(patterns: {', '.join(s.pattern for s in self.sc.sources)})")
            log.error("inbox: %s quarantined: no source pattern matches", name)
            return
        with run_context(file=name, source=src.name):
            try:
                if src.kind == "observed":
                    self._take_observed(path, src)
                    return
                self._forecast_cycle(path, src)
            except (ForecastError, RiskmapIOError) as exc:
                q = self.inbox.quarantine(path, f"{type(exc).__name__}: {exc}")
                log.error("inbox: %s quarantined (%s): %s", name, q, exc)
                return
            except Exception as exc:  # noqa: BLE001 - the service keeps running; the file is tried again
                n = self.failures[name] = self.failures.get(name, 0) + 1
                log.error("inbox: %s failed (attempt %d of %d): %s: %s", name, n, self.sc.max_file_attempts,
                          type(exc).__name__, exc, exc_info=not isinstance(exc, RiskmapError))
                if n >= self.sc.max_file_attempts and path.exists():
                    self.inbox.quarantine(path, f"failed {n} times; last error {type(exc).__name__}: {exc}")
                    self.failures.pop(name, None)
                return
            self.failures.pop(name, None)
            self.last_forecast = (self.inbox.done(path), src)

    def _take_observed(self, path: Path, src: Source) -> None:
        """An observed file: re-run the latest forecast with it (a bad file raises and is quarantined)."""
        if self.last_forecast is not None:
            self.cycle(*self.last_forecast, observed=path)
        else:
            from riskmap.forecast.observed import TABLE_SUFFIXES, open_observed

            if path.suffix.lower() not in TABLE_SUFFIXES:  # a grid can be checked alone; a gauge table not
                open_observed(path, **dict(src.forecast_options))
        self.observed = self.inbox.done(path)
        log.info("inbox: observed rainfall %s kept for the next cycles", path.name)

    def _forecast_cycle(self, path: Path, src: Source) -> None:
        try:
            self.cycle(path, src, observed=self.observed)
        except ForecastError as exc:
            if self.observed is None:
                raise
            log.warning("cycle with observed %s failed (%s); trying without it", self.observed.name, exc)
            self.observed = None
            self.cycle(path, src)

    def scan_inbox(self) -> None:
        """The inbox job: process every settled file, oldest first."""
        if self.stopping.is_set():
            return
        with self.cycle_lock:
            for path in self.inbox.ready():
                if self.stopping.is_set():
                    break
                self.process_file(path)
                apply_requests(self)  # an operator's act handed to us waits for one cycle at the most
        self.write_heartbeat()

    def check_expiry(self, now: datetime | None = None) -> None:
        """The expiry job: warnings whose validity ended are expired (and announced) on time."""
        from riskmap.service.expiry import due_warnings, expire_due_warnings

        now = now or _now().replace(second=0, microsecond=0)
        if self.stopping.is_set() or not due_warnings(self.store, now):
            return
        with self.cycle_lock, run_context(job="expiry"):
            try:
                applied = expire_due_warnings(self.store, self.renderer(), now, self.sc.out, self.settings)
            except Exception as exc:  # noqa: BLE001 - the service keeps running; the next check retries
                log.error("expiry check at %s failed: %s: %s", now.isoformat(), type(exc).__name__, exc)
                return
            self.dispatcher.wake()
            n = len(applied.decision.changes) if applied.decision else 0
            set_context(run_id=applied.run_id[:12])
            log.info("expiry check at %s: %d warning(s) expired", now.isoformat(), n)

    def fetch(self, src: Source) -> None:
        """The fetch job of a source with a ``url``: new content lands in the inbox."""
        from riskmap.service.fetch import fetch_source

        if self.stopping.is_set():
            return
        with run_context(source=src.name):
            try:
                fetch_source(src.name, src.url, self.inbox.folder, src.token_env)
            except RiskmapError as exc:
                log.error("%s", exc)

    def renderer(self) -> Any:
        """The message renderer (region, routing, templates, rules); rebuilt when the region changes."""
        from riskmap.service.expiry import make_renderer

        loaded = self.regions.get(self.sc.region or Path("."))
        if self._renderer is None or self._renderer[0] is not loaded:
            self._renderer = (loaded, make_renderer(self.settings, loaded.region, self.rules_dir))
        return self._renderer[1]

    def check_escalation(self, now: datetime | None = None) -> None:
        """The escalation job: unacknowledged orange/red messages go to the next person up."""
        from riskmap.service.escalate import escalate_due, load_routing_of

        if self.stopping.is_set():
            return
        now = now or _now()
        with run_context(job="escalation"):
            try:
                if self._routing is None:
                    self._routing = load_routing_of(self.rules_dir)
                n = escalate_due(self.store, self._routing, self.renderer, now,
                                 signature=self.settings.office.signature)
            except Exception as exc:  # noqa: BLE001 - the service keeps running; the next check retries
                log.error("escalation check failed: %s: %s", type(exc).__name__, exc)
                return
        if n:
            log.info("escalation: %d message(s) queued to the next person up", n)
            self.dispatcher.wake()

    def housekeeping(self) -> None:
        """The daily job: old files out, old outbox rows to the archive."""
        from riskmap.service.housekeeping import archive_outbox, delete_old_files

        gone = delete_old_files([self.sc.out / "cap", self.inbox.processed, self.inbox.quarantined],
                                self.sc.keep_days)
        n = archive_outbox(self.store, self.sc.out, self.sc.archive_days, _now())
        log.info("housekeeping: %d old file(s) deleted, %d outbox row(s) archived", len(gone), n)

    def on_reply(self, phone: str, text: str) -> None:
        """A reply from a phone: 1 / 收到 acknowledges the latest active warning sent to it (#6)."""
        from riskmap.operations.acks import acknowledge_reply

        try:
            ack = acknowledge_reply(self.store, phone, text, _now())
        except RiskmapError as exc:  # the receiver thread must answer Kannel whatever happens
            log.error("reply: %s", exc)
            return
        if ack is not None:
            log.info("reply: acknowledgement of outbox %d (%s %s)", ack.outbox_id, ack.village_code,
                     ack.hazard)

    # -- observability and stop -------------------------------------------------------------------
    def refresh_jobs(self) -> None:
        """Copy the jobs' next fire times (main thread only: a job asking the scheduler for its jobs while
        ``shutdown(wait=True)`` holds the job store lock would deadlock)."""
        from riskmap.service.scheduler import next_runs

        if self.scheduler is not None and not self.stopping.is_set():
            self.jobs = next_runs(self.scheduler)

    def write_heartbeat(self) -> None:
        """Write the heartbeat ``riskmap status`` reads."""
        from riskmap.service.heartbeat import snapshot

        try:
            write_heartbeat(self.hb_path, snapshot(self))
        except OSError as exc:
            log.warning("heartbeat %s: %s", self.hb_path, exc)

    def stop(self) -> None:
        """Stop gracefully (idempotent): jobs, dispatcher, receiver, leases, the hold."""
        self.stopping.set()
        self.state = "stopping"
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=True)  # the running cycle finishes (its transaction is atomic)
        clean = True
        if self.dispatcher is not None:
            self.dispatcher.stop()
            thread = getattr(self.dispatcher, "_thread", None)
            clean = not (thread is not None and thread.is_alive())
            self.dispatcher.gateway.close()
        if self.receiver is not None:
            self.receiver.stop()
            self.receiver = None
        if self.store is not None and self.hold is not None:
            if clean:
                n = release_orphan_leases(self.store, _now())
                if n:
                    log.info("stop: %d lease(s) released", n)
            self.state = "stopped"
            self.write_heartbeat()
            self.hold.release()
            self.hold = None
            log.info("serve: stopped")
        self.scheduler = self.dispatcher = None
        if self.store is not None:
            self.store.close()
            self.store = None

