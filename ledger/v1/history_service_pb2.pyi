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

class ViewState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VIEW_STATE_UNSPECIFIED: _ClassVar[ViewState]
    VIEW_STATE_SERVING: _ClassVar[ViewState]
    VIEW_STATE_REBUILDING: _ClassVar[ViewState]
    VIEW_STATE_MISMATCH: _ClassVar[ViewState]
VIEW_STATE_UNSPECIFIED: ViewState
VIEW_STATE_SERVING: ViewState
VIEW_STATE_REBUILDING: ViewState
VIEW_STATE_MISMATCH: ViewState

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetStatusResponse(_message.Message):
    __slots__ = ("head_position", "head_digest", "signed_head_size", "views", "store", "policy", "started_at", "version", "time_zone", "signed_head_at", "now")
    HEAD_POSITION_FIELD_NUMBER: _ClassVar[int]
    HEAD_DIGEST_FIELD_NUMBER: _ClassVar[int]
    SIGNED_HEAD_SIZE_FIELD_NUMBER: _ClassVar[int]
    VIEWS_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    SIGNED_HEAD_AT_FIELD_NUMBER: _ClassVar[int]
    NOW_FIELD_NUMBER: _ClassVar[int]
    head_position: int
    head_digest: str
    signed_head_size: int
    views: _containers.RepeatedCompositeFieldContainer[ViewStatus]
    store: str
    policy: str
    started_at: _timestamp_pb2.Timestamp
    version: str
    time_zone: str
    signed_head_at: _timestamp_pb2.Timestamp
    now: _timestamp_pb2.Timestamp
    def __init__(self, head_position: _Optional[int] = ..., head_digest: _Optional[str] = ..., signed_head_size: _Optional[int] = ..., views: _Optional[_Iterable[_Union[ViewStatus, _Mapping]]] = ..., store: _Optional[str] = ..., policy: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version: _Optional[str] = ..., time_zone: _Optional[str] = ..., signed_head_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., now: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ViewStatus(_message.Message):
    __slots__ = ("name", "position", "lag", "state", "rebuild_position")
    NAME_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    LAG_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REBUILD_POSITION_FIELD_NUMBER: _ClassVar[int]
    name: str
    position: int
    lag: int
    state: ViewState
    rebuild_position: int
    def __init__(self, name: _Optional[str] = ..., position: _Optional[int] = ..., lag: _Optional[int] = ..., state: _Optional[_Union[ViewState, str]] = ..., rebuild_position: _Optional[int] = ...) -> None: ...

class TraceRequestRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class TraceRequestResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: _ledger_pb2.LedgerEvent
    def __init__(self, event: _Optional[_Union[_ledger_pb2.LedgerEvent, _Mapping]] = ...) -> None: ...

class GetNumberHistoryRequest(_message.Message):
    __slots__ = ("number", "include_personal_data", "purpose", "with_proofs", "head_size", "legal_hold")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_PERSONAL_DATA_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    WITH_PROOFS_FIELD_NUMBER: _ClassVar[int]
    HEAD_SIZE_FIELD_NUMBER: _ClassVar[int]
    LEGAL_HOLD_FIELD_NUMBER: _ClassVar[int]
    number: str
    include_personal_data: bool
    purpose: str
    with_proofs: bool
    head_size: int
    legal_hold: bool
    def __init__(self, number: _Optional[str] = ..., include_personal_data: _Optional[bool] = ..., purpose: _Optional[str] = ..., with_proofs: _Optional[bool] = ..., head_size: _Optional[int] = ..., legal_hold: _Optional[bool] = ...) -> None: ...

class GetNumberHistoryResponse(_message.Message):
    __slots__ = ("event", "inclusion_proof", "signed_head", "stream_proofs")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    INCLUSION_PROOF_FIELD_NUMBER: _ClassVar[int]
    SIGNED_HEAD_FIELD_NUMBER: _ClassVar[int]
    STREAM_PROOFS_FIELD_NUMBER: _ClassVar[int]
    event: _ledger_pb2.LedgerEvent
    inclusion_proof: InclusionProof
    signed_head: SignedHead
    stream_proofs: _containers.RepeatedCompositeFieldContainer[StreamHeadProof]
    def __init__(self, event: _Optional[_Union[_ledger_pb2.LedgerEvent, _Mapping]] = ..., inclusion_proof: _Optional[_Union[InclusionProof, _Mapping]] = ..., signed_head: _Optional[_Union[SignedHead, _Mapping]] = ..., stream_proofs: _Optional[_Iterable[_Union[StreamHeadProof, _Mapping]]] = ...) -> None: ...

class SignedHead(_message.Message):
    __slots__ = ("size", "root_hash", "signed_at", "key_id", "signature", "map_root")
    SIZE_FIELD_NUMBER: _ClassVar[int]
    ROOT_HASH_FIELD_NUMBER: _ClassVar[int]
    SIGNED_AT_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    MAP_ROOT_FIELD_NUMBER: _ClassVar[int]
    size: int
    root_hash: bytes
    signed_at: _timestamp_pb2.Timestamp
    key_id: str
    signature: bytes
    map_root: bytes
    def __init__(self, size: _Optional[int] = ..., root_hash: _Optional[bytes] = ..., signed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., key_id: _Optional[str] = ..., signature: _Optional[bytes] = ..., map_root: _Optional[bytes] = ...) -> None: ...

class InclusionProof(_message.Message):
    __slots__ = ("leaf_index", "tree_size", "hashes", "topic", "state")
    LEAF_INDEX_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    HASHES_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    leaf_index: int
    tree_size: int
    hashes: _containers.RepeatedScalarFieldContainer[bytes]
    topic: str
    state: bytes
    def __init__(self, leaf_index: _Optional[int] = ..., tree_size: _Optional[int] = ..., hashes: _Optional[_Iterable[bytes]] = ..., topic: _Optional[str] = ..., state: _Optional[bytes] = ...) -> None: ...

class StreamHeadEntry(_message.Message):
    __slots__ = ("stream_id", "version", "stream_hash")
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STREAM_HASH_FIELD_NUMBER: _ClassVar[int]
    stream_id: str
    version: int
    stream_hash: bytes
    def __init__(self, stream_id: _Optional[str] = ..., version: _Optional[int] = ..., stream_hash: _Optional[bytes] = ...) -> None: ...

class StreamHeadProof(_message.Message):
    __slots__ = ("stream_id", "entries", "siblings")
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    SIBLINGS_FIELD_NUMBER: _ClassVar[int]
    stream_id: str
    entries: _containers.RepeatedCompositeFieldContainer[StreamHeadEntry]
    siblings: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, stream_id: _Optional[str] = ..., entries: _Optional[_Iterable[_Union[StreamHeadEntry, _Mapping]]] = ..., siblings: _Optional[_Iterable[bytes]] = ...) -> None: ...

class GetSignedHeadRequest(_message.Message):
    __slots__ = ("size", "fresh")
    SIZE_FIELD_NUMBER: _ClassVar[int]
    FRESH_FIELD_NUMBER: _ClassVar[int]
    size: int
    fresh: bool
    def __init__(self, size: _Optional[int] = ..., fresh: _Optional[bool] = ...) -> None: ...

class GetSignedHeadResponse(_message.Message):
    __slots__ = ("signed_head",)
    SIGNED_HEAD_FIELD_NUMBER: _ClassVar[int]
    signed_head: SignedHead
    def __init__(self, signed_head: _Optional[_Union[SignedHead, _Mapping]] = ...) -> None: ...

class GetConsistencyProofRequest(_message.Message):
    __slots__ = ("from_size", "to_size")
    FROM_SIZE_FIELD_NUMBER: _ClassVar[int]
    TO_SIZE_FIELD_NUMBER: _ClassVar[int]
    from_size: int
    to_size: int
    def __init__(self, from_size: _Optional[int] = ..., to_size: _Optional[int] = ...) -> None: ...

class GetConsistencyProofResponse(_message.Message):
    __slots__ = ("hashes",)
    HASHES_FIELD_NUMBER: _ClassVar[int]
    hashes: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, hashes: _Optional[_Iterable[bytes]] = ...) -> None: ...

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
    __slots__ = ("ok", "events_checked", "first_bad_position", "head_digest", "head_position", "problem", "stream", "signed_head_size", "keyless_registrations")
    OK_FIELD_NUMBER: _ClassVar[int]
    EVENTS_CHECKED_FIELD_NUMBER: _ClassVar[int]
    FIRST_BAD_POSITION_FIELD_NUMBER: _ClassVar[int]
    HEAD_DIGEST_FIELD_NUMBER: _ClassVar[int]
    HEAD_POSITION_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    SIGNED_HEAD_SIZE_FIELD_NUMBER: _ClassVar[int]
    KEYLESS_REGISTRATIONS_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    events_checked: int
    first_bad_position: int
    head_digest: str
    head_position: int
    problem: str
    stream: str
    signed_head_size: int
    keyless_registrations: _containers.RepeatedCompositeFieldContainer[KeylessRegistration]
    def __init__(self, ok: _Optional[bool] = ..., events_checked: _Optional[int] = ..., first_bad_position: _Optional[int] = ..., head_digest: _Optional[str] = ..., head_position: _Optional[int] = ..., problem: _Optional[str] = ..., stream: _Optional[str] = ..., signed_head_size: _Optional[int] = ..., keyless_registrations: _Optional[_Iterable[_Union[KeylessRegistration, _Mapping]]] = ...) -> None: ...

class KeylessRegistration(_message.Message):
    __slots__ = ("position", "subscriber_id")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    position: int
    subscriber_id: str
    def __init__(self, position: _Optional[int] = ..., subscriber_id: _Optional[str] = ...) -> None: ...

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

class ListDisconnectionReportsRequest(_message.Message):
    __slots__ = ("jurisdiction",)
    JURISDICTION_FIELD_NUMBER: _ClassVar[int]
    jurisdiction: str
    def __init__(self, jurisdiction: _Optional[str] = ...) -> None: ...

class ListDisconnectionReportsResponse(_message.Message):
    __slots__ = ("reports", "timezone")
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    reports: _containers.RepeatedCompositeFieldContainer[DisconnectionReport]
    timezone: str
    def __init__(self, reports: _Optional[_Iterable[_Union[DisconnectionReport, _Mapping]]] = ..., timezone: _Optional[str] = ...) -> None: ...

class DisconnectionReport(_message.Message):
    __slots__ = ("month", "from_position", "to_position", "period_end", "carry_from", "rows", "digest", "issued_at")
    MONTH_FIELD_NUMBER: _ClassVar[int]
    FROM_POSITION_FIELD_NUMBER: _ClassVar[int]
    TO_POSITION_FIELD_NUMBER: _ClassVar[int]
    PERIOD_END_FIELD_NUMBER: _ClassVar[int]
    CARRY_FROM_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_FIELD_NUMBER: _ClassVar[int]
    month: str
    from_position: int
    to_position: int
    period_end: _timestamp_pb2.Timestamp
    carry_from: int
    rows: int
    digest: str
    issued_at: _timestamp_pb2.Timestamp
    def __init__(self, month: _Optional[str] = ..., from_position: _Optional[int] = ..., to_position: _Optional[int] = ..., period_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., carry_from: _Optional[int] = ..., rows: _Optional[int] = ..., digest: _Optional[str] = ..., issued_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListDisconnectionsRequest(_message.Message):
    __slots__ = ("jurisdiction", "from_position", "to_position", "page_size")
    JURISDICTION_FIELD_NUMBER: _ClassVar[int]
    FROM_POSITION_FIELD_NUMBER: _ClassVar[int]
    TO_POSITION_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    jurisdiction: str
    from_position: int
    to_position: int
    page_size: int
    def __init__(self, jurisdiction: _Optional[str] = ..., from_position: _Optional[int] = ..., to_position: _Optional[int] = ..., page_size: _Optional[int] = ...) -> None: ...

class ListDisconnectionsResponse(_message.Message):
    __slots__ = ("disconnections", "read_to")
    DISCONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    READ_TO_FIELD_NUMBER: _ClassVar[int]
    disconnections: _containers.RepeatedCompositeFieldContainer[Disconnection]
    read_to: int
    def __init__(self, disconnections: _Optional[_Iterable[_Union[Disconnection, _Mapping]]] = ..., read_to: _Optional[int] = ...) -> None: ...

class Disconnection(_message.Message):
    __slots__ = ("number", "position", "occurred_at", "reason")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    number: str
    position: int
    occurred_at: _timestamp_pb2.Timestamp
    reason: _ledger_pb2.DisconnectReason
    def __init__(self, number: _Optional[str] = ..., position: _Optional[int] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[_Union[_ledger_pb2.DisconnectReason, str]] = ...) -> None: ...
