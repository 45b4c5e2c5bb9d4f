"""Settings: one validated, frozen object loaded from ``riskmap.toml``.

Compute code never reads settings from a global; the object is passed in.
Unknown sections or keys, wrong types and impossible values raise
:class:`~riskmap.errors.ConfigError` naming the file and the key.
Credentials are not settings: they come from the environment (see
:attr:`GatewaySettings.password_env`).

Examples
--------
>>> s = Settings()
>>> s.office.timezone, s.rainfall.windows_h
('Asia/Shanghai', (1, 3, 6, 12, 24))
>>> s2 = settings_from_dict({"office": {"issuer": "青山县防汛抗旱指挥部办公室"}})
>>> s2.office.issuer
'青山县防汛抗旱指挥部办公室'
>>> settings_from_dict({"office": {"isuer": "x"}}, source="riskmap.toml")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
riskmap.errors.ConfigError: riskmap.toml: unknown key 'office.isuer' (known: area_code, issuer, ...)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from riskmap.errors import ConfigError


@dataclass(frozen=True)
class OfficeSettings:
    """Who issues the warnings and how text is shown."""

    issuer: str = "青山县防汛抗旱指挥部办公室"
    """发布单位, the office's full name as it signs warnings."""
    issuer_en: str = "Qingshan County Flood Control Office"
    signature: str = "青山县防指"
    """The 【signature】 that opens every SMS."""
    area_code: str = "469900"
    """6-digit GB/T 2260 code of the office's area (CAP identifiers, geocodes)."""
    timezone: str = "Asia/Shanghai"
    """Zone in which times are shown to people; storage is always UTC."""
    language: str = "zh-CN"
    """zh-CN or en-US for user-facing text."""


@dataclass(frozen=True)
class RainfallSettings:
    """Rainfall windows, effective rainfall and plausibility."""

    windows_h: tuple[int, ...] = (1, 3, 6, 12, 24)
    """Durations (hours) of the rolling accumulation windows."""
    effective_k: float = 0.84
    """Decay k of effective antecedent rainfall R_eff = Σ kⁱ·Rᵢ."""
    effective_days: int = 3
    """n, the number of antecedent days in R_eff."""
    day_boundary: str = "08:00"
    """Local time at which a rainfall day starts (Beijing time by default)."""
    max_intensity_mm_h: float = 300.0
    """Intensities above this are reported as implausible."""


@dataclass(frozen=True)
class LifecycleSettings:
    """How warnings live: hold before downgrade, validity margin."""

    hold_h: tuple[float, float, float, float] = (3.0, 3.0, 6.0, 6.0)
    """Hours a lower level must persist before a blue, yellow, orange, red warning is lowered."""
    validity_margin_h: float = 6.0
    """Hours past the end of the triggering window before an unrenewed warning expires."""
    hold_runs: int = 0
    """Alternatively lower a warning after this many consecutive lower runs (0 = use ``hold_h`` only)."""
    manual_validity_h: float = 24.0
    """Hours a manually issued warning stays valid unless lifted or renewed."""


@dataclass(frozen=True)
class CapSettings:
    """CAP 1.2 / GB/T 35965.1 identifiers."""

    sender: str = "qingshan-fxb@example.invalid"
    sector_code: str = "110"
    unit_code: str = "001"
    group_by_township: bool = False
    languages: tuple[str, ...] = ()
    """``info`` languages, e.g. ["zh-CN", "en-US"]; empty = zh-CN (plus en-US when the office is en-US)."""


@dataclass(frozen=True)
class GatewaySettings:
    """Where SMS go. Credentials are read from the environment variables named here."""

    kind: str = "file"
    """file, kannel, smpp or http."""
    url: str = ""
    username: str = ""
    password_env: str = "RISKMAP_GATEWAY_PASSWORD"
    sender_id: str = "106900000000"
    rate_per_s: float = 50.0
    # -- kind = "http": a generic aggregator (riskmap.gateways.http; placeholders are listed there) --
    http_method: str = "POST"
    """GET, POST or PUT."""
    http_body: str = '{"phone": "{phone}", "text": "{text}"}'
    """The request body as a JSON object whose string values are templates ({phone}, {text}, {id} …)."""
    http_body_format: str = "json"
    """json, or form (url-encoded; the query string for GET)."""
    http_headers: tuple[str, ...] = ()
    """Extra headers, each ``"Name: template"``."""
    http_credentials: tuple[str, ...] = ()
    """Each ``"placeholder=ENV_VAR"``: the value of the environment variable fills ``{placeholder}``."""
    http_signature_env: str = ""
    """Environment variable holding the HMAC key; empty: no signature."""
    http_signature_header: str = "X-Signature"
    http_signature_message: str = "{timestamp}{nonce}{body}"
    http_signature_algorithm: str = "sha256"
    http_signature_encoding: str = "hex"
    """hex or base64."""
    http_success_field: str = ""
    """Dotted path of the answer's JSON result code; empty: any 2xx is success."""
    http_success_value: str = ""
    http_id_field: str = ""
    """Dotted path of the message id in the JSON answer."""
    http_transient_codes: tuple[str, ...] = ()
    """Result codes that mean 'try again later'."""
    http_timeout_s: float = 10.0


@dataclass(frozen=True)
class StoreSettings:
    """The warning store."""

    url: str = ""
    """SQLAlchemy URL; empty means a SQLite file in the output folder."""


@dataclass(frozen=True)
class PathSettings:
    """Folders."""

    cache_dir: str = "~/.cache/riskmap"
    rules_dir: str = ""
    """Rule folder; empty means ./warning_rules if present, else the packaged defaults."""
    region: str = ""
    """The office's region (GeoPackage or layer folder), used by the commands that take ``--region``
    when it is not given (so ``riskmap issue``/``lift`` queue SMS and CAP); empty means not set."""


@dataclass(frozen=True)
class Settings:
    """All settings; every section has documented defaults."""

    office: OfficeSettings = field(default_factory=OfficeSettings)
    rainfall: RainfallSettings = field(default_factory=RainfallSettings)
    lifecycle: LifecycleSettings = field(default_factory=LifecycleSettings)
    cap: CapSettings = field(default_factory=CapSettings)
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    paths: PathSettings = field(default_factory=PathSettings)
    source: str = "<defaults>"
    """Where the settings came from (a file path or ``<defaults>``)."""

    @property
    def tz(self) -> ZoneInfo:
        """The display time zone."""
        return ZoneInfo(self.office.timezone)


def _coerce(value: Any, hint: Any, where: str, source: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{source}: '{where}' must be a list, got {value!r}")
        args = typing.get_args(hint)
        item = args[0]
        if len(args) != 2 or args[1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{source}: '{where}' must have {len(args)} items, got {len(value)}")
        return tuple(_coerce(v, item, f"{where}[{i}]", source) for i, v in enumerate(value))
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{source}: '{where}' must be a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: '{where}' must be a whole number, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: '{where}' must be true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: '{where}' must be text, got {value!r}")
        return value
    raise ConfigError(f"{source}: '{where}' has an unsupported type")  # pragma: no cover


def _section(cls: type, data: Any, name: str, source: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: [{name}] must be a table")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in known:
            raise ConfigError(
                f"{source}: unknown key '{name}.{key}' (known: {', '.join(sorted(known))})"
            )
    values = {k: _coerce(v, hints[k], f"{name}.{k}", source) for k, v in data.items()}
    return cls(**values)


def _validate(s: Settings) -> None:
    src = s.source
    try:
        ZoneInfo(s.office.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{src}: 'office.timezone' {s.office.timezone!r} is not a known time zone"
                          ) from None
    if s.office.language not in ("zh-CN", "en-US"):
        raise ConfigError(f"{src}: 'office.language' must be zh-CN or en-US, got {s.office.language!r}")
    if not (len(s.office.area_code) == 6 and s.office.area_code.isdigit()):
        raise ConfigError(f"{src}: 'office.area_code' must be 6 digits, got {s.office.area_code!r}")
    if not s.rainfall.windows_h or any(w <= 0 for w in s.rainfall.windows_h):
        raise ConfigError(f"{src}: 'rainfall.windows_h' must be positive hours")
    if not 0 < s.rainfall.effective_k <= 1:
        raise ConfigError(f"{src}: 'rainfall.effective_k' must be in (0, 1], got {s.rainfall.effective_k}")
    if s.rainfall.effective_days < 0:
        raise ConfigError(f"{src}: 'rainfall.effective_days' must be >= 0")
    hh, _, mm = s.rainfall.day_boundary.partition(":")
    if not (hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60):
        raise ConfigError(f"{src}: 'rainfall.day_boundary' must be HH:MM, got {s.rainfall.day_boundary!r}")
    if s.gateway.kind not in ("file", "kannel", "smpp", "http"):
        raise ConfigError(f"{src}: 'gateway.kind' must be file, kannel, smpp or http, got {s.gateway.kind!r}")
    _validate_http(s.gateway, src)
    bad = [lang for lang in s.cap.languages if lang not in ("zh-CN", "en-US")]
    if bad:
        raise ConfigError(f"{src}: 'cap.languages' may hold zh-CN and en-US, got {bad[0]!r}")
    if s.lifecycle.hold_runs < 0 or s.lifecycle.manual_validity_h <= 0:
        raise ConfigError(f"{src}: 'lifecycle.hold_runs' must be >= 0 and 'lifecycle.manual_validity_h' > 0")
    if any(h < 0 for h in s.lifecycle.hold_h):
        raise ConfigError(f"{src}: 'lifecycle.hold_h' must not be negative")


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def http_body(gw: GatewaySettings, src: str = "<settings>") -> dict[str, Any]:
    """``gateway.http_body`` parsed: a JSON object (its string values are templates)."""
    try:
        body = json.loads(gw.http_body)
    except ValueError as exc:
        raise ConfigError(f"{src}: 'gateway.http_body' is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ConfigError(f"{src}: 'gateway.http_body' must be a JSON object, got {gw.http_body!r}")
    return body


def _validate_http(gw: GatewaySettings, src: str) -> None:
    method, fmt = gw.http_method.upper(), gw.http_body_format
    if method not in ("GET", "POST", "PUT"):
        raise ConfigError(f"{src}: 'gateway.http_method' must be GET, POST or PUT, got {gw.http_method!r}")
    if fmt not in ("json", "form") or (method == "GET" and fmt != "form"):
        raise ConfigError(f"{src}: 'gateway.http_body_format' must be json or form (form for GET), "
                          f"got {fmt!r}")
    http_body(gw, src)
    for h in gw.http_headers:
        if not h.partition(":")[0].strip() or ":" not in h:
            raise ConfigError(f"{src}: 'gateway.http_headers' items must be 'Name: value', got {h!r}")
    for c in gw.http_credentials:
        name, _, env = c.partition("=")
        if not (_ENV_NAME.fullmatch(name.strip()) and _ENV_NAME.fullmatch(env.strip())):
            raise ConfigError(f"{src}: 'gateway.http_credentials' items must be 'placeholder=ENV_VAR' "
                              f"(the name of an environment variable, never the secret), got {c!r}")
    if gw.http_signature_env and not _ENV_NAME.fullmatch(gw.http_signature_env):
        raise ConfigError(f"{src}: 'gateway.http_signature_env' must name an environment variable, "
                          f"got {gw.http_signature_env!r}")
    if gw.http_signature_algorithm not in hashlib.algorithms_available:
        raise ConfigError(f"{src}: 'gateway.http_signature_algorithm' {gw.http_signature_algorithm!r} is "
                          "not a known hash (e.g. sha256, md5)")
    if gw.http_signature_encoding not in ("hex", "base64"):
        raise ConfigError(f"{src}: 'gateway.http_signature_encoding' must be hex or base64")
    if gw.http_timeout_s <= 0:
        raise ConfigError(f"{src}: 'gateway.http_timeout_s' must be > 0")


SERVICE_SECTIONS = ("service",)
"""Sections of ``riskmap.toml`` validated elsewhere (``riskmap serve``'s own section); skipped here."""


def settings_from_dict(data: dict[str, Any], source: str = "<dict>") -> Settings:
    """Build validated :class:`Settings` from a parsed TOML mapping."""
    hints = typing.get_type_hints(Settings)
    sections: dict[str, Any] = {}
    for name, value in data.items():
        if name in SERVICE_SECTIONS:
            continue
        if name == "source" or name not in hints:
            known = ", ".join(f.name for f in dataclasses.fields(Settings) if f.name != "source")
            raise ConfigError(f"{source}: unknown section [{name}] (known: {known})")
        sections[name] = _section(hints[name], value, name, source)
    settings = Settings(**sections, source=source)
    _validate(settings)
    return settings


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a settings file; a missing file or bad TOML is a :class:`ConfigError` naming it."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{p}: settings file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None


def load_settings(path: str | Path | None = None) -> Settings:
    """Load settings from a TOML file, or the defaults when ``path`` is None."""
    if path is None:
        return Settings()
    return settings_from_dict(read_toml(path), source=str(Path(path)))

