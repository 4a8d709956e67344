"""Verify a history export on its own: every stream chain recomputes from its first event, every event's
global hash follows from the previous one it names, the readable fields match the stored bytes, and
nothing is missing or added. Needs only the file.

    python -m scripts.verify_export export.jsonl [--expect-digest POSITION:HEX]

``--expect-digest`` also checks that an event of the export sits at a published (position, digest).
Exits 0 when the export is intact, 1 otherwise, naming the first line that does not match.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import sys
from pathlib import Path
from typing import Any

import orjson

from ledger.adapters.log import stored_transcoder
from ledger.cli import one_line_errors
from ledger.integrity import GENESIS, chain_hash, stream_hash
from scripts.export_history import FORMAT, readable


def verify(lines: list[bytes], expected: tuple[int, str] | None = None) -> tuple[bool, str]:
    """(ok, message) for the lines of an export."""
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
    return True, f"ok: {len(events)} events in {len(heads)} streams verified"


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
    if readable(state, codec) != e.get("data"):
        return "readable fields differ from the stored bytes"
    heads[sid] = (version, digest)
    return ""


@one_line_errors("verify_export")
def main(argv: list[str] | None = None) -> int:
    """Verify the file and print the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export", type=Path, help="the JSON-lines export")
    parser.add_argument("--expect-digest", help="POSITION:HEX published earlier, to check against")
    args = parser.parse_args(argv)
    expected = None
    if args.expect_digest:
        position, _, digest = args.expect_digest.partition(":")
        if not position.isdigit() or len(digest) != 64:
            parser.error("--expect-digest must look like 1234:<64 hex characters>")
        expected = (int(position), digest)
    ok, message = verify(args.export.read_bytes().splitlines(), expected)
    print(message if ok else f"NOT VERIFIED: {message}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
