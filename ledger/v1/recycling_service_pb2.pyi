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

class SimSwapAnswer(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIM_SWAP_ANSWER_UNSPECIFIED: _ClassVar[SimSwapAnswer]
    SIM_SWAP_ANSWER_ANSWERED: _ClassVar[SimSwapAnswer]
    SIM_SWAP_ANSWER_UNKNOWN_NUMBER: _ClassVar[SimSwapAnswer]
    SIM_SWAP_ANSWER_PORTED_OUT: _ClassVar[SimSwapAnswer]
    SIM_SWAP_ANSWER_READ_MODEL_MISMATCH: _ClassVar[SimSwapAnswer]
SIM_SWAP_ANSWER_UNSPECIFIED: SimSwapAnswer
SIM_SWAP_ANSWER_ANSWERED: SimSwapAnswer
SIM_SWAP_ANSWER_UNKNOWN_NUMBER: SimSwapAnswer
SIM_SWAP_ANSWER_PORTED_OUT: SimSwapAnswer
SIM_SWAP_ANSWER_READ_MODEL_MISMATCH: SimSwapAnswer

class CheckNumberRequest(_message.Message):
    __slots__ = ("number", "since_date", "min_position")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    SINCE_DATE_FIELD_NUMBER: _ClassVar[int]
    MIN_POSITION_FIELD_NUMBER: _ClassVar[int]
    number: str
    since_date: str
    min_position: int
    def __init__(self, number: _Optional[str] = ..., since_date: _Optional[str] = ..., min_position: _Optional[int] = ...) -> None: ...

class CheckNumberResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: _ledger_pb2.CheckResult
    def __init__(self, result: _Optional[_Union[_ledger_pb2.CheckResult, _Mapping]] = ...) -> None: ...

class BatchCheckRequest(_message.Message):
    __slots__ = ("queries",)
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    queries: _containers.RepeatedCompositeFieldContainer[_ledger_pb2.CheckQuery]
    def __init__(self, queries: _Optional[_Iterable[_Union[_ledger_pb2.CheckQuery, _Mapping]]] = ...) -> None: ...

class BatchCheckResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[_ledger_pb2.CheckResult]
    def __init__(self, results: _Optional[_Iterable[_Union[_ledger_pb2.CheckResult, _Mapping]]] = ...) -> None: ...

class GetClearanceRequest(_message.Message):
    __slots__ = ("number",)
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    number: str
    def __init__(self, number: _Optional[str] = ...) -> None: ...

class GetClearanceResponse(_message.Message):
    __slots__ = ("number", "tenures")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    TENURES_FIELD_NUMBER: _ClassVar[int]
    number: str
    tenures: _containers.RepeatedCompositeFieldContainer[_ledger_pb2.TenureClearance]
    def __init__(self, number: _Optional[str] = ..., tenures: _Optional[_Iterable[_Union[_ledger_pb2.TenureClearance, _Mapping]]] = ...) -> None: ...

class GetSimSwapRequest(_message.Message):
    __slots__ = ("number", "min_position")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    MIN_POSITION_FIELD_NUMBER: _ClassVar[int]
    number: str
    min_position: int
    def __init__(self, number: _Optional[str] = ..., min_position: _Optional[int] = ...) -> None: ...

class GetSimSwapResponse(_message.Message):
    __slots__ = ("latest_sim_change_at", "monitored_since", "as_of_position")
    LATEST_SIM_CHANGE_AT_FIELD_NUMBER: _ClassVar[int]
    MONITORED_SINCE_FIELD_NUMBER: _ClassVar[int]
    AS_OF_POSITION_FIELD_NUMBER: _ClassVar[int]
    latest_sim_change_at: _timestamp_pb2.Timestamp
    monitored_since: _timestamp_pb2.Timestamp
    as_of_position: int
    def __init__(self, latest_sim_change_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., monitored_since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., as_of_position: _Optional[int] = ...) -> None: ...

class CheckSimSwapRequest(_message.Message):
    __slots__ = ("number", "max_age_hours", "min_position")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    MAX_AGE_HOURS_FIELD_NUMBER: _ClassVar[int]
    MIN_POSITION_FIELD_NUMBER: _ClassVar[int]
    number: str
    max_age_hours: int
    min_position: int
    def __init__(self, number: _Optional[str] = ..., max_age_hours: _Optional[int] = ..., min_position: _Optional[int] = ...) -> None: ...

class CheckSimSwapResponse(_message.Message):
    __slots__ = ("swapped", "as_of_position")
    SWAPPED_FIELD_NUMBER: _ClassVar[int]
    AS_OF_POSITION_FIELD_NUMBER: _ClassVar[int]
    swapped: bool
    as_of_position: int
    def __init__(self, swapped: _Optional[bool] = ..., as_of_position: _Optional[int] = ...) -> None: ...

class SimSwapQuery(_message.Message):
    __slots__ = ("number", "max_age_hours")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    MAX_AGE_HOURS_FIELD_NUMBER: _ClassVar[int]
    number: str
    max_age_hours: int
    def __init__(self, number: _Optional[str] = ..., max_age_hours: _Optional[int] = ...) -> None: ...

class SimSwapResult(_message.Message):
    __slots__ = ("number", "answer", "swapped", "latest_sim_change_at")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    SWAPPED_FIELD_NUMBER: _ClassVar[int]
    LATEST_SIM_CHANGE_AT_FIELD_NUMBER: _ClassVar[int]
    number: str
    answer: SimSwapAnswer
    swapped: bool
    latest_sim_change_at: _timestamp_pb2.Timestamp
    def __init__(self, number: _Optional[str] = ..., answer: _Optional[_Union[SimSwapAnswer, str]] = ..., swapped: _Optional[bool] = ..., latest_sim_change_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class BatchCheckSimSwapRequest(_message.Message):
    __slots__ = ("queries",)
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    queries: _containers.RepeatedCompositeFieldContainer[SimSwapQuery]
    def __init__(self, queries: _Optional[_Iterable[_Union[SimSwapQuery, _Mapping]]] = ...) -> None: ...

class BatchCheckSimSwapResponse(_message.Message):
    __slots__ = ("results", "as_of_position")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    AS_OF_POSITION_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SimSwapResult]
    as_of_position: int
    def __init__(self, results: _Optional[_Iterable[_Union[SimSwapResult, _Mapping]]] = ..., as_of_position: _Optional[int] = ...) -> None: ...
