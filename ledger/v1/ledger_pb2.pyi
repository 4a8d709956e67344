import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NumberStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NUMBER_STATUS_UNSPECIFIED: _ClassVar[NumberStatus]
    NUMBER_STATUS_AVAILABLE: _ClassVar[NumberStatus]
    NUMBER_STATUS_ACTIVE: _ClassVar[NumberStatus]
    NUMBER_STATUS_SUSPENDED: _ClassVar[NumberStatus]
    NUMBER_STATUS_QUARANTINED: _ClassVar[NumberStatus]
    NUMBER_STATUS_PORTED_OUT: _ClassVar[NumberStatus]

class IdType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ID_TYPE_UNSPECIFIED: _ClassVar[IdType]
    ID_TYPE_RESIDENT_ID_CARD: _ClassVar[IdType]
    ID_TYPE_PASSPORT: _ClassVar[IdType]
    ID_TYPE_OTHER: _ClassVar[IdType]

class VerificationMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERIFICATION_METHOD_UNSPECIFIED: _ClassVar[VerificationMethod]
    VERIFICATION_METHOD_ID_CARD_READER: _ClassVar[VerificationMethod]
    VERIFICATION_METHOD_ONLINE_PHOTO_LIVENESS: _ClassVar[VerificationMethod]
    VERIFICATION_METHOD_IN_PERSON_MANUAL: _ClassVar[VerificationMethod]
    VERIFICATION_METHOD_PASSPORT_CHECK: _ClassVar[VerificationMethod]

class SuspensionReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SUSPENSION_REASON_UNSPECIFIED: _ClassVar[SuspensionReason]
    SUSPENSION_REASON_FRAUD: _ClassVar[SuspensionReason]
    SUSPENSION_REASON_SPAM: _ClassVar[SuspensionReason]
    SUSPENSION_REASON_UNVERIFIED_IDENTITY: _ClassVar[SuspensionReason]
    SUSPENSION_REASON_SUBSCRIBER_REQUEST: _ClassVar[SuspensionReason]
    SUSPENSION_REASON_LOST_SIM: _ClassVar[SuspensionReason]
    SUSPENSION_REASON_NON_PAYMENT: _ClassVar[SuspensionReason]
    SUSPENSION_REASON_REGULATOR_ORDER: _ClassVar[SuspensionReason]

class DisconnectReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DISCONNECT_REASON_UNSPECIFIED: _ClassVar[DisconnectReason]
    DISCONNECT_REASON_SUBSCRIBER_REQUEST: _ClassVar[DisconnectReason]
    DISCONNECT_REASON_NON_PAYMENT: _ClassVar[DisconnectReason]
    DISCONNECT_REASON_FRAUD: _ClassVar[DisconnectReason]
    DISCONNECT_REASON_UNVERIFIED_IDENTITY: _ClassVar[DisconnectReason]
    DISCONNECT_REASON_REGULATOR_ORDER: _ClassVar[DisconnectReason]
    DISCONNECT_REASON_PORTED_OUT: _ClassVar[DisconnectReason]
    DISCONNECT_REASON_OTHER: _ClassVar[DisconnectReason]

class SimSwapReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIM_SWAP_REASON_UNSPECIFIED: _ClassVar[SimSwapReason]
    SIM_SWAP_REASON_LOST_OR_STOLEN: _ClassVar[SimSwapReason]
    SIM_SWAP_REASON_DAMAGED: _ClassVar[SimSwapReason]
    SIM_SWAP_REASON_UPGRADE: _ClassVar[SimSwapReason]
    SIM_SWAP_REASON_ESIM_TRANSFER: _ClassVar[SimSwapReason]
    SIM_SWAP_REASON_OTHER: _ClassVar[SimSwapReason]

class Clearance(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CLEARANCE_UNSPECIFIED: _ClassVar[Clearance]
    CLEARANCE_NOT_APPLICABLE: _ClassVar[Clearance]
    CLEARANCE_CLEARED: _ClassVar[Clearance]
    CLEARANCE_PENDING: _ClassVar[Clearance]
    CLEARANCE_VIOLATION: _ClassVar[Clearance]

class CheckStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHECK_STATUS_UNSPECIFIED: _ClassVar[CheckStatus]
    CHECK_STATUS_NOT_CHANGED: _ClassVar[CheckStatus]
    CHECK_STATUS_CHANGED: _ClassVar[CheckStatus]
    CHECK_STATUS_NO_DATA: _ClassVar[CheckStatus]

class StreamType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STREAM_TYPE_UNSPECIFIED: _ClassVar[StreamType]
    STREAM_TYPE_NUMBER: _ClassVar[StreamType]
    STREAM_TYPE_SUBSCRIBER: _ClassVar[StreamType]
    STREAM_TYPE_ACCESS_LOG: _ClassVar[StreamType]

class PersonalDataState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PERSONAL_DATA_STATE_UNSPECIFIED: _ClassVar[PersonalDataState]
    PERSONAL_DATA_STATE_NONE: _ClassVar[PersonalDataState]
    PERSONAL_DATA_STATE_WITHHELD: _ClassVar[PersonalDataState]
    PERSONAL_DATA_STATE_DISCLOSED: _ClassVar[PersonalDataState]
    PERSONAL_DATA_STATE_ERASED: _ClassVar[PersonalDataState]

class NoDataReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NO_DATA_REASON_UNSPECIFIED: _ClassVar[NoDataReason]
    NO_DATA_REASON_UNKNOWN_NUMBER: _ClassVar[NoDataReason]
    NO_DATA_REASON_RECORDS_BEGIN_LATER: _ClassVar[NoDataReason]
    NO_DATA_REASON_PORTED_OUT: _ClassVar[NoDataReason]
    NO_DATA_REASON_READ_MODEL_MISMATCH: _ClassVar[NoDataReason]
NUMBER_STATUS_UNSPECIFIED: NumberStatus
NUMBER_STATUS_AVAILABLE: NumberStatus
NUMBER_STATUS_ACTIVE: NumberStatus
NUMBER_STATUS_SUSPENDED: NumberStatus
NUMBER_STATUS_QUARANTINED: NumberStatus
NUMBER_STATUS_PORTED_OUT: NumberStatus
ID_TYPE_UNSPECIFIED: IdType
ID_TYPE_RESIDENT_ID_CARD: IdType
ID_TYPE_PASSPORT: IdType
ID_TYPE_OTHER: IdType
VERIFICATION_METHOD_UNSPECIFIED: VerificationMethod
VERIFICATION_METHOD_ID_CARD_READER: VerificationMethod
VERIFICATION_METHOD_ONLINE_PHOTO_LIVENESS: VerificationMethod
VERIFICATION_METHOD_IN_PERSON_MANUAL: VerificationMethod
VERIFICATION_METHOD_PASSPORT_CHECK: VerificationMethod
SUSPENSION_REASON_UNSPECIFIED: SuspensionReason
SUSPENSION_REASON_FRAUD: SuspensionReason
SUSPENSION_REASON_SPAM: SuspensionReason
SUSPENSION_REASON_UNVERIFIED_IDENTITY: SuspensionReason
SUSPENSION_REASON_SUBSCRIBER_REQUEST: SuspensionReason
SUSPENSION_REASON_LOST_SIM: SuspensionReason
SUSPENSION_REASON_NON_PAYMENT: SuspensionReason
SUSPENSION_REASON_REGULATOR_ORDER: SuspensionReason
DISCONNECT_REASON_UNSPECIFIED: DisconnectReason
DISCONNECT_REASON_SUBSCRIBER_REQUEST: DisconnectReason
DISCONNECT_REASON_NON_PAYMENT: DisconnectReason
DISCONNECT_REASON_FRAUD: DisconnectReason
DISCONNECT_REASON_UNVERIFIED_IDENTITY: DisconnectReason
DISCONNECT_REASON_REGULATOR_ORDER: DisconnectReason
DISCONNECT_REASON_PORTED_OUT: DisconnectReason
DISCONNECT_REASON_OTHER: DisconnectReason
SIM_SWAP_REASON_UNSPECIFIED: SimSwapReason
SIM_SWAP_REASON_LOST_OR_STOLEN: SimSwapReason
SIM_SWAP_REASON_DAMAGED: SimSwapReason
SIM_SWAP_REASON_UPGRADE: SimSwapReason
SIM_SWAP_REASON_ESIM_TRANSFER: SimSwapReason
SIM_SWAP_REASON_OTHER: SimSwapReason
CLEARANCE_UNSPECIFIED: Clearance
CLEARANCE_NOT_APPLICABLE: Clearance
CLEARANCE_CLEARED: Clearance
CLEARANCE_PENDING: Clearance
CLEARANCE_VIOLATION: Clearance
CHECK_STATUS_UNSPECIFIED: CheckStatus
CHECK_STATUS_NOT_CHANGED: CheckStatus
CHECK_STATUS_CHANGED: CheckStatus
CHECK_STATUS_NO_DATA: CheckStatus
STREAM_TYPE_UNSPECIFIED: StreamType
STREAM_TYPE_NUMBER: StreamType
STREAM_TYPE_SUBSCRIBER: StreamType
STREAM_TYPE_ACCESS_LOG: StreamType
PERSONAL_DATA_STATE_UNSPECIFIED: PersonalDataState
PERSONAL_DATA_STATE_NONE: PersonalDataState
PERSONAL_DATA_STATE_WITHHELD: PersonalDataState
PERSONAL_DATA_STATE_DISCLOSED: PersonalDataState
PERSONAL_DATA_STATE_ERASED: PersonalDataState
NO_DATA_REASON_UNSPECIFIED: NoDataReason
NO_DATA_REASON_UNKNOWN_NUMBER: NoDataReason
NO_DATA_REASON_RECORDS_BEGIN_LATER: NoDataReason
NO_DATA_REASON_PORTED_OUT: NoDataReason
NO_DATA_REASON_READ_MODEL_MISMATCH: NoDataReason

class PersonalData(_message.Message):
    __slots__ = ("full_name", "id_type", "id_number", "date_of_birth")
    FULL_NAME_FIELD_NUMBER: _ClassVar[int]
    ID_TYPE_FIELD_NUMBER: _ClassVar[int]
    ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    DATE_OF_BIRTH_FIELD_NUMBER: _ClassVar[int]
    full_name: str
    id_type: IdType
    id_number: str
    date_of_birth: str
    def __init__(self, full_name: _Optional[str] = ..., id_type: _Optional[_Union[IdType, str]] = ..., id_number: _Optional[str] = ..., date_of_birth: _Optional[str] = ...) -> None: ...

class LedgerEvent(_message.Message):
    __slots__ = ("position", "stream_id", "stream_type", "stream_version", "type", "number", "subscriber_id", "occurred_at", "recorded_at", "actor", "request_id", "data", "personal_data_state", "personal_data")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    STREAM_TYPE_FIELD_NUMBER: _ClassVar[int]
    STREAM_VERSION_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    PERSONAL_DATA_STATE_FIELD_NUMBER: _ClassVar[int]
    PERSONAL_DATA_FIELD_NUMBER: _ClassVar[int]
    position: int
    stream_id: str
    stream_type: StreamType
    stream_version: int
    type: str
    number: str
    subscriber_id: str
    occurred_at: _timestamp_pb2.Timestamp
    recorded_at: _timestamp_pb2.Timestamp
    actor: str
    request_id: str
    data: _struct_pb2.Struct
    personal_data_state: PersonalDataState
    personal_data: PersonalData
    def __init__(self, position: _Optional[int] = ..., stream_id: _Optional[str] = ..., stream_type: _Optional[_Union[StreamType, str]] = ..., stream_version: _Optional[int] = ..., type: _Optional[str] = ..., number: _Optional[str] = ..., subscriber_id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[str] = ..., request_id: _Optional[str] = ..., data: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., personal_data_state: _Optional[_Union[PersonalDataState, str]] = ..., personal_data: _Optional[_Union[PersonalData, _Mapping]] = ...) -> None: ...

class Tenure(_message.Message):
    __slots__ = ("tenure_id", "subscriber_id", "iccid", "imsi", "activated_at", "channel", "agent_id", "disconnected_at", "disconnect_reason")
    TENURE_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    ICCID_FIELD_NUMBER: _ClassVar[int]
    IMSI_FIELD_NUMBER: _ClassVar[int]
    ACTIVATED_AT_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    DISCONNECTED_AT_FIELD_NUMBER: _ClassVar[int]
    DISCONNECT_REASON_FIELD_NUMBER: _ClassVar[int]
    tenure_id: str
    subscriber_id: str
    iccid: str
    imsi: str
    activated_at: _timestamp_pb2.Timestamp
    channel: str
    agent_id: str
    disconnected_at: _timestamp_pb2.Timestamp
    disconnect_reason: DisconnectReason
    def __init__(self, tenure_id: _Optional[str] = ..., subscriber_id: _Optional[str] = ..., iccid: _Optional[str] = ..., imsi: _Optional[str] = ..., activated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., channel: _Optional[str] = ..., agent_id: _Optional[str] = ..., disconnected_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., disconnect_reason: _Optional[_Union[DisconnectReason, str]] = ...) -> None: ...

class NumberState(_message.Message):
    __slots__ = ("number", "state", "current_tenure", "subscriber_id", "verified", "as_of", "suspension_reason", "quarantine_until", "tenure_count", "stream_version")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CURRENT_TENURE_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    SUSPENSION_REASON_FIELD_NUMBER: _ClassVar[int]
    QUARANTINE_UNTIL_FIELD_NUMBER: _ClassVar[int]
    TENURE_COUNT_FIELD_NUMBER: _ClassVar[int]
    STREAM_VERSION_FIELD_NUMBER: _ClassVar[int]
    number: str
    state: NumberStatus
    current_tenure: Tenure
    subscriber_id: str
    verified: bool
    as_of: _timestamp_pb2.Timestamp
    suspension_reason: SuspensionReason
    quarantine_until: _timestamp_pb2.Timestamp
    tenure_count: int
    stream_version: int
    def __init__(self, number: _Optional[str] = ..., state: _Optional[_Union[NumberStatus, str]] = ..., current_tenure: _Optional[_Union[Tenure, _Mapping]] = ..., subscriber_id: _Optional[str] = ..., verified: _Optional[bool] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., suspension_reason: _Optional[_Union[SuspensionReason, str]] = ..., quarantine_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., tenure_count: _Optional[int] = ..., stream_version: _Optional[int] = ...) -> None: ...

class HolderConfirmation(_message.Message):
    __slots__ = ("holder", "evidence_ref", "confirmed_at")
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_REF_FIELD_NUMBER: _ClassVar[int]
    CONFIRMED_AT_FIELD_NUMBER: _ClassVar[int]
    holder: str
    evidence_ref: str
    confirmed_at: _timestamp_pb2.Timestamp
    def __init__(self, holder: _Optional[str] = ..., evidence_ref: _Optional[str] = ..., confirmed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TenureClearance(_message.Message):
    __slots__ = ("tenure_id", "subscriber_id", "disconnected_at", "quarantine_until", "clearance", "required_holders", "confirmations", "outstanding_holders", "released_at", "override_reason")
    TENURE_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    DISCONNECTED_AT_FIELD_NUMBER: _ClassVar[int]
    QUARANTINE_UNTIL_FIELD_NUMBER: _ClassVar[int]
    CLEARANCE_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_HOLDERS_FIELD_NUMBER: _ClassVar[int]
    CONFIRMATIONS_FIELD_NUMBER: _ClassVar[int]
    OUTSTANDING_HOLDERS_FIELD_NUMBER: _ClassVar[int]
    RELEASED_AT_FIELD_NUMBER: _ClassVar[int]
    OVERRIDE_REASON_FIELD_NUMBER: _ClassVar[int]
    tenure_id: str
    subscriber_id: str
    disconnected_at: _timestamp_pb2.Timestamp
    quarantine_until: _timestamp_pb2.Timestamp
    clearance: Clearance
    required_holders: _containers.RepeatedScalarFieldContainer[str]
    confirmations: _containers.RepeatedCompositeFieldContainer[HolderConfirmation]
    outstanding_holders: _containers.RepeatedScalarFieldContainer[str]
    released_at: _timestamp_pb2.Timestamp
    override_reason: str
    def __init__(self, tenure_id: _Optional[str] = ..., subscriber_id: _Optional[str] = ..., disconnected_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., quarantine_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., clearance: _Optional[_Union[Clearance, str]] = ..., required_holders: _Optional[_Iterable[str]] = ..., confirmations: _Optional[_Iterable[_Union[HolderConfirmation, _Mapping]]] = ..., outstanding_holders: _Optional[_Iterable[str]] = ..., released_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., override_reason: _Optional[str] = ...) -> None: ...

class CheckResult(_message.Message):
    __slots__ = ("number", "status", "phone_number_changed", "last_disconnected_at", "clearance", "outstanding_holders", "as_of_position", "head_position", "ported_out_at", "no_data_reason", "held_now")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PHONE_NUMBER_CHANGED_FIELD_NUMBER: _ClassVar[int]
    LAST_DISCONNECTED_AT_FIELD_NUMBER: _ClassVar[int]
    CLEARANCE_FIELD_NUMBER: _ClassVar[int]
    OUTSTANDING_HOLDERS_FIELD_NUMBER: _ClassVar[int]
    AS_OF_POSITION_FIELD_NUMBER: _ClassVar[int]
    HEAD_POSITION_FIELD_NUMBER: _ClassVar[int]
    PORTED_OUT_AT_FIELD_NUMBER: _ClassVar[int]
    NO_DATA_REASON_FIELD_NUMBER: _ClassVar[int]
    HELD_NOW_FIELD_NUMBER: _ClassVar[int]
    number: str
    status: CheckStatus
    phone_number_changed: bool
    last_disconnected_at: _timestamp_pb2.Timestamp
    clearance: Clearance
    outstanding_holders: _containers.RepeatedScalarFieldContainer[str]
    as_of_position: int
    head_position: int
    ported_out_at: _timestamp_pb2.Timestamp
    no_data_reason: NoDataReason
    held_now: bool
    def __init__(self, number: _Optional[str] = ..., status: _Optional[_Union[CheckStatus, str]] = ..., phone_number_changed: _Optional[bool] = ..., last_disconnected_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., clearance: _Optional[_Union[Clearance, str]] = ..., outstanding_holders: _Optional[_Iterable[str]] = ..., as_of_position: _Optional[int] = ..., head_position: _Optional[int] = ..., ported_out_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., no_data_reason: _Optional[_Union[NoDataReason, str]] = ..., held_now: _Optional[bool] = ...) -> None: ...

class CheckQuery(_message.Message):
    __slots__ = ("number", "since_date")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    SINCE_DATE_FIELD_NUMBER: _ClassVar[int]
    number: str
    since_date: str
    def __init__(self, number: _Optional[str] = ..., since_date: _Optional[str] = ...) -> None: ...
