"""Helpers for the ``riskmap serve`` tests: a tiny region and forecasts made in code, a config, the process.

The region is ``tests/region_data.py``'s four villages near 120° E 30° N (critical rainfall
30 / 45 mm in 1 h); a forecast of 60 mm in its second hour over all of them gives red
warnings, and four SMS go to the mobile numbers among the contacts.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from region_data import valid_layers, write_gpkg

TOKEN = "receiver-test-token"
RISKMAP = [sys.executable, "-m", "riskmap.cli"]


def make_region(path: Path) -> Path:
    """The four-village GeoPackage."""
    return write_gpkg(valid_layers(), path)


def write_forecast(path: Path, ref: str = "2026-07-15T00:00", peak_mm: float = 60.0, hours: int = 6) -> Path:
    """A CF NetCDF hourly forecast over the region: ``peak_mm`` in hour 2, a third of it in hour 3."""
    t0 = np.datetime64(ref, "ns")
    h = np.timedelta64(1, "h")
    ends = np.array([t0 + h * i for i in range(1, hours + 1)])
    lat = np.round(np.arange(30.025, 29.98, -0.01), 3)
    lon = np.round(np.arange(119.985, 120.06, 0.01), 3)
    vals = np.zeros((hours, lat.size, lon.size))
    vals[1], vals[2] = peak_mm, peak_mm / 3
    attrs = {"units": "mm", "standard_name": "precipitation_amount", "cell_methods": "time: sum",
             "grid_mapping": "crs"}
    ds = xr.Dataset(
        {"precip": (("time", "lat", "lon"), vals, attrs),
         "time_bnds": (("time", "nv"), np.stack([ends - h, ends], axis=1))},
        coords={"time": ("time", ends, {"bounds": "time_bnds", "standard_name": "time"}),
                "lat": ("lat", lat, {"standard_name": "latitude", "units": "degrees_north"}),
                "lon": ("lon", lon, {"standard_name": "longitude", "units": "degrees_east"})})
    ds["crs"] = xr.DataArray(np.int32(0), attrs={"grid_mapping_name": "latitude_longitude",
                                                "semi_major_axis": 6378137.0,
                                                "inverse_flattening": 298.257222101})
    ds.attrs["reference_time"] = f"{ref}:00+00:00"
    ds["time"].encoding["units"] = f"minutes since {ref.replace('T', ' ')}:00"
    ds["time_bnds"].encoding["units"] = f"minutes since {ref.replace('T', ' ')}:00"
    ds.to_netcdf(path)
    return path


def drop(src: Path, inbox: Path, name: str | None = None) -> Path:
    """Put a file into the inbox the way a sender should: write under a .part name, then rename."""
    target = inbox / (name or src.name)
    part = target.with_name(target.name + ".part")
    part.write_bytes(src.read_bytes())
    os.replace(part, target)
    return target


def write_config(d: Path, region: Path, cache: Path, kannel: Any = None, **service: Any) -> Path:
    """``d/riskmap.toml`` for a fast service (short polls, lease 2 s); Kannel gateway if given, else file."""
    opts = {"region": str(region), "poll_s": 0.2, "settle_s": 0.3, "expiry_check_min": 0, "write_map": False}
    opts.update(service)

    def val(v: Any) -> str:
        return str(v).lower() if isinstance(v, bool) else repr(v) if isinstance(v, str) else str(v)

    lines = ["[paths]", f"cache_dir = {str(cache)!r}", ""]
    if kannel is not None:
        lines += ["[gateway]", 'kind = "kannel"', f"url = {kannel.sendsms_url!r}",
                  f"username = {kannel.username!r}", "rate_per_s = 0.0", ""]
    lines += ["[service]"] + [f"{k} = {val(v)}" for k, v in opts.items()]
    lines += ["", "[service.receiver]", "port = 0", "",
              "[service.dispatch]", "lease_s = 2.0", "sweep_s = 0.3", "concurrency = 1"]
    (d / "inbox").mkdir(parents=True, exist_ok=True)
    path = d / "riskmap.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def env(kannel: Any = None, **extra: str) -> dict[str, str]:
    e = dict(os.environ, RISKMAP_RECEIVER_TOKEN=TOKEN, COLUMNS="150")
    e.pop("RISKMAP_FAULT", None)
    if kannel is not None:
        e["RISKMAP_GATEWAY_PASSWORD"] = kannel.password
    e.update(extra)
    return e


def start_serve(d: Path, environ: dict[str, str], log_name: str = "serve.log",
                *args: str) -> subprocess.Popen:
    """``python -m riskmap.cli serve --config d/riskmap.toml`` in ``d``, output appended to ``d/log_name``."""
    fh = (d / log_name).open("ab")
    try:
        return subprocess.Popen([*RISKMAP, "serve", "--config", "riskmap.toml", *args], cwd=d, env=environ,
                                stdout=fh, stderr=subprocess.STDOUT)
    finally:
        fh.close()


def stop(p: subprocess.Popen, timeout: float = 30) -> int:
    """SIGTERM and wait."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
    return p.wait(timeout=timeout)


def wait_for(cond: Callable[[], Any], timeout: float, what: str, proc: subprocess.Popen | None = None,
             log: Path | None = None) -> Any:
    """Poll ``cond`` until truthy; fail naming ``what`` (with the service log) on time-out or early exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.1)
    tail = log.read_text(encoding="utf-8", errors="replace")[-4000:] if log and log.exists() else ""
    code = proc.poll() if proc is not None else None
    raise AssertionError(f"timed out waiting for {what} (service exit {code})\n{tail}")


def query(db: Path, sql: str, *args: Any) -> list[tuple]:
    """Rows of a read-only query on the SQLite store."""
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute(sql, args).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()
