"""The whole server on PostgreSQL: commands, history, recycling with read-your-writes, feed, integrity."""

from __future__ import annotations

from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import ledger_pb2
from ledger.v1 import lifecycle_service_pb2 as lpb
from ledger.v1 import recycling_service_pb2 as rpb
from tests.conftest import number, running_server


def test_lifecycle_and_checks_on_postgres(store_settings, clock) -> None:
    for stubs, app in running_server(store_settings, clock):
        _, tenure, _ = stubs.onboard(number(1), seq=1)
        disc = stubs.lifecycle.DisconnectNumber(lpb.DisconnectNumberRequest(request_id="d", number=number(1), reason=1))
        check = stubs.recycling.CheckNumber(
            rpb.CheckNumberRequest(number=number(1), since_date="2026-01-05", min_position=disc.position), timeout=10
        ).result
        assert check.status == ledger_pb2.CHECK_STATUS_CHANGED and check.clearance == ledger_pb2.CLEARANCE_PENDING
        assert check.as_of_position >= disc.position
        clearance = stubs.recycling.GetClearance(rpb.GetClearanceRequest(number=number(1)))
        assert clearance.tenures[0].tenure_id == tenure
        history = [r.event for r in stubs.history.GetNumberHistory(hpb.GetNumberHistoryRequest(number=number(1)))]
        assert history[0].type == "NumberProvisioned" and history[-1].type == "NumberDisconnected"
        feed = stubs.history.StreamEvents(hpb.StreamEventsRequest(from_position=1), timeout=10)
        first = next(feed)
        assert first.event.position == 1
        feed.cancel()
        report = stubs.history.VerifyIntegrity(hpb.VerifyIntegrityRequest())
        assert report.ok and report.events_checked == app.reader.max_position()
