"""A number's tenure: one subscriber's holding from activation to disconnection, its quarantine and the
data holders' confirmations, and its form inside a snapshot of the number (``Number`` holds the list)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from ledger.domain.rules import Clearance, tenure_clearance


@dataclass(frozen=True)
class Confirmation:
    """One data holder's confirmation that it cleared a closed tenure's data."""

    holder: str
    evidence_ref: str
    confirmed_at: datetime


@dataclass
class Tenure:
    """One subscriber's holding of the number, from activation to disconnection."""

    tenure_id: UUID
    subscriber_id: UUID
    iccid: str
    imsi: str
    activated_at: datetime
    channel: str
    agent_id: str
    disconnected_at: datetime | None = None
    disconnect_reason: str | None = None
    quarantine_until: datetime | None = None
    required_holders: tuple[str, ...] = ()
    confirmations: dict[str, Confirmation] = field(default_factory=dict)
    released_at: datetime | None = None
    override_reason: str = ""
    violation: bool = False
    # Set when the tenure ended with a port-out (the holder kept the number at this operator), and when the
    # recipient operator later disconnected it and the number came back.
    ported_to: str = ""
    recipient_disconnected_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        """True while the tenure has not been disconnected."""
        return self.disconnected_at is None

    @property
    def outstanding_holders(self) -> list[str]:
        """Required holders that have not confirmed clearance, in policy order."""
        return [h for h in self.required_holders if h not in self.confirmations]

    @property
    def clearance(self) -> Clearance:
        """Clearance of a closed tenure; NOT_APPLICABLE while it is open."""
        return tenure_clearance(self.is_open, self.violation, bool(self.outstanding_holders))


def encode_tenure(t: Tenure) -> dict[str, Any]:
    """A tenure as JSON-friendly values (inside a snapshot)."""
    return {
        **vars(t),
        "required_holders": list(t.required_holders),
        "confirmations": [[c.holder, c.evidence_ref, c.confirmed_at] for c in t.confirmations.values()],
    }


def decode_tenure(t: dict[str, Any]) -> Tenure:
    """The inverse of ``encode_tenure``."""
    return Tenure(
        **{
            **t,
            "required_holders": tuple(t["required_holders"]),
            "confirmations": {h: Confirmation(h, ref, at) for h, ref, at in t["confirmations"]},
        }
    )
