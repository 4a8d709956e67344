"""The lifecycle commands as data: one frozen dataclass per RPC, named after it.

A command's class name is the method name its request record stores, and its fields are exactly what
the request id's idempotency fingerprint covers (``Command.args``), so neither can drift by a typo in a
hand-written dict; ``tests/unit/test_command_pins.py`` pins both for a fixed request of every command.
Who sent it, under which request id and when travel beside it (``pipeline.execute``); how each is
decided is in ``handlers``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from uuid import UUID

from ledger.domain.indexes import DisconnectionReports, SimCard
from ledger.domain.number import Number


@dataclass(frozen=True, slots=True)
class Command:
    """A lifecycle command; its class is named after its RPC."""

    @property
    def rpc(self) -> str:
        """The RPC's name: its request record stores it as the method."""
        return type(self).__name__

    def args(self) -> dict[str, Any]:
        """The command's fields by name: what its request id's fingerprint covers."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def streams(self) -> tuple[UUID, ...]:
        """The streams its handler will load, read together in one query before it is decided."""
        return ()


@dataclass(frozen=True, slots=True)
class ProvisionNumbers(Command):
    """Add numbers as AVAILABLE (repeated numbers count once)."""

    numbers: tuple[str, ...]

    def __post_init__(self) -> None:
        # The fingerprint covers the numbers without repeats, as the command sees them.
        object.__setattr__(self, "numbers", tuple(dict.fromkeys(self.numbers)))


@dataclass(frozen=True, slots=True)
class RegisterSubscriber(Command):
    """Register a subscriber; every field is personal data, sealed under a data key of their own."""

    full_name: str
    id_type: str
    id_number: str
    date_of_birth: str


@dataclass(frozen=True, slots=True)
class VerifyIdentity(Command):
    """Record a real-name verification of a subscriber."""

    subscriber_id: UUID
    method: str
    channel: str
    agent_id: str
    evidence_ref: str

    def streams(self) -> tuple[UUID, ...]:
        """The subscriber."""
        return (self.subscriber_id,)


@dataclass(frozen=True, slots=True)
class ActivateSim(Command):
    """Start a tenure of a number for a verified subscriber on a SIM."""

    number: str
    subscriber_id: UUID
    iccid: str
    imsi: str
    channel: str
    agent_id: str

    def streams(self) -> tuple[UUID, ...]:
        """The number, the subscriber and the SIM."""
        return (Number.create_id(self.number), self.subscriber_id, SimCard.create_id(self.iccid))


@dataclass(frozen=True, slots=True)
class SwapSim(Command):
    """Move a number in service to a new SIM."""

    number: str
    new_iccid: str
    new_imsi: str
    reason: str
    channel: str
    agent_id: str

    def streams(self) -> tuple[UUID, ...]:
        """The number and the new SIM."""
        return (Number.create_id(self.number), SimCard.create_id(self.new_iccid))


@dataclass(frozen=True, slots=True)
class SuspendNumber(Command):
    """Bar an ACTIVE number's service, with a reason code."""

    number: str
    reason: str
    note: str

    def streams(self) -> tuple[UUID, ...]:
        """The number."""
        return (Number.create_id(self.number),)


@dataclass(frozen=True, slots=True)
class ResumeNumber(Command):
    """Restore a SUSPENDED number's service."""

    number: str
    note: str

    def streams(self) -> tuple[UUID, ...]:
        """The number."""
        return (Number.create_id(self.number),)


@dataclass(frozen=True, slots=True)
class DisconnectNumber(Command):
    """Close the tenure and start quarantine and clearance."""

    number: str
    reason: str

    def streams(self) -> tuple[UUID, ...]:
        """The number."""
        return (Number.create_id(self.number),)


@dataclass(frozen=True, slots=True)
class ConfirmDataCleared(Command):
    """Record one data holder's clearance of a closed tenure."""

    number: str
    tenure_id: UUID
    holder: str
    evidence_ref: str

    def streams(self) -> tuple[UUID, ...]:
        """The number."""
        return (Number.create_id(self.number),)


@dataclass(frozen=True, slots=True)
class ReleaseNumber(Command):
    """Make a QUARANTINED number AVAILABLE (``override_reason`` releases it early or with clearance pending)."""

    number: str
    override_reason: str

    def streams(self) -> tuple[UUID, ...]:
        """The number."""
        return (Number.create_id(self.number),)


@dataclass(frozen=True, slots=True)
class EraseSubscriberData(Command):
    """Erase a subscriber's personal data, or hold the erasure until the retention period ends."""

    subscriber_id: UUID
    legal_basis: str

    def streams(self) -> tuple[UUID, ...]:
        """The subscriber."""
        return (self.subscriber_id,)


@dataclass(frozen=True, slots=True)
class PortOutNumber(Command):
    """End the tenure by a port to another operator."""

    number: str
    recipient_operator: str

    def streams(self) -> tuple[UUID, ...]:
        """The number."""
        return (Number.create_id(self.number),)


@dataclass(frozen=True, slots=True)
class PortInNumber(Command):
    """Take in another operator's number, or one ported out from here coming back."""

    number: str
    donor_operator: str

    def streams(self) -> tuple[UUID, ...]:
        """The number."""
        return (Number.create_id(self.number),)


@dataclass(frozen=True, slots=True)
class ReturnNumber(Command):
    """Take back a ported-out number its recipient disconnected at ``disconnected_at``."""

    number: str
    disconnected_at: datetime

    def streams(self) -> tuple[UUID, ...]:
        """The number."""
        return (Number.create_id(self.number),)


@dataclass(frozen=True, slots=True)
class RecordDisconnectionReport(Command):
    """Record a disconnection report issued to a jurisdiction's regulator (``scripts.disconnection_report``)."""

    jurisdiction: str
    month: str
    from_position: int
    to_position: int
    period_end: datetime
    carry_from: int
    rows: int
    digest: str

    def streams(self) -> tuple[UUID, ...]:
        """The jurisdiction's report record."""
        return (DisconnectionReports.create_id(self.jurisdiction),)


@dataclass(frozen=True, slots=True)
class CompleteErasure(Command):
    """Finish a held erasure whose retention period has ended (no RPC: the erasure pass sends it)."""

    subscriber_id: UUID
