"""The generic HTTP aggregator gateway against a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import threading
import urllib.parse
from collections.abc import Iterator

import pytest

from riskmap.errors import ConfigError
from riskmap.gateways.base import OutgoingSms
from riskmap.gateways.http import HttpGateway, HttpGatewayConfig, Signature

TEXT = "【青山县防指】张家村暴雨洪涝风险红色预警,请立即转移。𠮷"


class Aggregator:
    """A fake aggregator: records requests, answers with a queued (status, body)."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.answers: list[tuple[int, str]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _handle(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                outer.requests.append({"method": self.command, "path": self.path,
                                       "headers": dict(self.headers), "body": body})
                ok = (200, '{"code": "0", "data": {"id": "G1"}}')
                status, text = outer.answers.pop(0) if outer.answers else ok
                data = text.encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _handle  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sms/send"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def agg() -> Iterator[Aggregator]:
    a = Aggregator()
    yield a
    a.close()


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("TEST_SMS_KEY", "key-123")
    monkeypatch.setenv("TEST_SMS_SECRET", "s3cret")


def config(url: str, **kw) -> HttpGatewayConfig:
    base = dict(url=url, body={"mobile": "{phone}", "content": "{text}", "appKey": "{app_key}", "ref": "{id}",
                               "ts": "{timestamp}"},
                credentials={"app_key": "TEST_SMS_KEY"},
                signature=Signature(key_env="TEST_SMS_SECRET", header="X-Sign"),
                headers={"X-Nonce": "{nonce}", "X-Ts": "{timestamp}"},
                success_field="code", success_value="0", id_field="data.id", transient_codes=("1001",))
    base.update(kw)
    return HttpGatewayConfig(**base)


def gateway(url: str, **kw) -> HttpGateway:
    return HttpGateway(config(url, **kw), clock=lambda: 1784700000.5, nonce=lambda: "n0nce")


def test_json_post_carries_exact_text_credentials_and_valid_hmac(agg, env):
    res = gateway(agg.url).send(OutgoingSms("ob-9", "13800001234", TEXT))
    assert res.accepted and res.gateway_id == "G1"
    req = agg.requests[0]
    assert req["method"] == "POST" and req["path"] == "/sms/send"
    payload = json.loads(req["body"].decode("utf-8"))
    assert payload == {"mobile": "13800001234", "content": TEXT, "appKey": "key-123", "ref": "ob-9",
                       "ts": "1784700000"}
    expected = hmac.new(b"s3cret", b"1784700000n0nce" + req["body"], hashlib.sha256).hexdigest()
    assert req["headers"]["X-Sign"] == expected
    assert req["headers"]["X-Nonce"] == "n0nce"


def test_text_is_data_not_a_template(agg, env):
    gateway(agg.url).send(OutgoingSms("1", "13800001234", "{app_key} {phone}\"}"))
    assert json.loads(agg.requests[0]["body"])["content"] == "{app_key} {phone}\"}"


def test_form_get(agg, env):
    gw = gateway(agg.url, method="GET", body_format="form", body={"to": "{phone}", "msg": "{text}"},
                 signature=None, success_field="", id_field="")
    assert gw.send(OutgoingSms("1", "13800001234", TEXT)).accepted
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(agg.requests[0]["path"]).query)
    assert q == {"to": ["13800001234"], "msg": [TEXT]}


@pytest.mark.parametrize(("status", "body", "accepted", "transient"), [
    (200, '{"code": "0", "data": {"id": "X"}}', True, False),
    (200, '{"code": "2001", "msg": "blacklisted 13800001234"}', False, False),
    (200, '{"code": "1001", "msg": "busy"}', False, True),
    (200, "<html>", False, True),
    (400, "bad request", False, False),
    (401, "unauthorised", False, False),
    (429, "slow down", False, True),
    (500, "oops", False, True),
    (503, "maintenance", False, True),
])
def test_answers_are_classified(agg, env, status, body, accepted, transient):
    agg.answers.append((status, body))
    res = gateway(agg.url).send(OutgoingSms("1", "13800001234", "雨"))
    assert (res.accepted, res.transient) == (accepted, transient)
    assert "13800001234" not in res.detail


def test_unreachable_is_transient(env):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = gateway(f"http://127.0.0.1:{port}/x", timeout=2).send(OutgoingSms("1", "13800001234", "雨"))
    assert not res.accepted and res.transient and "138****1234" in res.detail


def test_missing_credential_env_and_bad_placeholders(monkeypatch, env):
    monkeypatch.delenv("TEST_SMS_KEY")
    with pytest.raises(ConfigError, match="TEST_SMS_KEY"):
        HttpGateway(config("http://127.0.0.1:1/x"))
    monkeypatch.setenv("TEST_SMS_KEY", "k")
    with pytest.raises(ConfigError, match=r"unknown placeholder \{password\}"):
        HttpGateway(config("http://127.0.0.1:1/x", body={"p": "{password}"}))
    with pytest.raises(ConfigError, match="GET needs body_format form"):
        HttpGateway(config("http://127.0.0.1:1/x", method="GET"))
