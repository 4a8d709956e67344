"""Translation between the API's messages and the domain's values: enum values both ways, history items
as LedgerEvent, state views as NumberState. Servicers translate through here and nothing else."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from uuid import UUID

from google.protobuf import struct_pb2

from ledger.application.reads import PersonalState, StreamType
from ledger.domain.rules import (
    Clearance,
    DisconnectReason,
    IdType,
    NumberStatus,
    SimSwapReason,
    SuspensionReason,
    VerificationMethod,
)
from ledger.v1 import ledger_pb2

if TYPE_CHECKING:
    from ledger.application.reads import HistoryItem, NumberStateView


def enum_names(enum_type: object, prefix: str) -> dict[int, str]:
    """Map a generated proto enum's values (except UNSPECIFIED) to names without the prefix."""
    values = enum_type.DESCRIPTOR.values  # type: ignore[attr-defined]
    return {v.number: v.name[len(prefix) :] for v in values if v.number != 0}


def domain_values(enum_type: object, prefix: str, domain: type[StrEnum]) -> dict[int, str]:
    """Map a proto enum's values (except UNSPECIFIED) to the domain enum's values; a proto value the domain
    does not know stops the server at import (``tests/unit/test_enum_mapping.py`` checks both ways)."""
    return {number: domain(name).value for number, name in enum_names(enum_type, prefix).items()}


ID_TYPES = domain_values(ledger_pb2.IdType, "ID_TYPE_", IdType)
METHODS = domain_values(ledger_pb2.VerificationMethod, "VERIFICATION_METHOD_", VerificationMethod)
SUSPENSION_REASONS = domain_values(ledger_pb2.SuspensionReason, "SUSPENSION_REASON_", SuspensionReason)
DISCONNECT_REASONS = domain_values(ledger_pb2.DisconnectReason, "DISCONNECT_REASON_", DisconnectReason)
SWAP_REASONS = domain_values(ledger_pb2.SimSwapReason, "SIM_SWAP_REASON_", SimSwapReason)
STATUSES = domain_values(ledger_pb2.NumberStatus, "NUMBER_STATUS_", NumberStatus)
CLEARANCES = domain_values(ledger_pb2.Clearance, "CLEARANCE_", Clearance)
PERSONAL_DATA_STATES = domain_values(ledger_pb2.PersonalDataState, "PERSONAL_DATA_STATE_", PersonalState)

# Domain value -> proto value, for responses.
ID_TYPE_VALUES = {name: number for number, name in ID_TYPES.items()}
SUSPENSION_VALUES = {name: number for number, name in SUSPENSION_REASONS.items()}
DISCONNECT_VALUES = {name: number for number, name in DISCONNECT_REASONS.items()}
STATUS_VALUES = {name: number for number, name in STATUSES.items()}
METHOD_VALUES = {name: number for number, name in METHODS.items()}
CLEARANCE_VALUES: dict[str, Any] = {name: number for number, name in CLEARANCES.items()}
PERSONAL_STATES: dict[str, Any] = {name: number for number, name in PERSONAL_DATA_STATES.items()}
STREAM_TYPES = {
    StreamType.NUMBER: ledger_pb2.STREAM_TYPE_NUMBER,
    StreamType.SUBSCRIBER: ledger_pb2.STREAM_TYPE_SUBSCRIBER,
    StreamType.ACCESS: ledger_pb2.STREAM_TYPE_ACCESS_LOG,
}


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
