"""A disconnection report checked against the ledger: the file and its manifest against the recorded report,
the signed head, the file redrawn, and each row's disconnection event by its inclusion proof."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ledger.adapters.log import stored_transcoder
from ledger.cli import RunFailed
from ledger.proofs.heads import SignedHead, load_public_key, verify_head
from ledger.proofs.merkle import event_leaf_hash, verify_inclusion
from ledger.v1 import history_service_pb2 as hpb
from scripts.disconnections.report import Drawn, Stubs, draw, manifest_path, plan_for, render


def verify(stubs: Stubs, path: Path, public_key: Path | None) -> list[str]:
    """What does not agree between the file, its manifest and the ledger (empty when all agree)."""
    try:
        body = path.read_bytes()
        document = json.loads(manifest_path(path).read_text())
        jurisdiction, month = str(document["jurisdiction"]), str(document["month"])
        given = SignedHead.from_json(document["signed_head"])
    except FileNotFoundError as e:
        raise RunFailed(f"{e.filename}: no such file (a report and its .manifest.json are needed)") from None
    except (ValueError, KeyError, TypeError) as e:
        return [f"the manifest is not a disconnection report manifest ({e})"]
    problems = []
    digest = hashlib.sha256(body).hexdigest()
    if digest != document.get("sha256"):
        problems.append(f"the file's SHA-256 {digest} is not the manifest's {document.get('sha256')}")
    plan, record, head, tz_name = plan_for(stubs, jurisdiction, month)
    if record is None:
        return [*problems, f"the ledger records no {jurisdiction} report for {month}"]
    if record.digest != digest:
        problems.append(f"the ledger records the {month} report with SHA-256 {record.digest}, not the file's {digest}")
    positions = document.get("positions", {})
    if (positions.get("from"), positions.get("to")) != (plan.from_position, plan.to_position):
        problems.append(f"the manifest's positions are not the recorded {plan.from_position}-{plan.to_position}")
    if (head.size, head.root_hash) != (given.size, given.root_hash):
        problems.append(f"the manifest's signed head is not the ledger's head at size {head.size}")
    if public_key is not None:
        problem = verify_head(given, load_public_key(public_key.read_bytes()))
        if problem:
            problems.append(f"the manifest's signed head: {problem}")
    drawn = draw(stubs, plan)
    if render(drawn, ZoneInfo(tz_name)) != body:
        problems.append("the file is not the report the ledger redraws for this month (rows added, changed or missing)")
    problems += _proven(stubs, body, drawn, head, ZoneInfo(tz_name))
    return problems


def _proven(stubs: Stubs, body: bytes, drawn: Drawn, head: Any, tz: ZoneInfo) -> list[str]:
    """Each row of the file against the inclusion proof of the disconnection it reports."""
    problems = []
    codec = stored_transcoder()
    lines = body.decode(errors="replace").splitlines()
    for n, line in enumerate(lines[1:], start=2):
        number, _, day = line.partition(",")
        reported = drawn.rows.get(number)
        if reported is None:
            problems.append(f"line {n}: {number} has no permanent disconnection in the report's range")
            continue
        proof = _proof_of(stubs, number, reported.position, head.size)
        if proof is None:
            problems.append(f"line {n}: no inclusion proof for position {reported.position}")
            continue
        event, inclusion = proof
        leaf = event_leaf_hash(
            event.position, event.stream_id, event.stream_version, inclusion.topic, bytes(inclusion.state)
        )
        if not verify_inclusion(leaf, event.position - 1, head.size, list(inclusion.hashes), head.root_hash):
            problems.append(f"line {n}: position {event.position} is not included in the signed head")
            continue
        state = codec.decode(bytes(inclusion.state))
        occurred = state["occurred_at"]
        if not inclusion.topic.endswith("Number.Disconnected") or occurred.astimezone(tz).date() != _date(day):
            problems.append(f"line {n}: the proven event at position {event.position} is not a disconnection on {day}")
    return problems


def _proof_of(stubs: Stubs, number: str, position: int, size: int) -> tuple[Any, Any] | None:
    request = hpb.GetNumberHistoryRequest(number=number, with_proofs=True, head_size=size)
    for response in stubs.history.GetNumberHistory(request, timeout=120):
        if response.event.position == position and response.HasField("inclusion_proof"):
            return response.event, response.inclusion_proof
    return None


def _date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None
