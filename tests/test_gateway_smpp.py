"""The SMPP gateway (smpplib) against an SMSC simulator (PyPI smpp34 Server, tests/smsc_sim.py) on 127.0.0.1.

The simulator runs as its own process (smpp34's server does not stop promptly in-process):
it accepts submits, rejects some (bad address → permanent, throttled → transient) and sends
delivery receipts, ``stat:UNDELIV`` for one number.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from riskmap.gateways.base import OutgoingSms
from riskmap.gateways.smpp import SmppGateway

REJECT, THROTTLE, UNDELIV = "13800009999", "13800007777", "13800008888"
SIM = Path(__file__).with_name("smsc_sim.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Simulator:
    """The simulator process; ``submits`` reads what it received."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.out = workdir / "submits.jsonl"
        self.out.touch()
        self.proc = subprocess.Popen([sys.executable, str(SIM), str(self.port), str(self.out)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if "READY" not in line:
            self.stop()
            raise RuntimeError(f"SMSC simulator did not start: {line!r}")

    @property
    def submits(self) -> list[dict]:
        rows = [json.loads(x) for x in self.out.read_text(encoding="utf-8").splitlines()]
        for r in rows:
            r["sm"] = bytes.fromhex(r["sm"])
        return rows

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(1.5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout:
            self.proc.stdout.close()


@pytest.fixture
def smsc(tmp_path) -> Iterator[Simulator]:
    if importlib.util.find_spec("smpp34") is None:
        msg = "PyPI smpp34 (the SMSC simulator) is not installed"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    sim = Simulator(tmp_path)
    yield sim
    sim.stop()


@pytest.fixture
def receipts() -> list[tuple[str, str, str]]:
    return []


@pytest.fixture
def gw(smsc, receipts) -> Iterator[SmppGateway]:
    g = SmppGateway("127.0.0.1", smsc.port, "riskmap", "pw", sender="10690001", timeout=5,
                    on_receipt=lambda oid, stat, raw: receipts.append((oid, stat, raw)))
    yield g
    g.close()


def wait(pred, timeout=5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def test_submit_exact_chinese_text_and_receipt(smsc, gw, receipts):
    text = "【青山县防指】张家村暴雨洪涝风险红色预警"
    res = gw.send(OutgoingSms("ob-1", "13800001234", text))
    assert res.accepted and res.gateway_id == "sim-1"
    assert wait(lambda: smsc.submits)
    sub = smsc.submits[0]
    got = (sub["to"], sub["from"], sub["coding"], sub["esm"], sub["dlr"])
    assert got == ("13800001234", "10690001", 8, 0, 1)
    assert sub["sm"].decode("utf-16-be") == text
    assert wait(lambda: receipts)
    assert receipts[0][:2] == ("ob-1", "DELIVRD")


def test_long_text_as_concatenated_parts_without_splitting_a_pair(smsc, gw):
    text = "警" * 66 + "𠮷" + "雨" * 40
    assert gw.send(OutgoingSms("ob-2", "13800001235", text)).accepted
    parts = smsc.submits
    assert len(parts) == 2 and all(p["esm"] == 0x40 for p in parts)
    udh = [p["sm"][:6] for p in parts]
    assert udh[0][:3] == b"\x05\x00\x03" and udh[0][3] == udh[1][3] and [u[4:] for u in udh] == [b"\x02\x01",
                                                                                                b"\x02\x02"]
    bodies = [p["sm"][6:].decode("utf-16-be") for p in parts]  # each part decodes on its own
    assert "".join(bodies) == text and bodies[1].startswith("𠮷")


def test_rejected_submit_is_permanent(smsc, gw):
    res = gw.send(OutgoingSms("ob-3", REJECT, "雨"))
    assert not res.accepted and not res.transient
    assert "0x0000000B" in res.detail and REJECT not in res.detail


def test_throttled_submit_is_transient(smsc, gw):
    res = gw.send(OutgoingSms("ob-4", THROTTLE, "雨"))
    assert not res.accepted and res.transient
    assert gw.send(OutgoingSms("ob-5", "13800001236", "雨")).accepted  # the session still works


def test_undelivered_receipt_reaches_the_callback(smsc, gw, receipts):
    assert gw.send(OutgoingSms("ob-6", UNDELIV, "雨")).accepted
    assert wait(lambda: receipts)
    assert receipts[0][:2] == ("ob-6", "UNDELIV")


def test_unreachable_smsc_is_transient():
    g = SmppGateway("127.0.0.1", free_port(), "riskmap", "pw", timeout=2)
    res = g.send(OutgoingSms("1", "13800001234", "雨"))
    g.close()
    assert not res.accepted and res.transient and "138****1234" in res.detail
