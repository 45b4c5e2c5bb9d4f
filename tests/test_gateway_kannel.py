"""The Kannel gateway against a real Kannel (bearerbox + smsbox + fakesmsc) on loopback."""

from __future__ import annotations

import http.server
import threading
import time
import urllib.parse
from collections.abc import Iterator

import pytest
from kannel_fixture import KannelHarness, assemble, kannel, parse_fakesmsc  # noqa: F401

from riskmap.gateways.base import OutgoingSms
from riskmap.gateways.kannel import KannelGateway, classify

pytestmark = pytest.mark.kannel

TEXT = "【青山县防指】青山县防汛抗旱指挥部办公室发布暴雨洪涝风险红色预警：张家村请立即转移。"


class DlrReceiver:
    """A tiny HTTP server on 127.0.0.1 recording Kannel's delivery-report GETs."""

    def __init__(self) -> None:
        self.hits: list[dict[str, str]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query, keep_blank_values=True)
                outer.hits.append({k: v[0] for k, v in q.items()})
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def wait(self, pred, timeout: float = 10.0) -> list[dict[str, str]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not pred(self.hits):
            time.sleep(0.05)
        return list(self.hits)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def dlr() -> Iterator[DlrReceiver]:
    r = DlrReceiver()
    yield r
    r.close()


def gateway(k: KannelHarness, dlr_port: int | None = None) -> KannelGateway:
    dlr_url = f"http://127.0.0.1:{dlr_port}/dlr?token=t0k&id={{id}}" if dlr_port else ""
    return KannelGateway(k.sendsms_url, k.username, k.password, sender="10690001", dlr_url=dlr_url, timeout=5)


def test_exact_chinese_text_arrives(kannel):  # noqa: F811
    gw = gateway(kannel)
    # 张 is U+5F20: its low byte 0x20 is form-encoded as '+' by fakesmsc
    res = gw.send(OutgoingSms("1", "13800001234", TEXT))
    assert res.accepted, res
    assert res.detail.startswith("0: Accepted")
    msgs = kannel.wait_messages(1)
    assert msgs == [("13800001234", TEXT, 1)]
    assert kannel.parts()[0].sender == "10690001"


def test_hundred_chinese_characters_arrive_as_two_parts(kannel):  # noqa: F811
    gw = gateway(kannel)
    text = "".join(chr(0x6C34 + (i % 40)) for i in range(100))
    assert gw.send(OutgoingSms("2", "13800001235", text)).accepted
    msgs = kannel.wait_messages(1)
    assert msgs == [("13800001235", text, 2)]
    parts = kannel.parts()
    assert [len(p.text) for p in parts] == [67, 33]
    assert [p.concat[1:] for p in parts] == [(2, 1), (2, 2)]


def test_surrogate_pair_is_not_split_across_parts(kannel):  # noqa: F811
    gw = gateway(kannel)
    text = "警" * 66 + "𠮷" + "雨" * 10
    assert gw.send(OutgoingSms("3", "13800001236", text)).accepted
    msgs = kannel.wait_messages(1)
    assert msgs == [("13800001236", text, 2)]
    for p in kannel.parts():
        raw = p.text.encode("utf-16-be", "surrogatepass")
        raw.decode("utf-16-be")  # each part is valid UTF-16 on its own: no half pair
    assert kannel.parts()[1].text.startswith("𠮷")


def test_delivery_reports_carry_our_outbox_id(kannel, dlr):  # noqa: F811
    gw = gateway(kannel, dlr.port)
    assert gw.send(OutgoingSms("outbox-77", "13800001237", "雨情通知")).accepted
    hits = dlr.wait(lambda h: any(x.get("status") == "1" for x in h))
    assert hits, "no delivery report arrived"
    assert {h["id"] for h in hits} == {"outbox-77"}
    assert {h["token"] for h in hits} == {"t0k"}
    statuses = {h["status"] for h in hits}
    assert "1" in statuses  # delivered to phone
    assert statuses <= {"1", "8"}  # 8 = delivered to SMSC


def test_fake_smsc_down_then_back_loses_and_duplicates_nothing(kannel):  # noqa: F811
    gw = gateway(kannel)
    assert gw.send(OutgoingSms("10", "13800001240", "第一条")).accepted
    assert len(kannel.wait_messages(1)) == 1
    kannel.stop_smsc()
    queued = [gw.send(OutgoingSms(str(20 + i), "13800001241", f"停机期间第{i}条")) for i in range(3)]
    assert all(r.accepted for r in queued)
    assert all(r.detail.startswith("3: Queued") for r in queued), [r.detail for r in queued]
    time.sleep(0.5)
    assert len(kannel.messages()) == 1  # nothing delivered while the SMSC is down
    kannel.start_smsc()
    msgs = kannel.wait_messages(4)
    time.sleep(1.0)  # give a duplicate time to show up
    msgs = kannel.messages()
    assert sorted(t for _, t, _ in msgs) == sorted(["第一条"] + [f"停机期间第{i}条" for i in range(3)])


def test_bad_credentials_are_a_permanent_failure(kannel):  # noqa: F811
    gw = KannelGateway(kannel.sendsms_url, kannel.username, "wrong", sender="10690001")
    res = gw.send(OutgoingSms("4", "13800001238", "雨"))
    assert not res.accepted and not res.transient
    assert "403" in res.detail


def test_smsbox_unreachable_is_transient_and_masks_number():
    from kannel_fixture import free_port

    gw = KannelGateway(f"http://127.0.0.1:{free_port()}/cgi-bin/sendsms", "u", "p", timeout=2)
    res = gw.send(OutgoingSms("5", "13800001239", "雨"))
    assert not res.accepted and res.transient
    assert "13800001239" not in res.detail and "138****1239" in res.detail


def test_classify_answers():
    assert classify(202, "0: Accepted for delivery").accepted
    assert classify(202, "3: Queued for later delivery").accepted
    assert not classify(400, "Sender missing").transient
    assert classify(500, "").transient
    assert classify(202, "4: weird").transient


def test_fakesmsc_decoding_plus_is_space_byte():
    out = "x DEBUG: Got message 1: <1 2 ucs-2 _+N%09>\n"
    assert assemble(parse_fakesmsc(out)) == [("2", "张三", 1)]
