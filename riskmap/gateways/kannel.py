"""Kannel gateway: HTTP ``sendsms`` on a Kannel smsbox.

Every request asks for UCS-2 (``coding=2``) with the text in UTF-8
(``charset=UTF-8``) — without ``coding=2`` Chinese arrives as ``?`` — and for
all delivery reports (``dlr-mask=31``) at a ``dlr-url`` that carries our
outbox id, so a receipt can be matched to its message.

Answers: 202 ``0: Accepted for delivery`` and 202 ``3: Queued for later
delivery`` (the SMSC is down; Kannel keeps the message in its store) are
accepted; 4xx (403 bad credentials, 400 rejected) is permanent; 5xx,
connection refused and time-outs are transient.

Kannel splits long texts itself, but by bytes: it would cut a surrogate pair
(e.g. 𠮷) in half.  A multi-part text containing a non-BMP character is
therefore split here (:func:`riskmap.sms.segments`) and sent as parts with an
explicit concatenation UDH.  If a later part fails after an earlier one was
accepted the message counts as not accepted (transient), and a retry sends
every part again.

Examples
--------
>>> gw = KannelGateway("http://127.0.0.1:13013/cgi-bin/sendsms", "rm", "secret",
...                    dlr_url="http://127.0.0.1:8765/dlr?id={id}")
>>> q = gw.query(OutgoingSms("42", "13800001234", "雨"))
>>> q["coding"], q["charset"], q["dlr-mask"], q["dlr-url"]
('2', 'UTF-8', '31', 'http://127.0.0.1:8765/dlr?id=42&status=%d&answer=%A&ts=%T&smsc=%i&mid=%F')
>>> classify(202, "3: Queued for later delivery").accepted
True
>>> classify(403, "Authorization failed for sendsms").transient
False
"""

from __future__ import annotations

import http.client
import itertools
import os
import socket
import threading
import time
import urllib.parse

from riskmap import sms
from riskmap.errors import ConfigError
from riskmap.gateways.base import OutgoingSms, SendResult, mask

DLR_FIELDS = "status=%d&answer=%A&ts=%T&smsc=%i&mid=%F"
"""Kannel escapes appended to our dlr-url: status bits, SMSC answer, time, smsc-id, SMSC message id."""

_IDLE_REOPEN_S = 4.0
_udh_ref = itertools.count(1)


def classify(status: int, body: str) -> SendResult:
    """Turn a sendsms HTTP answer into a :class:`SendResult`.

    >>> classify(202, "0: Accepted for delivery").detail
    '0: Accepted for delivery'
    >>> classify(503, "").transient
    True
    """
    body = body.strip()
    if status in (200, 202) and (body.startswith("0:") or body.startswith("3:")):
        return SendResult.ok(None, body)
    if status in (200, 202):
        # Kannel answers 202 with another code for an unusual acceptance; treat unknown text as transient
        return SendResult.retry(f"HTTP {status}: {body[:200]}")
    if 400 <= status < 500:
        return SendResult.fail(f"HTTP {status}: {body[:200]}")
    return SendResult.retry(f"HTTP {status}: {body[:200]}")


class KannelGateway:
    """Send through a Kannel smsbox's ``/cgi-bin/sendsms``.

    Parameters
    ----------
    url
        The sendsms URL, e.g. ``http://127.0.0.1:13013/cgi-bin/sendsms``.
    username, password
        A ``sendsms-user`` of the smsbox.  Use :meth:`from_env` to take the
        password from an environment variable.
    sender
        Default ``from`` (the service number).
    dlr_url
        Where Kannel posts delivery reports; ``{id}`` is replaced by the outbox id
        (URL-quoted).  Kannel's escapes for status, answer, time, smsc and SMSC
        message id are appended.  Empty: no delivery reports.
    timeout
        Seconds per HTTP request.
    """

    name = "kannel"

    def __init__(self, url: str, username: str, password: str, sender: str = "",
                 dlr_url: str = "", timeout: float = 10.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"gateway.url: {url!r} is not an http(s) sendsms URL")
        self.url = url
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._path = parts.path or "/cgi-bin/sendsms"
        self.username = username
        self.password = password
        self.sender = sender
        self.dlr_url = dlr_url
        self.timeout = timeout
        self._local = threading.local()

    @classmethod
    def from_env(cls, url: str, username: str, password_env: str, **kw: object) -> KannelGateway:
        """Build with the password read from the environment variable ``password_env``."""
        password = os.environ.get(password_env)
        if password is None:
            raise ConfigError(f"gateway: environment variable {password_env} (Kannel password) is not set")
        return cls(url, username, password, **kw)  # type: ignore[arg-type]

    # -- request building -------------------------------------------------------------------------
    def query(self, msg: OutgoingSms, text: str | None = None, udh: bytes | None = None) -> dict[str, str]:
        """The sendsms query parameters for ``msg`` (or one part of it)."""
        q = {
            "username": self.username,
            "password": self.password,
            "from": msg.sender or self.sender,
            "to": _kannel_number(msg.phone),
            "text": msg.text if text is None else text,
            "charset": "UTF-8",
            "coding": "2",
        }
        if udh is not None:
            q["udh"] = udh.decode("latin-1")
        if self.dlr_url:
            base = self.dlr_url.replace("{id}", urllib.parse.quote(str(msg.outbox_id), safe=""))
            q["dlr-mask"] = "31"
            q["dlr-url"] = base + ("&" if "?" in base else "?") + DLR_FIELDS
        return q

    def _conn(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        last = getattr(self._local, "last", 0.0)
        if conn is not None and time.monotonic() - last > _IDLE_REOPEN_S:
            conn.close()
            conn = None
        if conn is None:
            klass = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
            conn = klass(self._host, self._port, timeout=self.timeout)
            conn.connect()
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._local.conn = conn
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None

    def _get(self, params: dict[str, str]) -> tuple[int, str]:
        qs = urllib.parse.urlencode(params, encoding="utf-8")
        conn = self._conn()
        try:
            conn.request("GET", f"{self._path}?{qs}")
            resp = conn.getresponse()
            body = resp.read().decode("utf-8", "replace")
            if resp.getheader("Connection", "").lower() == "close":
                self._drop()
        except BaseException:
            self._drop()
            raise
        self._local.last = time.monotonic()
        return resp.status, body

    # -- the Gateway interface ---------------------------------------------------------------------
    def send(self, msg: OutgoingSms) -> SendResult:
        """Send one message; see the module docstring for how answers are classified."""
        parts = sms.segments(msg.text)
        needs_own_split = len(parts) > 1 and any(ord(c) > 0xFFFF for c in msg.text)
        calls: list[dict[str, str]]
        if needs_own_split:
            ref = next(_udh_ref) % 256
            calls = [self.query(msg, p, bytes([5, 0, 3, ref, len(parts), i + 1]))
                     for i, p in enumerate(parts)]
        else:
            calls = [self.query(msg)]
        result = SendResult.fail("nothing sent")
        for params in calls:
            try:
                status, body = self._get(params)
            except (TimeoutError, http.client.HTTPException, OSError) as exc:
                where = f"{self._host}:{self._port}"
                return SendResult.retry(f"kannel {where} unreachable for {mask(msg.phone)}: "
                                        f"{type(exc).__name__}: {exc}")
            result = classify(status, body)
            if not result.accepted:
                return result
        return result

    def close(self) -> None:
        """Close this thread's keep-alive connection."""
        self._drop()


def _kannel_number(phone: str) -> str:
    """Digits with an optional leading +, as Kannel expects (``+8613800001234`` or ``13800001234``).

    >>> _kannel_number("+86 138-0000-1234")
    '+8613800001234'
    """
    s = str(phone).strip()
    digits = "".join(c for c in s if c.isdigit())
    return ("+" + digits) if s.startswith("+") else digits
