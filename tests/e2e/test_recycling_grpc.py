"""RecyclingService over a real server, on both stores: CheckNumber, BatchCheck and GetClearance on the
wire, min_position, bad input and a BatchCheck of 100,000 queries. The answers' scenarios (CAMARA, held now,
clearance, porting) are tests/integration/test_answers.py."""

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


def test_check_number_and_batch_check_answer_on_the_wire(recycled) -> None:
    stubs, msisdn, last = recycled
    r = check(stubs, msisdn, "2026-07-01", min_position=last)
    assert (r.status, r.phone_number_changed, r.held_now) == (NOT_CHANGED, False, True)
    assert r.number == msisdn and r.as_of_position >= last and r.head_position >= r.as_of_position
    r = check(stubs, msisdn, "2026-02-01")
    assert (r.status, r.phone_number_changed, r.held_now) == (CHANGED, True, True)
    assert r.clearance == ledger_pb2.CLEARANCE_CLEARED and not r.outstanding_holders
    assert r.last_disconnected_at.ToDatetime(tzinfo=UTC) == datetime(2026, 3, 1, 12, tzinfo=UTC)
    unknown = check(stubs, number(999), "2026-01-01")
    assert (unknown.status, unknown.no_data_reason) == (NO_DATA, ledger_pb2.NO_DATA_REASON_UNKNOWN_NUMBER)
    # BatchCheck answers as CheckNumber does, in the order asked.
    queries = [ledger_pb2.CheckQuery(number=n, since_date="2026-02-01") for n in (number(999), msisdn)]
    (response,) = stubs.recycling.BatchCheck(iter([rpb.BatchCheckRequest(queries=queries)]), timeout=10)
    assert [x.number for x in response.results] == [number(999), msisdn]
    answered = [check(stubs, q.number, q.since_date) for q in queries]
    for batch, single in zip(response.results, answered, strict=True):
        batch.head_position = single.head_position  # the head each stood beside may have moved on
    assert list(response.results) == answered


def test_clearance_pending_and_violation_on_the_wire(server) -> None:
    stubs, _ = server
    msisdn = number(2)
    _, tenure, _ = stubs.onboard(msisdn, seq=2)
    since = "2026-01-05"  # the day of provisioning, activation and disconnection
    disc = stubs.lifecycle.DisconnectNumber(lpb.DisconnectNumberRequest(request_id="d", number=msisdn, reason=1))
    r = check(stubs, msisdn, since, min_position=disc.position)
    assert r.status == CHANGED and r.clearance == ledger_pb2.CLEARANCE_PENDING
    assert list(r.outstanding_holders) == ["crm", "billing", "voicemail"]
    stubs.lifecycle.ConfirmDataCleared(
        lpb.ConfirmDataClearedRequest(
            request_id="c-crm", number=msisdn, tenure_id=tenure, holder="crm", evidence_ref="t"
        )
    )
    # Released early by override while billing and voicemail are outstanding: a violation.
    position = stubs.lifecycle.ReleaseNumber(
        lpb.ReleaseNumberRequest(request_id="rel", number=msisdn, override_reason="court order")
    ).position
    r = check(stubs, msisdn, since, min_position=position)
    assert r.clearance == ledger_pb2.CLEARANCE_VIOLATION and list(r.outstanding_holders) == ["billing", "voicemail"]
    clearance = stubs.recycling.GetClearance(rpb.GetClearanceRequest(number=msisdn))
    (t,) = clearance.tenures
    assert t.tenure_id == tenure and t.clearance == ledger_pb2.CLEARANCE_VIOLATION and t.subscriber_id
    assert [(c.holder, c.evidence_ref, c.confirmed_at.seconds > 0) for c in t.confirmations] == [("crm", "t", True)]
    assert list(t.required_holders) == ["crm", "billing", "voicemail"]
    assert list(t.outstanding_holders) == ["billing", "voicemail"] and t.override_reason == "court order"
    assert t.released_at.seconds > 0 and t.quarantine_until.seconds > t.disconnected_at.seconds


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
