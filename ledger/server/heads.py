"""Signed heads at the server: the publisher that signs one at the policy's interval (and on demand),
and the conversions of heads and proofs to their messages."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING
from uuid import UUID

from google.protobuf import timestamp_pb2

from ledger.domain import errors
from ledger.proofs.batches import UNAUTHENTICATED
from ledger.proofs.publish import HeadRefused, publish
from ledger.server.convert import ledger_event
from ledger.v1 import history_service_pb2 as pb

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ledger.application import LedgerApplication
    from ledger.application.reads import HistoryItem
    from ledger.proofs import stream_map
    from ledger.proofs.heads import HeadSigner, SignedHead
    from ledger.proofs.store import ProofStore

log = logging.getLogger(__name__)


class ProofsUnavailable(errors.RuleViolation):
    """Raised when proofs are asked of a store that keeps none (the in-memory store of tests)."""

    reason = "PROOFS_UNAVAILABLE"


class HeadPublisher:
    """Signs a head when asked and, every ``interval`` seconds while the log grows, on its own."""

    def __init__(self, app: LedgerApplication, signer: HeadSigner, interval: float) -> None:
        self.app, self.signer, self.interval = app, signer, interval
        self._lock = threading.Lock()  # one head at a time in this process
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def store(self) -> ProofStore:
        """The proof tables; ProofsUnavailable on a store without them."""
        if self.app.proofs is None:
            raise ProofsUnavailable("this store keeps no Merkle tree or signed heads")
        return self.app.proofs

    def sign_now(self) -> SignedHead:
        """A head over the whole ledger now (the latest one when the ledger has not grown since)."""
        with self._lock:
            try:
                return publish(self.store, self.app.reader, self.signer, self.app.batch_key)
            except HeadRefused as e:
                if UNAUTHENTICATED in str(e.args[0]):
                    self.app.refuse_writes(str(e.args[0]))
                raise

    def start(self) -> None:
        """Publish in the background at the interval (nothing when it is 0 or there are no proofs)."""
        if self.interval <= 0 or self.app.proofs is None:
            return
        self._thread = threading.Thread(target=self._run, name="signed-heads", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop publishing."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                head = self.sign_now()
                log.debug("signed head at size %d", head.size)
            except errors.RuleViolation as e:
                # Loud: a log that no longer matches what was signed is what heads exist to reveal.
                log.error("no head signed: %s", e)
            except Exception:
                log.exception("no head signed this time; retrying at the next interval")


def head_message(head: SignedHead) -> pb.SignedHead:
    """A signed head as its message."""
    at = timestamp_pb2.Timestamp()
    at.FromDatetime(head.signed_at)
    return pb.SignedHead(
        size=head.size,
        root_hash=head.root_hash,
        signed_at=at,
        key_id=head.key_id,
        signature=head.signature,
        map_root=head.map_root,
    )


def stream_proof_message(stream_hex: str, entries: list[stream_map.Entry], siblings: list[bytes]) -> pb.StreamHeadProof:
    """A stream's map proof as its message."""
    return pb.StreamHeadProof(
        stream_id=stream_hex,
        entries=[
            pb.StreamHeadEntry(stream_id=e.stream_id.hex, version=e.version, stream_hash=e.stream_hash) for e in entries
        ],
        siblings=siblings,
    )


def proven_history(
    store: ProofStore, head: SignedHead, items: list[HistoryItem], app: LedgerApplication
) -> Iterator[pb.GetNumberHistoryResponse]:
    """The history's responses, each event with its inclusion proof in ``head``; the first also carries
    the head and the map proofs of the history's streams."""
    stream_ids = list(dict.fromkeys(UUID(str(i.event.originator_id)) for i in items))
    stored = {e.position: e for e in app.reader.chained_streams(stream_ids)}
    first = True
    for item in items:
        e = stored[item.position]
        proof = pb.InclusionProof(
            leaf_index=item.position - 1,
            tree_size=head.size,
            hashes=store.inclusion(item.position - 1, head.size),
            topic=e.topic,
            state=e.state,
        )
        response = pb.GetNumberHistoryResponse(event=ledger_event(item), inclusion_proof=proof)
        if first:
            response.signed_head.CopyFrom(head_message(head))
            for sid in stream_ids:
                response.stream_proofs.append(stream_proof_message(sid.hex, *store.map_proof(sid, head.size)))
            first = False
        yield response
