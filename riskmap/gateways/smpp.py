"""SMPP 3.4 gateway: bind as a transceiver straight to an SMSC, ``submit_sm``, delivery receipts.

Built on PyPI ``smpplib`` (sync).  Texts are split here with
:func:`riskmap.sms.segments` (smpplib's own splitter cuts surrogate pairs) and sent
as UCS-2 (``data_coding=8``), a long text as parts with an 8-bit concatenation UDH
(``esm_class=0x40``); every part asks for a receipt (``registered_delivery=1``).

``send`` waits for each part's ``submit_sm_resp``: status 0 → accepted (the SMSC's
``message_id`` of the last part is the gateway id); throttled / queue full / system
error → transient; any other status (bad address …) → permanent; a lost connection
→ transient (the next send reconnects).  Delivery receipts (``deliver_sm`` with
``esm_class`` 0x04, text ``id:… stat:DELIVRD …``) and replies from phones go to the
``on_receipt(outbox_id, stat, raw)`` and ``on_reply(phone, text)`` callbacks; the
gateway remembers which SMSC message id belongs to which outbox id.

Examples
--------
>>> parse_receipt("id:abc-1 sub:001 dlvrd:001 submit date:2607221200 done date:2607221201 stat:DELIVRD")
('abc-1', 'DELIVRD')
>>> [len(p) for p in pdu_parts("警" * 100)]
[140, 72]
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from riskmap import sms
from riskmap.gateways.base import OutgoingSms, SendResult, mask

log = logging.getLogger("riskmap.gateways.smpp")

TRANSIENT_STATUS = {0x08, 0x14, 0x58, 0x45, 0x64}
"""ESME_RSYSERR, ESME_RMSGQFUL, ESME_RTHROTTLED, ESME_RSUBMITFAIL, ESME_RX_T_APPN."""
_RECEIPT = re.compile(r"id:(\S+).*?stat:(\w+)", re.DOTALL)
_ref = itertools.count(1)


def parse_receipt(text: str) -> tuple[str, str] | None:
    """``(message_id, stat)`` from a delivery receipt text, else None."""
    m = _RECEIPT.search(text)
    return (m.group(1), m.group(2)) if m else None


def pdu_parts(text: str) -> list[bytes]:
    """The ``short_message`` bytes of each part: UTF-16BE, with a concatenation UDH when split."""
    parts = sms.segments(text)
    if len(parts) == 1:
        return [text.encode("utf-16-be")]
    ref = next(_ref) % 256
    return [bytes([5, 0, 3, ref, len(parts), i + 1]) + p.encode("utf-16-be") for i, p in enumerate(parts)]


class SmppGateway:
    """Send through an SMSC over SMPP 3.4 (see the module docstring)."""

    name = "smpp"

    def __init__(self, host: str, port: int, system_id: str, password: str, sender: str = "",
                 system_type: str = "", timeout: float = 10.0,
                 on_receipt: Callable[[str, str, str], None] | None = None,
                 on_reply: Callable[[str, str], None] | None = None) -> None:
        self.host, self.port = host, int(port)
        self.system_id, self.password, self.system_type = system_id, password, system_type
        self.sender, self.timeout = sender, timeout
        self.on_receipt, self.on_reply = on_receipt, on_reply
        self._client: Any = None
        self._reader: threading.Thread | None = None
        self._send_lock = threading.Lock()
        self._cond = threading.Condition()
        self._answers: dict[int, tuple[int, str]] = {}
        self._early: dict[str, list[tuple[str, str]]] = {}
        self.outbox_of: dict[str, str] = {}
        """SMSC message id → our outbox id (for receipts)."""
        self._closing = False

    # -- connection ------------------------------------------------------------------------------
    def _connect(self) -> Any:
        import smpplib.client
        import smpplib.consts

        client = smpplib.client.Client(self.host, self.port, timeout=self.timeout,
                                       allow_unknown_opt_params=True)
        client.set_message_sent_handler(self._on_resp)
        client.set_error_pdu_handler(self._on_resp)
        client.set_message_received_handler(self._on_deliver)
        client.connect()
        client.bind_transceiver(system_id=self.system_id, password=self.password,
                                system_type=self.system_type)
        self._client = client
        self._reader = threading.Thread(target=self._read_loop, args=(client,), name="riskmap-smpp",
                                        daemon=True)
        self._reader.start()
        log.info("smpp bound to %s:%s as %s", self.host, self.port, self.system_id)
        return client

    def _read_loop(self, client: Any) -> None:
        import smpplib.exceptions

        while not self._closing and self._client is client:
            try:
                client.read_once()
            except (smpplib.exceptions.ConnectionError, OSError) as exc:
                log.warning("smpp connection to %s:%s lost: %s", self.host, self.port, exc)
                break
            except Exception as exc:  # noqa: BLE001 - keep reading; log what went wrong
                log.warning("smpp read error: %s", exc)
        with self._cond:
            if self._client is client:
                self._client = None
            self._cond.notify_all()

    def _on_resp(self, pdu: Any, **_: Any) -> None:
        mid = pdu.message_id.decode() if isinstance(pdu.message_id, bytes) else str(pdu.message_id or "")
        with self._cond:
            self._answers[int(pdu.sequence)] = (int(pdu.status), mid)
            self._cond.notify_all()

    def _on_deliver(self, pdu: Any, **_: Any) -> int:
        raw = pdu.short_message or b""
        coding = int(getattr(pdu, "data_coding", 0) or 0)
        text = raw.decode("utf-16-be", "replace") if coding == 8 else raw.decode("latin-1")
        if int(getattr(pdu, "esm_class", 0) or 0) & 0x04:
            got = parse_receipt(text)
            if got and self.on_receipt:
                with self._cond:
                    oid = self.outbox_of.get(got[0])
                    if oid is None:  # the receipt beat our own bookkeeping of the submit_sm_resp
                        self._early.setdefault(got[0], []).append((got[1], text))
                        return 0
                self.on_receipt(oid, got[1], text)
        elif self.on_reply:
            src = pdu.source_addr.decode() if isinstance(pdu.source_addr, bytes) else str(pdu.source_addr)
            self.on_reply(src, text)
        return 0

    def _wait(self, seq: int) -> tuple[int, str] | None:
        with self._cond:
            ok = self._cond.wait_for(lambda: seq in self._answers or self._client is None, self.timeout)
            return self._answers.pop(seq, None) if ok else None

    # -- the Gateway interface ---------------------------------------------------------------------
    def send(self, msg: OutgoingSms) -> SendResult:
        """Submit every part; see the module docstring for how answers are classified."""
        import smpplib.consts
        import smpplib.exceptions

        who = mask(msg.phone)
        parts = pdu_parts(msg.text)
        sender = msg.sender or self.sender
        ton = smpplib.consts.SMPP_TON_UNK if sender.isdigit() else smpplib.consts.SMPP_TON_ALNUM
        mid = ""
        for part in parts:
            try:
                with self._send_lock:
                    client = self._client or self._connect()
                    pdu = client.send_message(
                        source_addr_ton=ton, source_addr=sender, dest_addr_ton=smpplib.consts.SMPP_TON_UNK,
                        destination_addr=msg.phone.lstrip("+"), short_message=part, data_coding=8,
                        esm_class=0x40 if len(parts) > 1 else 0, registered_delivery=1)
            except (smpplib.exceptions.ConnectionError, smpplib.exceptions.PDUError, OSError) as exc:
                self._drop()
                where = f"{self.host}:{self.port}"
                return SendResult.retry(f"smpp {where} for {who}: {type(exc).__name__}: {exc}")
            answer = self._wait(int(pdu.sequence))
            if answer is None:
                self._drop()
                return SendResult.retry(f"smpp {self.host}:{self.port}: no submit_sm_resp for {who}")
            status, mid = answer
            if status != 0:
                desc = smpplib.consts.DESCRIPTIONS.get(status, "unknown status")
                detail = f"submit_sm for {who} refused: 0x{status:08X} {desc}"
                return SendResult.retry(detail) if status in TRANSIENT_STATUS else SendResult.fail(detail)
            with self._cond:
                self.outbox_of[mid] = str(msg.outbox_id)
                early = self._early.pop(mid, [])
            for stat, text in early:
                if self.on_receipt:
                    self.on_receipt(str(msg.outbox_id), stat, text)
        return SendResult.ok(mid or None, f"accepted ({len(parts)} part{'s' if len(parts) > 1 else ''})")

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.disconnect()
            except Exception:  # noqa: BLE001 - already broken
                pass

    def close(self) -> None:
        """Unbind (the reader thread takes the answer), then disconnect."""
        import smpplib.consts
        import smpplib.smpp

        client = self._client
        if client is not None:
            try:
                with self._send_lock:
                    client.send_pdu(smpplib.smpp.make_pdu("unbind", client=client))
                end = time.monotonic() + 0.5
                while client.state != smpplib.consts.SMPP_CLIENT_STATE_OPEN and time.monotonic() < end:
                    time.sleep(0.01)
            except Exception:  # noqa: BLE001 - closing anyway
                pass
        self._closing = True
        self._drop()
        if self._reader is not None:
            self._reader.join(2)
