"""Files a cycle writes: ``levels.csv``, ``cap/*.xml`` with an Atom feed, ``map.html``.

Everything is written atomically (temporary file, then rename), so a reader never sees half a file.
"""

from __future__ import annotations

import os
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from riskmap.config import Settings
from riskmap.errors import RiskmapIOError
from riskmap.region import Region
from riskmap.timeutil import format_local


def _atomic_write(path: Path, data: bytes) -> Path:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise RiskmapIOError(f"{path}: cannot write: {exc.strerror or exc}") from None
    return path


def write_cap_files(out_dir: Path, store: Any, run_id: str, settings: Settings, now: datetime) -> list[Path]:
    """Write the run's CAP messages to ``OUT/cap/`` and the Atom feed of current alerts beside them."""
    from riskmap.cap import atom_feed, cap_filename, current_alerts

    folder = out_dir / "cap"
    paths = [_atomic_write(folder / cap_filename(m.identifier), m.xml.encode("utf-8"))
             for m in store.cap_messages(run_id)]
    feed = atom_feed(current_alerts(store.cap_messages()), title=f"{settings.office.issuer} 当前预警",
                     updated=now, author=settings.office.issuer)
    paths.append(_atomic_write(folder / "feed.atom", feed))
    return paths


def map_table(result: Any, windows_h: tuple[int, ...], now: datetime) -> pd.DataFrame:
    """levels.csv columns plus expected rain per window (``rain_<N>h``, village mean, mm) for popups."""
    from riskmap.windows import window_maxima

    table = result.assessment.villages.copy()
    win = window_maxima(result.rain, list(windows_h), now=pd.Timestamp(now))
    for w in windows_h:
        table[f"rain_{w}h"] = win["mean"].sel(duration=w).to_numpy().round(1)
    return table


def write_outputs(out_dir: Path, result: Any, region: Region, store: Any, run_id: str, settings: Settings,
                  now: datetime, *, write_map: bool = True, grid: Any = None) -> dict[str, Path]:
    """Write every output of a cycle; returns name → path."""
    from riskmap.levels_csv import to_levels_csv

    files: dict[str, Path] = {"levels": to_levels_csv(result.assessment, out_dir / "levels.csv")}
    write_cap_files(out_dir, store, run_id, settings, now)
    files["cap"] = out_dir / "cap"
    sms = out_dir / "sms.jsonl"
    if sms.exists():
        files["sms"] = sms
    if write_map:
        from riskmap.maps import warning_map
        from riskmap.maps import write_map as _write_map

        title = f"{settings.office.issuer} 预警图 {format_local(now, settings.office.timezone)}"
        m = warning_map(region, map_table(result, settings.rainfall.windows_h, now), rain=grid,
                        title=title, run_time=now, tz=settings.office.timezone)
        files["map"] = _write_map(m, out_dir / "map.html")
    return files
