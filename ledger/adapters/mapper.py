"""The ledger's mapper: the library's, except that an event that does not decode is reported as the
ledger's ``EventUndecodable`` with its position, in this one place for every reader (loads, history,
feeds, the projector)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Mapper, MapperDeserialisationError, StoredEvent
from eventsourcing.utils import TopicError

from ledger.domain import errors


class LedgerMapper(Mapper[UUID]):
    """Maps stored events to domain events; a stored event whose state does not decode, or whose topic
    names no event class, raises ``EventUndecodable`` naming its position."""

    # Finds an event's position from its stream and version (set by the application: a stored event read
    # by stream carries no position; a notification does).
    locate: Callable[[UUID, int], int | None] | None = None

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        """The domain event, or EventUndecodable."""
        try:
            return super().to_domain_event(stored_event)
        except (MapperDeserialisationError, TopicError):
            raise self.undecodable(stored_event) from None

    def undecodable(self, stored_event: StoredEvent) -> errors.EventUndecodable:
        """The error for a stored event that does not decode, with its position when it can be found."""
        stream_id, version = stored_event.originator_id, stored_event.originator_version
        position = getattr(stored_event, "id", None)
        if position is None and self.locate is not None:
            try:
                position = self.locate(UUID(str(stream_id)), version)
            except Exception:  # the error being reported matters more than its position
                position = None
        return errors.EventUndecodable(int(position or 0), str(stream_id), version)
