"""Events no ledger server wrote, on the wire and on both stores: after someone who can write the database
(but holds none of the keys kept outside it) appends an event of their own with both hash chains and the
Merkle tree made to match it, VerifyIntegrity names its position, and the server answers every write and
every fresh head FAILED_PRECONDITION with reason LEDGER_TAMPERED; an event deleted past the last head
leaves no head signed either. Every way of forging, online and offline, is in
tests/integration/test_tamper_evidence.py."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from ledger.domain.number import Number
from ledger.v1 import lifecycle_service_pb2 as lpb
from tests.conftest import number
from tests.e2e.tamper import Store
from tests.e2e.test_proofs import build, fresh_head, verify
from tests.integration.test_tamper_evidence import forge

STORES = ("sqlite", "postgres")


def reason(error: grpc.RpcError) -> str:
    status = status_pb2.Status.FromString(dict(error.trailing_metadata())["grpc-status-details-bin"])
    info = error_details_pb2.ErrorInfo()
    for detail in status.details:
        if detail.Unpack(info):
            return info.reason
    return ""


def tampered(call) -> None:
    with pytest.raises(grpc.RpcError) as e:
        call()
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION and reason(e.value) == "LEDGER_TAMPERED"


def test_an_event_no_server_wrote_is_found_and_stops_writes_and_heads(server, settings) -> None:
    stubs, _app = server
    build(stubs, 0, 2)
    fresh_head(stubs)
    build(stubs, 2, 1)
    store = Store(settings)
    try:
        position = forge(store, "append with the tree extended", number(0))
    finally:
        store.close()
    whole = verify(stubs)
    assert not whole.ok and whole.first_bad_position == position, whole.problem
    assert verify(stubs, number(0)).first_bad_position == position
    tampered(
        lambda: stubs.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id="a", numbers=[number(50)]))
    )
    tampered(lambda: fresh_head(stubs))
    store = Store(settings)
    try:
        assert max(store.head_sizes()) < position  # no head was signed over it
    finally:
        store.close()


def test_no_head_is_signed_over_an_event_deleted_past_the_last_one(server, settings) -> None:
    stubs, _app = server
    build(stubs, 0, 2)
    fresh_head(stubs)
    build(stubs, 2, 1)
    store = Store(settings)
    try:
        store.delete(store.positions(Number.create_id(number(2)))[-1])
    finally:
        store.close()
    tampered(lambda: fresh_head(stubs))
