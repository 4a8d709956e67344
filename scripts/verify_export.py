"""Verify a history export on its own: every stream chain recomputes from its first event, every event's
global hash follows from the previous one it names, the readable fields match the stored bytes, and
nothing is missing or added. Needs only the file; with the operator's public key (and, if the auditor
holds one, the signed head obtained apart from the file) it also proves each event is in the signed head
(inclusion proofs) and each stream's history complete as of it (the head's stream map).

    python -m scripts.verify_export export.jsonl [--expect-digest POSITION:HEX]
    python -m scripts.verify_export export.jsonl --public-key ledger.head.pub [--signed-head head.json]

``--expect-digest`` also checks that an event of the export sits at a published (position, digest).
Exits 0 when the export is intact, 1 otherwise, naming the first line that does not match.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import orjson

from ledger.adapters.log import stored_transcoder
from ledger.cli import one_line_errors
from ledger.integrity import GENESIS, chain_hash, stream_hash
from ledger.proofs import stream_map
from ledger.proofs.heads import SignedHead, load_public_key, verify_head
from ledger.proofs.merkle import event_leaf_hash, verify_inclusion
from scripts.export_history import FORMAT, readable

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def verify(
    lines: list[bytes],
    expected: tuple[int, str] | None = None,
    public: Ed25519PublicKey | None = None,
    head: SignedHead | None = None,
) -> tuple[bool, str]:
    """(ok, message) for the lines of an export. With the operator's ``public`` key, the export's signed
    head (or ``head``, obtained apart from the file) must verify, every event must be included in it and
    every stream's last event must be the one the head's stream map records."""
    codec = stored_transcoder()
    try:
        records = [orjson.loads(line) for line in lines if line.strip()]
    except orjson.JSONDecodeError as exc:
        return False, f"not JSON lines: {exc}"
    if len(records) < 2 or records[0].get("kind") != "header" or records[0].get("format") != FORMAT:
        return False, "line 1: not a ledger export header"
    if records[-1].get("kind") != "footer":
        return False, "last line: footer missing (truncated export?)"
    events = records[1:-1]
    if records[-1].get("events") != len(events):
        return False, f"footer says {records[-1].get('events')} events, the file has {len(events)}"
    streams = set(records[0].get("streams", []))
    heads: dict[str, tuple[int, bytes]] = {}
    last_position = 0
    found_expected = expected is None
    for n, e in enumerate(events, start=2):
        problem = _check(e, codec, heads, streams, last_position)
        if problem:
            return False, f"line {n} (position {e.get('position')}): {problem}"
        last_position = e["position"]
        if expected is not None and e["position"] == expected[0]:
            if e["chain_hash"] != expected[1].lower():
                return False, f"line {n}: chain hash at position {expected[0]} is not the published digest"
            found_expected = True
    if not found_expected and expected is not None:
        return False, f"no event of the export sits at position {expected[0]}"
    if public is None:
        return True, f"ok: {len(events)} events in {len(heads)} streams verified (no public key: proofs not checked)"
    problem = _check_proofs(records, heads, public, head)
    if problem:
        return False, problem
    size = head.size if head else records[0]["signed_head"]["size"]
    return (
        True,
        f"ok: {len(events)} events in {len(heads)} streams verified, complete as of the signed head at size {size}",
    )


def _check_proofs(
    records: list[dict[str, Any]],
    heads: dict[str, tuple[int, bytes]],
    public: Ed25519PublicKey,
    given: SignedHead | None,
) -> str:
    try:
        signed = SignedHead.from_json(records[0]["signed_head"])
    except (KeyError, ValueError, TypeError, binascii.Error):
        return "line 1: the export carries no signed head (sign one with `ledger head`, then export again)"
    if given is not None and (given.size, given.root_hash, given.map_root) != (
        signed.size,
        signed.root_hash,
        signed.map_root,
    ):
        return f"line 1: the export's head (size {signed.size}) is not the signed head given (size {given.size})"
    problem = verify_head(signed, public)
    if problem:
        return f"line 1: {problem}"
    for n, e in enumerate(records[1:-1], start=2):
        try:
            path = [bytes.fromhex(h) for h in e["inclusion_proof"]]
        except (KeyError, ValueError, TypeError):
            return f"line {n}: no inclusion proof"
        state = base64.b64decode(e["state"])
        leaf = event_leaf_hash(e["position"], e["stream_id"], e["version"], e["topic"], state)
        if not verify_inclusion(leaf, e["position"] - 1, signed.size, path, signed.root_hash):
            return f"line {n} (position {e['position']}): not included in the signed head at size {signed.size}"
    proofs = {p.get("stream_id"): p for p in records[-1].get("stream_heads") or []}
    for sid in records[0].get("streams", []):
        try:
            proof = proofs[sid]
            entries = [
                stream_map.Entry(UUID(x["stream_id"]), int(x["version"]), bytes.fromhex(x["stream_hash"]))
                for x in proof["entries"]
            ]
            siblings = [bytes.fromhex(h) for h in proof["siblings"]]
        except (KeyError, ValueError, TypeError):
            return f"last line: no valid map proof for stream {sid}"
        entry, problem = stream_map.verify(UUID(sid), entries, siblings, signed.map_root)
        if problem:
            return f"last line: stream {sid}: {problem}"
        version, digest = heads.get(sid, (0, GENESIS))
        recorded = (entry.version, entry.stream_hash) if entry else (0, GENESIS)
        if recorded != (version, digest):
            return (
                f"stream {sid} is incomplete: the signed head records version {recorded[0]}, "
                f"the export ends at version {version}"
            )
    return ""


def _check(e: dict[str, Any], codec: Any, heads: dict[str, tuple[int, bytes]], streams: set[str], last: int) -> str:
    try:
        state = base64.b64decode(e["state"], validate=True)
        recorded_stream = bytes.fromhex(e["stream_hash"])
        recorded_chain = bytes.fromhex(e["chain_hash"])
        previous_chain = bytes.fromhex(e["previous_chain_hash"])
        position, sid, version, topic = int(e["position"]), str(e["stream_id"]), int(e["version"]), str(e["topic"])
    except (KeyError, ValueError, TypeError, binascii.Error) as exc:
        return f"malformed event line ({exc})"
    if e.get("kind") != "event":
        return "not an event line"
    if sid not in streams:
        return f"stream {sid} is not one the header lists"
    if position <= last:
        return "events are out of ledger order"
    head_version, head_hash = heads.get(sid, (0, GENESIS))
    if version != head_version + 1:
        return f"stream {sid} jumps from version {head_version} to {version} (an event is missing)"
    digest = stream_hash(head_hash, sid, version, topic, state)
    if digest != recorded_stream:
        return "stored bytes do not match the stream hash"
    if chain_hash(previous_chain, position, digest) != recorded_chain:
        return "global chain hash does not follow from the previous one"
    try:
        fields = readable(state, codec)
    except (ValueError, TypeError, AttributeError):
        return "stored bytes do not decode"
    if fields != e.get("data"):
        return "readable fields differ from the stored bytes"
    heads[sid] = (version, digest)
    return ""


@one_line_errors("verify_export")
def main(argv: list[str] | None = None) -> int:
    """Verify the file and print the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export", type=Path, help="the JSON-lines export")
    parser.add_argument("--expect-digest", help="POSITION:HEX published earlier, to check against")
    parser.add_argument("--public-key", type=Path, help="the operator's head-signing public key (PEM)")
    parser.add_argument(
        "--signed-head", type=Path, help="a signed head (JSON, as `ledger head` prints it) the export must be as of"
    )
    args = parser.parse_args(argv)
    if args.signed_head and not args.public_key:
        parser.error("--signed-head needs --public-key")
    public = head = None
    try:
        if args.public_key:
            public = load_public_key(args.public_key.read_bytes())
        if args.signed_head:
            head = SignedHead.from_json(orjson.loads(args.signed_head.read_bytes()))
    except (ValueError, KeyError, TypeError, binascii.Error) as e:
        parser.error(f"--public-key / --signed-head: {e}")
    expected = None
    if args.expect_digest:
        position, _, digest = args.expect_digest.partition(":")
        if not position.isdigit() or len(digest) != 64:
            parser.error("--expect-digest must look like 1234:<64 hex characters>")
        expected = (int(position), digest)
    ok, message = verify(args.export.read_bytes().splitlines(), expected, public, head)
    print(message if ok else f"NOT VERIFIED: {message}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
