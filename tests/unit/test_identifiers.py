"""Identifier validation: E.164 numbers, ICCID (Luhn), IMSI, resident ID cards (GB 11643), dates."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.identifiers import (
    InvalidValue,
    normalise_id_number,
    parse_date,
    parse_iccid,
    parse_imsi,
    parse_msisdn,
)
from ledger.domain.rules import luhn_digit, luhn_valid, resident_id_check_char


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+8613800138000", "+8613800138000"),
        ("+86 138-0013-8000", "+8613800138000"),
        ("+1 (202) 555-0143", "+12025550143"),
        ("+44 7911 123456", "+447911123456"),
    ],
)
def test_valid_numbers_come_back_in_e164(text: str, expected: str) -> None:
    assert parse_msisdn(text) == expected


@pytest.mark.parametrize(
    "text", ["", "13800138000", "+86138", "+86abc", "+" + "1" * 40, "+999 1234567", "++8613800138000"]
)
def test_invalid_numbers_are_refused(text: str) -> None:
    with pytest.raises(InvalidValue):
        parse_msisdn(text)


@given(st.integers(0, 10**8 - 1))
def test_e164_parsing_is_idempotent(i: int) -> None:
    once = parse_msisdn(f"+86139{i:08d}")
    assert parse_msisdn(once) == once


@pytest.mark.parametrize(("body", "digit"), [("7992739871", "3"), ("1789372997", "4"), ("", "0")])
def test_luhn_check_digits_of_known_values(body: str, digit: str) -> None:
    assert luhn_digit(body) == digit


@given(st.text(alphabet="0123456789", min_size=16, max_size=17))
def test_iccid_luhn_digit_decides(body_tail: str) -> None:
    body = "89" + body_tail
    good = body + luhn_digit(body)
    assert parse_iccid(good) == good and luhn_valid(good)
    for wrong in set("0123456789") - {good[-1]}:
        with pytest.raises(InvalidValue, match="Luhn"):
            parse_iccid(body + wrong)


@pytest.mark.parametrize("text", ["", "8986001234567890", "1986001234567890128", "89860012345678901x0", "8" * 21])
def test_malformed_iccids_are_refused(text: str) -> None:
    with pytest.raises(InvalidValue):
        parse_iccid(text)


def test_imsi() -> None:
    assert parse_imsi("460001234567890") == "460001234567890"
    for bad in ("46000123456789", "4600012345678901", "46000123456789a", "100001234567890", "000001234567890"):
        with pytest.raises(InvalidValue):
            parse_imsi(bad)


def test_known_resident_id_and_its_check_character() -> None:
    assert normalise_id_number("RESIDENT_ID_CARD", "11010519491231002x") == "11010519491231002X"
    assert resident_id_check_char("11010519491231002") == "X"
    for bad in ("110105194912310021", "11010519491331002X", "01010519491231002X", "1101051949123100", "ABC"):
        with pytest.raises(InvalidValue):
            normalise_id_number("RESIDENT_ID_CARD", bad)


@given(
    region=st.integers(100000, 999999),
    born=st.dates(min_value=datetime.date(1900, 1, 1), max_value=datetime.date(2025, 12, 31)),
    seq=st.integers(0, 999),
)
def test_resident_id_check_character_property(region: int, born: datetime.date, seq: int) -> None:
    first17 = f"{region}{born:%Y%m%d}{seq:03d}"
    good = first17 + resident_id_check_char(first17)
    assert normalise_id_number("RESIDENT_ID_CARD", good) == good
    for wrong in set("0123456789X") - {good[-1]}:
        with pytest.raises(InvalidValue, match="GB 11643"):
            normalise_id_number("RESIDENT_ID_CARD", first17 + wrong)


def test_passport_and_other_documents() -> None:
    assert normalise_id_number("PASSPORT", " e1234 5678 ") == "E12345678"
    assert normalise_id_number("OTHER", "  HK-A123456(7) ") == "HK-A123456(7)"
    for kind, bad in (
        ("PASSPORT", "E1"),
        ("PASSPORT", "E12345678!"),
        ("OTHER", ""),
        ("OTHER", "a\x00b"),
        ("DRIVING_LICENCE", "X1"),
    ):
        with pytest.raises(InvalidValue):
            normalise_id_number(kind, bad)


def test_dates_are_strict() -> None:
    assert parse_date("2026-02-28") == datetime.date(2026, 2, 28)
    for bad in ("2026-02-30", "2026-2-28", "28/02/2026", "", "2026-02-28T00:00"):
        with pytest.raises(InvalidValue):
            parse_date(bad)
