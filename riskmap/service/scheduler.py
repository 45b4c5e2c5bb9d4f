"""The service's APScheduler 3.x jobs.

``job_defaults``: ``misfire_grace_time`` of a day (APScheduler's default, 1 s, silently drops a
run that starts late on a busy or suspended host), ``coalesce`` (runs missed while suspended
become one) and ``max_instances`` 1 (a slow scan is never overlapped by the next).  Jobs live
in memory: what is done is in the store and the inbox, so a job lost with the process
(APScheduler is at most once per fire time) loses nothing — the next scan finds the file again.

=================  =====================================================================
``inbox-scan``     every ``poll_s``: settled files → cycles (outputs written after each)
``dispatch-sweep`` every ``dispatch.sweep_s``: wake the dispatcher (it also wakes on commits)
``expiry-check``   every ``expiry_check_min`` (0: off): warnings whose validity ended are
                   expired and announced (:mod:`riskmap.service.expiry`)
``housekeeping``   daily at ``housekeeping_at`` (office time zone): old files, outbox archive
``escalation-check`` every ``escalation_check_min`` (0: off): orange/red messages to a village head
                   not acknowledged within ``routing.escalation.after_min`` go to the duty officer
``heartbeat``      every 5 s: the JSON file ``riskmap status`` reads
``requests``       every second (``poll_s`` if shorter), first at start: ``riskmap issue`` / ``lift``
                   handed to the service (:mod:`riskmap.service.requests`)
``fetch-<source>`` every ``fetch_min`` for a source with a ``url`` (:mod:`riskmap.service.fetch`)
=================  =====================================================================


Examples
--------
>>> from apscheduler.schedulers.background import BackgroundScheduler

from riskmap.service.requests import POLL_S as REQUESTS_POLL_S
from riskmap.service.requests import take_requests
>>> s = BackgroundScheduler(job_defaults=JOB_DEFAULTS)
>>> _ = s.add_job(print, "interval", seconds=5, id="x")
>>> next_runs(s)[0]["id"]
'x'
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from riskmap.service.requests import POLL_S as REQUESTS_POLL_S
from riskmap.service.requests import take_requests

JOB_DEFAULTS = {"misfire_grace_time": 24 * 3600, "coalesce": True, "max_instances": 1}


def build_scheduler(svc: Any) -> BackgroundScheduler:
    """A scheduler with the service's jobs (not started)."""
    sc = svc.sc
    tz = svc.settings.office.timezone
    sched = BackgroundScheduler(timezone=tz, job_defaults=JOB_DEFAULTS,
                                executors={"default": {"type": "threadpool", "max_workers": 4}})
    now = datetime.now(UTC)
    sched.add_job(svc.scan_inbox, "interval", seconds=sc.poll_s, id="inbox-scan", name="inbox scan",
                  next_run_time=now)
    sched.add_job(svc.dispatcher.wake, "interval", seconds=sc.dispatch.sweep_s, id="dispatch-sweep",
                  name="dispatcher sweep")
    if sc.expiry_check_min > 0:
        sched.add_job(svc.check_expiry, "interval", minutes=sc.expiry_check_min, id="expiry-check",
                      name="expiry and lift on time")
    if sc.escalation_check_min > 0:
        sched.add_job(svc.check_escalation, "interval", minutes=sc.escalation_check_min,
                      id="escalation-check", name="escalation of unacknowledged orange/red messages")
    for src in sc.sources:
        if src.url:
            sched.add_job(svc.fetch, "interval", args=[src], minutes=src.fetch_min, id=f"fetch-{src.name}",
                          name=f"fetch {src.name}", next_run_time=now)
    hh, mm = (int(x) for x in sc.housekeeping_at.split(":"))
    sched.add_job(svc.housekeeping, "cron", hour=hh, minute=mm, id="housekeeping", name="daily housekeeping")
    sched.add_job(svc.write_heartbeat, "interval", seconds=5, id="heartbeat", name="heartbeat")
    sched.add_job(take_requests, "interval", args=[svc], seconds=min(sc.poll_s, REQUESTS_POLL_S),
                  id="requests", name="acts handed over by riskmap issue / lift",
                  next_run_time=now)
    return sched


def next_runs(sched: Any) -> list[dict[str, Any]]:
    """Each job's id, name and next fire time (ISO 8601), soonest first.

    Never call it from inside a job: ``shutdown(wait=True)`` holds the job store lock while it
    waits for running jobs, and ``get_jobs`` needs that lock.
    """
    jobs = []
    for job in sched.get_jobs():
        nxt = getattr(job, "next_run_time", None)
        jobs.append({"id": job.id, "name": job.name, "next_run_time": nxt.isoformat() if nxt else None})
    return sorted(jobs, key=lambda j: j["next_run_time"] or "~")
