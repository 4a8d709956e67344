"""Tamper evidence on both stores, driven through the application and the offline tools: changed, deleted
and swapped events found at their position by the chains; signed heads, inclusion and consistency proofs
checked by a verifier written here from RFC 9162 (not the ledger's); a number's history edited, deleted or
rehashed reported; events past the last head deleted or forged never signed; a rollback caught with two
saved heads; events no server wrote found, never signed over, and every write refused after them; and
exports checked with nothing but the file (and a signed head with the public key).

The wire (VerifyIntegrity's fields, GetNumberHistory's proofs, FAILED_PRECONDITION LEDGER_TAMPERED) is in
tests/e2e/test_integrity.py, test_proofs.py and test_forged_events.py."""

from __future__ import annotations

import base64
import hashlib
import struct
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from ledger.__main__ import main as ledger_main
from ledger.application.commands import (
    DisconnectNumber,
    EraseSubscriberData,
    ProvisionNumbers,
    ResumeNumber,
    SuspendNumber,
)
from ledger.application.pipeline import execute
from ledger.application.verification import verify_integrity
from ledger.bootstrap import load_head_signer
from ledger.domain.number import Number
from ledger.proofs import stream_map
from ledger.proofs.batches import LedgerTampered
from ledger.proofs.heads import SignedHead, public_pem
from ledger.proofs.publish import HeadRefused, publish
from scripts import export_history, verify_export, verify_ledger
from tests.conftest import TEST_MASTER_KEY, number, onboard_app
from tests.e2e.tamper import Store
from tests.integration.test_offline_tools import url_of

# -- a verifier of our own, from RFC 9162 ------------------------------------------------------------------


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


def signature_ok(size: int, root_hash: bytes, map_root: bytes, micros: int, signature: bytes, pem: bytes) -> bool:
    message = b"ledger-signed-head-v1\n" + struct.pack(">Q", size) + root_hash + map_root
    try:
        load_pem_public_key(pem).verify(signature, message + struct.pack(">q", micros))  # type: ignore[union-attr]
    except Exception:
        return False
    return True


# -- the ledger ------------------------------------------------------------------------------------------


def build(app, start: int = 0, count: int = 3) -> None:
    """Numbers onboarded, each suspended and resumed (provisioned, activated, suspended, resumed)."""
    for i in range(start, start + count):
        onboard_app(app, number(i), i)
        execute(app, SuspendNumber(number=number(i), reason="SPAM", note=""), request_id=f"suspend-{i}", actor="t")
        execute(app, ResumeNumber(number=number(i), note=""), request_id=f"resume-{i}", actor="t")


class Ledger:
    """The application on one store, its head signer, and the store's URL for the offline tools."""

    def __init__(self, app, settings, tmp_path: Path) -> None:
        self.app, self.settings = app, settings
        self.signer = load_head_signer(settings)
        self.db = url_of(settings.store)
        self.public_key = tmp_path / "ledger.head.pub"
        self.public_key.write_text(public_pem(self.signer.public))
        self.pem = self.public_key.read_bytes()

    def head(self) -> SignedHead:
        """A head signed now, as GetSignedHead(fresh) and ``ledger head`` sign one."""
        return publish(self.app.proofs, self.app.reader, self.signer, self.app.batch_key)

    def verify(self, msisdn: str = "", up_to: int = 0):
        return verify_integrity(self.app, msisdn or None, up_to, self.signer.public)

    def master_key_file(self, tmp_path: Path) -> Path:
        """The master key as the operator keeps it (the embedded store's generated file, or the test key)."""
        if self.settings.store.kind == "sqlite":
            return self.settings.store.default_master_key_path()
        path = tmp_path / "ledger.master.key"
        path.write_text(TEST_MASTER_KEY)
        return path

    def store(self) -> Store:
        return Store(self.settings)


@pytest.fixture
def ledger(store_app, store_settings, tmp_path: Path) -> Ledger:
    return Ledger(store_app, store_settings, tmp_path)


def micros_of(head: SignedHead) -> int:
    return int(head.signed_at.timestamp()) * 1_000_000 + head.signed_at.microsecond


# -- the hash chains -------------------------------------------------------------------------------------


def test_an_untouched_ledger_verifies_and_published_digests_hold(ledger: Ledger) -> None:
    app = ledger.app
    build(app)
    whole = ledger.verify()
    head = app.reader.max_position()
    assert whole.ok and whole.events_checked == head and whole.head_position == head and whole.first_bad_position == 0
    assert len(whole.head_digest) == 64
    one = ledger.verify(number(0))
    assert one.ok and one.events_checked > 5
    # Publish the digest now; the ledger grows; the published digest still verifies at its position.
    execute(app, ProvisionNumbers(numbers=[number(50)]), request_id="later", actor="t")
    db = ledger.db
    assert verify_ledger.main(["--db", db, "--up-to", str(head), "--expect-digest", whole.head_digest]) == 0
    assert ledger.verify(up_to=head).head_digest == whole.head_digest
    assert ledger.verify().head_digest != whole.head_digest
    assert verify_ledger.main(["--db", db, "--up-to", str(head), "--expect-digest", "00" * 32]) == 1
    assert verify_ledger.main(["--db", db, "--number", number(1)]) == 0


def positions_of(store: Store, topic_suffix: str) -> list[int]:
    rows = store.q(f"SELECT {store.pos}, topic FROM {store.events} ORDER BY {store.pos}")
    return [int(p) for p, topic in rows if str(topic).endswith(topic_suffix)]


@pytest.mark.parametrize("kind", ["change", "delete", "swap"])
def test_tampering_is_found_at_its_position(ledger: Ledger, kind: str, capsys) -> None:
    build(ledger.app)
    published = ledger.verify()
    store = ledger.store()
    try:
        a, b = positions_of(store, ":Number.Activated")[1], positions_of(store, ":Number.Suspended")[0]
        if kind == "change":
            store.set_state(a, store.row(a)[3].replace(b"retail", b"retaiL"))
        elif kind == "delete":
            store.delete(a)
        else:
            store.exchange(a, b)  # two events of two streams trade places
    finally:
        store.close()
    expected = min(a, b) if kind == "swap" else a

    report = ledger.verify()
    assert not report.ok and report.first_bad_position == expected, report.problem
    assert report.events_checked == expected - 1
    capsys.readouterr()
    assert verify_ledger.main(["--db", ledger.db]) == 1
    assert f"first bad position {expected}" in capsys.readouterr().out
    # The published digest no longer recomputes.
    up_to = ["--up-to", str(published.head_position), "--expect-digest", published.head_digest]
    assert verify_ledger.main(["--db", ledger.db, *up_to]) == 1
    if kind == "change":
        assert not ledger.verify(number(1)).ok
        assert ledger.verify(number(2)).ok  # other numbers still verify on their own
        assert verify_ledger.main(["--db", ledger.db, "--number", number(1)]) == 1


def test_an_export_verifies_and_a_modified_one_does_not(ledger: Ledger, tmp_path: Path, capsys) -> None:
    app = ledger.app
    build(app)
    sid = onboard_app(app, number(7), 7)
    execute(app, DisconnectNumber(number=number(7), reason="SUBSCRIBER_REQUEST"), request_id="d", actor="t")
    execute(app, EraseSubscriberData(subscriber_id=sid, legal_basis="PIPL"), request_id="e", actor="t")
    out = tmp_path / "export.jsonl"
    assert export_history.main(["--db", ledger.db, "--number", number(7), "-o", str(out)]) == 0
    lines = out.read_bytes().splitlines()
    header = orjson.loads(lines[0])
    assert header["ledger_head_position"] == app.reader.max_position()
    events = [orjson.loads(line) for line in lines[1:-1]]
    assert {e["data"].get("number") for e in events if e["topic"].endswith("Provisioned")} == {number(7)}
    assert any(e["topic"].endswith("PersonalDataErased") for e in events)
    assert b"Person 7" not in out.read_bytes()  # personal data stays encrypted
    assert verify_export.main([str(out)]) == 0
    some = events[3]
    assert verify_export.main([str(out), "--expect-digest", f"{some['position']}:{some['chain_hash']}"]) == 0
    assert verify_export.main([str(out), "--expect-digest", f"{some['position']}:{'0' * 64}"]) == 1

    def altered(index: int, change) -> Path:
        records = [orjson.loads(line) for line in lines]
        change(records[index])
        path = tmp_path / f"bad-{index}.jsonl"
        path.write_bytes(b"\n".join(orjson.dumps(r) for r in records) + b"\n")
        return path

    def flip_state(r: dict) -> None:
        raw = bytearray(base64.b64decode(r["state"]))
        raw[len(raw) // 2] ^= 0x01
        r["state"] = base64.b64encode(bytes(raw)).decode()

    capsys.readouterr()
    assert verify_export.main([str(altered(4, flip_state))]) == 1
    assert "line 5" in capsys.readouterr().out
    assert verify_export.main([str(altered(4, lambda r: r["data"].update(channel="elsewhere")))]) == 1
    assert "readable fields differ" in capsys.readouterr().out
    dropped = tmp_path / "dropped.jsonl"
    dropped.write_bytes(b"\n".join(lines[:3] + lines[4:]) + b"\n")
    assert verify_export.main([str(dropped)]) == 1
    truncated = tmp_path / "truncated.jsonl"
    truncated.write_bytes(b"\n".join(lines[:-1]) + b"\n")
    assert verify_export.main([str(truncated)]) == 1


# -- signed heads and proofs -----------------------------------------------------------------------------


def test_proofs_verify_with_a_verifier_of_our_own(ledger: Ledger) -> None:
    app, proofs = ledger.app, ledger.app.proofs
    build(app, 0, 2)
    first = ledger.head()
    build(app, 2, 2)
    second = ledger.head()
    assert second.size == app.reader.max_position() and first.size < second.size
    for head in (first, second):
        assert signature_ok(head.size, head.root_hash, head.map_root, micros_of(head), head.signature, ledger.pem)
    assert not signature_ok(
        first.size + 1, first.root_hash, first.map_root, micros_of(first), first.signature, ledger.pem
    )
    assert proofs.head(first.size) == first and proofs.head() == second
    assert ledger.head() == second  # nothing new: the latest head again
    proof = proofs.consistency(first.size, second.size)
    assert roots_from_consistency(first.size, second.size, proof, first.root_hash) == (
        first.root_hash,
        second.root_hash,
    )
    # Every event of number(1)'s streams (the number, its holder, the holder's access log) is in each head,
    # and the head's map holds each stream's version as of it.
    number_id = Number.create_id(number(1))
    streams = [number_id, *app.reader.holders_of(number_id)]
    events = app.reader.chained_streams(streams)
    assert len(events) > 5
    for head in (first, second):
        last: dict[str, int] = {}
        for e in (e for e in events if e.position <= head.size):
            leaf = leaf_of(e.position, e.stream_id, e.version, e.topic, e.state)
            path = proofs.inclusion(e.position - 1, head.size)
            assert root_from_path(leaf, e.position - 1, head.size, path) == head.root_hash
            last[UUID(e.stream_id).hex] = e.version
        for sid in streams:
            entries, siblings = proofs.map_proof(sid, head.size)
            entry, problem = stream_map.verify(sid, entries, siblings, head.map_root)
            assert problem == ""
            assert (entry.version if entry else 0) == last.get(sid.hex, 0)
    # number(3) came after the first head: its stream is not in that head's map.
    entry, problem = stream_map.verify(
        Number.create_id(number(3)), *proofs.map_proof(Number.create_id(number(3)), first.size), first.map_root
    )
    assert problem == "" and entry is None

    whole, one = ledger.verify(), ledger.verify(number(1))
    assert whole.ok and whole.signed_head_size == second.size, whole.problem
    assert one.ok and one.signed_head_size == second.size, one.problem
    key = ["--public-key", str(ledger.public_key)]
    assert verify_ledger.main(["--db", ledger.db, *key]) == 0
    assert verify_ledger.main(["--db", ledger.db, "--number", number(1), *key]) == 0


def test_a_log_far_past_its_last_head_is_signed_in_steps(ledger: Ledger) -> None:
    """What one head checks and holds is bounded: a log more than a step past its last head gets a head
    every step on the way, each a head of the log (its map gives each stream's version as of it), and the
    last one at the log's end, with the same roots a single head there has."""
    app, proofs = ledger.app, ledger.app.proofs
    build(app, 0, 1)
    first = ledger.head()
    build(app, 1, 3)
    size = app.reader.max_position()
    step = 7
    last = publish(proofs, app.reader, ledger.signer, app.batch_key, step=step)
    assert last.size == size
    heads = proofs.heads(above=first.size)
    assert heads[-1] == last and len(heads) > 2
    for earlier, later in zip([first, *heads[:-1]], heads, strict=True):
        # Each step ends at a committed batch's end at most a batch past the step.
        batch = proofs.batch_at(later.size)
        assert later.size - earlier.size >= step or later == last
        assert batch is not None and batch.last == later.size
    for earlier, later in zip([first, *heads[:-1]], heads, strict=True):
        proof = proofs.consistency(earlier.size, later.size)
        assert roots_from_consistency(earlier.size, later.size, proof, earlier.root_hash) == (
            earlier.root_hash,
            later.root_hash,
        )
    for sid in [Number.create_id(number(i)) for i in range(4)]:
        for head in heads:
            entries, siblings = proofs.map_proof(sid, head.size)
            entry, problem = stream_map.verify(sid, entries, siblings, head.map_root)
            versions = [e.version for e in app.reader.chained_streams([sid]) if e.position <= head.size]
            assert problem == "" and (entry.version if entry else 0) == max(versions, default=0)
    assert ledger.verify().ok


@pytest.mark.parametrize("kind", ["missing", "swapped", "invalid_json", "rehashed", "deleted_last"])
def test_tampering_with_a_numbers_history_is_reported(ledger: Ledger, kind: str, capsys) -> None:
    build(ledger.app)
    ledger.head()
    number_id = Number.create_id(number(1))
    store = ledger.store()
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
    report = ledger.verify(number(1))
    assert not report.ok and report.problem, kind
    assert report.first_bad_position or report.stream
    assert not ledger.verify().ok
    capsys.readouterr()
    key = ["--public-key", str(ledger.public_key)]
    assert verify_ledger.main(["--db", ledger.db, "--number", number(1), *key]) == 1
    assert "TAMPERED" in capsys.readouterr().out
    assert verify_ledger.main(["--db", ledger.db]) == 1
    assert ledger.verify(number(2)).ok  # another number's history still proves complete


@pytest.mark.parametrize("kind", ["deleted", "forged"])
def test_events_after_the_last_head_cannot_be_deleted_or_forged_unseen(ledger: Ledger, kind: str) -> None:
    build(ledger.app, 0, 2)
    ledger.head()
    build(ledger.app, 2, 1)  # after the head: number(2)'s whole history
    store = ledger.store()
    try:
        last = store.max_position() if kind == "deleted" else store.positions(Number.create_id(number(2)))[-1]
        if kind == "deleted":
            store.delete(last)
        else:
            store.set_state(last, store.row(last)[3].replace(b"}", b',"note":"forged"}', 1))
            store.rehash_all()  # both chains now match the forged event exactly
    finally:
        store.close()
    whole = ledger.verify()
    assert not whole.ok and whole.first_bad_position == last, whole.problem
    assert not ledger.verify(number(2)).ok
    assert verify_ledger.main(["--db", ledger.db]) == 1
    with pytest.raises(HeadRefused) as refused:
        ledger.head()  # no head is signed over it
    assert refused.value.reason == "LEDGER_TAMPERED"


def test_a_rollback_to_an_earlier_head_is_caught_with_the_later_one(ledger: Ledger) -> None:
    build(ledger.app, 0, 2)
    small = ledger.head().size
    build(ledger.app, 2, 2)
    large = ledger.head().size
    assert small < large and ledger.verify(up_to=large).ok
    store = ledger.store()
    try:
        store.roll_back_to(small)  # every table, consistently: a restored backup
    finally:
        store.close()
    report = ledger.verify(up_to=large)
    assert not report.ok and report.first_bad_position == small + 1 and "rolled back" in report.problem
    assert verify_ledger.main(["--db", ledger.db, "--up-to", str(large)]) == 1


def test_ledger_head_signs_one_on_demand_and_prints_the_public_key(ledger: Ledger, capsys, monkeypatch) -> None:
    if ledger.settings.store.kind == "postgres":
        monkeypatch.setenv("LEDGER_MASTER_KEY", TEST_MASTER_KEY)
    build(ledger.app, 0, 1)
    first = ledger.head()
    build(ledger.app, 1, 1)
    capsys.readouterr()
    assert ledger_main(["head", "--db", ledger.db]) == 0
    printed = orjson.loads(capsys.readouterr().out)
    assert printed["size"] == ledger.app.reader.max_position() > first.size
    assert SignedHead.from_json(printed) == ledger.app.proofs.head()
    assert ledger_main(["head", "--db", ledger.db, "--public-key"]) == 0
    assert capsys.readouterr().out.strip() == public_pem(ledger.signer.public).strip()


def head_file(path: Path, head: SignedHead, **changes: Any) -> Path:
    path.write_bytes(orjson.dumps({**head.to_json(), **changes}))
    return path


def test_an_export_verifies_with_only_a_signed_head_and_the_public_key(ledger: Ledger, tmp_path: Path, capsys) -> None:
    build(ledger.app)
    head = ledger.head()
    build(ledger.app, 3, 1)  # after the head: not in the export
    signed = head_file(tmp_path / "head.json", head)
    out = tmp_path / "export.jsonl"
    export = ["--db", ledger.db, "--number", number(1), "-o", str(out), "--head-size", str(head.size)]
    assert export_history.main(export) == 0
    check = ["--public-key", str(ledger.public_key), "--signed-head", str(signed)]
    capsys.readouterr()
    assert verify_export.main([str(out), *check]) == 0
    assert "complete as of the signed head" in capsys.readouterr().out
    records = [orjson.loads(line) for line in out.read_bytes().splitlines()]

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
    # Another head than the export's is refused.
    other = head_file(tmp_path / "other-head.json", head, size=head.size - 1)
    assert verify_export.main([str(out), "--public-key", str(ledger.public_key), "--signed-head", str(other)]) == 1
    forged_head = {**records[0]["signed_head"], "root_hash": "00" * 32}
    forged = write("forged.jsonl", [{**records[0], "signed_head": forged_head}, *records[1:]])
    capsys.readouterr()
    assert verify_export.main([str(forged), "--public-key", str(ledger.public_key)]) == 1
    assert "signature" in capsys.readouterr().out


# -- events no server wrote ------------------------------------------------------------------------------

FORGERIES = (
    "append past the tree",
    "append with the tree extended",
    "insert before the log's head",
    "insert under the signed head",
)


def forge(store: Store, how: str, victim: str) -> int:
    """Forge one ``Number.Resumed`` of ``victim`` (actor "regulator-forged"); returns its position."""
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


@pytest.mark.parametrize("how", FORGERIES)
def test_an_event_no_server_wrote_is_found_never_signed_and_stops_writes(
    ledger: Ledger, tmp_path: Path, how: str
) -> None:
    app = ledger.app
    build(app, 0, 1)
    ledger.head()
    build(app, 1, 2)
    ledger.head()
    build(app, 3, 2)  # after the head: unsigned, but written by the server
    assert ledger.verify().ok and ledger.verify(number(0)).ok
    store = ledger.store()
    try:
        heads_before = store.head_sizes()
        position = forge(store, how, number(0))
    finally:
        store.close()

    whole = ledger.verify()
    assert not whole.ok and whole.first_bad_position == position, whole.problem
    one = ledger.verify(number(0))
    assert not one.ok and one.first_bad_position == position, one.problem
    key = ["--master-key-file", str(ledger.master_key_file(tmp_path))]
    assert verify_ledger.main(["--db", ledger.db, *key]) == 1
    assert verify_ledger.main(["--db", ledger.db, "--number", number(0), *key]) == 1
    if how.startswith("append"):  # an insert moves every later event: all of them fail
        assert ledger.verify(number(4)).ok  # a number the forgery does not touch still verifies

    # An ordinary command, then a head: nothing is written or signed over the forged event.
    with pytest.raises(LedgerTampered) as refused:
        execute(app, ProvisionNumbers(numbers=[number(50)]), request_id="after", actor="t")
    assert refused.value.reason == "LEDGER_TAMPERED"
    try:
        head = ledger.head()
    except (HeadRefused, LedgerTampered) as e:
        assert e.reason == "LEDGER_TAMPERED"
    else:
        assert head.size < position
    store = ledger.store()
    try:
        signed_after = [size for size in store.head_sizes() if size not in heads_before]
    finally:
        store.close()
    assert all(size < position for size in signed_after), signed_after
    with pytest.raises(LedgerTampered):
        execute(app, ProvisionNumbers(numbers=[number(51)]), request_id="again", actor="t")
    assert ledger.verify().first_bad_position == position
