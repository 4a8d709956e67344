"""Proofs on both stores: signed heads, inclusion and consistency proofs checked by a verifier written
here from RFC 9162 (not the ledger's), every tampering case reported (never INTERNAL) online and
offline, a rollback and a fork caught with two saved heads, and an export checked with nothing but the
file, a signed head and the public key."""

from __future__ import annotations

import hashlib
import struct
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import grpc
import orjson
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from ledger.__main__ import main as ledger_main
from ledger.domain.number import Number
from ledger.proofs import stream_map
from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import lifecycle_service_pb2 as lpb
from scripts import export_history, monitor_heads, verify_export, verify_ledger
from tests.conftest import TEST_MASTER_KEY, number
from tests.e2e.tamper import Store

STORES = ("sqlite", "postgres")


def H(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def root_from_path(leaf: bytes, m: int, n: int, path: list[bytes]) -> bytes:
    """RFC 9162 2.1.3.1 read backwards: the root that PATH(m, D[0:n]) leads to from the leaf hash."""
    if n == 1:
        assert not path
        return leaf
    k = split(n)
    if m < k:
        return H(b"\x01" + root_from_path(leaf, m, k, path[:-1]) + path[-1])
    return H(b"\x01" + path[-1] + root_from_path(leaf, m - k, n - k, path[:-1]))


def roots_from_consistency(m: int, n: int, proof: list[bytes], old_root: bytes, complete: bool = True):
    """RFC 9162 2.1.4.1 read backwards: (old root, new root) that SUBPROOF(m, D[0:n], b) gives."""
    if m == n:
        if complete:
            assert not proof
            return old_root, old_root
        assert len(proof) == 1
        return proof[0], proof[0]
    k = split(n)
    if m <= k:
        old, new = roots_from_consistency(m, k, proof[:-1], old_root, complete)
        return old, H(b"\x01" + new + proof[-1])
    old, new = roots_from_consistency(m - k, n - k, proof[:-1], old_root, False)
    return H(b"\x01" + proof[-1] + old), H(b"\x01" + proof[-1] + new)


def leaf_of(position: int, stream_id: str, version: int, topic: str, state: bytes) -> bytes:
    t = topic.encode()
    raw = struct.pack(">Q", position) + UUID(stream_id).bytes + struct.pack(">QI", version, len(t)) + t
    return H(b"\x00" + raw + struct.pack(">Q", len(state)) + state)


def signature_ok(head: hpb.SignedHead, pem: bytes) -> bool:
    micros = head.signed_at.seconds * 1_000_000 + head.signed_at.nanos // 1000
    message = b"ledger-signed-head-v1\n" + struct.pack(">Q", head.size) + head.root_hash + head.map_root
    try:
        load_pem_public_key(pem).verify(head.signature, message + struct.pack(">q", micros))  # type: ignore[union-attr]
    except Exception:
        return False
    return True


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


def test_proofs_verify_with_a_verifier_of_our_own(server, settings, public_key) -> None:
    stubs, app = server
    build(stubs, 0, 2)
    first = fresh_head(stubs)
    build(stubs, 2, 2)
    second = fresh_head(stubs)
    pem = public_key.read_bytes()
    assert signature_ok(first, pem) and signature_ok(second, pem) and second.size == app.reader.max_position()
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

    for head in (first, second):
        request = hpb.GetNumberHistoryRequest(number=number(1), with_proofs=True, head_size=head.size)
        responses = list(stubs.history.GetNumberHistory(request))
        assert responses[0].signed_head == head and all(r.event.position <= head.size for r in responses)
        last: dict[str, tuple[int, bytes]] = {}
        for r in responses:
            p = r.inclusion_proof
            leaf = leaf_of(r.event.position, r.event.stream_id, r.event.stream_version, p.topic, p.state)
            assert p.tree_size == head.size
            assert root_from_path(leaf, p.leaf_index, p.tree_size, list(p.hashes)) == head.root_hash
            last[UUID(r.event.stream_id).hex] = (r.event.stream_version, b"")
        for sp in responses[0].stream_proofs:
            entries = [stream_map.Entry(UUID(e.stream_id), e.version, e.stream_hash) for e in sp.entries]
            entry, problem = stream_map.verify(UUID(sp.stream_id), entries, list(sp.siblings), head.map_root)
            assert problem == ""
            assert (entry.version if entry else 0) == last.get(sp.stream_id, (0, b""))[0]
    assert (
        len(
            list(
                stubs.history.GetNumberHistory(
                    hpb.GetNumberHistoryRequest(number=number(3), with_proofs=True, head_size=first.size)
                )
            )
        )
        == 0
    )

    whole, one = verify(stubs), verify(stubs, number(1))
    assert whole.ok and whole.signed_head_size == second.size, whole.problem
    assert one.ok and one.signed_head_size == second.size, one.problem
    db = db_url(settings)
    assert verify_ledger.main(["--db", db, "--public-key", str(public_key)]) == 0
    assert verify_ledger.main(["--db", db, "--number", number(1), "--public-key", str(public_key)]) == 0
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


@pytest.mark.parametrize("kind", ["missing", "swapped", "invalid_json", "rehashed", "deleted_last"])
def test_tampering_with_a_numbers_history_is_reported(server, settings, kind, public_key, capsys) -> None:
    stubs, _app = server
    build(stubs)
    fresh_head(stubs)
    number_id = Number.create_id(number(1))
    store = Store(settings)
    try:
        positions = store.positions(number_id)  # provisioned, activated, suspended, resumed
        if kind == "missing":
            store.delete(positions[2])
        elif kind == "swapped":
            store.swap(positions[1], positions[2])
        elif kind == "invalid_json":
            store.set_state(positions[2], b"{not json")
        elif kind == "rehashed":
            state = store.row(positions[1])[3]
            store.set_state(positions[1], state.replace(b"retail", b"retaiL"))
            store.rehash_stream(number_id)
        else:
            store.delete(positions[-1])
    finally:
        store.close()
    report = verify(stubs, number(1))
    assert not report.ok and report.problem, kind
    assert report.first_bad_position or report.stream
    assert not verify(stubs).ok
    capsys.readouterr()
    assert verify_ledger.main(["--db", db_url(settings), "--number", number(1), "--public-key", str(public_key)]) == 1
    assert "TAMPERED" in capsys.readouterr().out
    assert verify_ledger.main(["--db", db_url(settings)]) == 1
    assert verify(stubs, number(2)).ok  # another number's history still proves complete


@pytest.mark.parametrize("kind", ["deleted", "forged"])
def test_events_after_the_last_head_cannot_be_deleted_or_forged_unseen(server, settings, kind) -> None:
    stubs, _app = server
    build(stubs, 0, 2)
    fresh_head(stubs)
    build(stubs, 2, 1)  # after the head: number(2)'s whole history
    store = Store(settings)
    try:
        last = store.max_position() if kind == "deleted" else store.positions(Number.create_id(number(2)))[-1]
        if kind == "deleted":
            store.delete(last)
        else:
            store.set_state(last, store.row(last)[3].replace(b"}", b',"note":"forged"}', 1))
            store.rehash_all()  # both chains now match the forged event exactly
    finally:
        store.close()
    whole = verify(stubs)
    assert not whole.ok and whole.first_bad_position == last, whole.problem
    assert not verify(stubs, number(2)).ok
    assert verify_ledger.main(["--db", db_url(settings)]) == 1
    with pytest.raises(grpc.RpcError) as e:
        fresh_head(stubs)  # no head is signed over it
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION


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
    assert verify(stubs, up_to=large).ok

    store = Store(settings)
    try:
        store.roll_back_to(small)  # every table, consistently: a restored backup
    finally:
        store.close()
    report = verify(stubs, up_to=large)
    assert not report.ok and report.first_bad_position == small + 1 and "rolled back" in report.problem
    assert verify_ledger.main(["--db", db_url(settings), "--up-to", str(large)]) == 1
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


def test_an_export_verifies_with_only_a_signed_head_and_the_public_key(
    server, settings, public_key, tmp_path, capsys
) -> None:
    stubs, _app = server
    build(stubs)
    head = fresh_head(stubs)
    build(stubs, 3, 1)  # after the head: not in the export
    head_file = tmp_path / "head.json"
    capsys.readouterr()
    if settings.store.kind == "sqlite":
        assert ledger_main(["head", "--db", db_url(settings)]) == 0  # on demand from the command line too
        assert orjson.loads(capsys.readouterr().out)["size"] > head.size
    signed_at = datetime.fromtimestamp(head.signed_at.seconds, UTC).replace(microsecond=head.signed_at.nanos // 1000)
    head_file.write_bytes(
        orjson.dumps(
            {
                "size": head.size,
                "root_hash": head.root_hash.hex(),
                "map_root": head.map_root.hex(),
                "signed_at": signed_at.isoformat(),
                "key_id": head.key_id,
                "signature": __import__("base64").b64encode(head.signature).decode(),
            }
        )
    )
    out = tmp_path / "export.jsonl"
    assert (
        export_history.main(
            ["--db", db_url(settings), "--number", number(1), "-o", str(out), "--head-size", str(head.size)]
        )
        == 0
    )
    check = ["--public-key", str(public_key), "--signed-head", str(head_file)]
    capsys.readouterr()
    assert verify_export.main([str(out), *check]) == 0
    assert "complete as of the signed head" in capsys.readouterr().out
    lines = out.read_bytes().splitlines()
    records = [orjson.loads(line) for line in lines]

    def write(name: str, recs: list[dict]) -> Path:
        path = tmp_path / name
        path.write_bytes(b"\n".join(orjson.dumps(r) for r in recs) + b"\n")
        return path

    # The number's last event left out (the footer's count fixed): the head's map shows it missing.
    number_hex = str(Number.create_id(number(1)))
    last = max(i for i, r in enumerate(records) if r.get("stream_id") == number_hex)
    dropped = [r for i, r in enumerate(records) if i != last]
    dropped[-1] = {**dropped[-1], "events": dropped[-1]["events"] - 1}
    assert verify_export.main([str(write("dropped.jsonl", dropped)), *check]) == 1
    assert "incomplete" in capsys.readouterr().out
    # An event edited consistently with its stream chain is not in the signed head.
    other = tmp_path / "other-head.json"
    other.write_bytes(orjson.dumps({**orjson.loads(head_file.read_bytes()), "size": head.size - 1}))
    assert verify_export.main([str(out), "--public-key", str(public_key), "--signed-head", str(other)]) == 1
    forged_head = {**records[0]["signed_head"], "root_hash": "00" * 32}
    assert (
        verify_export.main(
            [
                str(write("forged.jsonl", [{**records[0], "signed_head": forged_head}, *records[1:]])),
                "--public-key",
                str(public_key),
            ]
        )
        == 1
    )
    assert "signature" in capsys.readouterr().out
