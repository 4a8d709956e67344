"""HistoryService.GetStatus and TraceRequest over gRPC: what they answer, and who may ask."""

from __future__ import annotations

import dataclasses
import json

import grpc
import pytest

from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import lifecycle_service_pb2 as lpb
from tests.conftest import number
from tests.e2e.test_auth_tls import bearer, code_of, tokens  # noqa: F401 (a fixture)
from tests.e2e.test_lifecycle_grpc import details

STORES = ("sqlite", "postgres")


def test_status_shows_the_head_the_views_and_no_password(server, settings) -> None:
    stubs, app = server
    stubs.onboard(number(1), seq=1)
    verified = stubs.history.VerifyIntegrity(hpb.VerifyIntegrityRequest())
    signed = stubs.history.GetSignedHead(hpb.GetSignedHeadRequest(fresh=True)).signed_head
    status = stubs.history.GetStatus(hpb.GetStatusRequest())
    assert status.head_position == verified.head_position == app.reader.max_position()
    assert status.head_digest == verified.head_digest
    assert status.signed_head_size == signed.size
    assert status.signed_head_at == signed.signed_at
    assert [v.name for v in status.views] == ["numbers", "sim_swaps", "compliance", "erasure"]
    for view in status.views:
        assert view.state == hpb.VIEW_STATE_SERVING, view
        assert view.lag == status.head_position - view.position
    assert json.loads(status.policy)["timezone"] == status.time_zone == settings.policy.timezone
    assert json.loads(status.policy)["quarantine_days"] == settings.policy.quarantine_days
    assert status.version and status.started_at.seconds > 0
    if settings.store.kind == "postgres":
        password = settings.store.postgres["password"]
        assert status.store.startswith("postgresql://") and settings.store.postgres["dbname"] in status.store
        assert not password or password not in status.store
    else:
        assert status.store == f"sqlite:///{settings.store.sqlite_path}"


def test_trace_gives_the_events_one_request_recorded(server) -> None:
    stubs, _ = server
    sid, _, _ = stubs.onboard(number(1), seq=1)
    stubs.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id="more", numbers=[number(2), number(3)]))
    activation = [e.event for e in stubs.history.GetNumberHistory(hpb.GetNumberHistoryRequest(number=number(1)))]
    activated = next(e for e in activation if e.type == "NumberActivated")
    traced = [r.event for r in stubs.history.TraceRequest(hpb.TraceRequestRequest(request_id=activated.request_id))]
    assert [e.type for e in traced] == ["NumberActivated"]
    assert traced[0] == activated
    # A request that touched two numbers: both, in ledger order, and nothing of the requests around it.
    more = [r.event for r in stubs.history.TraceRequest(hpb.TraceRequestRequest(request_id="more"))]
    assert [(e.type, e.number) for e in more] == [("NumberProvisioned", number(2)), ("NumberProvisioned", number(3))]
    assert all(e.request_id == "more" for e in more)
    assert more[0].position < more[1].position
    # A retry records nothing new and traces the same.
    stubs.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id="more", numbers=[number(2), number(3)]))
    assert [r.event for r in stubs.history.TraceRequest(hpb.TraceRequestRequest(request_id="more"))] == more
    # Registration: the subscriber's event, its personal data withheld.
    registered = [r.event for r in stubs.history.TraceRequest(hpb.TraceRequestRequest(request_id="req-2"))]
    assert [e.type for e in registered] == ["SubscriberRegistered"] and registered[0].subscriber_id == sid
    assert not registered[0].HasField("personal_data")
    with pytest.raises(grpc.RpcError) as e:
        list(stubs.history.TraceRequest(hpb.TraceRequestRequest(request_id="never-sent")))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND and details(e.value)[0] == "REQUEST_NOT_FOUND"
    with pytest.raises(grpc.RpcError) as e:
        list(stubs.history.TraceRequest(hpb.TraceRequestRequest(request_id="")))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and details(e.value)[1][0][0] == "request_id"


def test_status_and_trace_need_the_compliance_or_admin_role(settings, clock, tokens) -> None:  # noqa: F811
    from tests.conftest import running_server

    path, issued = tokens
    for stubs, _ in running_server(dataclasses.replace(settings, auth_file=path), clock):
        stubs.lifecycle.ProvisionNumbers(
            lpb.ProvisionNumbersRequest(request_id="p", numbers=[number(1)]), metadata=bearer(issued["operator"])
        )
        calls = (
            (stubs.history.GetStatus, hpb.GetStatusRequest()),
            (stubs.history.TraceRequest, hpb.TraceRequestRequest(request_id="p")),
        )
        for call, request in calls:
            assert code_of(call, request) == grpc.StatusCode.UNAUTHENTICATED
            for role in ("operator", "checker"):
                assert code_of(call, request, bearer(issued[role])) == grpc.StatusCode.PERMISSION_DENIED
            for role in ("compliance", "admin"):
                assert code_of(call, request, bearer(issued[role])) == grpc.StatusCode.OK
