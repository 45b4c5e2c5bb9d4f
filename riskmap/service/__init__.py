"""``riskmap serve``: the long-lived operational service (issue #7).

Submodules (import them directly; this package imports nothing heavy, because
:func:`riskmap.service.faults.fault_point` is called from the cycle and the dispatcher):

- :mod:`~riskmap.service.config` — the ``[service]`` section of ``riskmap.toml``.
- :mod:`~riskmap.service.inbox` — the drop folder: stable-size check, ``done/``, ``quarantine/``.
- :mod:`~riskmap.service.lock` — one scheduler per store (exit 4 naming the holder).
- :mod:`~riskmap.service.faults` — named fault-injection points (``RISKMAP_FAULT``).
- :mod:`~riskmap.service.scheduler` — the APScheduler jobs.
- :mod:`~riskmap.service.runner` — start-up recovery, the jobs' work, graceful stop.
- :mod:`~riskmap.service.main` — the process: a service run until SIGTERM or SIGINT.
- :mod:`~riskmap.service.requests` — ``riskmap issue`` / ``lift`` handed to the running service.
- :mod:`~riskmap.service.status` — ``riskmap status`` figures read from the store.
- :mod:`~riskmap.service.logging` — JSON-lines logs with run ids and masked phone numbers.
"""
