"""StreamEvents: catch-up then live, in order, exactly once across a reconnect, never personal data."""

from __future__ import annotations

import threading
import time

import grpc

from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import ledger_pb2
from ledger.v1 import lifecycle_service_pb2 as lpb
from tests.conftest import number

# Every test here runs on both stores.
STORES = ("sqlite", "postgres")

FEED_PREFIXES = ("ledger.domain.number:Number.", "ledger.domain.subscriber:Subscriber.")


def feed_positions(app) -> list[int]:
    notifications = app.recorder.select_notifications(start=1, limit=10**6)
    return [n.id for n in notifications if n.topic.startswith(FEED_PREFIXES)]


def test_feed_is_exactly_once_across_a_reconnect_while_the_ledger_grows(server) -> None:
    stubs, app = server
    for i in range(5):
        stubs.onboard(number(i), seq=i)
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            rid = f"w{i}"
            if i % 2 == 0:
                stubs.lifecycle.SuspendNumber(lpb.SuspendNumberRequest(request_id=rid, number=number(0), reason=2))
            else:
                stubs.lifecycle.ResumeNumber(lpb.ResumeNumberRequest(request_id=rid, number=number(0)))
            i += 1
            time.sleep(0.005)

    thread = threading.Thread(target=writer)
    thread.start()
    received: list[ledger_pb2.LedgerEvent] = []
    try:
        call = stubs.history.StreamEvents(hpb.StreamEventsRequest(from_position=0))
        for response in call:
            received.append(response.event)
            if len(received) == 25:
                call.cancel()
                break
        time.sleep(0.2)
        call = stubs.history.StreamEvents(hpb.StreamEventsRequest(from_position=received[-1].position + 1))
        deadline = time.monotonic() + 3
        for response in call:
            received.append(response.event)
            if time.monotonic() > deadline:
                stop.set()
            if stop.is_set() and len(received) >= len(feed_positions(app)):
                call.cancel()
                break
    finally:
        stop.set()
        thread.join()
    positions = [e.position for e in received]
    expected = feed_positions(app)
    assert positions == expected[: len(positions)]
    assert len(positions) == len(set(positions)) and len(positions) >= len(expected) - 2
    kinds = {e.type for e in received}
    assert {"NumberProvisioned", "SubscriberRegistered", "NumberActivated", "NumberSuspended"} <= kinds
    suspended = next(e for e in received if e.type == "NumberSuspended")
    assert suspended.number == number(0) and suspended.actor


def test_feed_goes_live_and_never_carries_personal_data(server) -> None:
    stubs, _ = server
    name, id_number = "Secret Person Unique", "E99887766"
    stubs.lifecycle.RegisterSubscriber(
        lpb.RegisterSubscriberRequest(request_id="r", full_name=name, id_type=2, id_number=id_number)
    )
    call = stubs.history.StreamEvents(hpb.StreamEventsRequest(from_position=1), timeout=10)
    first = next(call)
    assert first.event.type == "SubscriberRegistered"
    assert first.event.personal_data_state == ledger_pb2.PERSONAL_DATA_STATE_WITHHELD
    raw = first.SerializeToString()
    assert name.encode() not in raw and id_number.encode() not in raw
    assert "identity_key" not in first.event.data and "personal_data" not in first.event.data
    # Live: an event recorded after the catch-up arrives promptly.
    started = time.monotonic()
    writer = threading.Timer(
        0.3, lambda: stubs.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id="p", numbers=[number(9)]))
    )
    writer.start()
    live = next(call)
    assert live.event.type == "NumberProvisioned" and live.event.number == number(9)
    assert time.monotonic() - started < 3
    call.cancel()
    writer.join()  # the event can stream before the writer's own answer arrives: let it, before the channel closes


def test_feed_from_beyond_the_head_waits_for_new_events(server) -> None:
    stubs, app = server
    stubs.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id="p", numbers=[number(1)]))
    call = stubs.history.StreamEvents(hpb.StreamEventsRequest(from_position=app.reader.max_position() + 1), timeout=0.5)
    try:
        next(call)
        raise AssertionError("no event should arrive")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_a_position_beyond_the_stored_range_is_refused_with_its_field(server) -> None:
    """Positions are signed 64-bit in both stores: a larger from_position (the field is uint64) is a
    bad request, not an internal error."""
    from tests.e2e.test_lifecycle_grpc import details

    stubs, _ = server
    for first in (2**63, 2**64 - 1):
        call = stubs.history.StreamEvents(hpb.StreamEventsRequest(from_position=first))
        try:
            next(iter(call))
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert [field for field, _ in details(e)[1]] == ["from_position"]
        else:
            raise AssertionError("accepted")
    # The largest storable position is accepted (and waits for events that will never come).
    call = stubs.history.StreamEvents(hpb.StreamEventsRequest(from_position=2**63 - 1), timeout=0.5)
    try:
        next(iter(call))
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED
