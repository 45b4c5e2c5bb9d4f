"""SMS text: encoding choice, length in code units, and segmentation.

A text that fits the GSM 03.38 default alphabet is sent as GSM-7: 160 septets
in one SMS, 153 per part of a concatenated message (escaped characters such as
``€`` or ``[`` take two septets).  Anything else — every Chinese text — is sent
as UCS-2 (in practice UTF-16): 70 code units in one SMS, 67 per part.  A
character outside the Basic Multilingual Plane (e.g. 𠮷) takes two UTF-16 code
units (a surrogate pair); :func:`segments` never splits one across parts.

Examples
--------
>>> encoding("Rain warning")
'gsm7'
>>> encoding("暴雨")
'ucs2'
>>> length("𠮷a")
3
>>> count_segments("警" * 70), count_segments("警" * 71)
(1, 2)
>>> [len(p) for p in segments("警" * 100)]
[67, 33]
"""

from __future__ import annotations

from typing import Literal

UCS2_SINGLE = 70
"""UTF-16 code units in a single-part UCS-2 SMS."""
UCS2_PART = 67
"""UTF-16 code units per part of a concatenated UCS-2 SMS (6-byte UDH)."""
GSM7_SINGLE = 160
"""Septets in a single-part GSM-7 SMS."""
GSM7_PART = 153
"""Septets per part of a concatenated GSM-7 SMS."""

_GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXT = "^{}\\[~]|€\f"

Encoding = Literal["gsm7", "ucs2"]


def encoding(text: str) -> Encoding:
    """Return ``"gsm7"`` if every character is in the GSM-7 alphabet, else ``"ucs2"``.

    Examples
    --------
    >>> encoding("[test] €5"), encoding("【演练】")
    ('gsm7', 'ucs2')
    """
    for ch in text:
        if ch == "\x1b" or (ch not in _GSM7_BASIC and ch not in _GSM7_EXT):
            return "ucs2"
    return "gsm7"


def _unit_len(ch: str, enc: Encoding) -> int:
    """Code units (UTF-16) or septets (GSM-7) one character takes."""
    if enc == "gsm7":
        return 2 if ch in _GSM7_EXT else 1
    return 2 if ord(ch) > 0xFFFF else 1


def length(text: str, enc: Encoding | None = None) -> int:
    """Length of ``text`` in the units that count for SMS: septets (GSM-7) or UTF-16 code units.

    Examples
    --------
    >>> length("abc"), length("a€"), length("张三"), length("𠮷")
    (3, 3, 2, 2)
    """
    enc = enc or encoding(text)
    return sum(_unit_len(ch, enc) for ch in text)


def limits(enc: Encoding) -> tuple[int, int]:
    """``(single, per_part)`` capacity for an encoding.

    >>> limits("ucs2"), limits("gsm7")
    ((70, 67), (160, 153))
    """
    return (UCS2_SINGLE, UCS2_PART) if enc == "ucs2" else (GSM7_SINGLE, GSM7_PART)


def segments(text: str) -> list[str]:
    """Split ``text`` into the parts it is sent as; one part if it fits a single SMS.

    Parts are cut on character boundaries, so a surrogate pair (a non-BMP
    character) is never split: a part that would end in the middle of one
    ends one code unit early instead.  The empty text is one empty part.

    Examples
    --------
    >>> segments("hello")
    ['hello']
    >>> parts = segments("警" * 66 + "𠮷" + "警" * 5)
    >>> [length(p) for p in parts], parts[1][0]
    ([66, 7], '𠮷')
    """
    enc = encoding(text)
    single, part = limits(enc)
    if length(text, enc) <= single:
        return [text]
    out: list[str] = []
    current: list[str] = []
    used = 0
    for ch in text:
        n = _unit_len(ch, enc)
        if used + n > part:
            out.append("".join(current))
            current, used = [], 0
        current.append(ch)
        used += n
    if current:
        out.append("".join(current))
    return out


def count_segments(text: str) -> int:
    """Number of SMS parts ``text`` takes.

    Examples
    --------
    >>> count_segments(""), count_segments("a" * 160), count_segments("a" * 161)
    (1, 1, 2)
    """
    return len(segments(text))
