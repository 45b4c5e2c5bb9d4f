"""Poll an HTTP(S) URL for a source's newest file and drop it into the inbox (a source's ``url``).

Each poll sends ``If-None-Match`` / ``If-Modified-Since`` from the last answer; a ``200`` whose body
differs from the last one fetched (SHA-256) is written to the inbox as
``<source>_<UTC time><suffix>.part`` and renamed when complete, so the inbox's settling check and
everything after it treat it like a file copied in by hand.  What was last fetched is remembered in
``inbox/.fetch-<source>.json``, so a restart does not fetch the same file again.  A token for the
``Authorization: Bearer`` header comes from the environment variable ``token_env``, never the config.

Examples
--------
>>> suffix_of("https://qx.example.cn/nwp/latest.nc?x=1"), suffix_of("http://h/get")
('.nc', '.dat')
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from riskmap.errors import ServiceUnavailable

log = logging.getLogger("riskmap.service")


def suffix_of(url: str) -> str:
    """The file suffix the URL's path ends in (``.dat`` when none)."""
    name = Path(urllib.parse.urlsplit(url).path).name
    suffixes = "".join(Path(name).suffixes[-2:])
    return suffixes or ".dat"


def fetch_source(name: str, url: str, inbox: Path, token_env: str = "", timeout: float = 60.0,
                 now: datetime | None = None) -> Path | None:
    """Fetch ``url`` once; the new inbox file, or None when nothing changed.

    Raises :class:`~riskmap.errors.ServiceUnavailable` when the server cannot be reached or answers
    an error (the job logs it and tries again at the next poll).
    """
    state_path = inbox / f".fetch-{name}.json"
    try:
        state: dict[str, Any] = json.loads(state_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        state = {}
    req = urllib.request.Request(url, headers={"User-Agent": "riskmap-serve"})
    if state.get("etag"):
        req.add_header("If-None-Match", state["etag"])
    if state.get("last_modified"):
        req.add_header("If-Modified-Since", state["last_modified"])
    if token_env and os.environ.get(token_env):
        req.add_header("Authorization", f"Bearer {os.environ[token_env]}")
    shown = urllib.parse.urlsplit(url)._replace(query="", fragment="").geturl()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
            headers = resp.headers
    except urllib.error.HTTPError as exc:
        if exc.code == 304:
            return None
        raise ServiceUnavailable(f"source {name}: {shown} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ServiceUnavailable(f"source {name}: cannot fetch {shown}: {reason}") from None
    digest = hashlib.sha256(body).hexdigest()
    new_state = {"etag": headers.get("ETag", ""), "last_modified": headers.get("Last-Modified", ""),
                 "sha256": digest}
    if digest == state.get("sha256"):
        _write_state(state_path, new_state)
        return None
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    target = inbox / f"{name}_{stamp}{suffix_of(url)}"
    part = target.with_name(target.name + ".part")
    part.write_bytes(body)
    os.replace(part, target)
    _write_state(state_path, new_state)
    log.info("source %s: fetched %s (%d bytes) from %s", name, target.name, len(body), shown)
    return target


def _write_state(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state), encoding="utf-8")
    os.replace(tmp, path)
