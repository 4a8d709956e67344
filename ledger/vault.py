"""The personal-data vault; it lives in ``ledger.keys`` (this module keeps the old import path)."""

from ledger.keys import KeyStore, KeyStoreError, MasterKey, PersonalDataVault
from ledger.keys.vault import TOKEN_PREFIX

__all__ = ["TOKEN_PREFIX", "KeyStore", "KeyStoreError", "MasterKey", "PersonalDataVault"]
