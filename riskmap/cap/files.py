"""Write CAP messages to ``OUT/cap/`` (one validated file each) and the Atom feed beside them.

Examples
--------
>>> import tempfile, pathlib
>>> from datetime import datetime, timezone
>>> from riskmap.cap import CapOptions, build_message
>>> from riskmap.cap.area import CapArea
>>> from riskmap.lifecycle import Change
>>> t = datetime(2026, 7, 1, tzinfo=timezone.utc)
>>> ch = Change("issue", "469900100201", "rainstorm", 0, 2, t, t, reason="6 h 55 mm")
>>> area = CapArea(ch.village_code, "双河村", circle=(22.5, 111.0, 1.0))
>>> msg = build_message([ch], {ch.village_code: area}, CapOptions())
>>> out = pathlib.Path(tempfile.mkdtemp()) / "cap"
>>> paths = write_cap_dir(out, [msg], updated=t, title="青山县当前预警", author="青山县防指")
>>> sorted(p.name for p in out.iterdir()) == sorted([msg.identifier + ".xml", FEED_NAME])
True
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

from riskmap.cap.build import CapMessage, cap_filename
from riskmap.cap.feed import atom_feed, current_alerts
from riskmap.cap.validate import validate
from riskmap.errors import RiskmapIOError
from riskmap.store.records import CapRow

FEED_NAME = "feed.atom"
"""File name of the Atom feed in the CAP folder."""


def _write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_cap_dir(directory: str | Path, messages: Sequence[CapMessage | CapRow], *, updated: datetime,
                  title: str, author: str, feed_from: Iterable[CapRow] | None = None) -> list[Path]:
    """Validate and write each message as ``{identifier}.xml`` and the feed of current alerts.

    ``feed_from`` are all messages the current alerts are chosen from (e.g. every stored
    message, ``Store.cap_messages()``); by default the messages written now.
    """
    out = Path(directory)
    rows = [m.as_row() if isinstance(m, CapMessage) else m for m in messages]
    for row in rows:  # all or nothing: validate every message before writing any
        validate(row.xml)
    try:
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for row in rows:
            path = out / cap_filename(row.identifier)
            _write(path, row.xml.encode("utf-8"))
            paths.append(path)
        current = current_alerts(rows if feed_from is None else feed_from)
        feed = out / FEED_NAME
        _write(feed, atom_feed(current, title=title, updated=updated, author=author))
    except OSError as exc:
        raise RiskmapIOError(f"{out}: cannot write CAP files: {exc.strerror or exc}") from None
    return [*paths, feed]
