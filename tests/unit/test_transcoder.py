"""The ledger's JSON transcoder against the library's: the same stored bytes for every event a session records
and for values off the common path (which take the library's path)."""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from uuid import uuid4

import pytest
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    TranscodingNotRegisteredError,
    UUIDAsHex,
)

from ledger.adapters.log import LedgerTranscoder
from ledger.adapters.memory import memory_env
from ledger.application import LedgerApplication
from ledger.application.commands import DisconnectNumber, SuspendNumber
from ledger.application.pipeline import execute
from ledger.keys.crypto import MasterKey
from ledger.keys.stores import MemoryKeyStore
from ledger.keys.vault import PersonalDataVault
from ledger.policy import Policy
from tests.conftest import FakeClock, number, onboard_app


def library() -> JSONTranscoder:
    t = JSONTranscoder()
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
        t.register(transcoding)
    return t


def ledger_transcoder() -> LedgerTranscoder:
    t = LedgerTranscoder()
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
        t.register(transcoding)
    return t


class Colour(enum.Enum):
    RED = "red"


class Code(enum.StrEnum):
    A = "a"


VALUES = [
    {"at": datetime(2026, 12, 7, 3, 0, tzinfo=UTC), "id": uuid4(), "n": 3, "ok": True, "none": None},
    {"at": datetime(2026, 12, 7, 3, 0, 0, 123456, tzinfo=timezone(timedelta(hours=8))), "amount": Decimal("1.50")},
    {"text": 'Zhang San 张三 \x00\x1f\x7f\u2028"\\/ \U0001f600', "nested": [{"id": uuid4()}, (1, 2), []]},
    {"wrapped": {"_type_": "uuid_hex", "_data_": uuid4().hex}, "lookalike": {"_type_": "x", "other": 1}},
    {"float": 1e16, "small": 0.1, "big": 2**70, "negative": -(2**64)},
    {"str_enum": Code.A, 1: "int key", "tuple": (uuid4(),)},
    {Code.A: "a str-enum key", "t": "x"},
    {"deep": [[[[{"at": datetime(2020, 1, 1, tzinfo=UTC)}]]]]},
]


@pytest.mark.parametrize("value", VALUES)
def test_the_same_bytes_and_values_as_the_librarys(value) -> None:
    ours, theirs = ledger_transcoder(), library()
    assert ours.encode(value) == theirs.encode(value)
    stored = theirs.encode(value)
    assert ours.decode(stored) == theirs.decode(stored)


def test_a_type_without_a_transcoding_is_refused_as_the_library_refuses_it() -> None:
    for value in ({"colour": Colour.RED}, {"set": {1}}, {"when": datetime(2026, 1, 1).date()}):
        with pytest.raises(TranscodingNotRegisteredError):
            ledger_transcoder().encode(value)


def test_every_event_of_a_session_is_stored_as_the_library_stores_it() -> None:
    vault = PersonalDataVault(MasterKey(bytes(range(32))), MemoryKeyStore())
    app = LedgerApplication(env=memory_env(), vault=vault, policy=Policy(), clock=FakeClock(), group_commit=False)
    try:
        assert isinstance(app.mapper.transcoder, LedgerTranscoder)
        for i in range(3):
            onboard_app(app, number(i), i)
        execute(app, SuspendNumber(number(0), "FRAUD", "note"), request_id="s", actor="t")
        execute(app, DisconnectNumber(number(1), "SUBSCRIBER_REQUEST"), request_id="d", actor="t")
        stored = app.recorder.select_notifications(start=1, limit=1000)
        assert len(stored) > 20
        theirs = library()
        for n in stored:
            state = theirs.decode(n.state)
            assert app.mapper.transcoder.decode(n.state) == state
            assert theirs.encode(state) == n.state
    finally:
        app.close()
