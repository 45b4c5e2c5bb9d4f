"""Phone numbers: normalise, validate and mask mainland-China numbers.

Two kinds are accepted:

* **mobile** — 11 digits ``1[3-9]xxxxxxxxx``, optionally prefixed by ``+86``,
  ``0086`` or ``86``; spaces, dashes and dots are ignored.  Normal form:
  the 11 digits (``13800138000``).
* **landline** — an area code (``010``, ``02x`` or ``0xxx``; or without the
  ``0`` after ``+86``) and a local number of 7 or 8 digits that does not begin
  with 0, optionally an extension after ``-``, ``转``, ``ext``, ``x`` or
  ``#``.  Normal form: ``0571-87654321`` or ``0571-87654321-801``.

Phone numbers are personal data: anything shown to people or written to logs
goes through :func:`mask_phone`, and :class:`~riskmap.errors.PhoneNumberError`
messages carry the masked number only.

Examples
--------
>>> normalize_phone("+86 138-0013-8000")
'13800138000'
>>> normalize_phone("(0571) 8765 4321 转 801")
'0571-87654321-801'
>>> normalize_phone("+86 10 12345678")
'010-12345678'
>>> mask_phone("13800138000")
'138****8000'
>>> mask_phone("0571-87654321")
'0571-****4321'
>>> is_valid_phone("12800138000")
False
>>> normalize_phone("1380013800")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
riskmap.errors.PhoneNumberError: malformed phone number '138****800': a mobile number has 11 digits, ...
"""

from __future__ import annotations

import re
import unicodedata

import pandas as pd

from riskmap.errors import PhoneNumberError

__all__ = ["normalize_phone", "is_valid_phone", "mask_phone", "normalize_phones", "phone_problem"]

_MOBILE = re.compile(r"(?:\+86|0086|86)?(1[3-9]\d{9})")
_LANDLINE = re.compile(
    r"(?:(?:\+86|0086|86)-?\(?(?P<a1>10|2\d|[3-9]\d{2})\)?|\(?(?P<a0>010|02\d|0[3-9]\d{2})\)?)"
    r"-?(?P<local>[1-9]\d{6,7})"
    r"(?:(?:-|#|转|分机|ext\.?|x)(?P<ext>\d{1,6}))?"
)
_SPACES = re.compile(r"[\s.]+")
_SEPARATORS = re.compile(r"[\s.\-()]+")

_EXPECTED = ("expected a mainland mobile (1[3-9] and 9 more digits, optionally +86) "
             "or a landline with area code (e.g. 0571-87654321)")


def _clean(raw: object) -> str:
    """NFKC-normalise (full-width digits, ＋, －) and strip."""
    if raw is None:
        return ""
    if isinstance(raw, float):
        if raw != raw:  # NaN
            return ""
        if raw.is_integer():
            raw = int(raw)
    return unicodedata.normalize("NFKC", str(raw)).strip()


def _try_normalize(raw: object) -> str | None:
    """Return the normal form of *raw*, or None when it is not a phone number."""
    text = _clean(raw).lower()
    if not text:
        return None
    m = _MOBILE.fullmatch(_SEPARATORS.sub("", text))
    if m:
        return m.group(1)
    m = _LANDLINE.fullmatch(_SPACES.sub("", text))
    if m:
        area = m.group("a0") or "0" + m.group("a1")
        number = f"{area}-{m.group('local')}"
        return f"{number}-{m.group('ext')}" if m.group("ext") else number
    return None


def _mask_digits(text: str) -> str:
    """Mask the middle digits of any string, keeping its other characters."""
    n = sum(c.isdigit() for c in text)
    keep = min(3, n // 3)
    lead, trail = keep, min(4, n // 3)
    out, i = [], 0
    for c in text:
        if c.isdigit():
            out.append(c if i < lead or i >= n - trail else "*")
            i += 1
        else:
            out.append(c)
    return "".join(out)


def mask_phone(raw: object) -> str:
    """Return *raw* with the middle digits replaced by ``*``, safe to show or log.

    Valid numbers are masked in their normal form (mobile: first 3 and last 4
    digits kept; landline: area code and last 4 digits kept); anything else has
    all but its first and last few digits masked.

    Examples
    --------
    >>> mask_phone("+86 13800138000")
    '138****8000'
    >>> mask_phone("010-2345678")
    '010-***5678'
    >>> mask_phone("0571-87654321-801")
    '0571-****4321-801'
    >>> mask_phone("12345")
    '1***5'
    >>> mask_phone("")
    ''
    """
    norm = _try_normalize(raw)
    if norm is None:
        return _mask_digits(_clean(raw))
    if norm[0] == "1":
        return f"{norm[:3]}****{norm[7:]}"
    area, local, *ext = norm.split("-")
    masked = "*" * (len(local) - 4) + local[-4:]
    return "-".join([area, masked, *ext])


def phone_problem(raw: object) -> str | None:
    """Explain why *raw* is not a phone number (None when it is one); the number is masked.

    Examples
    --------
    >>> phone_problem("13800138000") is None
    True
    >>> phone_problem("12800138000")
    "malformed phone number '128*****000': mobile numbers begin with 13-19, not 12"
    >>> phone_problem("")
    'missing phone number'
    >>> phone_problem("1.38E+10")
    "malformed phone number '1.**E+*0': a number Excel shortened to scientific notation: format the column \
as Text and type it again"
    """
    text = _clean(raw).lower()
    if not text:
        return "missing phone number"
    if _try_normalize(raw) is not None:
        return None
    masked = mask_phone(raw)
    digits = re.sub(r"\D", "", _SEPARATORS.sub("", text))
    national = re.sub(r"^(?:0086|86)", "", digits) if text.startswith(("+", "00")) else digits
    if re.fullmatch(r"\d(?:\.\d+)?e\+?\d+", text):
        why = "a number Excel shortened to scientific notation: format the column as Text and type it again"
    elif text.startswith("+") and not text.startswith("+86"):
        why = "only mainland China numbers (+86) are accepted"
    elif re.search(r"[^\d\s.\-()+#xext转分机]", text):
        why = "contains characters other than digits, spaces, dashes, + and an extension"
    elif national.startswith("1") and len(national) != 11:
        why = f"a mobile number has 11 digits, this one {len(national)}"
    elif national.startswith("1"):
        why = f"mobile numbers begin with 13-19, not {national[:2]}"
    elif national.startswith("0"):
        why = "not a landline: the area code (010, 02x or 0xxx) must be followed by a 7- or 8-digit number"
    else:
        why = _EXPECTED
    return f"malformed phone number '{masked}': {why}"


def normalize_phone(raw: object) -> str:
    """Return the normal form of a phone number.

    Parameters
    ----------
    raw
        The number as written (str; ints and integral floats from spreadsheets are accepted).

    Returns
    -------
    str
        ``13800138000`` for mobiles, ``0571-87654321[-ext]`` for landlines.

    Raises
    ------
    PhoneNumberError
        When *raw* is not a mainland mobile or landline number; the message shows it masked.

    Examples
    --------
    >>> normalize_phone("0086 139 1234 5678")
    '13912345678'
    >>> normalize_phone(13912345678.0)
    '13912345678'
    >>> normalize_phone("021 6543210")
    '021-6543210'
    >>> normalize_phone("0571-87654321 ext 12")
    '0571-87654321-12'
    """
    norm = _try_normalize(raw)
    if norm is None:
        raise PhoneNumberError(phone_problem(raw) or f"malformed phone number: {_EXPECTED}")
    return norm


def is_valid_phone(raw: object) -> bool:
    """Whether *raw* is a mainland mobile or landline number.

    Examples
    --------
    >>> is_valid_phone("+8613800138000"), is_valid_phone("0571-87654321"), is_valid_phone("110")
    (True, True, False)
    """
    return _try_normalize(raw) is not None


def normalize_phones(values: pd.Series) -> pd.Series:
    """Normalise a column of phone numbers; invalid or missing ones become ``<NA>``.

    Each distinct value is parsed once (one compiled regular expression per value).

    Examples
    --------
    >>> normalize_phones(pd.Series(["138 0013 8000", "bad", None])).tolist()
    ['13800138000', <NA>, <NA>]
    """
    uniques = pd.unique(values.to_numpy(dtype=object))
    table = {u: _try_normalize(u) for u in uniques}
    out = values.map(table).astype("string")
    return out
