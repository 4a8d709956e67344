import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from ledger.v1 import ledger_pb2 as _ledger_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetNumberHistoryRequest(_message.Message):
    __slots__ = ("number", "include_personal_data", "purpose", "legal_hold")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_PERSONAL_DATA_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    LEGAL_HOLD_FIELD_NUMBER: _ClassVar[int]
    number: str
    include_personal_data: bool
    purpose: str
    legal_hold: bool
    def __init__(self, number: _Optional[str] = ..., include_personal_data: _Optional[bool] = ..., purpose: _Optional[str] = ..., legal_hold: _Optional[bool] = ...) -> None: ...

class GetNumberHistoryResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: _ledger_pb2.LedgerEvent
    def __init__(self, event: _Optional[_Union[_ledger_pb2.LedgerEvent, _Mapping]] = ...) -> None: ...

class GetNumberStateRequest(_message.Message):
    __slots__ = ("number", "as_of")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    number: str
    as_of: _timestamp_pb2.Timestamp
    def __init__(self, number: _Optional[str] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetNumberStateResponse(_message.Message):
    __slots__ = ("number_state",)
    NUMBER_STATE_FIELD_NUMBER: _ClassVar[int]
    number_state: _ledger_pb2.NumberState
    def __init__(self, number_state: _Optional[_Union[_ledger_pb2.NumberState, _Mapping]] = ...) -> None: ...

class VerifyIntegrityRequest(_message.Message):
    __slots__ = ("number", "up_to_position")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    UP_TO_POSITION_FIELD_NUMBER: _ClassVar[int]
    number: str
    up_to_position: int
    def __init__(self, number: _Optional[str] = ..., up_to_position: _Optional[int] = ...) -> None: ...

class VerifyIntegrityResponse(_message.Message):
    __slots__ = ("ok", "events_checked", "first_bad_position", "head_digest", "head_position", "problem")
    OK_FIELD_NUMBER: _ClassVar[int]
    EVENTS_CHECKED_FIELD_NUMBER: _ClassVar[int]
    FIRST_BAD_POSITION_FIELD_NUMBER: _ClassVar[int]
    HEAD_DIGEST_FIELD_NUMBER: _ClassVar[int]
    HEAD_POSITION_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    events_checked: int
    first_bad_position: int
    head_digest: str
    head_position: int
    problem: str
    def __init__(self, ok: _Optional[bool] = ..., events_checked: _Optional[int] = ..., first_bad_position: _Optional[int] = ..., head_digest: _Optional[str] = ..., head_position: _Optional[int] = ..., problem: _Optional[str] = ...) -> None: ...

class StreamEventsRequest(_message.Message):
    __slots__ = ("from_position",)
    FROM_POSITION_FIELD_NUMBER: _ClassVar[int]
    from_position: int
    def __init__(self, from_position: _Optional[int] = ...) -> None: ...

class StreamEventsResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: _ledger_pb2.LedgerEvent
    def __init__(self, event: _Optional[_Union[_ledger_pb2.LedgerEvent, _Mapping]] = ...) -> None: ...

class VerifyReadModelsRequest(_message.Message):
    __slots__ = ("number", "sample")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    number: str
    sample: int
    def __init__(self, number: _Optional[str] = ..., sample: _Optional[int] = ...) -> None: ...

class VerifyReadModelsResponse(_message.Message):
    __slots__ = ("ok", "numbers_checked", "mismatches", "as_of_position")
    OK_FIELD_NUMBER: _ClassVar[int]
    NUMBERS_CHECKED_FIELD_NUMBER: _ClassVar[int]
    MISMATCHES_FIELD_NUMBER: _ClassVar[int]
    AS_OF_POSITION_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    numbers_checked: int
    mismatches: _containers.RepeatedCompositeFieldContainer[ReadModelMismatch]
    as_of_position: int
    def __init__(self, ok: _Optional[bool] = ..., numbers_checked: _Optional[int] = ..., mismatches: _Optional[_Iterable[_Union[ReadModelMismatch, _Mapping]]] = ..., as_of_position: _Optional[int] = ...) -> None: ...

class ReadModelMismatch(_message.Message):
    __slots__ = ("number", "field", "stored", "replayed")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    STORED_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    number: str
    field: str
    stored: str
    replayed: str
    def __init__(self, number: _Optional[str] = ..., field: _Optional[str] = ..., stored: _Optional[str] = ..., replayed: _Optional[str] = ...) -> None: ...
