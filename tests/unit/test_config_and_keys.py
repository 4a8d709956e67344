"""Policy files, store URLs and the personal-data vault."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID, uuid4

import pytest

from ledger.config import Settings, StoreConfig
from ledger.keys.crypto import KeyStoreError, MasterKey
from ledger.keys.identity import identity_key
from ledger.keys.stores import SQLiteKeyStore
from ledger.keys.vault import PersonalDataVault
from ledger.policy import ConfigError, Policy


def test_policy_defaults_match_the_design() -> None:
    p = Policy()
    assert (p.quarantine_days, p.max_numbers_per_identity, p.required_holders, p.timezone) == (
        90,
        5,
        ("crm", "billing", "voicemail"),
        "UTC",
    )


def test_policy_file_overrides_and_validates(tmp_path: Path) -> None:
    f = tmp_path / "policy.toml"
    f.write_text('quarantine_days = 45\nrequired_holders = ["crm", "apps"]\ntimezone = "Asia/Shanghai"\n')
    p = Policy.from_toml(f)
    assert p.quarantine_days == 45 and p.required_holders == ("crm", "apps") and p.max_numbers_per_identity == 5
    f.write_text("[policy]\nmax_numbers_per_identity = 3\n")
    assert Policy.from_toml(f).max_numbers_per_identity == 3
    for bad in (
        'timezone = "Mars/Base"',
        "quarantine_days = -1",
        'quarantine_days = "9"',
        "colour = 1",
        'required_holders = ["CRM"]',
        "quarantine_days = [",
    ):
        f.write_text(bad + "\n")
        with pytest.raises(ConfigError):
            Policy.from_toml(f)


def test_store_urls() -> None:
    assert StoreConfig.from_url("sqlite:///ledger.db").sqlite_path == Path("ledger.db")
    cfg = StoreConfig.from_url("sqlite:////srv/data/l.db")
    assert cfg.sqlite_path == Path("/srv/data/l.db")
    assert cfg.key_store_path() == Path("/srv/data/l.keys.db")
    assert cfg.default_master_key_path() == Path("/srv/data/l.master.key")
    pg = StoreConfig.from_url("postgresql://u:p%40ss@db.example:6432/ledger")
    assert pg.postgres == {"host": "db.example", "port": "6432", "user": "u", "password": "p@ss", "dbname": "ledger"}
    # What GetStatus shows: where the store is, never its password.
    assert pg.public_url() == "postgresql://u@db.example:6432/ledger"
    assert StoreConfig.from_url("postgresql://db.example/ledger").public_url() == "postgresql://db.example:5432/ledger"
    assert cfg.public_url() == "sqlite:////srv/data/l.db"
    for bad in ("mysql://x/y", "sqlite://", "postgresql://host/"):
        with pytest.raises(ConfigError):
            StoreConfig.from_url(bad)


def test_settings_from_environment() -> None:
    s = Settings.build(environ={"LEDGER_LISTEN": "0.0.0.0:6000", "LEDGER_DB": "sqlite:///x.db"})
    assert s.listen == "0.0.0.0:6000" and s.store.sqlite_path == Path("x.db")
    assert Settings.build(listen="127.0.0.1:1", environ={"LEDGER_LISTEN": "0.0.0.0:6000"}).listen == "127.0.0.1:1"


def test_master_key_file_is_created_private_and_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "k" / "ledger.master.key"
    key = MasterKey.load_or_create(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert MasterKey.load_or_create(path).derive("x") == key.derive("x")
    with pytest.raises(KeyStoreError):
        MasterKey.from_text("c2hvcnQ=")


def test_vault_seals_opens_and_shreds(tmp_path: Path) -> None:
    store = SQLiteKeyStore(str(tmp_path / "keys.db"))
    vault = PersonalDataVault(MasterKey.load_or_create(tmp_path / "m.key"), store)
    a, b = uuid4(), uuid4()
    vault.create_key(a)
    vault.create_key(b)
    token = vault.seal(a, {"full_name": "Zhao Secretname"})
    assert "Secretname" not in token and vault.open(a, token) == {"full_name": "Zhao Secretname"}
    # Ciphertext is bound to its subscriber: b's key cannot open a's data.
    with pytest.raises(KeyStoreError):
        vault.open(b, token)
    vault.destroy(a)
    assert vault.open(a, token) is None and not vault.has_key(a)
    # A fresh vault (no cache) agrees after a restart.
    fresh = PersonalDataVault(MasterKey.load_or_create(tmp_path / "m.key"), SQLiteKeyStore(str(tmp_path / "keys.db")))
    assert fresh.open(a, token) is None
    assert fresh.open(b, vault.seal(b, {"x": 1})) == {"x": 1}


def test_a_different_master_key_cannot_unwrap_data_keys(tmp_path: Path) -> None:
    store = SQLiteKeyStore(str(tmp_path / "keys.db"))
    sid = uuid4()
    PersonalDataVault(MasterKey.load_or_create(tmp_path / "m1.key"), store).create_key(sid)
    # The check value of the epoch's wrapping key (made of the epoch secret and the master key) differs.
    with pytest.raises(KeyStoreError, match="does not belong to this key store"):
        PersonalDataVault(MasterKey.load_or_create(tmp_path / "m2.key"), store)


def test_identity_key_is_keyed_and_stable(tmp_path: Path) -> None:
    store = SQLiteKeyStore(":memory:")
    v1 = PersonalDataVault(MasterKey.load_or_create(tmp_path / "m1.key"), store)
    v2 = PersonalDataVault(MasterKey.load_or_create(tmp_path / "m2.key"), SQLiteKeyStore(":memory:"))
    a, b = uuid4(), uuid4()

    def key(vault: PersonalDataVault, id_type: str, sid: UUID) -> str:
        return identity_key(vault, id_type, "E1", sid, legacy_in_use=lambda _key: False)

    # Two records of one person share the key (the cap counts across them); other ids and ledgers differ.
    assert key(v1, "PASSPORT", a) == key(v1, "PASSPORT", b)
    assert key(v1, "PASSPORT", a) != key(v1, "OTHER", a)
    assert key(v1, "PASSPORT", a) != key(v2, "PASSPORT", a)
    # Not the master-derived key of before: that one anybody with the master key can recompute.
    assert key(v1, "PASSPORT", a) != v1.legacy_identity_key("PASSPORT", "E1")
