"""The ledger's shared rules, each written once: the vocabularies of the API (states, reason codes,
verification methods, identity document types), how a tenure's clearance is decided and which one wins,
which reasons count as violations, what a data holder may be called, and the check digits of ICCIDs
(Luhn) and resident ID cards (GB 11643).

The proto enums carry the same names with their prefix (``SUSPENSION_REASON_FRAUD``); a unit test maps
every proto value onto these enums, so a value added on one side only fails the build.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum


class NumberStatus(StrEnum):
    """Lifecycle state of a number."""

    AVAILABLE = "AVAILABLE"
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    QUARANTINED = "QUARANTINED"
    # Served by another operator after a port-out: never released or reassigned here.
    PORTED_OUT = "PORTED_OUT"


class IdType(StrEnum):
    """The kind of identity document a subscriber registered with."""

    RESIDENT_ID_CARD = "RESIDENT_ID_CARD"
    PASSPORT = "PASSPORT"
    OTHER = "OTHER"


class MatchResult(StrEnum):
    """How one field sent to MatchIdentity compares with the holder's registered data."""

    TRUE = "TRUE"
    FALSE = "FALSE"
    # The ledger holds no such value for the holder (or may not compare it: an erasure held or done).
    NOT_AVAILABLE = "NOT_AVAILABLE"


class SuspensionReason(StrEnum):
    """Why a number was suspended."""

    FRAUD = "FRAUD"
    SPAM = "SPAM"
    UNVERIFIED_IDENTITY = "UNVERIFIED_IDENTITY"
    SUBSCRIBER_REQUEST = "SUBSCRIBER_REQUEST"
    LOST_SIM = "LOST_SIM"
    NON_PAYMENT = "NON_PAYMENT"
    REGULATOR_ORDER = "REGULATOR_ORDER"


class DisconnectReason(StrEnum):
    """Why a tenure was closed."""

    SUBSCRIBER_REQUEST = "SUBSCRIBER_REQUEST"
    NON_PAYMENT = "NON_PAYMENT"
    FRAUD = "FRAUD"
    UNVERIFIED_IDENTITY = "UNVERIFIED_IDENTITY"
    REGULATOR_ORDER = "REGULATOR_ORDER"
    PORTED_OUT = "PORTED_OUT"
    OTHER = "OTHER"


class SimSwapReason(StrEnum):
    """Why a number moved to a new SIM."""

    LOST_OR_STOLEN = "LOST_OR_STOLEN"
    DAMAGED = "DAMAGED"
    UPGRADE = "UPGRADE"
    ESIM_TRANSFER = "ESIM_TRANSFER"
    OTHER = "OTHER"


class VerificationMethod(StrEnum):
    """How a real-name identity was verified."""

    ID_CARD_READER = "ID_CARD_READER"
    ONLINE_PHOTO_LIVENESS = "ONLINE_PHOTO_LIVENESS"
    IN_PERSON_MANUAL = "IN_PERSON_MANUAL"
    PASSPORT_CHECK = "PASSPORT_CHECK"


class Clearance(StrEnum):
    """State of a closed tenure's data held by other systems."""

    NOT_APPLICABLE = "NOT_APPLICABLE"
    CLEARED = "CLEARED"
    PENDING = "PENDING"
    VIOLATION = "VIOLATION"


# Worst last: used to pick the clearance that wins over several tenures.
CLEARANCE_SEVERITY = {
    Clearance.NOT_APPLICABLE: 0,
    Clearance.CLEARED: 1,
    Clearance.PENDING: 2,
    Clearance.VIOLATION: 3,
}

# Suspension and disconnection reasons that count against the channel and agent that activated.
VIOLATION_SUSPENSIONS = frozenset({SuspensionReason.FRAUD, SuspensionReason.SPAM, SuspensionReason.UNVERIFIED_IDENTITY})
VIOLATION_DISCONNECTIONS = frozenset({DisconnectReason.FRAUD, DisconnectReason.UNVERIFIED_IDENTITY})

# A data holder's name, as policy files and ConfirmDataCleared give it: "crm", "billing", "app.wallet".
HOLDER_PATTERN = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")


def tenure_clearance(is_open: bool, violation: bool, outstanding: bool) -> Clearance:
    """A tenure's clearance: NOT_APPLICABLE while open; VIOLATION once released with holders outstanding;
    PENDING while any required holder has not confirmed; else CLEARED."""
    if is_open:
        return Clearance.NOT_APPLICABLE
    if violation:
        return Clearance.VIOLATION
    return Clearance.PENDING if outstanding else Clearance.CLEARED


def worst_clearance(clearances: Iterable[Clearance]) -> Clearance:
    """The clearance that wins over several tenures (NOT_APPLICABLE when there are none)."""
    return max(clearances, key=CLEARANCE_SEVERITY.__getitem__, default=Clearance.NOT_APPLICABLE)


def luhn_digit(body: str) -> str:
    """The Luhn check digit that completes a digit string."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_valid(digits: str) -> bool:
    """Whether a digit string ends with a correct Luhn check digit."""
    return digits.isdigit() and luhn_digit(digits[:-1]) == digits[-1]


_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"


def resident_id_check_char(first17: str) -> str:
    """The GB 11643 check character for the first 17 digits of a resident ID card number."""
    return _CHECK_CHARS[sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True)) % 11]
