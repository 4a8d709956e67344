"""The ledger's error hierarchy. The gRPC edge maps each family to one status code."""

from __future__ import annotations

from typing import ClassVar


class LedgerError(Exception):
    """Base class of every error the ledger raises on purpose."""


class InvalidArgument(LedgerError):
    """Raised when a request is malformed; carries one (field, description) pair per problem."""

    reason: str = "INVALID_ARGUMENT"

    def __init__(
        self, violations: list[tuple[str, str]], reason: str | None = None, field_reasons: dict[str, str] | None = None
    ) -> None:
        self.violations = list(violations)
        self.field_reasons = dict(field_reasons or {})  # a machine-readable reason per field, e.g. OUT_OF_RANGE
        if reason is not None:
            self.reason = reason
        super().__init__("; ".join(f"{field}: {text}" for field, text in self.violations))


class OccurredAtOutOfOrder(InvalidArgument):
    """Raised when occurred_at is earlier than the stream's last event."""

    reason = "OCCURRED_AT_OUT_OF_ORDER"


class RuleViolation(LedgerError):
    """Raised when a command breaks a domain rule; ``reason`` names the rule for clients."""

    reason: ClassVar[str] = "RULE_VIOLATION"

    def __init__(self, message: str, **metadata: str) -> None:
        self.metadata = metadata
        super().__init__(message)


class NumberNotAvailable(RuleViolation):
    """Raised when a number that is not AVAILABLE is activated."""

    reason = "NUMBER_NOT_AVAILABLE"


class NumberNotActive(RuleViolation):
    """Raised when a number that is not ACTIVE is suspended."""

    reason = "NUMBER_NOT_ACTIVE"


class NumberNotSuspended(RuleViolation):
    """Raised when a number that is not SUSPENDED is resumed."""

    reason = "NUMBER_NOT_SUSPENDED"


class NumberNotInService(RuleViolation):
    """Raised when a number with no open tenure is disconnected or has its SIM swapped."""

    reason = "NUMBER_NOT_IN_SERVICE"


class NumberNotQuarantined(RuleViolation):
    """Raised when a number that is not QUARANTINED is released."""

    reason = "NUMBER_NOT_QUARANTINED"


class QuarantineNotElapsed(RuleViolation):
    """Raised when a number is released before its quarantine ends, without an override."""

    reason = "QUARANTINE_NOT_ELAPSED"


class ClearancePending(RuleViolation):
    """Raised when a number is released while a required holder has not confirmed, without an override."""

    reason = "CLEARANCE_PENDING"


class TenureNotClosed(RuleViolation):
    """Raised when data clearance is confirmed for a tenure that is still open."""

    reason = "TENURE_NOT_CLOSED"


class HolderAlreadyConfirmed(RuleViolation):
    """Raised when a data holder confirms the same tenure twice."""

    reason = "HOLDER_ALREADY_CONFIRMED"


class IdentityNotVerified(RuleViolation):
    """Raised when a SIM is activated for a subscriber whose identity is not verified."""

    reason = "IDENTITY_NOT_VERIFIED"


class IdentityNumberCap(RuleViolation):
    """Raised when an identity already holds the maximum number of active or suspended tenures."""

    reason = "IDENTITY_NUMBER_CAP"


class IccidInUse(RuleViolation):
    """Raised when an ICCID already serves another open tenure."""

    reason = "ICCID_IN_USE"


class SameIccid(RuleViolation):
    """Raised when a SIM swap names the SIM the number already uses."""

    reason = "SAME_ICCID"


class SubscriberErased(RuleViolation):
    """Raised when a command needs a subscriber whose personal data was erased."""

    reason = "SUBSCRIBER_ERASED"


class SubscriberHasOpenTenure(RuleViolation):
    """Raised when a subscriber's data is erased while they still hold a number."""

    reason = "SUBSCRIBER_HAS_OPEN_TENURE"


class NumberPortedOut(RuleViolation):
    """Raised when a number ported to another operator would be released or reassigned here."""

    reason = "NUMBER_PORTED_OUT"


class NumberNotPortedOut(RuleViolation):
    """Raised when a number is returned or ported in while it is served here (not ported out)."""

    reason = "NUMBER_NOT_PORTED_OUT"


class NotFound(LedgerError):
    """Raised when a named number, subscriber or tenure is unknown to the ledger."""

    kind: ClassVar[str] = "resource"

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"{self.kind} {key} not found")


class NumberNotFound(NotFound):
    """Raised when a number was never provisioned."""

    kind = "number"


class SubscriberNotFound(NotFound):
    """Raised when a subscriber_id is unknown."""

    kind = "subscriber"


class TenureNotFound(NotFound):
    """Raised when a tenure_id is not a tenure of the number given."""

    kind = "tenure"


class RequestNotFound(NotFound):
    """Raised when no command with a request_id was recorded."""

    kind = "request"


class HolderNotFound(NotFound):
    """Raised when a number has no holder now (available, quarantined or ported out): there is no one to
    compare with."""

    kind = "holder"

    def __init__(self, number: str, state: str) -> None:
        super().__init__(number)
        self.args = (f"number {number} has no holder now (it is {state})",)


class Conflict(LedgerError):
    """Base class of conflicts between requests."""


class RequestIdReused(Conflict):
    """Raised when a request_id is reused with different content."""

    def __init__(self, request_id: str, first_method: str) -> None:
        self.request_id = request_id
        super().__init__(f"request_id {request_id!r} was already used for a different {first_method} request")


class ConcurrencyConflict(Conflict):
    """Raised when a command still conflicts with concurrent writers after bounded retries."""


class EventUndecodable(LedgerError):
    """Raised when a stored event does not decode (its state is not what the ledger wrote, or its type is
    unknown): what depends on it cannot be answered, and is never guessed from the other events.
    ``position`` is the event's place in the ledger (0 when it could not be found)."""

    reason: ClassVar[str] = "EVENT_UNDECODABLE"

    def __init__(self, position: int, stream_id: str, version: int) -> None:
        self.position = position
        self.stream_id = stream_id
        self.version = version
        where = f"position {position}" if position else f"stream {stream_id} version {version}"
        super().__init__(
            f"the stored event at {where} does not decode: the ledger is damaged there; "
            "`ledger verify` reports it, and it must be restored from a backup"
        )
