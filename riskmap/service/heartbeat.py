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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    os.replace(tmp, path)


def read_heartbeat(path: Path) -> dict[str, Any] | None:
    """The heartbeat, or None when there is none (or it cannot be read)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
