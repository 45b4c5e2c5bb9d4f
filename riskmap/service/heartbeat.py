"""The service's heartbeat: a small JSON file ``riskmap status`` reads while ``serve`` runs.

It says who runs, what each source last did (run id, file, stage timings), what waits in
the inbox and when each scheduled job fires next.  It lives beside a SQLite store
(``<database>.serve.json``) or, for PostgreSQL, in the output folder (``OUT/serve.json``).
Written atomically (temporary file, then rename): a reader never sees half of it.

Examples
--------
>>> import tempfile
>>> p = heartbeat_path("sqlite:////srv/riskmap/riskmap.sqlite", Path("/srv/out"))
>>> p.as_posix()
'/srv/riskmap/riskmap.sqlite.serve.json'
>>> heartbeat_path("postgresql://rm@db/riskmap", Path("/srv/out")).as_posix()
'/srv/out/serve.json'
>>> q = Path(tempfile.mkdtemp()) / "hb.json"
>>> write_heartbeat(q, {"pid": 42, "jobs": []})
>>> read_heartbeat(q)["pid"]
42
>>> read_heartbeat(q.with_name("missing.json")) is None
True
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import make_url


def heartbeat_path(db_url: str, out: Path) -> Path:
    """Where the heartbeat of the service on ``db_url`` lives."""
    text = db_url if "://" in db_url else f"sqlite:///{Path(db_url).expanduser().resolve()}"
    u = make_url(text)
    if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:":
        return Path(u.database + ".serve.json")
    return Path(out) / "serve.json"


def write_heartbeat(path: Path, data: dict[str, Any]) -> None:
    """Write the heartbeat atomically."""
    # one temporary file per thread: the scheduler's jobs and the main thread may write at once
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    os.replace(tmp, path)


def read_heartbeat(path: Path) -> dict[str, Any] | None:
    """The heartbeat, or None when there is none (or it cannot be read)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def snapshot(svc: Any) -> dict[str, Any]:
    """What a running :class:`~riskmap.service.runner.Service` writes into its heartbeat."""
    import socket
    from datetime import UTC, datetime

    rc = svc.receiver
    data: dict[str, Any] = {
        "state": svc.state, "pid": os.getpid(), "host": socket.gethostname(),
        "holder": getattr(svc.hold, "holder", ""), "started_at": svc.started_at.isoformat(),
        "updated_at": datetime.now(UTC).isoformat(), "store": getattr(svc.store, "url", svc.db_url),
        "inbox": {"folder": str(svc.sc.inbox), "pending": svc.inbox.pending(),
                  "quarantined": sum(1 for p in svc.inbox.quarantined.iterdir()
                                     if not p.name.endswith(".reason.txt"))},
        "sources": svc.sources,
        "last_forecast": svc.last_forecast[0].name if svc.last_forecast else None,
        "observed": svc.observed.name if svc.observed else None,
        "jobs": list(svc.jobs),
        "dispatcher": {k: v for k, v in vars(svc.dispatcher.totals).items() if k != "errors"}
        if svc.dispatcher else {},
        "receiver": {"host": rc.host, "port": rc.port, **rc.counts} if rc else None,
    }
    return data
