"""Proofs on the wire, on both stores: signed heads, inclusion and consistency proofs as GetSignedHead,
GetConsistencyProof and GetNumberHistory(with_proofs) send them, checked by the verifier of
tests/integration/test_tamper_evidence.py (written from RFC 9162, not the ledger's); their refusals; and
a rollback and a fork caught by ``monitor_heads`` with two saved heads. Tampering, heads refused and
exports are in that integration file."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

import grpc
import orjson
import pytest

from ledger.__main__ import main as ledger_main
from ledger.proofs import stream_map
from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import lifecycle_service_pb2 as lpb
from scripts import monitor_heads
from tests.conftest import TEST_MASTER_KEY, number
from tests.e2e.tamper import Store
from tests.integration.test_tamper_evidence import leaf_of, root_from_path, roots_from_consistency, signature_ok

STORES = ("sqlite", "postgres")


def build(stubs, start: int = 0, count: int = 3) -> None:
    for i in range(start, start + count):
        stubs.onboard(number(i), seq=i)
        stubs.lifecycle.SuspendNumber(lpb.SuspendNumberRequest(request_id=f"s{i}", number=number(i), reason=2))
        stubs.lifecycle.ResumeNumber(lpb.ResumeNumberRequest(request_id=f"r{i}", number=number(i)))


def fresh_head(stubs) -> hpb.SignedHead:
    return stubs.history.GetSignedHead(hpb.GetSignedHeadRequest(fresh=True)).signed_head


def verify(stubs, msisdn: str = "", up_to: int = 0) -> hpb.VerifyIntegrityResponse:
    return stubs.history.VerifyIntegrity(hpb.VerifyIntegrityRequest(number=msisdn, up_to_position=up_to))


def db_url(settings) -> str:
    if settings.store.kind == "sqlite":
        return f"sqlite:///{settings.store.sqlite_path}"
    pg = settings.store.postgres
    return f"postgresql://{pg['user']}@{pg['host']}:{pg['port']}/{pg['dbname']}"


@pytest.fixture
def public_key(settings, tmp_path: Path, capsys, monkeypatch) -> Path:
    """The operator's public key, exported as the operator would (`ledger head --public-key`)."""
    if settings.store.kind == "postgres":
        monkeypatch.setenv("LEDGER_MASTER_KEY", TEST_MASTER_KEY)
    capsys.readouterr()
    assert ledger_main(["head", "--db", db_url(settings), "--public-key"]) == 0
    path = tmp_path / "ledger.head.pub"
    path.write_text(capsys.readouterr().out)
    return path


def signed(head: hpb.SignedHead, pem: bytes) -> bool:
    micros = head.signed_at.seconds * 1_000_000 + head.signed_at.nanos // 1000
    return signature_ok(head.size, head.root_hash, head.map_root, micros, head.signature, pem)


def test_heads_and_proofs_on_the_wire_verify_with_a_verifier_of_our_own(server, public_key) -> None:
    stubs, app = server
    build(stubs, 0, 2)
    first = fresh_head(stubs)
    build(stubs, 2, 2)
    second = fresh_head(stubs)
    pem = public_key.read_bytes()
    assert signed(first, pem) and signed(second, pem) and second.size == app.reader.max_position()
    assert stubs.history.GetSignedHead(hpb.GetSignedHeadRequest(size=first.size)).signed_head == first
    proof = list(
        stubs.history.GetConsistencyProof(
            hpb.GetConsistencyProofRequest(from_size=first.size, to_size=second.size)
        ).hashes
    )
    assert roots_from_consistency(first.size, second.size, proof, first.root_hash) == (
        first.root_hash,
        second.root_hash,
    )
    request = hpb.GetNumberHistoryRequest(number=number(1), with_proofs=True, head_size=first.size)
    responses = list(stubs.history.GetNumberHistory(request))
    assert responses[0].signed_head == first and all(r.event.position <= first.size for r in responses)
    last: dict[str, int] = {}
    for r in responses:
        p = r.inclusion_proof
        leaf = leaf_of(r.event.position, r.event.stream_id, r.event.stream_version, p.topic, p.state)
        assert p.tree_size == first.size
        assert root_from_path(leaf, p.leaf_index, p.tree_size, list(p.hashes)) == first.root_hash
        last[UUID(r.event.stream_id).hex] = r.event.stream_version
    for sp in responses[0].stream_proofs:
        entries = [stream_map.Entry(UUID(e.stream_id), e.version, e.stream_hash) for e in sp.entries]
        entry, problem = stream_map.verify(UUID(sp.stream_id), entries, list(sp.siblings), first.map_root)
        assert problem == ""
        assert (entry.version if entry else 0) == last.get(sp.stream_id, 0)
    later = hpb.GetNumberHistoryRequest(number=number(3), with_proofs=True, head_size=first.size)
    assert list(stubs.history.GetNumberHistory(later)) == []  # number(3) came after that head
    assert verify(stubs).signed_head_size == second.size and verify(stubs, number(1)).signed_head_size == second.size

    for bad in (
        hpb.GetConsistencyProofRequest(from_size=0, to_size=second.size),
        hpb.GetConsistencyProofRequest(from_size=second.size, to_size=first.size),
        hpb.GetConsistencyProofRequest(from_size=1, to_size=second.size + 1),
    ):
        with pytest.raises(grpc.RpcError) as e:
            stubs.history.GetConsistencyProof(bad)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as e:
        stubs.history.GetSignedHead(hpb.GetSignedHeadRequest(size=first.size + 1))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_rollback_and_a_fork_are_caught_with_two_saved_heads(server, settings, public_key, tmp_path, capsys) -> None:
    stubs, _app = server
    heads = tmp_path / "heads.jsonl"
    monitor = ["--target", stubs.target, "--heads", str(heads), "--public-key", str(public_key), "--fresh"]
    build(stubs, 0, 2)
    assert monitor_heads.main(monitor) == 0
    small = orjson.loads(heads.read_bytes().splitlines()[0])["size"]
    build(stubs, 2, 2)
    assert monitor_heads.main(monitor) == 0
    assert monitor_heads.main(monitor) == 0  # nothing new: the same head, consistent
    large = orjson.loads(heads.read_bytes().splitlines()[-1])["size"]
    assert len(heads.read_bytes().splitlines()) == 2 and small < large

    store = Store(settings)
    try:
        store.roll_back_to(small)  # every table, consistently: a restored backup
    finally:
        store.close()
    capsys.readouterr()
    assert monitor_heads.main([*monitor[:-1]]) == 1
    assert "ROLLBACK" in capsys.readouterr().err

    # The ledger grows again past the larger head, with other events: a fork of the history seen.
    stubs.lifecycle.ProvisionNumbers(
        lpb.ProvisionNumbersRequest(request_id="fork", numbers=[number(100 + i) for i in range(large - small + 1)])
    )
    assert monitor_heads.main(monitor) == 1
    assert "FORK" in capsys.readouterr().err
    assert len(heads.read_bytes().splitlines()) == 2  # nothing inconsistent is saved
