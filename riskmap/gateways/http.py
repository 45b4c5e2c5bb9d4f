"""Generic HTTP aggregator gateway — how most Chinese senders reach the carriers.

Configured, not coded: URL, method, body (a JSON object or a form whose string
values are templates), headers, an optional HMAC signature, and credentials whose
*values* come from environment variables named in the config.  Placeholders:
``{phone}``, ``{text}``, ``{id}`` (our outbox id), ``{sender}``, ``{timestamp}``
(Unix seconds), ``{timestamp_ms}``, ``{nonce}``, ``{body}`` (signature only), and
each credential name.  Values are inserted as data (JSON-encoded or
form-encoded), never re-parsed as templates.

Answers: 2xx and (if configured) the JSON field ``success_field`` equal to
``success_value`` → accepted, with the gateway's id from ``id_field`` (dotted
path); 408/429/5xx, time-outs and refused connections → transient; other 4xx or
a JSON failure code → permanent (unless the code is listed in ``transient_codes``).

Examples
--------
>>> import os
>>> os.environ["DOC_SMS_KEY"] = "k3y"
>>> gw = HttpGateway(HttpGatewayConfig(
...     url="http://127.0.0.1:9/sms", body={"mobile": "{phone}", "content": "{text}", "key": "{api_key}"},
...     credentials={"api_key": "DOC_SMS_KEY"}))
>>> method, headers, body = gw.build(OutgoingSms("7", "13800001234", "雨"))
>>> method, body.decode()
('POST', '{"mobile": "13800001234", "content": "雨", "key": "k3y"}')
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import string
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from riskmap.config import GatewaySettings, http_body
from riskmap.errors import ConfigError
from riskmap.gateways.base import OutgoingSms, SendResult, mask

_BASE_FIELDS = {"phone", "text", "id", "sender", "timestamp", "timestamp_ms", "nonce"}


@dataclass(frozen=True)
class Signature:
    """HMAC over ``message`` (a template; ``{body}`` is the encoded request body)."""

    key_env: str
    header: str = "X-Signature"
    message: str = "{timestamp}{nonce}{body}"
    algorithm: str = "sha256"
    encoding: str = "hex"
    """hex or base64."""


@dataclass(frozen=True)
class HttpGatewayConfig:
    """Everything the generic gateway needs; credentials are environment variable *names*."""

    url: str
    method: str = "POST"
    body: Mapping[str, Any] = field(default_factory=lambda: {"phone": "{phone}", "text": "{text}"})
    body_format: str = "json"
    """json or form (for GET, ``form`` values go into the query string)."""
    headers: Mapping[str, str] = field(default_factory=dict)
    credentials: Mapping[str, str] = field(default_factory=dict)
    signature: Signature | None = None
    success_field: str = ""
    success_value: str = ""
    id_field: str = ""
    transient_codes: tuple[str, ...] = ()
    timeout: float = 10.0
    sender: str = ""

    @classmethod
    def from_settings(cls, gs: GatewaySettings) -> HttpGatewayConfig:
        """From the ``[gateway]`` settings (``kind = "http"``, the ``http_*`` keys; see riskmap.toml)."""
        if not gs.url:
            raise ConfigError("gateway.url: the aggregator's send URL is required when gateway.kind = 'http'")
        headers = {}
        for h in gs.http_headers:
            name, _, value = h.partition(":")
            headers[name.strip()] = value.strip()
        creds = {}
        for c in gs.http_credentials:
            name, _, env = c.partition("=")
            creds[name.strip()] = env.strip()
        sig = None
        if gs.http_signature_env:
            sig = Signature(gs.http_signature_env, gs.http_signature_header, gs.http_signature_message,
                            gs.http_signature_algorithm, gs.http_signature_encoding)
        return cls(url=gs.url, method=gs.http_method.upper(), body=http_body(gs),
                   body_format=gs.http_body_format, headers=headers, credentials=creds, signature=sig,
                   success_field=gs.http_success_field, success_value=gs.http_success_value,
                   id_field=gs.http_id_field, transient_codes=tuple(gs.http_transient_codes),
                   timeout=gs.http_timeout_s, sender=gs.sender_id)


def _check_template(text: str, allowed: set[str], where: str) -> None:
    for _, name, _, _ in string.Formatter().parse(text):
        if name is not None and name not in allowed:
            raise ConfigError(f"gateway http {where}: unknown placeholder {{{name}}} "
                              f"(allowed: {', '.join(sorted(allowed))})")


def _fill(value: Any, values: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return value.format_map(values)
    if isinstance(value, Mapping):
        return {k: _fill(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    return value


def _walk(value: Any, fn: Callable[[str], None]) -> None:
    if isinstance(value, str):
        fn(value)
    elif isinstance(value, Mapping):
        for v in value.values():
            _walk(v, fn)
    elif isinstance(value, list):
        for v in value:
            _walk(v, fn)


def _dig(data: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(data, Mapping) and part in data:
            data = data[part]
        else:
            return None
    return data


class HttpGateway:
    """Send through a generic HTTP SMS aggregator (see the module docstring)."""

    name = "http"

    def __init__(self, cfg: HttpGatewayConfig, clock: Callable[[], float] = time.time,
                 nonce: Callable[[], str] = lambda: secrets.token_hex(8)) -> None:
        if urllib.parse.urlsplit(cfg.url).scheme not in ("http", "https"):
            raise ConfigError(f"gateway http url: {cfg.url!r} is not an http(s) URL")
        if cfg.method.upper() not in ("GET", "POST", "PUT"):
            raise ConfigError(f"gateway http method: {cfg.method!r} (GET, POST or PUT)")
        if cfg.body_format not in ("json", "form"):
            raise ConfigError(f"gateway http body_format: {cfg.body_format!r} (json or form)")
        if cfg.method.upper() == "GET" and cfg.body_format != "form":
            raise ConfigError("gateway http: method GET needs body_format form (values go into the query)")
        self.cfg = cfg
        self._clock, self._nonce = clock, nonce
        self._creds: dict[str, str] = {}
        for name, env in cfg.credentials.items():
            if env not in os.environ:
                raise ConfigError(f"gateway http credential {name!r}: environment variable {env} is not set")
            self._creds[name] = os.environ[env]
        allowed = _BASE_FIELDS | set(self._creds)
        _walk(dict(cfg.body), lambda t: _check_template(t, allowed, "body"))
        for k, v in cfg.headers.items():
            _check_template(v, allowed, f"header {k}")
        self._sig_key = b""
        if cfg.signature is not None:
            if cfg.signature.key_env not in os.environ:
                env = cfg.signature.key_env
                raise ConfigError(f"gateway http signature: environment variable {env} is not set")
            if cfg.signature.algorithm not in hashlib.algorithms_available:
                raise ConfigError(f"gateway http signature: unknown algorithm {cfg.signature.algorithm!r}")
            _check_template(cfg.signature.message, allowed | {"body"}, "signature.message")
            self._sig_key = os.environ[cfg.signature.key_env].encode()

    def build(self, msg: OutgoingSms) -> tuple[str, dict[str, str], bytes]:
        """Method, headers and body for one message (the URL may get a query for GET)."""
        now = self._clock()
        values = {"phone": msg.phone, "text": msg.text, "id": str(msg.outbox_id),
                  "sender": msg.sender or self.cfg.sender, "timestamp": str(int(now)),
                  "timestamp_ms": str(int(now * 1000)), "nonce": self._nonce(), **self._creds}
        payload = _fill(dict(self.cfg.body), values)
        headers = {k: v.format_map(values) for k, v in self.cfg.headers.items()}
        if self.cfg.body_format == "json":
            body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
            headers.setdefault("Content-Type", "application/json; charset=utf-8")
        else:
            body = urllib.parse.urlencode(payload, encoding="utf-8").encode("ascii")
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
        sig = self.cfg.signature
        if sig is not None:
            message = sig.message.format_map({**values, "body": body.decode("utf-8")}).encode("utf-8")
            digest = hmac.new(self._sig_key, message, sig.algorithm).digest()
            headers[sig.header] = digest.hex() if sig.encoding == "hex" else base64.b64encode(digest).decode()
        return self.cfg.method.upper(), headers, body

    def send(self, msg: OutgoingSms) -> SendResult:
        """Send one message and classify the answer."""
        method, headers, body = self.build(msg)
        url = self.cfg.url
        data: bytes | None = body
        if method == "GET":
            url += ("&" if "?" in url else "?") + body.decode("ascii")
            data = None
        req = urllib.request.Request(url, data=data, headers=headers, method=method)
        who = mask(msg.phone)
        try:
            with urllib.request.urlopen(req, timeout=self.cfg.timeout) as resp:
                status, text = resp.status, resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read().decode("utf-8", "replace")
        except (TimeoutError, OSError) as exc:
            return SendResult.retry(f"http gateway unreachable for {who}: {type(exc).__name__}: {exc}")
        short = text[:200].replace(msg.phone, who)
        if status in (408, 429) or status >= 500:
            return SendResult.retry(f"HTTP {status}: {short}")
        if not 200 <= status < 300:
            return SendResult.fail(f"HTTP {status}: {short}")
        parsed: Any = None
        if self.cfg.success_field or self.cfg.id_field:
            try:
                parsed = json.loads(text)
            except ValueError:
                return SendResult.retry(f"HTTP {status}: answer is not JSON: {short}")
        if self.cfg.success_field:
            code = _dig(parsed, self.cfg.success_field)
            if str(code) != self.cfg.success_value:
                if str(code) in self.cfg.transient_codes:
                    return SendResult.retry(f"{self.cfg.success_field}={code}: {short}")
                return SendResult.fail(f"{self.cfg.success_field}={code}: {short}")
        gid = _dig(parsed, self.cfg.id_field) if self.cfg.id_field else None
        return SendResult.ok(None if gid is None else str(gid), f"HTTP {status}")

    def close(self) -> None:
        """Nothing to release (one connection per request)."""
