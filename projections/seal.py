"""Rows the answers are read from carry a keyed hash, so a row edited behind the server's back is found by
the reader before it decides anything.

The threat: someone who can write the views database (``ledger.views.db``, or the views' schema in
PostgreSQL) but holds no key kept outside it. Each sealed row has a ``mac`` column: the first 16 bytes
of HMAC-SHA256 over its other columns (in the order ``Sealed.columns`` names them, as JSON), under a key
for its table in the store (the name with the generation's suffix, so a row copied to another table or
generation fails), derived from the operator's master key (HKDF, label ``ROW_KEY_LABEL``). The projector
writes the hashes in the batch's transaction, after the batch's rows; the audit's repair writes those of
the rows it rewrites; readers check them.

What the hashes cannot show: a row put back as it was earlier (a copy of an older, authentic version of
the same row); ``ledger audit-views`` (a replay from the log) finds that.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

if TYPE_CHECKING:
    from projections.views import View

ROW_KEY_LABEL = "ledger/view-rows/v1"
MAC_BYTES = 16
CHUNK = 500

_digest = hmac.digest
_dumps = orjson.dumps
_same = hmac.compare_digest


class Sealed(NamedTuple):
    """A table whose rows carry a keyed hash: its key column, the columns hashed (readers read them in
    this order, the hash after them), and the condition selecting the rows of some number ids
    (``{ids}`` stands for their placeholders)."""

    table: str
    key: str
    columns: tuple[str, ...]
    of_numbers: str


class RowSeal:
    """Computes and checks the keyed hashes of view rows under a secret kept outside the views database."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._keys: dict[str, bytes] = {}

    def key(self, table: str) -> bytes:
        """The key of one table as the store names it (``rm_checks__g3``), derived once."""
        key = self._keys.get(table)
        if key is None:
            key = self._keys[table] = _digest(self._secret, b"table:" + table.encode(), "sha256")
        return key

    @staticmethod
    def mac(key: bytes, values: Sequence[Any]) -> str:
        """The hash of a row's values (the key from ``key``)."""
        return _digest(key, _dumps(values), "sha256")[:MAC_BYTES].hex()

    @staticmethod
    def holds(key: bytes, values: Sequence[Any], mac: str | None) -> bool:
        """Whether ``mac`` is the hash of these values."""
        return mac is not None and _same(_digest(key, _dumps(values), "sha256")[:MAC_BYTES].hex(), mac)

    def tag(self, text: str) -> str:
        """A short keyed hash of a row's key, for logs: it names the row without naming the number."""
        return _digest(self._secret, b"log:" + text.encode(), "sha256")[:6].hex()


def seal_rows(cur: Any, view: View | type[View], suffix: str, number_ids: Sequence[str], seal: RowSeal) -> None:
    """Write the hashes of a view's sealed rows of these numbers (``cur`` names tables as the generation
    with ``suffix`` is written: a renaming cursor)."""
    for spec in view.sealed:
        key = seal.key(spec.table + suffix)
        at = spec.columns.index(spec.key)
        select = f"SELECT {', '.join(spec.columns)} FROM {spec.table} WHERE "
        update = f"UPDATE {spec.table} SET mac=? WHERE {spec.key}=?"
        for start in range(0, len(number_ids), CHUNK):
            part = number_ids[start : start + CHUNK]
            rows = cur.execute(select + spec.of_numbers.format(ids=",".join("?" * len(part))), part).fetchall()
            for row in rows:
                cur.execute(update, (seal.mac(key, tuple(row)), row[at]))
