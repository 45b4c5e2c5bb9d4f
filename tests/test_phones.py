"""Phone numbers: normal forms, rejection with masked messages, masking."""

from __future__ import annotations

import pandas as pd
import pytest

from riskmap.errors import InputError, PhoneNumberError
from riskmap.phones import is_valid_phone, mask_phone, normalize_phone, normalize_phones, phone_problem


@pytest.mark.parametrize(("raw", "norm"), [
    ("13800138000", "13800138000"),
    ("138 0013 8000", "13800138000"),
    ("138-0013-8000", "13800138000"),
    ("+86 138 0013 8000", "13800138000"),
    ("+8613800138000", "13800138000"),
    ("0086-138-0013-8000", "13800138000"),
    ("8613800138000", "13800138000"),
    ("１９９００００００１２", "19900000012"),  # full-width digits from a spreadsheet
    (13800138000, "13800138000"),
    (13800138000.0, "13800138000"),
    ("0571-87654321", "0571-87654321"),
    ("057187654321", "0571-87654321"),
    ("(0571) 8765 4321", "0571-87654321"),
    ("010-12345678", "010-12345678"),
    ("010 6234 5678", "010-62345678"),
    ("021-6543210", "021-6543210"),
    ("+86 571 87654321", "0571-87654321"),
    ("+86-10-62345678", "010-62345678"),
    ("0571-87654321-801", "0571-87654321-801"),
    ("0571-87654321转801", "0571-87654321-801"),
    ("0571-87654321 ext. 9", "0571-87654321-9"),
    ("0571-87654321#12", "0571-87654321-12"),
])
def test_normalize_accepts_mobiles_and_landlines(raw: object, norm: str) -> None:
    assert normalize_phone(raw) == norm
    assert is_valid_phone(raw)


@pytest.mark.parametrize(("raw", "message"), [
    ("1380013800", "malformed phone number '138****800': a mobile number has 11 digits, this one 10"),
    ("138001380001", "malformed phone number '138*****0001': a mobile number has 11 digits, this one 12"),
    ("12800138000", "malformed phone number '128*****000': mobile numbers begin with 13-19, not 12"),
    ("+1 415 555 0100", "malformed phone number '+1 41* *** *100': only "
                        "mainland China numbers (+86) are accepted"),
    ("0571-0654321", "malformed phone number '057*-****321': not a "
                     "landline: the area code (010, 02x or 0xxx) "
                     "must be followed by a 7- or 8-digit number"),
    ("138OO138000", "malformed phone number '138OO***000': contains characters other than digits, spaces, "
                    "dashes, + and an extension"),
])
def test_normalize_rejects_with_a_masked_number(raw: str, message: str) -> None:
    assert not is_valid_phone(raw)
    assert phone_problem(raw) == message
    with pytest.raises(PhoneNumberError) as info:
        normalize_phone(raw)
    assert str(info.value) == message
    assert isinstance(info.value, InputError) and info.value.exit_code == 2
    digits = "".join(c for c in raw if c.isdigit())
    assert digits not in str(info.value)


@pytest.mark.parametrize("raw", ["", "   ", None, float("nan")])
def test_missing_numbers_are_not_valid(raw: object) -> None:
    assert not is_valid_phone(raw)
    assert phone_problem(raw) == "missing phone number"
    with pytest.raises(PhoneNumberError, match="missing phone number"):
        normalize_phone(raw)


@pytest.mark.parametrize(("raw", "masked"), [
    ("13800138000", "138****8000"),
    ("+86 138-0013-8000", "138****8000"),
    ("0571-87654321", "0571-****4321"),
    ("010-2345678", "010-***5678"),
    ("0571-87654321-801", "0571-****4321-801"),
    ("1380013800", "138****800"),
    ("12", "**"),
    ("", ""),
])
def test_mask_phone(raw: str, masked: str) -> None:
    assert mask_phone(raw) == masked


def test_mask_hides_at_least_four_digits_of_every_valid_mobile() -> None:
    for k in range(0, 10_000, 97):
        number = f"1390000{k:04d}"
        masked = mask_phone(number)
        assert masked.count("*") == 4 and masked[:3] == "139" and masked[-4:] == number[-4:]


def test_normalize_phones_column() -> None:
    col = pd.Series(["138 0013 8000", "0571-87654321", "bad", None, "138 0013 8000"])
    out = normalize_phones(col)
    assert out.tolist() == ["13800138000", "0571-87654321", pd.NA, pd.NA, "13800138000"]
    assert list(out.index) == list(col.index)
