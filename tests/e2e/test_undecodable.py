"""A stored event that does not decode (issue 23, finding 4), on the wire: the reads, commands, checks and
the feed that depend on it answer DATA_LOSS with reason EVENT_UNDECODABLE naming its position, never
INTERNAL. What depends on it and what does not, the projector, a rebuild and the export are in
tests/integration/test_undecodable.py."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from ledger.domain.number import Number
from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import ledger_pb2
from ledger.v1 import lifecycle_service_pb2 as lpb
from ledger.v1 import recycling_service_pb2 as rpb
from tests.conftest import number, onboard_app, running_server
from tests.e2e.tamper import garble

DAMAGED, HEALTHY, UNNAMED = number(1), number(2), number(3)


def error_info(e: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(e)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    raise AssertionError("no ErrorInfo")


def data_loss(call, position: int) -> None:
    """``call()`` fails with DATA_LOSS / EVENT_UNDECODABLE naming ``position``."""
    with pytest.raises(grpc.RpcError) as raised:
        call()
    assert raised.value.code() == grpc.StatusCode.DATA_LOSS, raised.value.details()
    info = error_info(raised.value)
    assert info.reason == "EVENT_UNDECODABLE"
    assert info.metadata["position"] == str(position)


@pytest.fixture
def garbled(settings, clock, app):
    """Two numbers held by two subscribers; the Activated event of the first garbled (not JSON) before any
    server or projector read it, and the first event of a third number (so the views never learn its name).
    Yields (stubs, position of the first garbled event, head); ``stubs.unnamed`` is the other position."""
    onboard_app(app, DAMAGED, 1)
    onboard_app(app, HEALTHY, 2)
    onboard_app(app, UNNAMED, 3)
    app.close()
    app.vault.store.close()
    position, unnamed, head = garble(settings, Number.create_id(DAMAGED), Number.create_id(UNNAMED))
    running = running_server(settings, clock)
    stubs, stubs.app = next(running)
    stubs.unnamed = unnamed
    try:
        yield stubs, position, head
    finally:
        next(running, None)


def test_reads_commands_checks_and_the_feed_answer_data_loss_naming_the_position(garbled) -> None:
    stubs, position, head = garbled
    data_loss(lambda: list(stubs.history.GetNumberHistory(hpb.GetNumberHistoryRequest(number=DAMAGED))), position)
    data_loss(lambda: stubs.history.GetNumberState(hpb.GetNumberStateRequest(number=UNNAMED)), stubs.unnamed)
    data_loss(
        lambda: stubs.lifecycle.SuspendNumber(lpb.SuspendNumberRequest(request_id="s1", number=DAMAGED, reason=2)),
        position,
    )
    check = rpb.CheckNumberRequest(number=DAMAGED, since_date="2020-01-01", min_position=head)
    data_loss(lambda: stubs.recycling.CheckNumber(check, timeout=30), position)
    batch = [ledger_pb2.CheckQuery(number=n, since_date="2020-01-01") for n in (HEALTHY, DAMAGED)]
    data_loss(lambda: list(stubs.recycling.BatchCheck(iter([rpb.BatchCheckRequest(queries=batch)]))), position)
    data_loss(lambda: stubs.recycling.GetClearance(rpb.GetClearanceRequest(number=DAMAGED)), position)
    swap = rpb.GetSimSwapRequest(number=DAMAGED, min_position=head)
    data_loss(lambda: stubs.recycling.GetSimSwap(swap, timeout=30), position)
    data_loss(lambda: list(stubs.history.StreamEvents(hpb.StreamEventsRequest(from_position=1), timeout=30)), position)
    # The other number answers as before.
    assert stubs.history.GetNumberState(hpb.GetNumberStateRequest(number=HEALTHY)).number_state.number == HEALTHY
