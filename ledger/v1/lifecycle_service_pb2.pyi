import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from ledger.v1 import ledger_pb2 as _ledger_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProvisionNumbersRequest(_message.Message):
    __slots__ = ("request_id", "numbers", "occurred_at")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBERS_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    numbers: _containers.RepeatedScalarFieldContainer[str]
    occurred_at: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., numbers: _Optional[_Iterable[str]] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ProvisionNumbersResponse(_message.Message):
    __slots__ = ("provisioned_count", "position", "already_provisioned")
    PROVISIONED_COUNT_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    ALREADY_PROVISIONED_FIELD_NUMBER: _ClassVar[int]
    provisioned_count: int
    position: int
    already_provisioned: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, provisioned_count: _Optional[int] = ..., position: _Optional[int] = ..., already_provisioned: _Optional[_Iterable[str]] = ...) -> None: ...

class RegisterSubscriberRequest(_message.Message):
    __slots__ = ("request_id", "full_name", "id_type", "id_number", "date_of_birth", "occurred_at")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FULL_NAME_FIELD_NUMBER: _ClassVar[int]
    ID_TYPE_FIELD_NUMBER: _ClassVar[int]
    ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    DATE_OF_BIRTH_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    full_name: str
    id_type: _ledger_pb2.IdType
    id_number: str
    date_of_birth: str
    occurred_at: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., full_name: _Optional[str] = ..., id_type: _Optional[_Union[_ledger_pb2.IdType, str]] = ..., id_number: _Optional[str] = ..., date_of_birth: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RegisterSubscriberResponse(_message.Message):
    __slots__ = ("subscriber_id", "position")
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    subscriber_id: str
    position: int
    def __init__(self, subscriber_id: _Optional[str] = ..., position: _Optional[int] = ...) -> None: ...

class VerifyIdentityRequest(_message.Message):
    __slots__ = ("request_id", "subscriber_id", "method", "channel", "agent_id", "evidence_ref", "occurred_at")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_REF_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    subscriber_id: str
    method: _ledger_pb2.VerificationMethod
    channel: str
    agent_id: str
    evidence_ref: str
    occurred_at: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., subscriber_id: _Optional[str] = ..., method: _Optional[_Union[_ledger_pb2.VerificationMethod, str]] = ..., channel: _Optional[str] = ..., agent_id: _Optional[str] = ..., evidence_ref: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class VerifyIdentityResponse(_message.Message):
    __slots__ = ("position",)
    POSITION_FIELD_NUMBER: _ClassVar[int]
    position: int
    def __init__(self, position: _Optional[int] = ...) -> None: ...

class ActivateSimRequest(_message.Message):
    __slots__ = ("request_id", "number", "subscriber_id", "iccid", "imsi", "channel", "agent_id", "occurred_at")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    ICCID_FIELD_NUMBER: _ClassVar[int]
    IMSI_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    number: str
    subscriber_id: str
    iccid: str
    imsi: str
    channel: str
    agent_id: str
    occurred_at: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., number: _Optional[str] = ..., subscriber_id: _Optional[str] = ..., iccid: _Optional[str] = ..., imsi: _Optional[str] = ..., channel: _Optional[str] = ..., agent_id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ActivateSimResponse(_message.Message):
    __slots__ = ("tenure_id", "position")
    TENURE_ID_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    tenure_id: str
    position: int
    def __init__(self, tenure_id: _Optional[str] = ..., position: _Optional[int] = ...) -> None: ...

class SwapSimRequest(_message.Message):
    __slots__ = ("request_id", "number", "new_iccid", "new_imsi", "reason", "channel", "agent_id", "occurred_at")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    NEW_ICCID_FIELD_NUMBER: _ClassVar[int]
    NEW_IMSI_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    number: str
    new_iccid: str
    new_imsi: str
    reason: _ledger_pb2.SimSwapReason
    channel: str
    agent_id: str
    occurred_at: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., number: _Optional[str] = ..., new_iccid: _Optional[str] = ..., new_imsi: _Optional[str] = ..., reason: _Optional[_Union[_ledger_pb2.SimSwapReason, str]] = ..., channel: _Optional[str] = ..., agent_id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SwapSimResponse(_message.Message):
    __slots__ = ("position",)
    POSITION_FIELD_NUMBER: _ClassVar[int]
    position: int
    def __init__(self, position: _Optional[int] = ...) -> None: ...

class SuspendNumberRequest(_message.Message):
    __slots__ = ("request_id", "number", "reason", "note", "occurred_at")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    number: str
    reason: _ledger_pb2.SuspensionReason
    note: str
    occurred_at: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., number: _Optional[str] = ..., reason: _Optional[_Union[_ledger_pb2.SuspensionReason, str]] = ..., note: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SuspendNumberResponse(_message.Message):
    __slots__ = ("position",)
    POSITION_FIELD_NUMBER: _ClassVar[int]
    position: int
    def __init__(self, position: _Optional[int] = ...) -> None: ...

class ResumeNumberRequest(_message.Message):
    __slots__ = ("request_id", "number", "note", "occurred_at")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    number: str
    note: str
    occurred_at: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., number: _Optional[str] = ..., note: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ResumeNumberResponse(_message.Message):
    __slots__ = ("position",)
    POSITION_FIELD_NUMBER: _ClassVar[int]
    position: int
    def __init__(self, position: _Optional[int] = ...) -> None: ...

class DisconnectNumberRequest(_message.Message):
    __slots__ = ("request_id", "number", "reason", "occurred_at")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    number: str
    reason: _ledger_pb2.DisconnectReason
    occurred_at: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., number: _Optional[str] = ..., reason: _Optional[_Union[_ledger_pb2.DisconnectReason, str]] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DisconnectNumberResponse(_message.Message):
    __slots__ = ("tenure_id", "quarantine_until", "position")
    TENURE_ID_FIELD_NUMBER: _ClassVar[int]
    QUARANTINE_UNTIL_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    tenure_id: str
    quarantine_until: _timestamp_pb2.Timestamp
    position: int
    def __init__(self, tenure_id: _Optional[str] = ..., quarantine_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., position: _Optional[int] = ...) -> None: ...

class ConfirmDataClearedRequest(_message.Message):
    __slots__ = ("request_id", "number", "tenure_id", "holder", "evidence_ref", "occurred_at")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    TENURE_ID_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_REF_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    number: str
    tenure_id: str
    holder: str
    evidence_ref: str
    occurred_at: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., number: _Optional[str] = ..., tenure_id: _Optional[str] = ..., holder: _Optional[str] = ..., evidence_ref: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ConfirmDataClearedResponse(_message.Message):
    __slots__ = ("clearance", "position")
    CLEARANCE_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    clearance: _ledger_pb2.Clearance
    position: int
    def __init__(self, clearance: _Optional[_Union[_ledger_pb2.Clearance, str]] = ..., position: _Optional[int] = ...) -> None: ...

class ReleaseNumberRequest(_message.Message):
    __slots__ = ("request_id", "number", "override_reason", "occurred_at")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    OVERRIDE_REASON_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    number: str
    override_reason: str
    occurred_at: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., number: _Optional[str] = ..., override_reason: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ReleaseNumberResponse(_message.Message):
    __slots__ = ("position",)
    POSITION_FIELD_NUMBER: _ClassVar[int]
    position: int
    def __init__(self, position: _Optional[int] = ...) -> None: ...

class EraseSubscriberDataRequest(_message.Message):
    __slots__ = ("request_id", "subscriber_id", "legal_basis", "occurred_at")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    LEGAL_BASIS_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    subscriber_id: str
    legal_basis: str
    occurred_at: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., subscriber_id: _Optional[str] = ..., legal_basis: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EraseSubscriberDataResponse(_message.Message):
    __slots__ = ("position", "erasure_due_at")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    ERASURE_DUE_AT_FIELD_NUMBER: _ClassVar[int]
    position: int
    erasure_due_at: _timestamp_pb2.Timestamp
    def __init__(self, position: _Optional[int] = ..., erasure_due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PortOutNumberRequest(_message.Message):
    __slots__ = ("request_id", "number", "recipient_operator", "occurred_at")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_OPERATOR_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    number: str
    recipient_operator: str
    occurred_at: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., number: _Optional[str] = ..., recipient_operator: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PortOutNumberResponse(_message.Message):
    __slots__ = ("tenure_id", "position")
    TENURE_ID_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    tenure_id: str
    position: int
    def __init__(self, tenure_id: _Optional[str] = ..., position: _Optional[int] = ...) -> None: ...

class PortInNumberRequest(_message.Message):
    __slots__ = ("request_id", "number", "donor_operator", "occurred_at")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    DONOR_OPERATOR_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    number: str
    donor_operator: str
    occurred_at: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., number: _Optional[str] = ..., donor_operator: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PortInNumberResponse(_message.Message):
    __slots__ = ("position",)
    POSITION_FIELD_NUMBER: _ClassVar[int]
    position: int
    def __init__(self, position: _Optional[int] = ...) -> None: ...

class ReturnNumberRequest(_message.Message):
    __slots__ = ("request_id", "number", "disconnected_at", "occurred_at")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    DISCONNECTED_AT_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    number: str
    disconnected_at: _timestamp_pb2.Timestamp
    occurred_at: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., number: _Optional[str] = ..., disconnected_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ReturnNumberResponse(_message.Message):
    __slots__ = ("quarantine_until", "position")
    QUARANTINE_UNTIL_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    quarantine_until: _timestamp_pb2.Timestamp
    position: int
    def __init__(self, quarantine_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., position: _Optional[int] = ...) -> None: ...

class RecordDisconnectionReportRequest(_message.Message):
    __slots__ = ("request_id", "jurisdiction", "month", "from_position", "to_position", "period_end", "carry_from", "rows", "digest", "occurred_at")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    JURISDICTION_FIELD_NUMBER: _ClassVar[int]
    MONTH_FIELD_NUMBER: _ClassVar[int]
    FROM_POSITION_FIELD_NUMBER: _ClassVar[int]
    TO_POSITION_FIELD_NUMBER: _ClassVar[int]
    PERIOD_END_FIELD_NUMBER: _ClassVar[int]
    CARRY_FROM_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    jurisdiction: str
    month: str
    from_position: int
    to_position: int
    period_end: _timestamp_pb2.Timestamp
    carry_from: int
    rows: int
    digest: str
    occurred_at: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., jurisdiction: _Optional[str] = ..., month: _Optional[str] = ..., from_position: _Optional[int] = ..., to_position: _Optional[int] = ..., period_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., carry_from: _Optional[int] = ..., rows: _Optional[int] = ..., digest: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RecordDisconnectionReportResponse(_message.Message):
    __slots__ = ("position",)
    POSITION_FIELD_NUMBER: _ClassVar[int]
    position: int
    def __init__(self, position: _Optional[int] = ...) -> None: ...

class ImportCommandsRequest(_message.Message):
    __slots__ = ("commands",)
    COMMANDS_FIELD_NUMBER: _ClassVar[int]
    commands: _containers.RepeatedCompositeFieldContainer[ImportCommand]
    def __init__(self, commands: _Optional[_Iterable[_Union[ImportCommand, _Mapping]]] = ...) -> None: ...

class ImportCommand(_message.Message):
    __slots__ = ("provision_numbers", "register_subscriber", "verify_identity", "activate_sim", "swap_sim", "suspend_number", "resume_number", "disconnect_number", "confirm_data_cleared", "release_number", "erase_subscriber_data", "port_out_number", "port_in_number", "return_number", "record_disconnection_report")
    PROVISION_NUMBERS_FIELD_NUMBER: _ClassVar[int]
    REGISTER_SUBSCRIBER_FIELD_NUMBER: _ClassVar[int]
    VERIFY_IDENTITY_FIELD_NUMBER: _ClassVar[int]
    ACTIVATE_SIM_FIELD_NUMBER: _ClassVar[int]
    SWAP_SIM_FIELD_NUMBER: _ClassVar[int]
    SUSPEND_NUMBER_FIELD_NUMBER: _ClassVar[int]
    RESUME_NUMBER_FIELD_NUMBER: _ClassVar[int]
    DISCONNECT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    CONFIRM_DATA_CLEARED_FIELD_NUMBER: _ClassVar[int]
    RELEASE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    ERASE_SUBSCRIBER_DATA_FIELD_NUMBER: _ClassVar[int]
    PORT_OUT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    PORT_IN_NUMBER_FIELD_NUMBER: _ClassVar[int]
    RETURN_NUMBER_FIELD_NUMBER: _ClassVar[int]
    RECORD_DISCONNECTION_REPORT_FIELD_NUMBER: _ClassVar[int]
    provision_numbers: ProvisionNumbersRequest
    register_subscriber: RegisterSubscriberRequest
    verify_identity: VerifyIdentityRequest
    activate_sim: ActivateSimRequest
    swap_sim: SwapSimRequest
    suspend_number: SuspendNumberRequest
    resume_number: ResumeNumberRequest
    disconnect_number: DisconnectNumberRequest
    confirm_data_cleared: ConfirmDataClearedRequest
    release_number: ReleaseNumberRequest
    erase_subscriber_data: EraseSubscriberDataRequest
    port_out_number: PortOutNumberRequest
    port_in_number: PortInNumberRequest
    return_number: ReturnNumberRequest
    record_disconnection_report: RecordDisconnectionReportRequest
    def __init__(self, provision_numbers: _Optional[_Union[ProvisionNumbersRequest, _Mapping]] = ..., register_subscriber: _Optional[_Union[RegisterSubscriberRequest, _Mapping]] = ..., verify_identity: _Optional[_Union[VerifyIdentityRequest, _Mapping]] = ..., activate_sim: _Optional[_Union[ActivateSimRequest, _Mapping]] = ..., swap_sim: _Optional[_Union[SwapSimRequest, _Mapping]] = ..., suspend_number: _Optional[_Union[SuspendNumberRequest, _Mapping]] = ..., resume_number: _Optional[_Union[ResumeNumberRequest, _Mapping]] = ..., disconnect_number: _Optional[_Union[DisconnectNumberRequest, _Mapping]] = ..., confirm_data_cleared: _Optional[_Union[ConfirmDataClearedRequest, _Mapping]] = ..., release_number: _Optional[_Union[ReleaseNumberRequest, _Mapping]] = ..., erase_subscriber_data: _Optional[_Union[EraseSubscriberDataRequest, _Mapping]] = ..., port_out_number: _Optional[_Union[PortOutNumberRequest, _Mapping]] = ..., port_in_number: _Optional[_Union[PortInNumberRequest, _Mapping]] = ..., return_number: _Optional[_Union[ReturnNumberRequest, _Mapping]] = ..., record_disconnection_report: _Optional[_Union[RecordDisconnectionReportRequest, _Mapping]] = ...) -> None: ...

class ImportCommandsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ImportCommandResult]
    def __init__(self, results: _Optional[_Iterable[_Union[ImportCommandResult, _Mapping]]] = ...) -> None: ...

class ImportCommandResult(_message.Message):
    __slots__ = ("index", "request_id", "error", "replayed", "provision_numbers", "register_subscriber", "verify_identity", "activate_sim", "swap_sim", "suspend_number", "resume_number", "disconnect_number", "confirm_data_cleared", "release_number", "erase_subscriber_data", "port_out_number", "port_in_number", "return_number", "record_disconnection_report")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    PROVISION_NUMBERS_FIELD_NUMBER: _ClassVar[int]
    REGISTER_SUBSCRIBER_FIELD_NUMBER: _ClassVar[int]
    VERIFY_IDENTITY_FIELD_NUMBER: _ClassVar[int]
    ACTIVATE_SIM_FIELD_NUMBER: _ClassVar[int]
    SWAP_SIM_FIELD_NUMBER: _ClassVar[int]
    SUSPEND_NUMBER_FIELD_NUMBER: _ClassVar[int]
    RESUME_NUMBER_FIELD_NUMBER: _ClassVar[int]
    DISCONNECT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    CONFIRM_DATA_CLEARED_FIELD_NUMBER: _ClassVar[int]
    RELEASE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    ERASE_SUBSCRIBER_DATA_FIELD_NUMBER: _ClassVar[int]
    PORT_OUT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    PORT_IN_NUMBER_FIELD_NUMBER: _ClassVar[int]
    RETURN_NUMBER_FIELD_NUMBER: _ClassVar[int]
    RECORD_DISCONNECTION_REPORT_FIELD_NUMBER: _ClassVar[int]
    index: int
    request_id: str
    error: CommandError
    replayed: bool
    provision_numbers: ProvisionNumbersResponse
    register_subscriber: RegisterSubscriberResponse
    verify_identity: VerifyIdentityResponse
    activate_sim: ActivateSimResponse
    swap_sim: SwapSimResponse
    suspend_number: SuspendNumberResponse
    resume_number: ResumeNumberResponse
    disconnect_number: DisconnectNumberResponse
    confirm_data_cleared: ConfirmDataClearedResponse
    release_number: ReleaseNumberResponse
    erase_subscriber_data: EraseSubscriberDataResponse
    port_out_number: PortOutNumberResponse
    port_in_number: PortInNumberResponse
    return_number: ReturnNumberResponse
    record_disconnection_report: RecordDisconnectionReportResponse
    def __init__(self, index: _Optional[int] = ..., request_id: _Optional[str] = ..., error: _Optional[_Union[CommandError, _Mapping]] = ..., replayed: _Optional[bool] = ..., provision_numbers: _Optional[_Union[ProvisionNumbersResponse, _Mapping]] = ..., register_subscriber: _Optional[_Union[RegisterSubscriberResponse, _Mapping]] = ..., verify_identity: _Optional[_Union[VerifyIdentityResponse, _Mapping]] = ..., activate_sim: _Optional[_Union[ActivateSimResponse, _Mapping]] = ..., swap_sim: _Optional[_Union[SwapSimResponse, _Mapping]] = ..., suspend_number: _Optional[_Union[SuspendNumberResponse, _Mapping]] = ..., resume_number: _Optional[_Union[ResumeNumberResponse, _Mapping]] = ..., disconnect_number: _Optional[_Union[DisconnectNumberResponse, _Mapping]] = ..., confirm_data_cleared: _Optional[_Union[ConfirmDataClearedResponse, _Mapping]] = ..., release_number: _Optional[_Union[ReleaseNumberResponse, _Mapping]] = ..., erase_subscriber_data: _Optional[_Union[EraseSubscriberDataResponse, _Mapping]] = ..., port_out_number: _Optional[_Union[PortOutNumberResponse, _Mapping]] = ..., port_in_number: _Optional[_Union[PortInNumberResponse, _Mapping]] = ..., return_number: _Optional[_Union[ReturnNumberResponse, _Mapping]] = ..., record_disconnection_report: _Optional[_Union[RecordDisconnectionReportResponse, _Mapping]] = ...) -> None: ...

class CommandError(_message.Message):
    __slots__ = ("code", "reason", "message", "field_violations")
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FIELD_VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    code: int
    reason: str
    message: str
    field_violations: _containers.RepeatedCompositeFieldContainer[FieldViolation]
    def __init__(self, code: _Optional[int] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ..., field_violations: _Optional[_Iterable[_Union[FieldViolation, _Mapping]]] = ...) -> None: ...

class FieldViolation(_message.Message):
    __slots__ = ("field", "description")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    field: str
    description: str
    def __init__(self, field: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...
