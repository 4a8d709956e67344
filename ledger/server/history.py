"""HistoryService: a number's history and its state at a point in time."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import grpc
from eventsourcing.utils import get_topic
from google.protobuf import struct_pb2

from ledger.domain import errors
from ledger.domain.number import Number
from ledger.domain.subscriber import Subscriber
from ledger.history import (
    HistoryItem,
    NumberStateView,
    feed_item,
    number_history,
    number_state,
    verify_integrity,
)
from ledger.server.lifecycle import actor_of
from ledger.server.lifecycle_commands import DISCONNECT_REASONS, ID_TYPES, SUSPENSION_REASONS
from ledger.server.validation import Fields
from ledger.v1 import history_service_pb2 as pb
from ledger.v1 import history_service_pb2_grpc, ledger_pb2

if TYPE_CHECKING:
    from ledger.application import LedgerApplication
    from projections.audit import Auditor

# Positions are stored as signed 64-bit integers.
MAX_POSITION = 2**63 - 1
FEED_BATCH = 500
FEED_IDLE_SECONDS = 1.0
NUMBER_CACHE_SIZE = 100_000
STATUS_VALUES = {"AVAILABLE": 1, "ACTIVE": 2, "SUSPENDED": 3, "QUARANTINED": 4}
STREAM_TYPES = {
    "number": ledger_pb2.STREAM_TYPE_NUMBER,
    "subscriber": ledger_pb2.STREAM_TYPE_SUBSCRIBER,
    "access": ledger_pb2.STREAM_TYPE_ACCESS_LOG,
}
PERSONAL_STATES = {
    "NONE": ledger_pb2.PERSONAL_DATA_STATE_NONE,
    "WITHHELD": ledger_pb2.PERSONAL_DATA_STATE_WITHHELD,
    "DISCLOSED": ledger_pb2.PERSONAL_DATA_STATE_DISCLOSED,
    "ERASED": ledger_pb2.PERSONAL_DATA_STATE_ERASED,
}
ID_TYPE_VALUES = {name: number for number, name in ID_TYPES.items()}
SUSPENSION_VALUES = {name: number for number, name in SUSPENSION_REASONS.items()}
DISCONNECT_VALUES = {name: number for number, name in DISCONNECT_REASONS.items()}


def _plain(value: Any) -> Any:
    """Event field values as JSON-like values for a protobuf Struct."""
    if isinstance(value, (UUID, date, datetime)):
        return str(value) if isinstance(value, UUID) else value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def ledger_event(item: HistoryItem) -> ledger_pb2.LedgerEvent:
    """A history item as the API's LedgerEvent."""
    ev: Any = item.event
    message = ledger_pb2.LedgerEvent(
        position=item.position,
        stream_id=str(ev.originator_id),
        stream_type=STREAM_TYPES[item.stream_type],
        stream_version=ev.originator_version,
        type=item.type_name,
        number=item.number,
        subscriber_id=str(item.subscriber_id) if item.subscriber_id else "",
        actor=ev.actor,
        request_id=ev.request_id,
        personal_data_state=PERSONAL_STATES[item.personal_state],
    )
    message.occurred_at.FromDatetime(ev.occurred_at)
    message.recorded_at.FromDatetime(ev.timestamp)
    data = struct_pb2.Struct()
    data.update(_plain(item.data()))
    message.data.CopyFrom(data)
    if item.personal_data is not None:
        p = item.personal_data
        message.personal_data.CopyFrom(
            ledger_pb2.PersonalData(
                full_name=p.get("full_name", ""),
                id_type=ID_TYPE_VALUES.get(p.get("id_type", ""), 0),  # type: ignore[arg-type]
                id_number=p.get("id_number", ""),
                date_of_birth=p.get("date_of_birth", ""),
            )
        )
    return message


def number_state_message(view: NumberStateView) -> ledger_pb2.NumberState:
    """A state view as the API's NumberState."""
    message = ledger_pb2.NumberState(
        number=view.number,
        state=STATUS_VALUES[view.status],  # type: ignore[arg-type]
        subscriber_id=str(view.subscriber_id) if view.subscriber_id else "",
        verified=view.verified,
        suspension_reason=SUSPENSION_VALUES.get(view.suspension_reason or "", 0),  # type: ignore[arg-type]
        tenure_count=view.tenure_count,
        stream_version=view.version,
    )
    message.as_of.FromDatetime(view.as_of)
    if view.quarantine_until is not None:
        message.quarantine_until.FromDatetime(view.quarantine_until)
    tenure = view.tenure
    if tenure is not None:
        message.current_tenure.CopyFrom(
            ledger_pb2.Tenure(
                tenure_id=str(tenure.tenure_id),
                subscriber_id=str(tenure.subscriber_id),
                iccid=tenure.iccid,
                imsi=tenure.imsi,
                channel=tenure.channel,
                agent_id=tenure.agent_id,
                disconnect_reason=DISCONNECT_VALUES.get(tenure.disconnect_reason or "", 0),  # type: ignore[arg-type]
            )
        )
        message.current_tenure.activated_at.FromDatetime(tenure.activated_at)
    return message


class HistoryServicer(history_service_pb2_grpc.HistoryServiceServicer):
    """The compliance-facing read API."""

    def __init__(self, app: LedgerApplication, max_feeds: int = 8, auditor: Auditor | None = None) -> None:
        self.app = app
        self.auditor = auditor
        # Each feed holds a worker thread while it follows the ledger; bound them so calls still get served.
        self._feeds = threading.BoundedSemaphore(max_feeds)
        self.max_feeds = max_feeds
        self._numbers: OrderedDict[UUID, str] = OrderedDict()
        self._feed_topics = {t for cls in (Number, Subscriber) for t in _event_topics(cls)}

    def GetNumberHistory(
        self, request: pb.GetNumberHistoryRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.GetNumberHistoryResponse]:
        """Stream a number's history in ledger order."""
        f = Fields()
        number = f.msisdn("number", request.number)
        purpose = ""
        if request.include_personal_data:
            purpose = f.text("purpose", request.purpose, 500)
        f.done()
        items = number_history(self.app, number, request.include_personal_data, actor_of(context), purpose)
        for item in items:
            yield pb.GetNumberHistoryResponse(event=ledger_event(item))

    def GetNumberState(
        self, request: pb.GetNumberStateRequest, context: grpc.ServicerContext
    ) -> pb.GetNumberStateResponse:
        """A number's state now or at ``as_of``."""
        f = Fields()
        number = f.msisdn("number", request.number)
        as_of = f.timestamp(request, "as_of")
        f.done()
        view = number_state(self.app, number, as_of)
        return pb.GetNumberStateResponse(number_state=number_state_message(view))

    def VerifyIntegrity(
        self, request: pb.VerifyIntegrityRequest, context: grpc.ServicerContext
    ) -> pb.VerifyIntegrityResponse:
        """Recompute the hash chains and report the first event that does not match."""
        f = Fields()
        number = f.msisdn("number", request.number) if request.number else ""
        if number and request.up_to_position:
            f.add("up_to_position", "applies only to a whole-ledger verification")
        f.done()
        report = verify_integrity(self.app, number, request.up_to_position)
        return pb.VerifyIntegrityResponse(
            ok=report.ok,
            events_checked=report.events_checked,
            first_bad_position=report.first_bad_position,
            head_digest=report.head_digest,
            head_position=report.head_position,
            problem=report.problem,
        )

    def VerifyReadModels(
        self, request: pb.VerifyReadModelsRequest, context: grpc.ServicerContext
    ) -> pb.VerifyReadModelsResponse:
        """Replay numbers' events in memory and compare the result with what the read models hold."""
        f = Fields()
        number = f.msisdn("number", request.number) if request.number else ""
        if number and request.sample:
            f.add("sample", "applies only to an audit of every number")
        f.done()
        if self.auditor is None:
            raise NotImplementedError
        report = self.auditor.audit([number] if number else None, sample=request.sample, active=context.is_active)
        return pb.VerifyReadModelsResponse(
            ok=report.ok,
            numbers_checked=report.numbers_checked,
            as_of_position=report.as_of_position,
            mismatches=[
                pb.ReadModelMismatch(number=m.number, field=m.field, stored=m.stored, replayed=m.replayed)
                for m in report.mismatches
            ],
        )

    def StreamEvents(
        self, request: pb.StreamEventsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.StreamEventsResponse]:
        """Catch up from ``from_position``, then follow new events until the caller goes away."""
        if request.from_position > MAX_POSITION:
            raise errors.InvalidArgument([("from_position", f"must be at most {MAX_POSITION}")])
        if not self._feeds.acquire(blocking=False):
            raise errors.ResourceExhausted(f"at most {self.max_feeds} StreamEvents calls at once; retry later")
        try:
            yield from self._follow(max(request.from_position, 1) - 1, context)
        finally:
            self._feeds.release()

    def _follow(self, last: int, context: grpc.ServicerContext) -> Iterator[pb.StreamEventsResponse]:
        while context.is_active():
            notifications = self.app.recorder.select_notifications(start=last + 1, limit=FEED_BATCH)
            if not notifications:
                self.app.wait_for_commit(last, FEED_IDLE_SECONDS)
                continue
            for n in notifications:
                last = n.id
                if n.topic not in self._feed_topics:
                    continue
                event = self.app.mapper.to_domain_event(n)
                item = feed_item(n.id, event, self._number_of(event))
                if item is not None:
                    yield pb.StreamEventsResponse(event=ledger_event(item))

    def _number_of(self, event: Any) -> str:
        if not isinstance(event, Number.Event):
            return ""
        if isinstance(event, Number.Provisioned):
            number: str = event.number
        else:
            cached = self._numbers.get(event.originator_id)
            number = cached if cached is not None else self.app.repository.get(event.originator_id).number
        self._numbers[event.originator_id] = number
        self._numbers.move_to_end(event.originator_id)
        while len(self._numbers) > NUMBER_CACHE_SIZE:
            self._numbers.popitem(last=False)
        return number


def _event_topics(cls: type) -> list[str]:
    return [get_topic(v) for v in vars(cls).values() if isinstance(v, type) and issubclass(v, cls.Event)]  # type: ignore[attr-defined]
