"""A region kept loaded between cycles, reloaded when its files change (the IO edge).

``riskmap serve`` runs a cycle for every new forecast on the same region.  Loading and
checking a region takes seconds, hashing its files reads them all, and hashing its village
layer (the key of the cached coverage weights) ~15 ms on 50,000 villages — none of which
changes between forecasts.  :class:`RegionCache` loads a region once and hands out the same
:class:`LoadedRegion` until a file of the region changes, which it notices by ``stat`` alone
(size, modification time in ns, inode of every file — a few microseconds): an edited,
replaced or added file triggers a reload on the next :meth:`RegionCache.get`, so an office
can update its layers without restarting the service (see :class:`RegionCache` for a region
that no longer loads).

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> from types import SimpleNamespace
>>> calls = []
>>> def loader(path):                        # stands in for load_region (tested on real regions)
...     calls.append(path)
...     return SimpleNamespace()
>>> with tempfile.TemporaryDirectory() as d:
...     f = Path(d) / "villages.csv"
...     _ = f.write_text("a")
...     cache = RegionCache(loader)
...     a, b = cache.get(d), cache.get(d)
...     _ = f.write_text("ab")               # a changed file: reloaded on the next get
...     c = cache.get(d)
>>> a is b, a is c, len(calls), a.content_hash != c.content_hash
(True, False, 2, True)
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from riskmap.errors import RiskmapError
from riskmap.region import Region, load_region

__all__ = ["LoadedRegion", "RegionCache", "region_files", "files_hash", "fingerprint"]

log = logging.getLogger("riskmap.region")


def region_files(path: Path) -> list[Path]:
    """The files of a region: every file under the folder (sorted), or the file itself.

    A GeoPackage being edited (QGIS) keeps recent changes in its ``-wal`` file until a
    checkpoint, and readers see them: the ``-wal`` file counts as part of the region.
    """
    if path.is_dir():
        return sorted(q for q in path.rglob("*") if q.is_file())
    wal = path.with_name(path.name + "-wal")
    return [path, wal] if wal.is_file() else [path]


def fingerprint(path: Path) -> tuple[tuple[str, int, int, int], ...]:
    """(relative name, size, mtime ns, inode) of every file of the region; cheap (``stat`` only)."""
    out = []
    folder = path.is_dir()
    for f in region_files(path):
        try:
            st = f.stat()
        except OSError:          # vanished between listing and stat: a change
            continue
        out.append((str(f.relative_to(path)) if folder else f.name, st.st_size, st.st_mtime_ns, st.st_ino))
    return tuple(out)


def files_hash(paths: list[Path]) -> str:
    """SHA-256 (32 hex) of the names and contents of files and folders, in sorted order."""
    h = hashlib.sha256()
    for p in paths:
        for f in region_files(p):
            h.update(f.name.encode())
            with f.open("rb") as fh:
                while chunk := fh.read(1 << 20):
                    h.update(chunk)
    return h.hexdigest()[:32]


@dataclass(frozen=True, eq=False)
class LoadedRegion:
    """A loaded region with what is derived from its files once."""

    region: Region
    path: Path
    fingerprint: tuple[tuple[str, int, int, int], ...]
    content_hash: str
    """:func:`files_hash` of the region's files (recorded with every run)."""

    @classmethod
    def load(cls, path: str | os.PathLike[str],
             loader: Callable[[Path], Region] = load_region) -> LoadedRegion:
        """Load the region at *path* now (fingerprint taken first: a change while loading reloads)."""
        p = Path(path)
        fp = fingerprint(p)
        return cls(loader(p), p, fp, files_hash([p]))


class RegionCache:
    """The last loaded region per path, reloaded when :func:`fingerprint` changes (thread-safe).

    With ``keep_last_good=True`` (what ``serve`` uses) a region whose files changed but no
    longer load — a half-copied layer, an edit with an error — does not stop the warnings:
    the error is logged once (logger ``riskmap.region``, naming the problems) and the region
    loaded before is used until the files change again.  Without a region loaded before, or
    with ``keep_last_good=False``, the error is raised.
    """

    def __init__(self, loader: Callable[[Path], Region] = load_region, *,
                 keep_last_good: bool = False) -> None:
        self._loader = loader
        self._keep = keep_last_good
        self._loaded: dict[Path, LoadedRegion] = {}
        self._failed: dict[Path, tuple[tuple[str, int, int, int], ...]] = {}
        self._lock = threading.Lock()

    def get(self, path: str | os.PathLike[str]) -> LoadedRegion:
        """The loaded region at *path*: the kept one when no file changed, else freshly loaded."""
        p = Path(path)
        with self._lock:
            kept = self._loaded.get(p)
            fp = fingerprint(p)
            if kept is not None and (kept.fingerprint == fp or (self._keep and self._failed.get(p) == fp)):
                return kept
            try:
                fresh = LoadedRegion.load(p, self._loader)
            except RiskmapError as exc:
                if kept is None or not self._keep:
                    raise
                self._failed[p] = fp
                log.error("region %s changed but does not load; the cycles keep using the region loaded "
                          "before until its files change again: %s", p, exc)
                return kept
            self._failed.pop(p, None)
            self._loaded[p] = fresh
            return fresh
