"""RecyclingService over a real server: CAMARA scenarios, clearance, min_position and BatchCheck."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from ledger.v1 import ledger_pb2
from ledger.v1 import lifecycle_service_pb2 as lpb
from ledger.v1 import recycling_service_pb2 as rpb
from tests.conftest import imsi_for, new_iccid, number, resident_id
from tests.e2e.test_lifecycle_grpc import details

# Every test here runs on both stores.
STORES = ("sqlite", "postgres")

NOT_CHANGED, CHANGED, NO_DATA = (
    ledger_pb2.CHECK_STATUS_NOT_CHANGED,
    ledger_pb2.CHECK_STATUS_CHANGED,
    ledger_pb2.CHECK_STATUS_NO_DATA,
)


def at(text: str) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(datetime.fromisoformat(text).replace(tzinfo=UTC))
    return t


class History:
    """Builds a number's past through the public API with explicit occurred_at times."""

    def __init__(self, stubs) -> None:
        self.stubs = stubs
        self.lc = stubs.lifecycle
        self.last = 0

    def call(self, rpc: str, **fields):
        request = getattr(lpb, f"{rpc}Request")(request_id=self.stubs.rid(), **fields)
        response = getattr(self.lc, rpc)(request)
        self.last = max(self.last, response.position)
        return response

    def holder(self, msisdn: str, seq: int, when: str) -> tuple[str, str]:
        sid = self.call(
            "RegisterSubscriber", full_name=f"Holder {seq}", id_type=1, id_number=resident_id(seq), occurred_at=at(when)
        ).subscriber_id
        self.call(
            "VerifyIdentity",
            subscriber_id=sid,
            method=1,
            channel="retail",
            agent_id="a",
            evidence_ref="e",
            occurred_at=at(when),
        )
        iccid = new_iccid()
        tenure = self.call(
            "ActivateSim",
            number=msisdn,
            subscriber_id=sid,
            iccid=iccid,
            imsi=imsi_for(iccid),
            channel="retail",
            agent_id="a",
            occurred_at=at(when),
        ).tenure_id
        return sid, tenure


def check(stubs, msisdn: str, since: str, min_position: int = 0) -> ledger_pb2.CheckResult:
    return stubs.recycling.CheckNumber(
        rpb.CheckNumberRequest(number=msisdn, since_date=since, min_position=min_position), timeout=10
    ).result


@pytest.fixture
def recycled(server, clock):
    """A number held by one subscriber, cleared, released and held by a second one."""
    stubs, _app = server
    clock.t = datetime(2027, 1, 10, tzinfo=UTC)
    h = History(stubs)
    msisdn = number(1)
    h.call("ProvisionNumbers", numbers=[msisdn], occurred_at=at("2026-01-01T08:00:00"))
    _, first = h.holder(msisdn, 1, "2026-01-03T10:00:00")
    h.call("DisconnectNumber", number=msisdn, reason=1, occurred_at=at("2026-03-01T12:00:00"))
    for holder in ("crm", "billing", "voicemail"):
        h.call(
            "ConfirmDataCleared",
            number=msisdn,
            tenure_id=first,
            holder=holder,
            evidence_ref="t",
            occurred_at=at("2026-03-05T00:00:00"),
        )
    h.call("ReleaseNumber", number=msisdn, occurred_at=at("2026-06-01T00:00:00"))
    h.holder(msisdn, 2, "2026-07-01T09:30:00")
    return stubs, msisdn, h.last


def test_camara_scenarios(recycled) -> None:
    stubs, msisdn, last = recycled
    # The current holder's contract date: not changed, and any later date too.
    r = check(stubs, msisdn, "2026-07-01", min_position=last)
    assert (r.status, r.phone_number_changed) == (NOT_CHANGED, False)
    assert r.as_of_position >= last
    assert check(stubs, msisdn, "2026-11-30").status == NOT_CHANGED  # (a later date, not after today)
    # A day in the gap between two holders: changed.
    r = check(stubs, msisdn, "2026-06-15")
    assert (r.status, r.phone_number_changed) == (CHANGED, True)
    # The gap began with the release; the previous holder's tenure ended before that day.
    assert r.clearance == ledger_pb2.CLEARANCE_NOT_APPLICABLE
    # During the first tenure: changed, and that tenure's clearance is reported.
    r = check(stubs, msisdn, "2026-02-01")
    assert r.status == CHANGED and r.clearance == ledger_pb2.CLEARANCE_CLEARED
    assert r.last_disconnected_at.ToDatetime(tzinfo=UTC) == datetime(2026, 3, 1, 12, tzinfo=UTC)
    # The day the tenure ended counts as changed.
    assert check(stubs, msisdn, "2026-03-01").status == CHANGED
    # Before the ledger's records of the number: a disconnection on record after the date says it changed.
    assert check(stubs, msisdn, "2025-12-31").status == CHANGED
    # An unknown number: no data.
    assert check(stubs, number(999), "2026-01-01").status == NO_DATA


def test_held_now_follows_the_tenure_whatever_the_date(recycled) -> None:
    stubs, msisdn, last = recycled
    # Held by the second holder: recycled for a date before them, not recycled since their contract.
    for since, status in (("2026-02-01", CHANGED), ("2026-07-01", NOT_CHANGED), ("2025-12-31", CHANGED)):
        r = check(stubs, msisdn, since, min_position=last)
        assert (r.status, r.held_now) == (status, True)
    h = History(stubs)
    h.call("SuspendNumber", number=msisdn, reason=2, occurred_at=at("2026-12-01T00:00:00"))
    assert check(stubs, msisdn, "2026-07-01", min_position=h.last).held_now  # a suspended tenure is still open
    h.call("DisconnectNumber", number=msisdn, reason=1, occurred_at=at("2026-12-02T00:00:00"))
    r = check(stubs, msisdn, "2026-07-01", min_position=h.last)
    assert (r.status, r.held_now) == (CHANGED, False)  # cancelled: changed, and nobody holds it now
    assert not check(stubs, number(999), "2026-01-01").held_now  # unknown: nobody holds it here
    queries = [ledger_pb2.CheckQuery(number=n, since_date="2026-07-01") for n in (msisdn, number(999))]
    (response,) = stubs.recycling.BatchCheck(iter([rpb.BatchCheckRequest(queries=queries)]), timeout=10)
    assert [(x.status, x.held_now) for x in response.results] == [(CHANGED, False), (NO_DATA, False)]
    held = number(3)
    h.call("ProvisionNumbers", numbers=[held], occurred_at=at("2026-01-01T08:00:00"))
    h.holder(held, 3, "2026-01-03T10:00:00")
    assert check(stubs, held, "2026-01-03", min_position=h.last).held_now
    queries = [ledger_pb2.CheckQuery(number=held, since_date="2026-01-01")]
    (response,) = stubs.recycling.BatchCheck(iter([rpb.BatchCheckRequest(queries=queries)]), timeout=10)
    assert response.results[0].held_now


def test_clearance_pending_then_cleared_then_violation(server) -> None:
    stubs, _ = server
    msisdn = number(2)
    _, tenure, _ = stubs.onboard(msisdn, seq=2)
    since = "2026-01-05"  # the day of provisioning, activation and disconnection
    disc = stubs.lifecycle.DisconnectNumber(lpb.DisconnectNumberRequest(request_id="d", number=msisdn, reason=1))
    r = check(stubs, msisdn, since, min_position=disc.position)
    assert r.status == CHANGED and r.clearance == ledger_pb2.CLEARANCE_PENDING
    assert list(r.outstanding_holders) == ["crm", "billing", "voicemail"]
    position = 0
    for holder in ("crm", "billing"):
        position = stubs.lifecycle.ConfirmDataCleared(
            lpb.ConfirmDataClearedRequest(
                request_id=f"c-{holder}", number=msisdn, tenure_id=tenure, holder=holder, evidence_ref="t"
            )
        ).position
    r = check(stubs, msisdn, since, min_position=position)
    assert r.clearance == ledger_pb2.CLEARANCE_PENDING and list(r.outstanding_holders) == ["voicemail"]
    # Released early by override while voicemail is outstanding: a violation.
    position = stubs.lifecycle.ReleaseNumber(
        lpb.ReleaseNumberRequest(request_id="rel", number=msisdn, override_reason="court order")
    ).position
    r = check(stubs, msisdn, since, min_position=position)
    assert r.clearance == ledger_pb2.CLEARANCE_VIOLATION
    clearance = stubs.recycling.GetClearance(rpb.GetClearanceRequest(number=msisdn))
    (t,) = clearance.tenures
    assert t.tenure_id == tenure and t.clearance == ledger_pb2.CLEARANCE_VIOLATION
    assert [c.holder for c in t.confirmations] == ["crm", "billing"]
    assert list(t.outstanding_holders) == ["voicemail"] and t.override_reason == "court order"
    assert t.released_at.seconds > 0 and t.quarantine_until.seconds > t.disconnected_at.seconds
    # The last holder confirming does not undo the violation.
    position = stubs.lifecycle.ConfirmDataCleared(
        lpb.ConfirmDataClearedRequest(
            request_id="c-vm", number=msisdn, tenure_id=tenure, holder="voicemail", evidence_ref="t"
        )
    ).position
    r = check(stubs, msisdn, since, min_position=position)
    assert r.clearance == ledger_pb2.CLEARANCE_VIOLATION and not r.outstanding_holders


def test_get_clearance_of_unknown_number_is_not_found(server) -> None:
    stubs, _ = server
    with pytest.raises(grpc.RpcError) as e:
        stubs.recycling.GetClearance(rpb.GetClearanceRequest(number=number(77)))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_min_position_beyond_the_ledger_fails_clearly_within_the_deadline(server) -> None:
    stubs, _ = server
    with pytest.raises(grpc.RpcError) as e:
        stubs.recycling.CheckNumber(
            rpb.CheckNumberRequest(number=number(1), since_date="2026-01-01", min_position=10**9), timeout=1.0
        )
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert details(e.value)[0] == "READ_MODEL_BEHIND"


def test_bad_check_input_names_the_fields(server) -> None:
    stubs, _ = server
    with pytest.raises(grpc.RpcError) as e:
        stubs.recycling.CheckNumber(rpb.CheckNumberRequest(number="12", since_date="2026-13-01"))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert {f for f, _ in details(e.value)[1]} == {"number", "since_date"}
    with pytest.raises(grpc.RpcError) as e:
        list(
            stubs.recycling.BatchCheck(
                iter(
                    [
                        rpb.BatchCheckRequest(
                            queries=[
                                ledger_pb2.CheckQuery(number=number(1), since_date="2026-01-01"),
                                ledger_pb2.CheckQuery(number="x", since_date="2026-01-01"),
                            ]
                        )
                    ]
                )
            )
        )
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in details(e.value)[1]] == ["queries[1].number"]
    # Canonical-looking but not a valid number (unassigned country code): still refused, not NO_DATA.
    with pytest.raises(grpc.RpcError) as e:
        list(
            stubs.recycling.BatchCheck(
                iter(
                    [
                        rpb.BatchCheckRequest(
                            queries=[ledger_pb2.CheckQuery(number="+999123456789", since_date="2026-01-01")]
                        )
                    ]
                )
            )
        )
    assert [f for f, _ in details(e.value)[1]] == ["queries[0].number"]


def test_batch_check_of_100000_queries_is_complete_and_ordered(server) -> None:
    stubs, _ = server
    known = [number(10_000 + i) for i in range(5_000)]
    position = stubs.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id="p", numbers=known)).position
    stubs.onboard(known[0], seq=40)
    position = stubs.lifecycle.SuspendNumber(
        lpb.SuspendNumberRequest(request_id="s", number=known[0], reason=2)
    ).position
    assert stubs.projector is not None and stubs.projector.wait_for(position, 10)
    unknown = {number(90_000 + j) for j in range(997)}
    per_batch, batches = 1000, 100
    asked = []

    def requests():
        for b in range(batches):
            queries = []
            for i in range(per_batch):
                k = b * per_batch + i
                msisdn = known[k % len(known)] if k % 10 else number(90_000 + k % 997)  # every tenth unknown
                queries.append(ledger_pb2.CheckQuery(number=msisdn, since_date="2026-01-01" if k % 3 else "2026-01-05"))
            asked.append(queries)
            yield rpb.BatchCheckRequest(queries=queries)

    responses = list(stubs.recycling.BatchCheck(requests(), timeout=300))
    assert len(responses) == batches
    total = 0
    for queries, response in zip(asked, responses, strict=True):
        assert [r.number for r in response.results] == [q.number for q in queries]
        for q, r in zip(queries, response.results, strict=True):
            total += 1
            if q.number == known[0]:
                # Activated on the fixture's clock date 2026-01-05: changed since the 1st, not since the 5th.
                assert r.status == (NOT_CHANGED if q.since_date == "2026-01-05" else NO_DATA)
            elif q.number in unknown:
                assert r.status == NO_DATA
            else:
                # Provisioned on 2026-01-05 and never held: no data before, a gap (changed) from that day.
                assert r.status == (NO_DATA if q.since_date == "2026-01-01" else CHANGED)
    assert total == per_batch * batches
