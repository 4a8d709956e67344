import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from ledger.v1 import ledger_pb2 as _ledger_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MatchResult(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MATCH_RESULT_UNSPECIFIED: _ClassVar[MatchResult]
    MATCH_RESULT_TRUE: _ClassVar[MatchResult]
    MATCH_RESULT_FALSE: _ClassVar[MatchResult]
    MATCH_RESULT_NOT_AVAILABLE: _ClassVar[MatchResult]
MATCH_RESULT_UNSPECIFIED: MatchResult
MATCH_RESULT_TRUE: MatchResult
MATCH_RESULT_FALSE: MatchResult
MATCH_RESULT_NOT_AVAILABLE: MatchResult

class MatchIdentityRequest(_message.Message):
    __slots__ = ("number", "id_type", "id_number", "full_name", "given_name", "family_name", "date_of_birth")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    ID_TYPE_FIELD_NUMBER: _ClassVar[int]
    ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    FULL_NAME_FIELD_NUMBER: _ClassVar[int]
    GIVEN_NAME_FIELD_NUMBER: _ClassVar[int]
    FAMILY_NAME_FIELD_NUMBER: _ClassVar[int]
    DATE_OF_BIRTH_FIELD_NUMBER: _ClassVar[int]
    number: str
    id_type: _ledger_pb2.IdType
    id_number: str
    full_name: str
    given_name: str
    family_name: str
    date_of_birth: str
    def __init__(self, number: _Optional[str] = ..., id_type: _Optional[_Union[_ledger_pb2.IdType, str]] = ..., id_number: _Optional[str] = ..., full_name: _Optional[str] = ..., given_name: _Optional[str] = ..., family_name: _Optional[str] = ..., date_of_birth: _Optional[str] = ...) -> None: ...

class MatchIdentityResponse(_message.Message):
    __slots__ = ("id_document_match", "name_match", "name_match_score", "given_name_match", "family_name_match", "birthdate_match", "as_of_position")
    ID_DOCUMENT_MATCH_FIELD_NUMBER: _ClassVar[int]
    NAME_MATCH_FIELD_NUMBER: _ClassVar[int]
    NAME_MATCH_SCORE_FIELD_NUMBER: _ClassVar[int]
    GIVEN_NAME_MATCH_FIELD_NUMBER: _ClassVar[int]
    FAMILY_NAME_MATCH_FIELD_NUMBER: _ClassVar[int]
    BIRTHDATE_MATCH_FIELD_NUMBER: _ClassVar[int]
    AS_OF_POSITION_FIELD_NUMBER: _ClassVar[int]
    id_document_match: MatchResult
    name_match: MatchResult
    name_match_score: int
    given_name_match: MatchResult
    family_name_match: MatchResult
    birthdate_match: MatchResult
    as_of_position: int
    def __init__(self, id_document_match: _Optional[_Union[MatchResult, str]] = ..., name_match: _Optional[_Union[MatchResult, str]] = ..., name_match_score: _Optional[int] = ..., given_name_match: _Optional[_Union[MatchResult, str]] = ..., family_name_match: _Optional[_Union[MatchResult, str]] = ..., birthdate_match: _Optional[_Union[MatchResult, str]] = ..., as_of_position: _Optional[int] = ...) -> None: ...

class ListNumbersByIdentityRequest(_message.Message):
    __slots__ = ("id_type", "id_number", "purpose")
    ID_TYPE_FIELD_NUMBER: _ClassVar[int]
    ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    id_type: _ledger_pb2.IdType
    id_number: str
    purpose: str
    def __init__(self, id_type: _Optional[_Union[_ledger_pb2.IdType, str]] = ..., id_number: _Optional[str] = ..., purpose: _Optional[str] = ...) -> None: ...

class ListNumbersByIdentityResponse(_message.Message):
    __slots__ = ("numbers",)
    NUMBERS_FIELD_NUMBER: _ClassVar[int]
    numbers: _containers.RepeatedCompositeFieldContainer[IdentityNumber]
    def __init__(self, numbers: _Optional[_Iterable[_Union[IdentityNumber, _Mapping]]] = ...) -> None: ...

class IdentityNumber(_message.Message):
    __slots__ = ("number", "tenure_open", "state", "activated_at", "ended_at", "channel", "verification_method")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    TENURE_OPEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ACTIVATED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_METHOD_FIELD_NUMBER: _ClassVar[int]
    number: str
    tenure_open: bool
    state: _ledger_pb2.NumberStatus
    activated_at: _timestamp_pb2.Timestamp
    ended_at: _timestamp_pb2.Timestamp
    channel: str
    verification_method: _ledger_pb2.VerificationMethod
    def __init__(self, number: _Optional[str] = ..., tenure_open: _Optional[bool] = ..., state: _Optional[_Union[_ledger_pb2.NumberStatus, str]] = ..., activated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ended_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., channel: _Optional[str] = ..., verification_method: _Optional[_Union[_ledger_pb2.VerificationMethod, str]] = ...) -> None: ...
