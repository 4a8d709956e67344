"""A stored event that does not decode (issue 23, finding 4): every read and command that depends on it
answers DATA_LOSS with reason EVENT_UNDECODABLE naming its position, never INTERNAL and never an answer
guessed from the other events; numbers that do not depend on it answer as before."""

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
from tests.e2e.tamper import Store

STORES = ("sqlite", "postgres")
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
    store = Store(settings)
    try:
        stream = store.positions(Number.create_id(DAMAGED))
        position = stream[1]  # Provisioned, then Activated
        assert store.row(position)[2].endswith("Number.Activated")
        store.set_state(position, b"{not json")
        unnamed = store.positions(Number.create_id(UNNAMED))[0]
        store.set_state(unnamed, b"\x00\xff")
        head = store.max_position()
    finally:
        store.close()
    running = running_server(settings, clock)
    stubs, stubs.app = next(running)
    stubs.unnamed = unnamed
    try:
        yield stubs, position, head
    finally:
        next(running, None)


def test_history_state_checks_and_commands_of_the_number_answer_data_loss(garbled) -> None:
    stubs, position, head = garbled
    data_loss(lambda: list(stubs.history.GetNumberHistory(hpb.GetNumberHistoryRequest(number=DAMAGED))), position)
    data_loss(lambda: stubs.history.GetNumberState(hpb.GetNumberStateRequest(number=DAMAGED)), position)
    data_loss(
        lambda: stubs.lifecycle.SuspendNumber(lpb.SuspendNumberRequest(request_id="s1", number=DAMAGED, reason=2)),
        position,
    )
    # The projector passes the garbled event (it neither stops nor guesses): the number's checks answer
    # DATA_LOSS, the other number's answer as before.
    check = rpb.CheckNumberRequest(number=DAMAGED, since_date="2020-01-01", min_position=head)
    data_loss(lambda: stubs.recycling.CheckNumber(check, timeout=30), position)
    batch = [ledger_pb2.CheckQuery(number=n, since_date="2020-01-01") for n in (HEALTHY, DAMAGED)]
    data_loss(lambda: list(stubs.recycling.BatchCheck(iter([rpb.BatchCheckRequest(queries=batch)]))), position)
    data_loss(lambda: stubs.recycling.GetClearance(rpb.GetClearanceRequest(number=DAMAGED)), position)
    swap = rpb.GetSimSwapRequest(number=DAMAGED, min_position=head)
    data_loss(lambda: stubs.recycling.GetSimSwap(swap, timeout=30), position)
    # A number whose first event does not decode is not unknown (NO_DATA): its records are damaged.
    unnamed = rpb.CheckNumberRequest(number=UNNAMED, since_date="2020-01-01", min_position=head)
    data_loss(lambda: stubs.recycling.CheckNumber(unnamed, timeout=30), stubs.unnamed)
    data_loss(lambda: stubs.history.GetNumberState(hpb.GetNumberStateRequest(number=UNNAMED)), stubs.unnamed)
    # The follower of the log meets it too, after the events before it.
    data_loss(lambda: list(stubs.history.StreamEvents(hpb.StreamEventsRequest(from_position=1), timeout=30)), position)
    # Verification reports it as before.
    report = stubs.history.VerifyIntegrity(hpb.VerifyIntegrityRequest(number=DAMAGED))
    assert not report.ok and report.first_bad_position == position


def test_other_numbers_answer_normally(garbled, clock) -> None:
    stubs, _, head = garbled
    events = list(stubs.history.GetNumberHistory(hpb.GetNumberHistoryRequest(number=HEALTHY)))
    assert [e.event.type for e in events][:2] == ["NumberProvisioned", "SubscriberRegistered"]
    assert stubs.history.GetNumberState(hpb.GetNumberStateRequest(number=HEALTHY)).number_state.number == HEALTHY
    today = clock.now().date().isoformat()
    check = rpb.CheckNumberRequest(number=HEALTHY, since_date=today, min_position=head)
    assert stubs.recycling.CheckNumber(check, timeout=30).result.status == ledger_pb2.CHECK_STATUS_NOT_CHANGED
    batch = [ledger_pb2.CheckQuery(number=HEALTHY, since_date=today)]
    (response,) = stubs.recycling.BatchCheck(iter([rpb.BatchCheckRequest(queries=batch)]))
    assert [r.status for r in response.results] == [ledger_pb2.CHECK_STATUS_NOT_CHANGED]
    assert stubs.recycling.GetClearance(rpb.GetClearanceRequest(number=HEALTHY)).number == HEALTHY
    swap = rpb.GetSimSwapRequest(number=HEALTHY, min_position=head)
    assert stubs.recycling.GetSimSwap(swap, timeout=30).as_of_position >= head
    stubs.lifecycle.SuspendNumber(lpb.SuspendNumberRequest(request_id="s2", number=HEALTHY, reason=2))


def test_the_export_of_the_number_is_refused_naming_the_position(garbled, settings, tmp_path, capsys) -> None:
    from scripts import export_history
    from tests.e2e.test_proofs import db_url

    _, position, _ = garbled
    out = tmp_path / "export.jsonl"
    capsys.readouterr()
    assert export_history.main(["--db", db_url(settings), "--number", DAMAGED, "-o", str(out)]) == 1
    assert f"position {position} does not decode" in capsys.readouterr().err
    assert not out.exists() and not export_history.partial_name(out).exists()
    assert export_history.main(["--db", db_url(settings), "--number", HEALTHY, "-o", str(out)]) == 0


def test_a_rebuild_of_the_views_meets_it_again(garbled, settings, clock) -> None:
    stubs, position, head = garbled
    assert stubs.projector.wait_for(head, 30)
    from ledger.bootstrap import open_projector

    rebuilder = open_projector(settings, stubs.app)  # as `ledger project --rebuild` in another process
    try:
        rebuilder.rebuild()  # from position 0 beside the serving generation, then switched to
    finally:
        rebuilder.close()
    check = rpb.CheckNumberRequest(number=DAMAGED, since_date="2020-01-01")
    data_loss(lambda: stubs.recycling.CheckNumber(check, timeout=30), position)
    today = clock.now().date().isoformat()
    check = rpb.CheckNumberRequest(number=HEALTHY, since_date=today)
    assert stubs.recycling.CheckNumber(check, timeout=30).result.status == ledger_pb2.CHECK_STATUS_NOT_CHANGED
    swap = rpb.GetSimSwapRequest(number=HEALTHY, min_position=head)
    assert stubs.recycling.GetSimSwap(swap, timeout=30).as_of_position >= head
