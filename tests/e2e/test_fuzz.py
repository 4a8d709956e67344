"""Hostile input: random field values for every RPC and random bytes on the wire never crash the server,
never hang, never answer INTERNAL or UNKNOWN; and the ledger still verifies afterwards."""

from __future__ import annotations

import random
from datetime import date

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from ledger.v1 import history_service_pb2, identity_service_pb2, lifecycle_service_pb2, recycling_service_pb2
from tests.conftest import running_server

SERVICES = [
    s
    for module in (lifecycle_service_pb2, history_service_pb2, recycling_service_pb2, identity_service_pb2)
    for s in module.DESCRIPTOR.services_by_name.values()
]
METHODS = [(s.full_name, m) for s in SERVICES for m in s.methods]
BAD_CODES = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS}
# The first and last days a YYYY-MM-DD can name, and Timestamps at and just beyond the proto limits
# (0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z).
EDGE_DATES = ["0001-01-01", "1969-12-31", "1970-01-01", "2999-12-31", "9999-12-30", "9999-12-31"]
MIN_SECONDS, MAX_SECONDS = -62_135_596_800, 253_402_300_799
EDGE_TIMESTAMPS = [
    (MIN_SECONDS, 0),
    (MAX_SECONDS, 999_999_999),
    (MIN_SECONDS - 1, 0),
    (MAX_SECONDS + 1, 0),
    (0, 0),
    (-1, 999_999_999),
    (1_780_000_000, -1),
]
NUMBERS = ["+8613800000001", "+8613800000002", "+86138", "+1 202 555 0100", "", "\x00", "+" + "9" * 40]
TEXT = st.one_of(
    st.sampled_from(NUMBERS),
    st.sampled_from(
        [
            "2026-01-05",
            "2026-02-30",
            "0000-00-00",
            "8986001234567890120",
            "11010519491231002X",
            "6f1c2a52-4f55-4a43-9a4d-7d0b8e1f0a11",
            "crm",
            "retail",
            "Bearer x",
        ]
    ),
    st.sampled_from(EDGE_DATES),
    st.dates(min_value=date.min, max_value=date.max).map(date.isoformat),
    st.text(max_size=40),
    st.text(min_size=300, max_size=2000),
)


def field_value(field: FieldDescriptor, draw, depth: int):
    if field.type == FieldDescriptor.TYPE_STRING:
        return draw(TEXT)
    if field.type == FieldDescriptor.TYPE_BOOL:
        return draw(st.booleans())
    if field.type == FieldDescriptor.TYPE_ENUM:
        return draw(st.integers(-3, 12))
    if field.type in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_UINT32):
        top = 2**64 - 1 if field.type == FieldDescriptor.TYPE_UINT64 else 2**32 - 1
        return draw(st.one_of(st.integers(0, 50), st.integers(0, top)))
    if field.type in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_INT32):
        top = 2**63 - 1 if field.type == FieldDescriptor.TYPE_INT64 else 2**31 - 1
        return draw(st.integers(-top - 1, top))
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return message(field.message_type, draw, depth + 1)
    return None


def message(descriptor, draw, depth: int = 0) -> Message:
    from google.protobuf import message_factory

    msg = message_factory.GetMessageClass(descriptor)()
    if depth > 2:
        return msg
    for field in descriptor.fields:
        if not draw(st.booleans()):
            continue
        if field.is_repeated:
            values = [field_value(field, draw, depth) for _ in range(draw(st.integers(0, 4)))]
            target = getattr(msg, field.name)
            for v in values:
                if field.type == FieldDescriptor.TYPE_MESSAGE:
                    target.add().CopyFrom(v)
                else:
                    target.append(v)
            continue
        value = field_value(field, draw, depth)
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.message_type.full_name == "google.protobuf.Timestamp":
                value.seconds, value.nanos = draw(
                    st.one_of(
                        st.sampled_from(EDGE_TIMESTAMPS),
                        st.tuples(st.integers(MIN_SECONDS, MAX_SECONDS), st.integers(0, 999_999_999)),
                        st.tuples(st.integers(-(2**40), 2**40), st.integers(-(2**31), 2**31 - 1)),
                    )
                )
            getattr(msg, field.name).CopyFrom(value)
        else:
            setattr(msg, field.name, value)
    return msg


def invoke(channel: grpc.Channel, service: str, method, request_bytes: list[bytes]) -> grpc.StatusCode:
    path = f"/{service}/{method.name}"
    kwargs = {"request_serializer": None, "response_deserializer": None}
    try:
        if method.client_streaming:
            call = (
                channel.stream_stream(path, **kwargs)
                if method.server_streaming
                else channel.stream_unary(path, **kwargs)
            )
            result = call(iter(request_bytes), timeout=5)
        elif method.server_streaming:
            result = channel.unary_stream(path, **kwargs)(request_bytes[0], timeout=1 if "Stream" in path else 5)
        else:
            channel.unary_unary(path, **kwargs)(request_bytes[0], timeout=5)
            return grpc.StatusCode.OK
        if method.server_streaming:
            for _ in result:
                pass
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code()


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    from datetime import UTC, datetime

    from ledger.config import Settings, StoreConfig
    from ledger.policy import Policy
    from tests.conftest import FakeClock

    folder = tmp_path_factory.mktemp("fuzz")
    settings = Settings(
        listen="127.0.0.1:0",
        store=StoreConfig.from_url(f"sqlite:///{folder}/ledger.db"),
        policy=Policy(),
        max_workers=16,
    )
    clock = FakeClock(datetime(2026, 6, 1, tzinfo=UTC))
    gen = running_server(settings, clock)
    stubs, app = next(gen)
    stubs.onboard("+8613800000001", seq=1)
    yield stubs, app
    gen.close()


@hsettings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_random_field_values_for_every_rpc(fuzz_server, data) -> None:
    stubs, _ = fuzz_server
    service, method = data.draw(st.sampled_from(METHODS))
    count = data.draw(st.integers(1, 3)) if method.client_streaming else 1
    requests = [message(method.input_type, data.draw).SerializeToString() for _ in range(count)]
    code = invoke(stubs.channel, service, method, requests)
    assert code not in BAD_CODES, (service, method.name, code)


@hsettings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), payload=st.binary(max_size=512))
def test_random_bytes_on_the_wire(fuzz_server, data, payload) -> None:
    stubs, _ = fuzz_server
    service, method = data.draw(st.sampled_from(METHODS))
    code = invoke(stubs.channel, service, method, [payload])
    assert code not in BAD_CODES, (service, method.name, code)


def edge_message(descriptor, day: str, seconds: int, nanos: int, depth: int = 0) -> Message:
    """A request with every date-like text set to ``day``, every Timestamp to (seconds, nanos), numbers to a
    known number and other texts plausible, so that the edge values reach the code past validation."""
    from google.protobuf import message_factory

    msg = message_factory.GetMessageClass(descriptor)()
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if depth > 2:
                continue
            if field.message_type.full_name == "google.protobuf.Timestamp":
                target = getattr(msg, field.name).add() if field.is_repeated else getattr(msg, field.name)
                target.seconds, target.nanos = seconds, nanos
            elif field.is_repeated:
                getattr(msg, field.name).add().CopyFrom(
                    edge_message(field.message_type, day, seconds, nanos, depth + 1)
                )
            elif field.containing_oneof is None:
                getattr(msg, field.name).CopyFrom(edge_message(field.message_type, day, seconds, nanos, depth + 1))
            continue
        if field.type != FieldDescriptor.TYPE_STRING:
            if field.type == FieldDescriptor.TYPE_ENUM and not field.is_repeated:
                setattr(msg, field.name, 1)
            continue
        name = field.name
        value = day if "date" in name else "+8613800000001" if "number" in name else f"edge-{name}"
        if field.is_repeated:
            getattr(msg, field.name).append(value)
        else:
            setattr(msg, field.name, value)
    return msg


@pytest.mark.parametrize("day", EDGE_DATES)
def test_edge_dates_and_timestamps_in_every_field_of_every_rpc(fuzz_server, day: str) -> None:
    stubs, _ = fuzz_server
    failures = []
    for service, method in METHODS:
        if method.name == "StreamEvents":
            continue  # a live feed: it answers by waiting (bounded elsewhere)
        for seconds, nanos in EDGE_TIMESTAMPS:
            request = edge_message(method.input_type, day, seconds, nanos).SerializeToString()
            code = invoke(stubs.channel, service, method, [request])
            if code in BAD_CODES:
                failures.append((method.name, day, seconds, nanos, code))
    assert failures == []


def test_oversized_messages_are_refused_and_the_ledger_still_verifies(fuzz_server) -> None:
    stubs, app = fuzz_server
    service, method = next((s, m) for s, m in METHODS if m.name == "ProvisionNumbers")
    huge = random.Random(1).randbytes(5 * 1024 * 1024)
    assert invoke(stubs.channel, service, method, [huge]) == grpc.StatusCode.RESOURCE_EXHAUSTED
    from ledger.v1 import history_service_pb2 as hpb

    report = stubs.history.VerifyIntegrity(hpb.VerifyIntegrityRequest())
    assert report.ok and report.events_checked == app.reader.max_position()
    # The server still answers normally.
    state = stubs.history.GetNumberState(hpb.GetNumberStateRequest(number="+8613800000001")).number_state
    assert state.subscriber_id


def test_feeds_are_bounded(server, settings) -> None:
    from ledger.v1 import history_service_pb2 as hpb
    from ledger.v1 import lifecycle_service_pb2 as lpb

    stubs, _ = server
    stubs.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id="p", numbers=["+8613800000001"]))
    limit = settings.max_workers // 4
    calls = [stubs.history.StreamEvents(hpb.StreamEventsRequest(from_position=1), timeout=10) for _ in range(limit)]
    for call in calls:
        next(call)
    with pytest.raises(grpc.RpcError) as e:
        next(stubs.history.StreamEvents(hpb.StreamEventsRequest(from_position=1), timeout=5))
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    for call in calls:
        call.cancel()
