"""Validation and normalisation of identifiers: E.164 numbers, ICCID, IMSI, identity documents, dates."""

from __future__ import annotations

import datetime
import functools
import re

import phonenumbers

from ledger.domain.rules import IdType, luhn_valid, resident_id_check_char

__all__ = ["ID_TYPES", "InvalidValue"]


class InvalidValue(ValueError):
    """Raised when an identifier or value is malformed; the message says what is wrong."""


ID_TYPES = tuple(IdType)
_SEPARATORS = re.compile(r"[\s\-.()]")


@functools.lru_cache(maxsize=32_768)  # a number recurs in every command of its history; parsing dominates
def parse_msisdn(text: str) -> str:
    """Return the number in E.164 form; only international input ("+...") is accepted."""
    raw = text.strip()
    if not raw:
        raise InvalidValue("number is required (E.164, for example +8613800138000)")
    if len(raw) > 32:
        raise InvalidValue("number is too long")
    cleaned = _SEPARATORS.sub("", raw)
    if not cleaned.startswith("+") or not cleaned[1:].isdigit():
        raise InvalidValue("number must be in E.164 form: '+', country code and digits")
    try:
        parsed = phonenumbers.parse(cleaned, None)
    except phonenumbers.NumberParseException as e:
        raise InvalidValue(f"number is not a valid E.164 number ({e})") from None
    if not (phonenumbers.is_possible_number(parsed) and phonenumbers.is_valid_number(parsed)):
        raise InvalidValue("number is not a valid E.164 number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def parse_iccid(text: str) -> str:
    """An ICCID: 19 or 20 digits starting with 89, last digit a Luhn check digit."""
    digits = re.sub(r"\s", "", text)
    if not digits.isdigit() or not digits.isascii():
        raise InvalidValue("ICCID must contain only digits")
    if len(digits) not in (19, 20):
        raise InvalidValue("ICCID must be 19 or 20 digits")
    if not digits.startswith("89"):
        raise InvalidValue("ICCID must start with 89 (telecom industry identifier)")
    if not luhn_valid(digits):
        raise InvalidValue("ICCID check digit is wrong (Luhn)")
    return digits


def parse_imsi(text: str) -> str:
    """An IMSI: exactly 15 digits whose mobile country code is 200-799."""
    digits = text.strip()
    if len(digits) != 15 or not digits.isdigit() or not digits.isascii():
        raise InvalidValue("IMSI must be exactly 15 digits")
    if not 200 <= int(digits[:3]) <= 799:
        raise InvalidValue("IMSI mobile country code (first 3 digits) must be between 200 and 799")
    return digits


def normalise_id_number(id_type: str, text: str) -> str:
    """Validate and normalise an identity document number for its type."""
    if id_type not in ID_TYPES:
        raise InvalidValue(f"unknown id_type {id_type!r}")
    if id_type == "RESIDENT_ID_CARD":
        value = re.sub(r"\s", "", text).upper()
        if len(value) != 18 or not value[:17].isdigit() or not value[:17].isascii() or value[17] not in "0123456789X":
            raise InvalidValue("resident ID card number must be 17 digits followed by a digit or X")
        if value[0] == "0":
            raise InvalidValue("resident ID card number has an invalid region code")
        try:
            born = datetime.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
        except ValueError:
            raise InvalidValue("resident ID card number contains an invalid birth date") from None
        if born.year < 1900:
            raise InvalidValue("resident ID card number contains an invalid birth date")
        if resident_id_check_char(value[:17]) != value[17]:
            raise InvalidValue("resident ID card number check character is wrong (GB 11643)")
        return value
    if id_type == "PASSPORT":
        value = re.sub(r"\s", "", text).upper()
        if not re.fullmatch(r"[A-Z0-9]{5,20}", value):
            raise InvalidValue("passport number must be 5-20 letters and digits")
        return value
    value = text.strip()
    if not 1 <= len(value) <= 64:
        raise InvalidValue("document number must be 1-64 characters")
    if any(not ch.isprintable() for ch in value):
        raise InvalidValue("document number contains control characters")
    return value


def parse_date(text: str) -> datetime.date:
    """A strict YYYY-MM-DD date."""
    if len(text) != 10 or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise InvalidValue("date must be YYYY-MM-DD")
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise InvalidValue("date is not a real calendar date") from None
