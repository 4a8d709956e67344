"""Deterministic synthetic identifiers for datasets and benchmarks (valid by every check the ledger makes)."""

from __future__ import annotations

from ledger.domain.rules import luhn_digit, resident_id_check_char


def msisdn(i: int, prefix: str = "+86139") -> str:
    """The i-th number of a synthetic range (valid for i below 10**8)."""
    return f"{prefix}{i:08d}"


def iccid(i: int) -> str:
    """The i-th synthetic ICCID (19 digits, Luhn-valid)."""
    body = f"898601{i:012d}"
    return body + luhn_digit(body)


def imsi(i: int) -> str:
    """The i-th synthetic IMSI (MCC 460)."""
    return f"46001{i:010d}"


def resident_id(i: int) -> str:
    """The i-th distinct valid resident ID card number (GB 11643), for i below 13,440,000."""
    seq = i % 1000
    day = 1 + (i // 1000) % 28
    month = 1 + (i // 28_000) % 12
    year = 1950 + (i // 336_000) % 40
    first17 = f"110105{year}{month:02d}{day:02d}{seq:03d}"
    return first17 + resident_id_check_char(first17)
