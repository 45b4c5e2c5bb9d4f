"""The ``riskmap serve`` process: a :class:`~riskmap.service.runner.Service` run until SIGTERM or SIGINT.

The first signal stops gracefully (:meth:`~riskmap.service.runner.Service.stop`); a second one ends the
process at once (still safe: see the crash safety in ``docs/serve.md``).
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from riskmap.config import Settings
from riskmap.errors import ServiceUnavailable
from riskmap.service.config import ServiceConfig
from riskmap.service.runner import Service

log = logging.getLogger("riskmap.service")


def run_service(settings: Settings, sc: ServiceConfig) -> int:
    """Run until SIGTERM or SIGINT; returns the exit code (0 after a graceful stop)."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("serve: %s received, stopping", signal.Signals(signum).name)
        stop.set()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second signal ends the process at once
        signal.signal(signal.SIGINT, signal.default_int_handler)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    svc = Service(settings, sc)
    try:
        svc.start()
        while not stop.wait(1.0):
            if svc.scheduler is None or not svc.scheduler.running:
                raise ServiceUnavailable("serve: the scheduler stopped unexpectedly")
            svc.refresh_jobs()
    finally:
        svc.stop()
        for s, h in old.items():
            signal.signal(s, h)
    return 0
