"""Watch the ledger's signed heads as an auditor: fetch the server's latest signed head, check its
signature, check that it extends every head seen before (RFC 9162 consistency proofs), and save it.

    python -m scripts.monitor_heads --target 127.0.0.1:50051 --heads heads.jsonl --public-key ledger.head.pub

``--heads`` is a JSON-lines file of the heads seen so far (one head per line, as ``ledger head`` prints
them); it is created on first use. Run it on a schedule from a machine the operator does not control.
Exits 0 when the new head is consistent with every saved one; 1 with one line saying ROLLBACK (the
server's head is below one seen before), FORK (a head of the same size with another root, or a later
head that does not extend an earlier one: a rewritten prefix) or BAD SIGNATURE.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from ledger.cli import RunFailed, one_line_errors
from ledger.connection import Connection, add_connection_arguments
from ledger.proofs.heads import SignedHead, load_public_key, verify_head
from ledger.proofs.merkle import verify_consistency
from ledger.v1 import history_service_pb2 as pb
from ledger.v1 import history_service_pb2_grpc

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


class Alarm(Exception):
    """Raised when the server's heads are not consistent with the ones seen before."""


def from_message(m: pb.SignedHead) -> SignedHead:
    """A signed head from its message."""
    return SignedHead(m.size, m.root_hash, m.map_root, m.signed_at.ToDatetime(tzinfo=UTC), m.key_id, m.signature)


def load_heads(path: Path) -> list[SignedHead]:
    """The heads saved before (none when the file does not exist)."""
    if not path.exists():
        return []
    heads = []
    for n, line in enumerate(path.read_bytes().splitlines(), start=1):
        if line.strip():
            try:
                heads.append(SignedHead.from_json(orjson.loads(line)))
            except (ValueError, KeyError, TypeError) as e:
                raise RunFailed(f"{path} line {n}: not a signed head ({e})") from None
    return heads


def check(
    stub: history_service_pb2_grpc.HistoryServiceStub,
    saved: list[SignedHead],
    public: Ed25519PublicKey,
    fresh: bool = False,
) -> SignedHead:
    """The server's latest head, checked against the saved ones; Alarm when it is not consistent."""
    new = from_message(stub.GetSignedHead(pb.GetSignedHeadRequest(fresh=fresh), timeout=30).signed_head)
    problem = verify_head(new, public)
    if problem:
        raise Alarm(f"BAD SIGNATURE: {problem}")
    for old in saved:
        problem = verify_head(old, public)
        if problem:
            raise Alarm(f"BAD SIGNATURE in the saved heads: {problem}")
        if new.size < old.size:
            raise Alarm(
                f"ROLLBACK: the server's head is at size {new.size}, below the head at size {old.size} "
                f"signed {old.signed_at.isoformat()}"
            )
        if new.size == old.size:
            if new.root_hash != old.root_hash:
                raise Alarm(f"FORK: two heads at size {old.size} with different roots")
            continue
        if old.size == 0:
            continue
        request = pb.GetConsistencyProofRequest(from_size=old.size, to_size=new.size)
        proof = list(stub.GetConsistencyProof(request, timeout=30).hashes)
        if not verify_consistency(old.size, old.root_hash, new.size, new.root_hash, proof):
            raise Alarm(
                f"FORK: the head at size {new.size} does not extend the head at size {old.size} "
                "(the log before it was rewritten)"
            )
    return new


@one_line_errors("monitor_heads")
def main(argv: list[str] | None = None) -> int:
    """Check the server's latest head against the saved ones and save it; 1 on an alarm."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_connection_arguments(parser)
    parser.add_argument("--heads", type=Path, required=True, help="JSON-lines file of the heads seen before")
    parser.add_argument("--public-key", type=Path, required=True, help="the operator's head-signing public key (PEM)")
    parser.add_argument("--fresh", action="store_true", help="ask the server to sign a head now")
    args = parser.parse_args(argv)
    try:
        public = load_public_key(args.public_key.read_bytes())
    except ValueError as e:
        parser.error(f"--public-key: {e}")
    saved = load_heads(args.heads)
    channel = Connection.from_args(args).channel()
    try:
        new = check(history_service_pb2_grpc.HistoryServiceStub(channel), saved, public, args.fresh)
    except Alarm as e:
        print(f"monitor_heads: {e}", file=sys.stderr)
        return 1
    finally:
        channel.close()
    if all(h.size != new.size for h in saved):
        with args.heads.open("ab") as f:
            f.write(orjson.dumps(new.to_json()) + b"\n")
    print(f"ok: head at size {new.size} (root {new.root_hash.hex()}) is consistent with {len(saved)} saved head(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
