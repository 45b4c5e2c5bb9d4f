"""The file gateway (JSON lines) and the gateway interface."""

from __future__ import annotations

import json
import threading

from riskmap.gateways.base import Gateway, OutgoingSms, SendResult, mask
from riskmap.gateways.file import FileGateway


def test_lines_carry_real_number_text_and_segments(tmp_path):
    path = tmp_path / "OUT" / "sms.jsonl"
    text = "【青山县防指】" + "雨" * 80
    with FileGateway(path) as gw:
        assert isinstance(gw, Gateway)
        r1 = gw.send(OutgoingSms("a1", "13800001234", text, sender="10690001", meta={"run": "r1"}))
        r2 = gw.send(OutgoingSms("a2", "+8613900005678", "张三"))
    assert r1 == SendResult(True, False, "file:a1", "written to sms.jsonl")
    assert r2.accepted
    lines = path.read_text(encoding="utf-8").splitlines()
    rows = [json.loads(x) for x in lines]
    assert rows[0] == {"id": "a1", "to": "13800001234", "from": "10690001", "text": text, "segments": 2,
                       "run": "r1"}
    assert rows[1]["to"] == "+8613900005678" and rows[1]["segments"] == 1
    assert "张三" in lines[1]  # UTF-8, not \\u escapes


def test_appends_across_instances(tmp_path):
    path = tmp_path / "sms.jsonl"
    for i in range(2):
        with FileGateway(path) as gw:
            gw.send(OutgoingSms(str(i), "13800001234", f"第{i}条"))
    assert [json.loads(x)["id"] for x in path.read_text(encoding="utf-8").splitlines()] == ["0", "1"]


def test_concurrent_sends_write_whole_lines(tmp_path):
    path = tmp_path / "sms.jsonl"
    gw = FileGateway(path, fsync=False)

    def work(k: int) -> None:
        for i in range(50):
            gw.send(OutgoingSms(f"{k}-{i}", "13800001234", "雨" * 30))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    gw.close()
    ids = [json.loads(x)["id"] for x in path.read_text(encoding="utf-8").splitlines()]
    assert sorted(ids) == sorted(f"{k}-{i}" for k in range(4) for i in range(50))


def test_unwritable_path_is_transient_and_masked(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    gw = FileGateway(blocker / "sub" / "sms.jsonl")
    res = gw.send(OutgoingSms("1", "13800001234", "雨"))
    assert not res.accepted and res.transient
    assert "13800001234" not in res.detail and "138****1234" in res.detail


def test_repr_and_mask_hide_the_number():
    msg = OutgoingSms("1", "13800001234", "雨")
    assert "13800001234" not in repr(msg)
    assert mask("13800001234") == "138****1234"
    assert mask("+86 138 0000 1234") == "138****1234"
