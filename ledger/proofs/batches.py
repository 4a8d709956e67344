"""Batch authentication: only events a ledger server wrote are trusted.

The threat: someone who can write the database but holds none of the keys kept outside it (the master
key, the head-signing key). Such a writer can recompute both hash chains and the Merkle tree over an
event of its own; it cannot compute the MAC below.

Every transaction that inserts events (a command, a group commit, an import segment) stores, in the
same transaction, one row in ``batch_macs``: its first and last position and
``HMAC-SHA256(batch key, "ledger-batch-v1" | first | last | leaf(first) | ... | leaf(last))``, where a
leaf is the event's Merkle leaf hash (position, stream, version, topic and stored bytes) and the batch
key is derived from the master key (HKDF, ``ledger/batch-mac/v1``). ``ledger_marks`` holds the store's
facts that only a key holder may set, each with its own MAC:

- ``macs_from``: the position from which every event must lie in an authenticated batch (1 for a
  ledger created with batch authentication; the log's end + 1 when an older ledger migrated: the
  events before it are covered by the signed heads only);
- ``tree_off``: the Merkle tree was turned off on purpose (``ledger migrate`` with
  ``LEDGER_MERKLE_TREE=0``); without it, an event past the tree is one no server wrote.

A batch that does not verify is reported at its first position: the MAC authenticates a transaction,
not each event in it.
"""

from __future__ import annotations

import hmac
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from ledger.domain import errors
from ledger.proofs.merkle import event_leaf_hash

if TYPE_CHECKING:
    from eventsourcing.persistence import StoredEvent

    from ledger.keys.crypto import MasterKey

BATCH_TABLE, MARKS_TABLE = "batch_macs", "ledger_marks"
MACS_FROM, TREE_OFF = "macs_from", "tree_off"
UNAUTHENTICATED = "no ledger server wrote"  # in every problem of an event a server did not write
CONTEXT = b"ledger-batch-v1"


class Batch(NamedTuple):
    """One authenticated transaction: its positions and their MAC."""

    first: int
    last: int
    mac: bytes


class Mark(NamedTuple):
    """A fact about the store that only a key holder can record (``macs_from``, ``tree_off``)."""

    position: int
    mac: bytes


class LedgerTampered(errors.RuleViolation):
    """Raised when events are found that no ledger server wrote (a batch without a valid MAC, an event
    past the tree that was never turned off): nothing is written or signed over them."""

    reason = "LEDGER_TAMPERED"

    def __init__(self, message: str, position: int = 0) -> None:
        super().__init__(message, position=str(position))
        self.position = position


class BatchStore(Protocol):
    """The stored batch rows and marks (``ProofStore`` on SQL, the in-memory recorder)."""

    def marks(self) -> dict[str, Mark]:
        """Every mark by name."""

    def batches(self, after: int, limit: int) -> list[Batch]:
        """Up to ``limit`` batches whose first position is above ``after``, in order."""

    def batch_at(self, position: int) -> Batch | None:
        """The batch that holds ``position`` (None when none does)."""

    def record_mark(self, name: str, mark: Mark) -> None:
        """Record a mark (kept when one of that name is there)."""

    def drop_mark(self, name: str) -> None:
        """Remove a mark."""


class BatchKey:
    """The key the ledger's servers authenticate their batches with (derived from the master key)."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def from_master(cls, master: MasterKey) -> BatchKey:
        """The batch key of this master key."""
        return cls(master.derive("ledger/batch-mac/v1"))

    def seal(self, first: int, last: int, leaves: Iterable[bytes]) -> bytes:
        """The MAC of a batch from its positions and its events' leaf hashes."""
        h = hmac.new(self._key, CONTEXT + struct.pack(">QQ", first, last), "sha256")
        for leaf in leaves:
            h.update(leaf)
        return h.digest()

    def seal_events(self, events: Sequence[StoredEvent], positions: Sequence[int]) -> Batch:
        """The batch row of newly inserted events (at gap-free ``positions``)."""
        leaves = (
            event_leaf_hash(p, e.originator_id, e.originator_version, e.topic, e.state)
            for e, p in zip(events, positions, strict=True)
        )
        return Batch(positions[0], positions[-1], self.seal(positions[0], positions[-1], leaves))

    def mark(self, name: str, position: int) -> Mark:
        """A mark with its MAC."""
        return Mark(position, self._mark_mac(name, position))

    def check_mark(self, name: str, mark: Mark) -> bool:
        """Whether a stored mark is one a key holder recorded."""
        return hmac.compare_digest(self._mark_mac(name, mark.position), mark.mac)

    def _mark_mac(self, name: str, position: int) -> bytes:
        message = b"ledger-mark-v1" + struct.pack(">I", len(name)) + name.encode() + struct.pack(">Q", position)
        return hmac.digest(self._key, message, "sha256")


def macs_from(key: BatchKey | None, marks: dict[str, Mark], has_batches: bool) -> int:
    """The position from which batches must be authenticated. A store without marks and without batches
    predates batch authentication (nothing is required until it migrates); marks missing beside batches,
    or a mark whose MAC fails (checked when ``key`` is given), is tampering."""
    mark = marks.get(MACS_FROM)
    if mark is None:
        if has_batches:
            raise LedgerTampered("the store's batch-authentication mark was removed")
        return 1 << 62
    if key is not None and not key.check_mark(MACS_FROM, mark):
        raise LedgerTampered("the store's batch-authentication mark was not recorded by a ledger server")
    if key is not None and TREE_OFF in marks and not key.check_mark(TREE_OFF, marks[TREE_OFF]):
        raise LedgerTampered("the store's tree-off mark was not recorded by a ledger server")
    return mark.position


def untreed_problem(marks: dict[str, Mark], start: int, tree_size: int, events: int) -> tuple[int, str]:
    """(position, problem) of the first authenticated position past the tree when the tree was never
    turned off (``ledger migrate`` records that); (0, "") otherwise. Needs no key."""
    first = max(tree_size + 1, start)
    if first > events or TREE_OFF in marks:
        return 0, ""
    return first, (
        f"position {first} is past the Merkle tree ({tree_size} leaves) and the tree was never turned off: "
        "an event no ledger server wrote"
    )


class BatchFeed:
    """Checks events fed in position order (from any position) against their batches' MACs; raises
    LedgerTampered at the first event outside an authenticated batch, or the first position of a batch
    whose MAC fails."""

    def __init__(
        self, key: BatchKey, start: int, batches: Callable[[int], Iterator[Batch]], *, untreed: bool = True
    ) -> None:
        self.key, self.start, self.untreed = key, start, untreed
        self._batches = batches
        self._upcoming: Iterator[Batch] | None = None
        self._next: Batch | None = None
        self._current: Batch | None = None
        self._leaves: list[bytes] = []

    def add(self, position: int, leaf: bytes) -> None:
        """Feed one event's leaf hash."""
        if position < self.start:
            return
        if not self.untreed:
            raise LedgerTampered(
                f"position {position} is past the Merkle tree and the tree was never turned off: an event no "
                "ledger server wrote",
                position,
            )
        if self._current is None:
            if self._upcoming is None:
                self._upcoming = self._batches(position - 1)
                self._next = next(self._upcoming, None)
            while self._next is not None and self._next.first < position:
                self._next = next(self._upcoming, None)
            if self._next is None or self._next.first != position:
                raise LedgerTampered(
                    f"position {position} lies in no authenticated batch: no ledger server wrote it", position
                )
            self._current, self._next, self._leaves = self._next, next(self._upcoming, None), []
        batch = self._current
        self._leaves.append(leaf)
        if position == batch.last:
            if not hmac.compare_digest(self.key.seal(batch.first, batch.last, self._leaves), batch.mac):
                raise LedgerTampered(
                    f"the batch of positions {batch.first}-{batch.last} does not verify against its MAC: "
                    "events no ledger server wrote",
                    batch.first,
                )
            self._current = None

    def close(self) -> None:
        """The events fed are all there are: a batch left open lost its last events."""
        if self._current is not None:
            batch = self._current
            raise LedgerTampered(
                f"the batch of positions {batch.first}-{batch.last} lost events "
                f"after position {batch.first - 1 + len(self._leaves)}",
                batch.first + len(self._leaves),
            )


def batch_reader(store: BatchStore, chunk: int = 5000) -> Callable[[int], Iterator[Batch]]:
    """The batches above a position, read lazily in chunks."""

    def read(after: int) -> Iterator[Batch]:
        while True:
            rows = store.batches(after, chunk)
            yield from rows
            if len(rows) < chunk:
                return
            after = rows[-1].first

    return read


def check_log(key: BatchKey, store: BatchStore, reader: Any, end: int = 0) -> tuple[int, str]:
    """(position, problem) of the first event after ``macs_from`` (up to ``end`` when given, else up to the
    head when the check begins) that no ledger server wrote; (0, "") when every batch verifies."""
    try:
        # The head is taken before the batches are read: an event committed later (with its batch) may be
        # read by the reader's next page but not be among the batches already read, and is no forgery.
        head = end or reader.max_position()
        start = macs_from(key, store.marks(), bool(store.batches(0, 1)))
        feed = BatchFeed(key, start, batch_reader(store))
        for e in reader.chained(after=max(0, start - 1)):
            if e.position > head:
                break
            feed.add(e.position, event_leaf_hash(e.position, e.stream_id, e.version, e.topic, e.state))
        if not end:
            feed.close()
    except LedgerTampered as t:
        return t.position, str(t.args[0])
    return 0, ""


def _only(batch: Batch) -> Callable[[int], Iterator[Batch]]:
    return lambda _after: iter([batch])


def check_positions(key: BatchKey, store: BatchStore, reader: Any, positions: Sequence[int]) -> tuple[int, str]:
    """(position, problem) of the first of these positions (one number's events) that lies in no
    authenticated batch, or in one whose MAC fails (each batch's events read back whole)."""
    try:
        start = macs_from(key, store.marks(), bool(store.batches(0, 1)))
        done: set[int] = set()
        for position in sorted(positions):
            if position < start or position in done:
                continue
            batch = store.batch_at(position)
            if batch is None:
                raise LedgerTampered(
                    f"position {position} lies in no authenticated batch: no ledger server wrote it", position
                )
            feed = BatchFeed(key, start, _only(batch))
            for e in reader.chained(after=batch.first - 1, batch=batch.last - batch.first + 1):
                if e.position > batch.last:
                    break
                feed.add(e.position, event_leaf_hash(e.position, e.stream_id, e.version, e.topic, e.state))
            feed.close()
            done.update(range(batch.first, batch.last + 1))
    except LedgerTampered as t:
        return t.position, str(t.args[0])
    return 0, ""


Query = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]


class BatchWriter:
    """A recorder's side of batch authentication, inside the transaction that inserts events: the log
    must end where the last authenticated batch ends (else events were slipped in after it, and nothing
    is written over them), and the new batch is sealed. Until ``key`` is set nothing can be written."""

    def __init__(self, *, prefix: str = "", mark: str = "?") -> None:
        self.key: BatchKey | None = None
        self.start = 0  # macs_from, set when the store was prepared
        self.tampered = ""  # once tampering is seen, every write is refused
        self.end = -1  # the last position this writer sealed and saw committed
        self._prefix, self._mark = prefix, mark

    def seal(self, query: Query, events: Sequence[StoredEvent], positions: Sequence[int]) -> Batch:
        """The batch row of these events, after checking that nothing unauthenticated precedes them."""
        if self.key is None or not self.start:
            raise RuntimeError("the recorder was given no batch key")
        if self.tampered:
            raise LedgerTampered(f"writes are refused: {self.tampered}")
        before = positions[0] - 1
        if before >= self.start and before != self.end:
            rows = query(
                f"SELECT last_position FROM {self._prefix}{BATCH_TABLE} ORDER BY first_position DESC LIMIT 1", []
            )
            sealed = int(rows[0][0]) if rows else self.start - 1
            if sealed != before:
                self.tampered = (
                    f"the log ends at position {before} but the last authenticated batch at {sealed}: "
                    f"events no ledger server wrote follow position {sealed}"
                )
                raise LedgerTampered(self.tampered, sealed + 1)
        return self.key.seal_events(events, positions)

    def insert_sql(self) -> str:
        """The statement that stores a batch row."""
        return f"INSERT INTO {self._prefix}{BATCH_TABLE} VALUES ({self._mark}, {self._mark}, {self._mark})"

    def catch_up_feed(self, query: Query) -> BatchFeed:
        """The check of events the tree is about to catch up over (in the inserting transaction)."""
        if self.key is None or not self.start:
            raise RuntimeError("the recorder was given no batch key")
        names = {str(r[0]) for r in query(f"SELECT name FROM {self._prefix}{MARKS_TABLE}", [])}

        def batches(after: int) -> Iterator[Batch]:
            rows = query(
                f"SELECT first_position, last_position, mac FROM {self._prefix}{BATCH_TABLE} "
                f"WHERE first_position > {self._mark} ORDER BY first_position",
                [after],
            )
            return iter(Batch(int(r[0]), int(r[1]), bytes(r[2])) for r in rows)

        return BatchFeed(self.key, self.start, batches, untreed=TREE_OFF in names)


def prepare(key: BatchKey, store: BatchStore, end: int) -> int:
    """At open: the position from which batches are authenticated, recorded in the store when it
    has no mark yet (a new ledger: 1; an older one: its end + 1, the events before covered by the signed
    heads only). LedgerTampered when the marks were removed or forged."""
    marks = store.marks()
    if MACS_FROM not in marks and not store.batches(0, 1):
        store.record_mark(MACS_FROM, key.mark(MACS_FROM, end + 1))
        marks = store.marks()
    return macs_from(key, marks, True)
