"""IdentityService over a real server on loopback, on both stores: MatchIdentity and ListNumbersByIdentity
on the wire, each refusal's status and reason, and the roles of each RPC. The comparisons, the access
records and the listing across recycling and erasure are tests/unit/test_identity_questions.py and
test_identity_answers.py."""

from __future__ import annotations

import dataclasses

import grpc
import pytest

from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import identity_service_pb2 as ipb
from ledger.v1 import identity_service_pb2_grpc, ledger_pb2
from ledger.v1 import lifecycle_service_pb2 as lpb
from tests.conftest import FakeClock, Stubs, imsi_for, new_iccid, number, resident_id, running_server
from tests.e2e.test_auth_tls import bearer, code_of, tokens  # noqa: F401
from tests.e2e.test_lifecycle_grpc import details

STORES = ("sqlite", "postgres")
TRUE, FALSE, NA, UNSENT = (
    ipb.MATCH_RESULT_TRUE,
    ipb.MATCH_RESULT_FALSE,
    ipb.MATCH_RESULT_NOT_AVAILABLE,
    ipb.MATCH_RESULT_UNSPECIFIED,
)
RESIDENT = ledger_pb2.ID_TYPE_RESIDENT_ID_CARD


def identity(stubs: Stubs) -> identity_service_pb2_grpc.IdentityServiceStub:
    return identity_service_pb2_grpc.IdentityServiceStub(stubs.channel)


def person(stubs: Stubs, full_name: str, seq: int, dob: str = "") -> str:
    """A verified subscriber registered with resident_id(seq) (and its birth date when ``dob``)."""
    sid = stubs.lifecycle.RegisterSubscriber(
        lpb.RegisterSubscriberRequest(
            request_id=stubs.rid(), full_name=full_name, id_type=RESIDENT, id_number=resident_id(seq), date_of_birth=dob
        )
    ).subscriber_id
    stubs.lifecycle.VerifyIdentity(
        lpb.VerifyIdentityRequest(
            request_id=stubs.rid(), subscriber_id=sid, method=1, channel="retail", agent_id="a1", evidence_ref="ev"
        )
    )
    return sid


def activate(stubs: Stubs, msisdn: str, sid: str) -> None:
    iccid = new_iccid()
    stubs.lifecycle.ActivateSim(
        lpb.ActivateSimRequest(
            request_id=stubs.rid(),
            number=msisdn,
            subscriber_id=sid,
            iccid=iccid,
            imsi=imsi_for(iccid),
            channel="retail",
            agent_id="a1",
        )
    )


def disconnect(stubs: Stubs, msisdn: str) -> None:
    stubs.lifecycle.DisconnectNumber(
        lpb.DisconnectNumberRequest(
            request_id=stubs.rid(), number=msisdn, reason=ledger_pb2.DISCONNECT_REASON_SUBSCRIBER_REQUEST
        )
    )


def provision(stubs: Stubs, *numbers: str) -> None:
    stubs.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id=stubs.rid(), numbers=list(numbers)))


def refused(call, request) -> tuple[grpc.StatusCode, str, list[tuple[str, str]]]:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=10)
    reason, violations = details(caught.value)
    return caught.value.code(), reason, violations


def test_match_identity_on_the_wire_and_its_refusals(settings, clock: FakeClock) -> None:
    for stubs, _app in running_server(settings, clock):
        ids = identity(stubs)
        msisdn, free = number(301), number(302)
        provision(stubs, msisdn, free)
        seq, dob = 2, "1990-01-03"  # resident_id(2)'s birth date
        activate(stubs, msisdn, person(stubs, "Wang Xiaoming", seq, dob))
        exact = ids.MatchIdentity(
            ipb.MatchIdentityRequest(
                number=msisdn,
                id_type=RESIDENT,
                id_number=resident_id(seq),
                full_name="Wang Xiaoming",
                date_of_birth=dob,
            )
        )
        assert (exact.id_document_match, exact.name_match, exact.birthdate_match) == (TRUE, TRUE, TRUE)
        assert not exact.HasField("name_match_score") and exact.given_name_match == UNSENT
        scored = ids.MatchIdentity(ipb.MatchIdentityRequest(number=msisdn, full_name="Wang Xiaomin"))
        assert scored.name_match == FALSE and 90 <= scored.name_match_score <= 99

        code, reason, violations = refused(ids.MatchIdentity, ipb.MatchIdentityRequest(number=msisdn))
        assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PARAM_COMBINATION")
        assert [field for field, _ in violations] == ["number"]
        code, reason, _ = refused(ids.MatchIdentity, ipb.MatchIdentityRequest(number=free, full_name="Wang Xiaoming"))
        assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "HOLDER_NOT_FOUND")
        code, reason, _ = refused(ids.MatchIdentity, ipb.MatchIdentityRequest(number=number(399), full_name="x"))
        assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "NUMBER_NOT_FOUND")
        matched = [
            r.event
            for r in stubs.history.GetNumberHistory(hpb.GetNumberHistoryRequest(number=msisdn))
            if r.event.type == "AccessLogIdentityMatched"
        ]
        assert len(matched) == 2  # one per answered call; refusals compared nothing


def test_list_numbers_by_identity_on_the_wire(settings, clock: FakeClock) -> None:
    for stubs, _app in running_server(settings, clock):
        ids = identity(stubs)
        first, second = number(321), number(322)
        provision(stubs, first, second)
        sid = person(stubs, "Zhou Min", 21)
        activate(stubs, first, sid)
        disconnect(stubs, first)
        clock.advance(days=1)
        activate(stubs, second, sid)
        ask = ipb.ListNumbersByIdentityRequest(id_type=RESIDENT, id_number=resident_id(21), purpose="complaint 42")
        found = ids.ListNumbersByIdentity(ask).numbers
        assert [(n.number, n.tenure_open, n.state) for n in found] == [
            (first, False, ledger_pb2.NUMBER_STATUS_QUARANTINED),
            (second, True, ledger_pb2.NUMBER_STATUS_ACTIVE),
        ]
        assert found[0].HasField("ended_at") and not found[1].HasField("ended_at")
        assert {n.verification_method for n in found} == {ledger_pb2.VERIFICATION_METHOD_ID_CARD_READER}
        assert found[0].channel == "retail" and found[0].activated_at.ToDatetime() < found[1].activated_at.ToDatetime()
        reads = [
            r.event
            for r in stubs.history.GetNumberHistory(hpb.GetNumberHistoryRequest(number=second))
            if r.event.type == "AccessLogPersonalDataRead" and r.event.data["number"] == second
        ]
        assert [r.data["purpose"] for r in reads] == ["numbers by identity: complaint 42"]
        code, _, violations = refused(
            ids.ListNumbersByIdentity, ipb.ListNumbersByIdentityRequest(id_type=RESIDENT, id_number=resident_id(21))
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT and [f for f, _ in violations] == ["purpose"]


def test_each_rpc_needs_its_role_and_reflection_lists_the_service(settings, clock, tokens) -> None:  # noqa: F811
    path, issued = tokens
    for stubs, _app in running_server(dataclasses.replace(settings, auth_file=path), clock):
        ids = identity(stubs)
        operator = bearer(issued["operator"])
        msisdn = number(331)
        stubs.lifecycle.ProvisionNumbers(
            lpb.ProvisionNumbersRequest(request_id="p", numbers=[msisdn]), metadata=operator
        )
        sid = stubs.lifecycle.RegisterSubscriber(
            lpb.RegisterSubscriberRequest(
                request_id="r", full_name="Lin Tao", id_type=RESIDENT, id_number=resident_id(31)
            ),
            metadata=operator,
        ).subscriber_id
        stubs.lifecycle.VerifyIdentity(
            lpb.VerifyIdentityRequest(
                request_id="v", subscriber_id=sid, method=1, channel="retail", agent_id="a1", evidence_ref="ev"
            ),
            metadata=operator,
        )
        iccid = new_iccid()
        stubs.lifecycle.ActivateSim(
            lpb.ActivateSimRequest(
                request_id="a",
                number=msisdn,
                subscriber_id=sid,
                iccid=iccid,
                imsi=imsi_for(iccid),
                channel="retail",
                agent_id="a1",
            ),
            metadata=operator,
        )
        match = ipb.MatchIdentityRequest(number=msisdn, full_name="Lin Tao")
        listing = ipb.ListNumbersByIdentityRequest(id_type=RESIDENT, id_number=resident_id(31), purpose="fraud case 9")
        ok, denied = grpc.StatusCode.OK, grpc.StatusCode.PERMISSION_DENIED
        expected = {
            "checker": (ok, denied),
            "compliance": (denied, ok),
            "operator": (denied, denied),
            "admin": (ok, ok),
        }
        for role, (match_code, list_code) in expected.items():
            assert code_of(ids.MatchIdentity, match, bearer(issued[role])) == match_code, role
            assert code_of(ids.ListNumbersByIdentity, listing, bearer(issued[role])) == list_code, role
        assert code_of(ids.MatchIdentity, match) == grpc.StatusCode.UNAUTHENTICATED

        from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

        reflect = reflection_pb2_grpc.ServerReflectionStub(stubs.channel)
        answer = next(
            iter(reflect.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
        )
        assert "ledger.v1.IdentityService" in {s.name for s in answer.list_services_response.service}
