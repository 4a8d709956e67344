"""HistoryService.GetStatus: what an on-call engineer reads first.

The ledger's head and chain digest, the latest signed head, each read model's position, lag and state,
where the store is (never its password), the policy in force, when the server started and its version.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from typing import TYPE_CHECKING

import orjson

from ledger.v1 import history_service_pb2 as pb
from projections import generations as gens_
from projections.queries import VIEW_CLASSES

if TYPE_CHECKING:
    from ledger.application import LedgerApplication
    from ledger.config import Settings
    from ledger.server.heads import HeadPublisher
    from projections.queries import ReadModels

VIEW_STATES = {
    gens_.READY: pb.VIEW_STATE_SERVING,
    gens_.BUILDING: pb.VIEW_STATE_REBUILDING,
    gens_.MISMATCH: pb.VIEW_STATE_MISMATCH,
}


def software_version() -> str:
    """The installed ledger's version ("unknown" when it runs from a tree that is not installed)."""
    try:
        return metadata.version("subscriber-ledger")
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass
class StatusReport:
    """Builds GetStatus answers for one server."""

    app: LedgerApplication
    settings: Settings
    read_models: ReadModels
    publisher: HeadPublisher | None
    started_at: datetime

    def response(self) -> pb.GetStatusResponse:
        """The status now (runs on the pool: it reads the store and the views)."""
        reader = self.app.reader
        head = reader.max_position()
        digest = reader.chain_hashes([head]).get(head) if head else None
        policy = self.settings.policy
        message = pb.GetStatusResponse(
            head_position=head,
            head_digest=digest.hex() if digest else "",
            views=view_statuses(self.read_models.generations(), head),
            store=self.settings.store.public_url(),
            policy=orjson.dumps(policy, option=orjson.OPT_SORT_KEYS).decode(),
            version=software_version(),
            time_zone=policy.timezone,
        )
        message.started_at.FromDatetime(self.started_at)
        message.now.FromDatetime(self.app.clock.now().astimezone(UTC))
        signed = self.publisher.store.head() if self.app.proofs is not None and self.publisher is not None else None
        if signed is not None:
            message.signed_head_size = signed.size
            message.signed_head_at.FromDatetime(signed.signed_at)
        return message


def view_statuses(found: list[gens_.Generation], head: int) -> list[pb.ViewStatus]:
    """Each read model's state: the generation that serves it, else the one being built, else the one
    found not to match; a rebuild running beside a serving generation is shown with it."""
    statuses = []
    for name, cls in VIEW_CLASSES.items():
        ready = gens_.of_view(found, name, cls.version, gens_.READY)
        building = gens_.of_view(found, name, cls.version, gens_.BUILDING)
        mismatch = gens_.of_view(found, name, cls.version, gens_.MISMATCH)
        shown = ready or building or mismatch
        position = shown.position if shown is not None else 0
        status = pb.ViewStatus(
            name=name,
            position=position,
            lag=max(0, head - position),
            state=VIEW_STATES[shown.state] if shown is not None else pb.VIEW_STATE_REBUILDING,
        )
        if ready is not None and building is not None:
            status.rebuild_position = building.position
        statuses.append(status)
    return statuses
