"""The ``[service]`` section of ``riskmap.toml``: what ``riskmap serve`` watches, how often, where it writes.

The rest of the file is the ordinary :class:`~riskmap.config.Settings`.  Relative paths are
resolved against the settings file's folder.  :func:`load_service_config` reads both;
:func:`validate` lists every problem, one line each (``riskmap serve`` refuses to start with
exit 2 when there is any).

.. code-block:: toml

    [service]
    region = "data/region.gpkg"       # required
    inbox = "inbox"                   # drop folder (done/ and quarantine/ are made inside)
    out = "out"                       # outputs: levels.csv, cap/, map.html
    db = ""                           # store URL; empty: [store] url, else OUT/riskmap.sqlite
    poll_s = 5.0                      # inbox scan interval
    settle_s = 2.0                    # a file must keep its size this long before it is read
    expiry_check_min = 5.0            # expire warnings whose validity ended (0: off)
    escalation_check_min = 1.0        # unacknowledged orange/red → the duty officer (0: off)
    housekeeping_at = "03:00"         # daily, local time
    keep_days = 30                    # delete outputs, done/ and quarantine/ files older than this
    archive_days = 90                 # archive sent outbox rows older than this
    log_json = false

    [service.dispatch]
    lease_s = 60.0
    sweep_s = 5.0

    [service.receiver]                # Kannel dlr-url / replies; token from the environment
    port = 8765
    token_env = "RISKMAP_RECEIVER_TOKEN"

    [[service.sources]]
    name = "qx"                       # meteorological department
    pattern = "*.nc"
    kind = "forecast"                 # or "observed"
    forecast_options = { variable = "precip" }

    [[service.sources]]
    name = "sw"                       # hydrology: polled over HTTP, lands in the inbox as sw_<time>.csv
    kind = "observed"
    url = "https://sw.example.cn/rain/latest.csv"
    fetch_min = 10
    token_env = "RISKMAP_SW_TOKEN"

Examples
--------
>>> sc, problems = service_from_dict({"region": "r.gpkg", "poll_s": 0, "colour": 1}, base=Path("/srv"))
>>> sc.region
PosixPath('/srv/r.gpkg')
>>> for line in problems:
...     print(line)
unknown key 'service.colour' (known: archive_days, db, dispatch, escalation_check_min, expiry_check_min, \
housekeeping_at, inbox, keep_days, log_json, max_file_attempts, out, poll_s, receiver, region, rules, \
settle_s, sources, write_map)
'service.poll_s' must be > 0, got 0
>>> [s.name for s in service_from_dict({"region": "r"})[0].sources]
['forecast']
"""

from __future__ import annotations

import dataclasses
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from riskmap.config import Settings, read_toml, settings_from_dict
from riskmap.errors import ConfigError


@dataclass(frozen=True)
class Source:
    """One kind of file arriving in the inbox."""

    name: str
    pattern: str = "*"
    """Shell pattern of the file names (``fnmatch``)."""
    kind: str = "forecast"
    """``forecast`` or ``observed``."""
    forecast_options: Mapping[str, Any] = field(default_factory=dict)
    url: str = ""
    """Optional HTTP(S) URL polled every ``fetch_min`` minutes; new content lands in the inbox."""
    fetch_min: float = 10.0
    token_env: str = ""
    """Environment variable holding a bearer token for ``url`` (credentials never go in the file)."""


@dataclass(frozen=True)
class DispatchConfig:
    """The service's dispatcher (see :class:`riskmap.dispatcher.DispatchPolicy`)."""

    lease_s: float = 60.0
    sweep_s: float = 5.0
    concurrency: int = 4
    max_attempts: int = 5
    mark_batch: int = 64
    backoff_base_s: float = 5.0


@dataclass(frozen=True)
class ReceiverConfig:
    """The delivery-report receiver (:class:`riskmap.receiver.Receiver`) in the service process."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8765
    """0: any free port (tests)."""
    token_env: str = "RISKMAP_RECEIVER_TOKEN"


@dataclass(frozen=True)
class ServiceConfig:
    """The ``[service]`` section, paths resolved."""

    region: Path | None = None
    inbox: Path = Path("inbox")
    out: Path = Path("out")
    rules: Path | None = None
    poll_s: float = 5.0
    settle_s: float = 2.0
    expiry_check_min: float = 5.0
    escalation_check_min: float = 1.0
    """How often unacknowledged orange/red messages are looked for (0: off)."""
    housekeeping_at: str = "03:00"
    keep_days: float = 30.0
    archive_days: float = 90.0
    log_json: bool = False
    write_map: bool = True
    max_file_attempts: int = 3
    """Tries for a file that fails for a reason other than bad input (then it is quarantined)."""
    sources: tuple[Source, ...] = (Source("forecast"),)
    dispatch: DispatchConfig = field(default_factory=DispatchConfig)
    receiver: ReceiverConfig = field(default_factory=ReceiverConfig)
    db: str = ""
    source_file: str = "<defaults>"

    def source_for(self, filename: str) -> Source | None:
        """The first source whose pattern matches a file name."""
        import fnmatch

        return next((s for s in self.sources if fnmatch.fnmatch(filename, s.pattern)), None)


_SCALARS = {"poll_s": float, "settle_s": float, "expiry_check_min": float, "escalation_check_min": float,
            "keep_days": float,
            "archive_days": float, "log_json": bool, "write_map": bool, "max_file_attempts": int,
            "housekeeping_at": str, "db": str}
_PATHS = ("region", "inbox", "out", "rules")
_TABLES = {"dispatch": DispatchConfig, "receiver": ReceiverConfig}


def _typed(value: Any, kind: type, where: str, problems: list[str]) -> Any:
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind in (bool, str) and isinstance(value, kind):
        return value
    problems.append(f"'{where}' must be {kind.__name__}, got {value!r}")
    return None


def _table(cls: type, data: Any, where: str, problems: list[str]) -> Any:
    if not isinstance(data, dict):
        problems.append(f"[{where}] must be a table")
        return cls()
    hints = {f.name: f.type for f in dataclasses.fields(cls)}
    kinds = {"float": float, "int": int, "bool": bool, "str": str}
    values = {}
    for k, v in data.items():
        if k not in hints:
            problems.append(f"unknown key '{where}.{k}' (known: {', '.join(sorted(hints))})")
            continue
        got = _typed(v, kinds[str(hints[k])], f"{where}.{k}", problems)
        if got is not None:
            values[k] = got
    return cls(**values)


def _sources(data: Any, problems: list[str]) -> tuple[Source, ...]:
    if not isinstance(data, list) or not data:
        problems.append("'service.sources' must be a non-empty list of tables ([[service.sources]])")
        return (Source("forecast"),)
    out = []
    for i, s in enumerate(data):
        where = f"service.sources[{i}]"
        if not isinstance(s, dict):
            problems.append(f"'{where}' must be a table")
            continue
        unknown = set(s) - {"name", "pattern", "kind", "forecast_options", "url", "fetch_min", "token_env"}
        if unknown:
            problems.append(f"unknown key '{where}.{sorted(unknown)[0]}' "
                            "(known: fetch_min, forecast_options, kind, name, pattern, token_env, url)")
        url = s.get("url", "")
        if not isinstance(url, str) or (url and urllib.parse.urlsplit(url).scheme not in ("http", "https")):
            problems.append(f"'{where}.url' must be an http(s) URL, got {url!r}")
            url = ""
        fetch_min = s.get("fetch_min", 10.0)
        if isinstance(fetch_min, bool) or not isinstance(fetch_min, int | float) or fetch_min <= 0:
            problems.append(f"'{where}.fetch_min' must be a number > 0, got {fetch_min!r}")
            fetch_min = 10.0
        name = str(s.get("name", f"source{i + 1}"))
        kind = s.get("kind", "forecast")
        if kind not in ("forecast", "observed"):
            problems.append(f"'{where}.kind' must be forecast or observed, got {kind!r}")
        opts = s.get("forecast_options", {})
        if not isinstance(opts, dict):
            problems.append(f"'{where}.forecast_options' must be a table, got {opts!r}")
            opts = {}
        pattern = str(s.get("pattern", f"{name}_*" if url else "*"))
        out.append(Source(name, pattern, str(kind), dict(opts), url, float(fetch_min),
                          str(s.get("token_env", ""))))
    names = [s.name for s in out]
    for n in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"'service.sources': the name {n!r} is used twice")
    return tuple(out)


def service_from_dict(data: Mapping[str, Any], base: Path = Path("."),
                      source: str = "<dict>") -> tuple[ServiceConfig, list[str]]:
    """Parse a ``[service]`` table; returns the config and the problems found (without the file name)."""
    problems: list[str] = []
    values: dict[str, Any] = {"source_file": source}
    known = sorted([*_SCALARS, *_PATHS, *_TABLES, "sources"])
    for key, value in data.items():
        where = f"service.{key}"
        if key in _PATHS:
            if not isinstance(value, str) or not value:
                problems.append(f"'{where}' must be a path, got {value!r}")
            else:
                p = Path(value).expanduser()
                values[key] = p if p.is_absolute() else base / p
        elif key in _SCALARS:
            got = _typed(value, _SCALARS[key], where, problems)
            if got is not None:
                values[key] = got
        elif key in _TABLES:
            values[key] = _table(_TABLES[key], value, where, problems)
        elif key == "sources":
            values[key] = _sources(value, problems)
        else:
            problems.append(f"unknown key '{where}' (known: {', '.join(known)})")
    for key in ("inbox", "out"):
        if key not in values:
            values[key] = base / key
    sc = ServiceConfig(**values)
    for key in ("poll_s", "settle_s"):
        if getattr(sc, key) <= 0 and key in values:
            problems.append(f"'service.{key}' must be > 0, got {values[key]:g}")
    for key in ("expiry_check_min", "escalation_check_min", "keep_days", "archive_days"):
        if getattr(sc, key) < 0:
            problems.append(f"'service.{key}' must be >= 0 (0 = off), got {getattr(sc, key):g}")
    hh, _, mm = sc.housekeeping_at.partition(":")
    if not (hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60):
        problems.append(f"'service.housekeeping_at' must be HH:MM, got {sc.housekeeping_at!r}")
    if sc.dispatch.lease_s <= 0 or sc.dispatch.sweep_s <= 0 or sc.dispatch.concurrency < 1:
        problems.append("'service.dispatch': lease_s and sweep_s must be > 0 and concurrency >= 1")
    return sc, problems


def load_service_config(path: str | Path | None) -> tuple[Settings, ServiceConfig, list[str]]:
    """Read ``riskmap.toml``: the settings, the ``[service]`` section and every problem (one line each)."""
    if path is None:
        return Settings(), ServiceConfig(source_file="<defaults>"), []
    p = Path(path)
    data = read_toml(p)
    problems: list[str] = []
    service = data.pop("service", {})
    try:
        settings = settings_from_dict(data, source=str(p))
    except ConfigError as exc:
        settings = Settings(source=str(p))
        problems.append(str(exc).removeprefix(f"{p}: "))
    if not isinstance(service, dict):
        problems.append("[service] must be a table")
        service = {}
    sc, more = service_from_dict(service, base=p.resolve().parent, source=str(p))
    return settings, sc, [f"{p}: {m}" for m in problems + more]


def with_overrides(sc: ServiceConfig, inbox: Path | None = None, db: str | None = None,
                   out: Path | None = None,
                   forecast_options: Mapping[str, Any] | None = None) -> ServiceConfig:
    """The command line's ``--inbox``, ``--db``, ``--out`` and ``--forecast-option`` over the file's."""
    if inbox is not None:
        sc = replace(sc, inbox=inbox)
    if out is not None:
        sc = replace(sc, out=out)
    if db:
        sc = replace(sc, db=db)
    if forecast_options:
        sc = replace(sc, sources=tuple(replace(s, forecast_options={**s.forecast_options, **forecast_options})
                                       for s in sc.sources))
    return sc


def validate(settings: Settings, sc: ServiceConfig, env: Mapping[str, str] | None = None) -> list[str]:
    """What stops the service from starting, one line each (paths, gateway, credentials)."""
    env = os.environ if env is None else env
    src = sc.source_file
    problems: list[str] = []
    if sc.region is None:
        problems.append(f"{src}: 'service.region' is required (the region GeoPackage or layer folder)")
    elif not sc.region.exists():
        problems.append(f"{src}: 'service.region' {sc.region} does not exist")
    if sc.rules is not None and not sc.rules.is_dir():
        problems.append(f"{src}: 'service.rules' {sc.rules} is not a folder")
    for key in ("inbox", "out"):
        p = getattr(sc, key)
        if p.exists() and not p.is_dir():
            problems.append(f"{src}: 'service.{key}' {p} is not a folder")
        elif not p.exists() and not p.parent.is_dir():
            problems.append(f"{src}: 'service.{key}' {p}: its parent folder does not exist")
    gw = settings.gateway
    if gw.kind in ("kannel", "smpp", "http") and not gw.url:
        problems.append(f"{src}: 'gateway.url' is required when gateway.kind = {gw.kind!r}")
    if gw.kind in ("kannel", "smpp") and gw.password_env not in env:
        problems.append(f"{src}: environment variable {gw.password_env} (gateway password) is not set")
    if gw.kind == "http":
        missing = [c.partition("=")[2].strip() for c in gw.http_credentials]
        missing += [gw.http_signature_env] if gw.http_signature_env else []
        for name in (n for n in missing if n not in env):
            problems.append(f"{src}: environment variable {name} (http gateway credential) is not set")
    if sc.receiver.enabled and not env.get(sc.receiver.token_env):
        problems.append(f"{src}: environment variable {sc.receiver.token_env} (receiver token) is not set "
                        "(or set service.receiver.enabled = false)")
    return problems
