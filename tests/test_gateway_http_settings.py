"""`gateway.kind = "http"` in riskmap.toml: the generic aggregator built by make_gateway from the settings,
against a local HTTP server on 127.0.0.1 (the fake aggregator of tests/test_gateway_http.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from test_gateway_http import Aggregator

from riskmap.config import GatewaySettings, Settings, load_settings
from riskmap.errors import ConfigError
from riskmap.gateways import make_gateway
from riskmap.gateways.base import OutgoingSms
from riskmap.gateways.http import HttpGateway
from riskmap.service.config import ServiceConfig, validate

TEXT = "【青山县防指】张家村暴雨洪涝风险红色预警,请立即转移。𠮷"


@pytest.fixture
def agg() -> Iterator[Aggregator]:
    a = Aggregator()
    yield a
    a.close()


def toml(tmp_path: Path, url: str, extra: str = "") -> Path:
    p = tmp_path / "riskmap.toml"
    p.write_text(f"""[gateway]
kind = "http"
url = "{url}"
sender_id = "10690001"
http_body = '{{"mobile": "{{phone}}", "content": "{{text}}", "ref": "{{id}}", "key": "{{api_key}}"}}'
http_headers = ["X-App: {{app_id}}"]
http_credentials = ["api_key=TEST_SMS_KEY", "app_id=TEST_SMS_APP"]
http_signature_env = "TEST_SMS_SECRET"
http_signature_header = "X-Sign"
http_signature_message = "{{body}}"
http_success_field = "code"
http_success_value = "0"
http_id_field = "data.id"
http_transient_codes = ["busy"]
http_timeout_s = 5.0
{extra}""", encoding="utf-8")
    return p


@pytest.fixture
def creds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SMS_KEY", "k3y")
    monkeypatch.setenv("TEST_SMS_APP", "app-7")
    monkeypatch.setenv("TEST_SMS_SECRET", "s3cret")


def test_make_gateway_sends_through_the_configured_aggregator(tmp_path, agg, creds) -> None:
    settings = load_settings(toml(tmp_path, agg.url))
    gw = make_gateway(settings.gateway, out_dir=tmp_path)
    assert isinstance(gw, HttpGateway) and gw.name == "http"
    res = gw.send(OutgoingSms("41", "13800001234", TEXT))
    assert res.accepted and res.gateway_id == "G1"
    req = agg.requests[-1]
    assert req["method"] == "POST" and req["path"] == "/sms/send"
    assert json.loads(req["body"]) == {"mobile": "13800001234", "content": TEXT, "ref": "41", "key": "k3y"}
    assert req["headers"]["X-App"] == "app-7"
    expected = hmac.new(b"s3cret", req["body"], hashlib.sha256).hexdigest()
    assert req["headers"]["X-Sign"] == expected
    agg.answers += [(200, '{"code": "busy"}'), (200, '{"code": "E42"}'), (503, "down")]
    busy, bad, down = (gw.send(OutgoingSms(str(i), "13800001234", "雨")) for i in range(3))
    assert (busy.accepted, busy.transient) == (False, True)
    assert (bad.accepted, bad.transient) == (False, False) and "E42" in bad.detail
    assert (down.accepted, down.transient) == (False, True)
    gw.close()


def test_form_get_with_defaults_for_the_rest(tmp_path, agg) -> None:
    gs = GatewaySettings(kind="http", url=agg.url + "?v=1", http_method="get", http_body_format="form",
                         http_body='{"to": "{phone}", "msg": "{text}", "from": "{sender}"}')
    gw = make_gateway(gs)
    assert gw.send(OutgoingSms("1", "13800001234", "雨")).accepted
    req = agg.requests[-1]
    assert req["method"] == "GET" and req["body"] == b""
    assert "v=1&to=13800001234&msg=%E9%9B%A8&from=106900000000" in req["path"]


def test_missing_environment_variable_is_named(tmp_path, agg, monkeypatch) -> None:
    monkeypatch.delenv("TEST_SMS_KEY", raising=False)
    settings = load_settings(toml(tmp_path, agg.url))
    with pytest.raises(ConfigError, match="TEST_SMS_KEY is not set"):
        make_gateway(settings.gateway)
    with pytest.raises(ConfigError, match="gateway.url"):
        make_gateway(GatewaySettings(kind="http"))


@pytest.mark.parametrize(("extra", "needle"), [
    ("http_method = 'PATCH'", "'gateway.http_method' must be GET, POST or PUT"),
    ("http_body = '[1, 2]'", "'gateway.http_body' must be a JSON object"),
    ("http_body = '{phone}'", "'gateway.http_body' is not valid JSON"),
    ("http_credentials = ['api_key=k3y secret']", "'gateway.http_credentials' items must be"),
    ("http_headers = ['X-App']", "'gateway.http_headers' items must be 'Name: value'"),
    ("http_signature_encoding = 'raw'", "'gateway.http_signature_encoding'"),
    ("http_signature_algorithm = 'rot13'", "'gateway.http_signature_algorithm'"),
    ("http_timeout_s = 0", "'gateway.http_timeout_s' must be > 0"),
    ("http_method = 'GET'", "'gateway.http_body_format' must be json or form (form for GET)"),
])
def test_bad_http_settings_are_one_line_naming_the_key(tmp_path, extra, needle) -> None:
    p = toml(tmp_path, "http://127.0.0.1:9/x")
    text = p.read_text(encoding="utf-8")
    key = extra.split(" =")[0]
    text = "\n".join(line for line in text.splitlines() if not line.startswith(key + " ")) + "\n" + extra
    p.write_text(text + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(p)
    assert needle in str(err.value) and str(p) in str(err.value)
    assert len(str(err.value).splitlines()) == 1


def test_serve_accepts_http_and_names_missing_credentials(tmp_path) -> None:
    settings = load_settings(toml(tmp_path, "http://127.0.0.1:9/x"))
    (tmp_path / "region.gpkg").write_bytes(b"")
    sc = ServiceConfig(region=tmp_path / "region.gpkg", inbox=tmp_path / "inbox", out=tmp_path / "out")
    problems = validate(settings, sc, env={"RISKMAP_RECEIVER_TOKEN": "t"})
    assert problems == [f"{sc.source_file}: environment variable {n} (http gateway credential) "
                        "is not set" for n in ("TEST_SMS_KEY", "TEST_SMS_APP", "TEST_SMS_SECRET")]
    env = {"RISKMAP_RECEIVER_TOKEN": "t", "TEST_SMS_KEY": "k", "TEST_SMS_APP": "a", "TEST_SMS_SECRET": "s"}
    assert validate(settings, sc, env=env) == []
    no_url = replace(Settings(), gateway=GatewaySettings(kind="http"))
    assert validate(no_url, sc, env=env) == [f"{sc.source_file}: 'gateway.url' is required when "
                                             "gateway.kind = 'http'"]
