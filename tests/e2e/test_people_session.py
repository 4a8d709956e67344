"""The session of the commands for people shown in docs/operations.md ("Commands for people"), run as
written against a live server whose ledger holds the history the page describes.

The block is a ``console`` block: ``$ `` lines are commands, the lines after each are what it prints
(stdout, then stderr), and ``[exit N]`` ends the output of a command that exits with N. Lines are compared
loosely where a run gives other values: identifiers (UUIDs, hex digests, hex of 8 or more characters) and
every run of digits (times, positions, ports) match any such value; ``...`` matches anything. Everything
else (the words, the marks, the columns, the order of lines) must be as shown.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest

from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import history_service_pb2_grpc as hgrpc
from ledger.v1 import lifecycle_service_pb2 as lpb
from ledger.v1 import lifecycle_service_pb2_grpc as lgrpc
from tests.conftest import imsi_for
from tests.e2e.test_cli_reflection import Server, free_port
from tests.markdown import blocks

ROOT = Path(__file__).resolve().parents[2]
PAGE, HEADING = "docs/operations.md", "## Commands for people"
NUMBER = "+8613800138000"
POLICY = 'timezone = "Asia/Shanghai"\n'
ACTOR = (("x-ledger-actor", "crm-prod"),)


def at(text: str) -> dict[str, object]:
    """``occurred_at`` for a request: a moment of the history the page tells (UTC)."""
    from google.protobuf.timestamp_pb2 import Timestamp

    ts = Timestamp()
    ts.FromDatetime(datetime.fromisoformat(text).replace(tzinfo=UTC))
    return {"occurred_at": ts}


def record_the_history(channel: grpc.Channel) -> None:
    """+8613800138000: Li Wei held it from March to September 2026 (a SIM swap, a suspension for
    non-payment, a disconnection, the data holders' clearance, an early release; then Li Wei asked for
    erasure, held by the retention period); Zhang Min holds it since November."""
    stub = lgrpc.LifecycleServiceStub(channel)

    def call(method: str, request: object) -> object:
        return getattr(stub, method)(request, metadata=ACTOR, timeout=30)

    call(
        "ProvisionNumbers", lpb.ProvisionNumbersRequest(request_id="prov-7", numbers=[NUMBER], **at("2026-03-01T01:00"))
    )
    holders = []
    for n, (name, id_number, day) in enumerate(
        (("Li Wei", "11010519491231002X", "2026-03-02"), ("Zhang Min", "110105199001020016", "2026-11-20")), 1
    ):
        sid = call(
            "RegisterSubscriber",
            lpb.RegisterSubscriberRequest(
                request_id=f"reg-{n}", full_name=name, id_type=1, id_number=id_number, **at(f"{day}T02:00")
            ),
        ).subscriber_id  # type: ignore[attr-defined]
        call(
            "VerifyIdentity",
            lpb.VerifyIdentityRequest(
                request_id=f"kyc-{n}",
                subscriber_id=sid,
                method=1,
                channel="retail",
                agent_id="shop-12",
                evidence_ref=f"scan-{n}",
                **at(f"{day}T02:05"),
            ),
        )
        iccid = f"898600123456789000{n}"
        iccid += str(_luhn(iccid))
        tenure = call(
            "ActivateSim",
            lpb.ActivateSimRequest(
                request_id=f"act-{n}",
                number=NUMBER,
                subscriber_id=sid,
                iccid=iccid,
                imsi=imsi_for(iccid),
                channel="retail",
                agent_id="shop-12",
                **at(f"{day}T02:10"),
            ),
        ).tenure_id  # type: ignore[attr-defined]
        holders.append((sid, tenure))
        if n == 2:
            # A head signed over all of it, as the server does every minute while the ledger grows.
            history = hgrpc.HistoryServiceStub(channel)
            history.GetSignedHead(hpb.GetSignedHeadRequest(fresh=True), timeout=30)
            return
        new_iccid = "89860012345678900099"
        new_iccid = new_iccid[:-1] + str(_luhn(new_iccid[:-1]))
        call(
            "SwapSim",
            lpb.SwapSimRequest(
                request_id="swap-0001",
                number=NUMBER,
                new_iccid=new_iccid,
                new_imsi=imsi_for(new_iccid),
                reason=1,
                channel="retail",
                agent_id="shop-31",
                **at("2026-05-14T08:30"),
            ),
        )
        call(
            "SuspendNumber",
            lpb.SuspendNumberRequest(request_id="sus-1", number=NUMBER, reason=6, **at("2026-08-01T00:00")),
        )
        call("ResumeNumber", lpb.ResumeNumberRequest(request_id="res-1", number=NUMBER, **at("2026-08-03T09:00")))
        call(
            "DisconnectNumber",
            lpb.DisconnectNumberRequest(request_id="disc-1", number=NUMBER, reason=2, **at("2026-09-01T04:00")),
        )
        for holder in ("crm", "billing", "voicemail"):
            call(
                "ConfirmDataCleared",
                lpb.ConfirmDataClearedRequest(
                    request_id=f"clear-{holder}",
                    number=NUMBER,
                    tenure_id=tenure,
                    holder=holder,
                    evidence_ref=f"ticket-{holder}",
                    **at("2026-09-03T03:00"),
                ),
            )
        call(
            "ReleaseNumber",
            lpb.ReleaseNumberRequest(
                request_id="rel-1", number=NUMBER, override_reason="regulator order 2026-118", **at("2026-11-10T01:00")
            ),
        )
        call(
            "EraseSubscriberData",
            lpb.EraseSubscriberDataRequest(
                request_id="erase-1", subscriber_id=sid, legal_basis="PIPL art. 47", **at("2026-11-12T01:00")
            ),
        )


def caught_up(history: hgrpc.HistoryServiceStub) -> None:
    """Wait until every read model has applied the whole ledger (the page shows them caught up)."""
    deadline = time.monotonic() + 60
    while True:
        status = history.GetStatus(hpb.GetStatusRequest(), timeout=10)
        if all(v.state == hpb.VIEW_STATE_SERVING and v.lag == 0 for v in status.views):
            return
        assert time.monotonic() < deadline, status
        time.sleep(0.05)


def _luhn(digits: str) -> int:
    total = 0
    for i, d in enumerate(reversed(digits)):
        v = int(d) * (2 if i % 2 == 0 else 1)
        total += v - 9 if v > 9 else v
    return (10 - total % 10) % 10


def session() -> list[tuple[str, list[str]]]:
    """The block's commands, each with the lines it shows."""
    (body,) = [b.body for b in blocks(PAGE) if b.heading == HEADING and b.lang == "console"]
    steps: list[tuple[str, list[str]]] = []
    for line in body.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            assert steps, f"output before any command: {line}"
            steps[-1][1].append(line)
    return steps


def loose(line: str) -> str:
    """A line with the values a run changes made alike."""
    line = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<uuid>", line)
    line = re.sub(r"\b[0-9a-f]{8,}\b", "<hex>", line)
    line = re.sub(r"[0-9]+", "0", line)
    return " ".join(line.split())


def agrees(shown: str, printed: str) -> bool:
    """Whether a printed line is the line the page shows."""
    expected = loose(shown)
    if "..." not in expected:
        return expected == loose(printed)
    pattern = ".*".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, loose(printed)) is not None


def test_the_block_shows_each_command() -> None:
    commands = " ".join(command for command, _ in session())
    for name in ("status", "history", "check", "simswap", "verify", "trace"):
        assert f"python -m ledger {name} " in commands + " ", name
    assert "--json" in commands and "--personal-data --purpose" in commands
    exits = {line for _, lines in session() for line in lines if line.startswith("[exit ")}
    assert exits == {"[exit 1]", "[exit 3]"}


@pytest.mark.timeout(180)
def test_the_session_is_true_on_a_live_server(tmp_path: Path) -> None:
    port = free_port()
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    server = Server(tmp_path, port, policy)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            record_the_history(channel)
            caught_up(hgrpc.HistoryServiceStub(channel))
        exports: list[str] = []
        for command, shown in session():
            command = command.replace("127.0.0.1:50051", f"127.0.0.1:{port}")
            if command.startswith("export "):
                exports.append(command)
                continue
            script = "\n".join([*exports, command])
            result = subprocess.run(
                ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
            )
            expected_exit = 0
            if shown and shown[-1].startswith("[exit "):
                expected_exit = int(shown[-1][6:-1])
                shown = shown[:-1]
            printed = (result.stdout + result.stderr).rstrip("\n").splitlines()
            where = f"$ {command}\n{result.stdout}{result.stderr}"
            assert result.returncode == expected_exit, where
            assert len(printed) == len(shown), f"{where}\nthe page shows {len(shown)} lines"
            for page_line, line in zip(shown, printed, strict=True):
                assert agrees(page_line, line), f"{where}\nthe page shows: {page_line}\nprinted:        {line}"
    finally:
        assert server.stop() == 0
