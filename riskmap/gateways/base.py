"""The one small interface every SMS gateway implements.

A gateway takes an :class:`OutgoingSms` and answers with a :class:`SendResult`:
``accepted`` (the gateway took responsibility for the message), or not
accepted and ``transient`` (try again later: connection refused, 5xx, queue
full) or permanent (bad number, bad credentials, rejected content).  Gateways
never raise for a refused message; they raise only for programming errors.

Phone numbers are personal data: anything a gateway logs or puts into
``detail`` is masked with :func:`mask`.

Examples
--------
>>> msg = OutgoingSms(outbox_id="17", phone="13800001234", text="【青山县防指】测试")
>>> msg.segments
1
>>> SendResult.ok("abc").accepted, SendResult.retry("HTTP 503").transient
(True, True)
>>> mask("13800001234")
'138****1234'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from riskmap import sms


def mask(phone: str) -> str:
    """Mask a phone number for logs: keep the first 3 and last 4 digits (:func:`riskmap.phones.mask_phone`).

    >>> mask("+8613800001234"), mask("12")
    ('138****1234', '**')
    """
    from riskmap.phones import mask_phone

    try:
        return str(mask_phone(phone))
    except Exception:  # noqa: BLE001 - masking must never fail a send
        pass
    digits = "".join(c for c in str(phone) if c.isdigit())
    if digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    if len(digits) < 8:
        return "*" * len(digits)
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


@dataclass(frozen=True)
class OutgoingSms:
    """One message to one phone.

    ``outbox_id`` is our own id of the message (the outbox row); gateways
    carry it to the delivery report so receipts can be matched.
    """

    outbox_id: str
    phone: str
    text: str
    sender: str = ""
    """Sender id / port number; empty means the gateway's configured default."""
    meta: dict[str, str] = field(default_factory=dict, compare=False)
    """Free extra fields (run id, village code…) a gateway may record."""

    @property
    def segments(self) -> int:
        """Number of SMS parts the text takes."""
        return sms.count_segments(self.text)

    def __repr__(self) -> str:  # never print the number
        return (f"OutgoingSms(outbox_id={self.outbox_id!r}, phone={mask(self.phone)!r}, "
                f"segments={self.segments})")


@dataclass(frozen=True)
class SendResult:
    """A gateway's answer to one message."""

    accepted: bool
    transient: bool = False
    """Only meaningful when not accepted: True means retry later."""
    gateway_id: str | None = None
    """The gateway's own message id, when it gives one."""
    detail: str = ""
    """Short human-readable answer (phone numbers masked)."""

    @classmethod
    def ok(cls, gateway_id: str | None = None, detail: str = "accepted") -> SendResult:
        """An accepted message."""
        return cls(True, False, gateway_id, detail)

    @classmethod
    def retry(cls, detail: str) -> SendResult:
        """A transient failure: the dispatcher retries with backoff."""
        return cls(False, True, None, detail)

    @classmethod
    def fail(cls, detail: str) -> SendResult:
        """A permanent failure: the message is marked failed."""
        return cls(False, False, None, detail)


@runtime_checkable
class Gateway(Protocol):
    """What the dispatcher needs from a gateway."""

    name: str

    def send(self, msg: OutgoingSms) -> SendResult:
        """Hand one message to the gateway."""
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...
