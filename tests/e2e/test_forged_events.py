"""Events no ledger server wrote, on both stores: someone who can write the database but holds none of
the keys kept outside it (the master key, the head-signing key) appends or inserts an event of their
own and makes both hash chains (and, if careful, the Merkle tree) match it. Every such event is found
at its position by the whole-ledger and the per-number verification, online and offline; no signed
head ever covers it; and the server refuses every write from then on."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from ledger.domain.number import Number
from ledger.v1 import lifecycle_service_pb2 as lpb
from scripts import verify_ledger
from tests.conftest import TEST_MASTER_KEY, number
from tests.e2e.tamper import Store
from tests.e2e.test_proofs import build, db_url, fresh_head, verify

STORES = ("sqlite", "postgres")
FORGERIES = (
    "append past the tree",
    "append with the tree extended",
    "insert before the log's head",
    "insert under the signed head",
)


def master_key_file(settings, tmp_path: Path) -> Path:
    """The master key as the operator keeps it (the embedded store's generated file, or the test key)."""
    if settings.store.kind == "sqlite":
        return settings.store.default_master_key_path()
    path = tmp_path / "ledger.master.key"
    path.write_text(TEST_MASTER_KEY)
    return path


def reason(error: grpc.RpcError) -> str:
    status = status_pb2.Status.FromString(dict(error.trailing_metadata())["grpc-status-details-bin"])
    info = error_details_pb2.ErrorInfo()
    for detail in status.details:
        if detail.Unpack(info):
            return info.reason
    return ""


def forge(settings, how: str, victim: str) -> int:
    """Forge one ``Number.Resumed`` of ``victim`` (actor "regulator-forged"); returns its position."""
    store = Store(settings)
    try:
        event = store.forged_resume(Number.create_id(victim))
        if how.startswith("insert"):
            heads = store.head_sizes()
            # The first event after the last signed head (not the log's last), or after the one before it.
            position = (heads[-1] if how == "insert before the log's head" else heads[-2]) + 1
            assert position < store.max_position()
            store.insert(position, event)
        else:
            position = store.append(event)
        store.rehash_all()  # both hash chains now match the forged log exactly
        if how != "append past the tree":
            store.rebuild_tree()  # leaves and nodes recomputed over the forged log
        return position
    finally:
        store.close()


@pytest.mark.parametrize("how", FORGERIES)
def test_an_event_no_server_wrote_is_found_never_signed_and_stops_writes(server, settings, tmp_path, how) -> None:
    stubs, _app = server
    build(stubs, 0, 1)
    fresh_head(stubs)
    build(stubs, 1, 2)
    signed = fresh_head(stubs).size
    build(stubs, 3, 2)  # after the head: unsigned, but written by the server
    assert verify(stubs).ok and verify(stubs, number(0)).ok
    store = Store(settings)
    try:
        heads_before = store.head_sizes()
    finally:
        store.close()
    position = forge(settings, how, number(0))

    whole = verify(stubs)
    assert not whole.ok and whole.first_bad_position == position, whole.problem
    one = verify(stubs, number(0))
    assert not one.ok and one.first_bad_position == position, one.problem
    key = ["--master-key-file", str(master_key_file(settings, tmp_path))]
    assert verify_ledger.main(["--db", db_url(settings), *key]) == 1
    assert verify_ledger.main(["--db", db_url(settings), "--number", number(0), *key]) == 1
    if how.startswith("append"):  # an insert moves every later event: all of them fail
        assert verify(stubs, number(4)).ok  # a number the forgery does not touch still verifies

    # An ordinary command, then a head: nothing is written or signed over the forged event.
    with pytest.raises(grpc.RpcError) as e:
        stubs.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id="after", numbers=[number(50)]))
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION and reason(e.value) == "LEDGER_TAMPERED"
    try:
        head = fresh_head(stubs)
    except grpc.RpcError as refused:
        assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION and reason(refused) == "LEDGER_TAMPERED"
    else:
        assert head.size < position
    store = Store(settings)
    try:
        signed_after = [size for size in store.head_sizes() if size not in heads_before]
        assert all(size < position for size in signed_after), (signed, signed_after)
    finally:
        store.close()
    with pytest.raises(grpc.RpcError) as e:
        stubs.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id="again", numbers=[number(51)]))
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION and reason(e.value) == "LEDGER_TAMPERED"
    assert verify(stubs).first_bad_position == position
