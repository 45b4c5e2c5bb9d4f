"""The drop folder: a file is read once its size has settled; it ends in ``done/`` or ``quarantine/``.

A file is *ready* when its size and modification time have not changed for ``settle_s``
seconds (a file still being copied keeps growing).  Hidden files and names ending in
``.tmp``, ``.part``, ``.partial`` or ``.filepart`` are never read: senders may write under
such a name and rename when done.  After its cycle, a file moves to ``done/``; a file that
cannot be loaded moves to ``quarantine/`` with ``<name>.reason.txt`` beside it.  The file
stays in the inbox while its cycle runs, so a crash leaves it there to be processed again
(the store's run record makes that idempotent).

Examples
--------
>>> import tempfile
>>> t = [0.0]
>>> box = Inbox(Path(tempfile.mkdtemp()), settle_s=2.0, clock=lambda: t[0])
>>> _ = (box.folder / "a.nc").write_bytes(b"123")
>>> _ = (box.folder / ".b.nc").write_bytes(b"hidden")
>>> box.ready()                  # first sight: not settled yet
[]
>>> t[0] = 2.5
>>> [p.name for p in box.ready()]
['a.nc']
>>> q = box.quarantine(box.folder / "a.nc", "ForecastError: a.nc: no precipitation variable")
>>> q.relative_to(box.folder).as_posix(), (box.quarantined / "a.nc.reason.txt").read_text().splitlines()[0]
('quarantine/a.nc', 'ForecastError: a.nc: no precipitation variable')
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

IGNORED_SUFFIXES = (".tmp", ".part", ".partial", ".filepart", ".reason.txt")


class Inbox:
    """Watch one folder (see the module docstring)."""

    def __init__(self, folder: Path, settle_s: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.folder = Path(folder)
        self.settle_s = settle_s
        self.clock = clock
        self.processed = self.folder / "done"
        self.quarantined = self.folder / "quarantine"
        for d in (self.folder, self.processed, self.quarantined):
            d.mkdir(parents=True, exist_ok=True)
        self._seen: dict[str, tuple[int, int, float]] = {}

    def candidates(self) -> list[Path]:
        """Files in the inbox that may be inputs (settled or not), oldest first."""
        out = []
        for entry in os.scandir(self.folder):
            name = entry.name
            if name.startswith(".") or name.endswith(IGNORED_SUFFIXES):
                continue
            if not entry.is_file(follow_symlinks=True):
                continue
            out.append(Path(entry.path))
        return sorted(out, key=lambda p: (_mtime(p), p.name))

    def ready(self) -> list[Path]:
        """Files whose size and modification time stayed the same for ``settle_s`` seconds, oldest first."""
        now = self.clock()
        ready = []
        present = set()
        for p in self.candidates():
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            present.add(p.name)
            sig = (st.st_size, st.st_mtime_ns)
            seen = self._seen.get(p.name)
            if seen is None or seen[:2] != sig:
                self._seen[p.name] = (*sig, now)
                continue
            if now - seen[2] >= self.settle_s:
                ready.append(p)
        for name in list(self._seen):
            if name not in present:
                del self._seen[name]
        return ready

    def pending(self) -> int:
        """How many input files wait in the inbox."""
        return len(self.candidates())

    def done(self, path: Path) -> Path:
        """Move a processed file to ``done/``."""
        return self._move(path, self.processed)

    def quarantine(self, path: Path, reason: str) -> Path:
        """Move a file that cannot be used to ``quarantine/`` with ``<name>.reason.txt`` beside it."""
        target = self._move(path, self.quarantined)
        note = target.with_name(target.name + ".reason.txt")
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        note.write_text(f"{reason}\nquarantined {stamp} from {path}\n", encoding="utf-8")
        return target

    def _move(self, path: Path, folder: Path) -> Path:
        target = folder / path.name
        n = 1
        while target.exists():
            target = folder / f"{path.stem}.{n}{path.suffix}"
            n += 1
        shutil.move(str(path), str(target))
        self._seen.pop(path.name, None)
        return target


def _mtime(p: Path) -> int:
    try:
        return p.stat().st_mtime_ns
    except FileNotFoundError:
        return 0
