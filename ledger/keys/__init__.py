"""Keys of personal data: the master key, the epoch secret and its ratchet, bucket keys, data keys,
identity salts, and the key stores that hold them wrapped (see ``vault`` for the hierarchy)."""

from ledger.keys.crypto import KeyStoreError, MasterKey
from ledger.keys.epoch import EpochFile
from ledger.keys.stores import MemoryKeyStore, PostgresKeyStore, SQLiteKeyStore
from ledger.keys.tables import KeyTables
from ledger.keys.vault import PersonalDataVault

KeyStore = KeyTables

__all__ = [
    "EpochFile",
    "KeyStore",
    "KeyStoreError",
    "KeyTables",
    "MasterKey",
    "MemoryKeyStore",
    "PersonalDataVault",
    "PostgresKeyStore",
    "SQLiteKeyStore",
]
