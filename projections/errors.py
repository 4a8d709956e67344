"""The read models' refusals: behind the position a caller asked for, being rebuilt, or not matching the
ledger they claim to follow. Each is a ``LedgerError``, so the edge's one mapping answers them
(UNAVAILABLE with the reason and where the read model is)."""

from __future__ import annotations

from ledger.domain.errors import LedgerError


class ReadModelBehind(LedgerError):
    """Raised when the read model has not applied the position a caller asked for within the deadline."""

    def __init__(self, wanted: int, applied: int, message: str | None = None) -> None:
        self.wanted = wanted
        self.applied = applied
        super().__init__(message or f"read model has applied position {applied}, not yet {wanted}; retry")


class ReadModelRebuilding(LedgerError):
    """Raised when no complete generation of a read model can serve: one is being built from the log
    (``position`` is how far it got; ``head`` is the ledger's head when the server knows it)."""

    def __init__(self, view: str, position: int, head: int = 0) -> None:
        self.view = view
        self.position = position
        self.head = head
        super().__init__(f"the {view} read model is being rebuilt (at position {position}); retry")


class ReadModelMismatch(LedgerError):
    """Raised when the read models do not match the ledger they claim to follow (a restored ledger,
    another database): nothing is answered from them until they are rebuilt."""
