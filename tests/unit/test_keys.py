"""The key hierarchy: the epoch file's ratchet, the end of an epoch (work proportional to the erasures),
processes sharing one store through it, the migration of keys wrapped under the master key, and
identity keys that cannot be recomputed once the person's last record is erased."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from ledger.keys import EpochFile, KeyStoreError, MasterKey, PersonalDataVault, SQLiteKeyStore
from ledger.keys.epoch import LINE_BYTES, next_secret
from ledger.keys.identity import SaltConflictError, identity_key, plan_identity, release_identity
from ledger.keys.rotation import end_epoch


def vault_at(folder: Path, epoch_name: str = "epoch.key", buckets: int = 64) -> PersonalDataVault:
    return PersonalDataVault(
        MasterKey.load_or_create(folder / "master.key"),
        SQLiteKeyStore(str(folder / "keys.db")),
        EpochFile(folder / epoch_name),
        buckets=buckets,
    )


def test_the_epoch_file_moves_forward_in_place_and_never_back(tmp_path: Path) -> None:
    path = tmp_path / "e.key"
    EpochFile(path).create(0, b"\x01" * 32)
    first = path.read_bytes()
    secret = EpochFile(path).advance(3)
    assert secret == next_secret(next_secret(next_secret(b"\x01" * 32)))
    after = path.read_bytes()
    assert len(first) == len(after) == LINE_BYTES and first != after
    assert EpochFile(path).read() == (3, secret)
    assert EpochFile(path).advance(3) == secret  # already there: unchanged
    with pytest.raises(KeyStoreError, match="restored from an older copy"):
        EpochFile(path).advance(2)


def test_ending_an_epoch_rewraps_only_the_buckets_that_had_an_erasure(tmp_path: Path) -> None:
    vault = vault_at(tmp_path)
    sids = [uuid4() for _ in range(400)]
    vault.store_keys([vault.new_key(s) for s in sids])
    tokens = {s: vault.seal(s, {"n": str(s)}) for s in sids}
    erased = sids[:3]
    for sid in erased:
        vault.destroy(sid)
    marked = {vault.bucket_of(s) for s in erased}
    rotation = end_epoch(vault)
    assert rotation is not None and rotation.epoch == 1 and rotation.marked_buckets == len(marked)
    # Work: the survivors of the marked buckets (about 3 * 400 / 64), not the 400 subscribers.
    expected = sum(vault.bucket_of(s) in marked for s in sids[3:])
    assert rotation.rewrapped_data_keys == expected < 400 // 4
    quiet = end_epoch(vault)
    assert quiet is not None and quiet.marked_buckets == 0 and quiet.rewrapped_data_keys == 0
    fresh = vault_at(tmp_path)
    assert fresh.epoch == 2
    assert all(fresh.open(s, tokens[s]) == {"n": str(s)} for s in sids[3:])
    assert all(fresh.open(s, tokens[s]) is None for s in erased)


def test_two_hosts_share_a_store_and_follow_an_epoch_ended_by_the_other(tmp_path: Path) -> None:
    a = vault_at(tmp_path, "host-a.epoch.key", buckets=4)
    shutil.copy(tmp_path / "host-a.epoch.key", tmp_path / "host-b.epoch.key")  # given once, when host b is set up
    b = vault_at(tmp_path, "host-b.epoch.key")
    first = uuid4()
    b.create_key(first)
    token = b.seal(first, {"x": 1})
    victim = next(s for s in (uuid4() for _ in range(100)) if a.bucket_of(s) == a.bucket_of(first))
    a.create_key(victim)
    a.destroy(victim)
    assert end_epoch(a) is not None
    # b still holds the old bucket key in memory; its next key in that bucket is wrapped again under the
    # new one (the store refuses the stale wrapping), and it reads a's keys after following the epoch.
    late = next(s for s in (uuid4() for _ in range(100)) if b.bucket_of(s) == b.bucket_of(first))
    b.create_key(late)
    late_token = b.seal(late, {"y": 2})
    assert (
        b.epoch == 1
        and EpochFile(tmp_path / "host-b.epoch.key").read() == EpochFile(tmp_path / "host-a.epoch.key").read()
    )
    fresh_a = vault_at(tmp_path, "host-a.epoch.key")
    assert fresh_a.open(late, late_token) == {"y": 2} and fresh_a.open(first, token) == {"x": 1}


def test_keys_wrapped_under_the_master_key_are_moved_under_buckets_at_start(tmp_path: Path) -> None:
    master = MasterKey.load_or_create(tmp_path / "master.key")
    store = SQLiteKeyStore(str(tmp_path / "keys.db"))
    old = uuid4()
    data_key = b"\x07" * 32
    # A row as the scheme before epochs wrote it: under the master key, no bucket.
    store._conn.execute(
        "INSERT INTO data_keys (subscriber_id, wrapped_key, created_at) VALUES (?, ?, '2025-01-01')",
        (str(old), master.wrap(data_key, old.bytes)),
    )
    vault = PersonalDataVault(master, store, EpochFile(tmp_path / "epoch.key"), buckets=16)
    row = store._conn.execute("SELECT wrapped_key, bucket FROM data_keys").fetchone()
    assert row[1] == vault.bucket_of(old)
    with pytest.raises(KeyStoreError):
        master.unwrap(bytes(row[0]), old.bytes)  # no longer under the master key alone
    assert vault._data_key(old) == data_key


def test_an_identity_key_cannot_be_recomputed_after_the_last_record_is_erased(tmp_path: Path) -> None:
    vault = vault_at(tmp_path)
    a, b = uuid4(), uuid4()
    live = {a, b}

    def key(sid: UUID, id_number: str = "E1234567") -> str:
        return identity_key(vault, "PASSPORT", id_number, sid, legacy_in_use=lambda _k: False)

    shared = key(a)
    assert key(b) == shared  # one person, two records: the cap counts them together
    live.discard(a)
    assert release_identity(vault, "PASSPORT", "E1234567", a, lambda s: s in live) is False
    assert key(uuid4()) == shared  # b lives: the salt stays, the cap still counts across records
    live.discard(b)
    assert release_identity(vault, "PASSPORT", "E1234567", b, lambda s: s in live) is True
    end_epoch(vault)
    # Nothing the operator keeps recomputes the old key: the salt is gone, and the master-derived key
    # (the scheme before salts) differs from it. A new registration of the same ID starts afresh.
    assert vault.legacy_identity_key("PASSPORT", "E1234567") != shared
    assert key(uuid4()) != shared
    assert vault.store._conn.execute("SELECT count(*) FROM identity_salts").fetchone()[0] == 1  # type: ignore[attr-defined]


def test_an_identity_counted_under_its_key_from_before_salts_keeps_it(tmp_path: Path) -> None:
    master = MasterKey.load_or_create(tmp_path / "master.key")
    store = SQLiteKeyStore(str(tmp_path / "keys.db"))
    old = uuid4()
    store._conn.execute(
        "INSERT INTO data_keys (subscriber_id, wrapped_key, created_at) VALUES (?, ?, '2025-01-01')",
        (str(old), master.wrap(b"\x07" * 32, old.bytes)),
    )
    vault = PersonalDataVault(master, store, EpochFile(tmp_path / "epoch.key"), buckets=16)
    assert vault.legacy_identities  # a ledger from before salts: its identities may be counted the old way
    legacy = vault.legacy_identity_key("PASSPORT", "L1")
    assert identity_key(vault, "PASSPORT", "L1", uuid4(), legacy_in_use=lambda k: k == legacy) == legacy
    assert identity_key(vault, "PASSPORT", "N1", uuid4(), legacy_in_use=lambda k: k == legacy) != legacy
    # A ledger born with salts never asks (no lookup in the event store per registration).
    (tmp_path / "new").mkdir()
    assert not vault_at(tmp_path / "new").legacy_identities


def test_a_salt_created_by_another_writer_meanwhile_makes_the_registration_run_again(tmp_path: Path) -> None:
    vault = vault_at(tmp_path)
    first_key, first = plan_identity(vault, "PASSPORT", "R1", uuid4(), legacy_in_use=lambda _k: False)
    second_key, second = plan_identity(vault, "PASSPORT", "R1", uuid4(), legacy_in_use=lambda _k: False)
    assert first is not None and second is not None and first_key != second_key  # two fresh salts
    vault.store_keys([], [first])
    with pytest.raises(SaltConflictError):  # an IntegrityError: the pipeline retries the command
        vault.store_keys([], [second])
    again_key, again = plan_identity(vault, "PASSPORT", "R1", uuid4(), legacy_in_use=lambda _k: False)
    assert again_key == first_key and again is not None and not again.is_new


def test_an_idle_process_ratchets_its_hosts_file_after_another_ends_the_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ledger.keys.vault.SYNC_SECONDS", 0.05)
    a = vault_at(tmp_path, "host-a.epoch.key")
    shutil.copy(tmp_path / "host-a.epoch.key", tmp_path / "host-b.epoch.key")
    b = vault_at(tmp_path, "host-b.epoch.key")
    b.follow()
    end_epoch(a)
    deadline = time.monotonic() + 30
    while EpochFile(tmp_path / "host-b.epoch.key").read()[0] != 1:  # type: ignore[index]
        assert time.monotonic() < deadline, "host b's file stayed at the old epoch"
        time.sleep(0.05)
    b.store.close()


def test_the_key_stored_first_is_the_one_every_writer_seals_under(tmp_path: Path) -> None:
    a, b = vault_at(tmp_path), vault_at(tmp_path)  # two processes on one key store
    sid = uuid4()
    first = a.store_keys([a.new_key(sid)])[sid]
    second = b.store_keys([b.new_key(sid)])[sid]
    assert second == first
    token = b.seal(sid, {"n": 1}, second)
    assert vault_at(tmp_path).open(sid, token) == {"n": 1}


def test_a_failed_key_store_leaves_no_key_behind_in_memory(tmp_path: Path) -> None:
    vault = vault_at(tmp_path)
    sid = uuid4()
    vault.store._conn.execute("CREATE TRIGGER fault BEFORE INSERT ON data_keys BEGIN SELECT RAISE(ABORT, 'x'); END")
    made = vault.new_key(sid)
    with pytest.raises(Exception, match="x"):
        vault.store_keys([made])
    assert not vault.has_key(sid) and vault.stored_key(sid) is None
    with pytest.raises(KeyStoreError):
        vault.seal(sid, {"n": 1})  # nothing to seal under until a key is stored
    vault.store._conn.execute("DROP TRIGGER fault")
    assert vault.store_keys([vault.new_key(sid)])[sid] != made[1]


def test_no_key_is_made_again_for_an_erased_subscriber(tmp_path: Path) -> None:
    from ledger.keys.tables import ErasedKeyError

    vault = vault_at(tmp_path)
    sid = uuid4()
    vault.create_key(sid)
    vault.destroy(sid)
    with pytest.raises(ErasedKeyError):
        vault.store_keys([vault.new_key(sid)])
    assert not vault.has_key(sid)
