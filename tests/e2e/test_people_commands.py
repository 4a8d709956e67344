"""The commands for people against a live server: what they print, their --json against the RPC's own
answer, refusals in words, and their exit codes (0 answered, 1 refused, 2 usage, 3 not reachable); with
tokens, and over TLS."""

from __future__ import annotations

import dataclasses
import getpass
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format

from ledger.__main__ import main as ledger_main
from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import lifecycle_service_pb2 as lpb
from ledger.v1 import recycling_service_pb2 as rpb
from tests.conftest import imsi_for, new_iccid, number, running_server
from tests.e2e.test_auth_tls import _certificates, tokens  # noqa: F401 (a fixture)
from tests.e2e.test_cli_reflection import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_ledger_environment(monkeypatch) -> None:
    for name in ("LEDGER_TARGET", "LEDGER_TOKEN", "LEDGER_TZ"):
        monkeypatch.delenv(name, raising=False)


def people(capsys, *argv: str) -> tuple[int, str, str]:
    """Run ``ledger ARGV`` here; (exit code, stdout, stderr)."""
    capsys.readouterr()
    try:
        code = ledger_main(list(argv))
    except SystemExit as e:  # argparse's own usage errors
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def lived(stubs, clock) -> dict[str, str]:
    """Two holders of number(1): the first verified, swapped, suspended, resumed, disconnected, cleared,
    released and erased; the second holds it now. Returns the ids a reader looks for."""
    start = datetime.now(UTC) - timedelta(days=30)
    clock.t = start
    first, tenure, _ = stubs.onboard(number(1), seq=1)
    clock.advance(days=1)
    iccid = new_iccid()
    stubs.lifecycle.SwapSim(
        lpb.SwapSimRequest(
            request_id="swap-1",
            number=number(1),
            new_iccid=iccid,
            new_imsi=imsi_for(iccid),
            reason=1,
            channel="retail",
            agent_id="a1",
        )
    )
    clock.advance(days=1)
    stubs.lifecycle.SuspendNumber(lpb.SuspendNumberRequest(request_id="sus-1", number=number(1), reason=1))
    stubs.lifecycle.ResumeNumber(lpb.ResumeNumberRequest(request_id="res-1", number=number(1)))
    clock.advance(days=1)
    stubs.lifecycle.DisconnectNumber(lpb.DisconnectNumberRequest(request_id="disc-1", number=number(1), reason=1))
    for holder in ("crm", "billing", "voicemail"):
        stubs.lifecycle.ConfirmDataCleared(
            lpb.ConfirmDataClearedRequest(
                request_id=f"clear-{holder}", number=number(1), tenure_id=tenure, holder=holder, evidence_ref="x"
            )
        )
    stubs.lifecycle.ReleaseNumber(
        lpb.ReleaseNumberRequest(request_id="rel-1", number=number(1), override_reason="needed back early")
    )
    stubs.lifecycle.EraseSubscriberData(
        lpb.EraseSubscriberDataRequest(request_id="erase-1", subscriber_id=first, legal_basis="GDPR_ART_17")
    )
    clock.advance(days=10)
    second, _, _ = stubs.onboard(number(1), seq=2)
    clock.t = datetime.now(UTC)  # checks read "today" from the wall clock, as the commands do
    return {"first": first, "second": second, "between": (start + timedelta(hours=36)).isoformat()}


def test_each_command_answers_and_its_json_is_the_rpc(server, clock, capsys) -> None:
    stubs, app = server
    ids = lived(stubs, clock)
    assert stubs.projector is not None and stubs.projector.wait_for(app.reader.max_position(), 10)
    target = ("--target", stubs.target)

    code, out, err = people(capsys, "history", number(1), *target)
    assert code == 0, err
    assert out.startswith(f"History of {number(1)}: ") and "2 tenures" in out
    for mark in ("PROVISIONED", "REGISTERED", "VERIFIED", "TENURE START", "SIM SWAP", "SUSPENDED", "RESUMED"):
        assert mark in out, mark
    for mark in ("DISCONNECTED", "CLEARANCE", "RELEASED", "ERASED"):
        assert mark in out, mark
    assert f"H1  subscriber {ids['first']}" in out and f"H2  subscriber {ids['second']}" in out
    assert "disconnected, " in out and "to   now: holds it" in out
    assert all(len(line) <= 100 for line in out.splitlines()), max(out.splitlines(), key=len)
    code, out, _ = people(capsys, "history", number(1), "--json", *target)
    rpc = list(stubs.history.GetNumberHistory(hpb.GetNumberHistoryRequest(number=number(1))))
    assert code == 0 and json.loads(out) == [json_format.MessageToDict(r) for r in rpc]
    # As of a moment of the first tenure: one holder, holding it then.
    code, out, _ = people(capsys, "history", number(1), "--as-of", ids["between"], *target)
    assert code == 0 and "1 tenure" in out and "H2" not in out and "SIM SWAP" in out and "SUSPENDED" not in out
    assert "to   then: held it at that time" in out
    # Personal data: shown for the holder whose data is kept, recorded as read, never for the erased one.
    code, out, _ = people(
        capsys, "history", number(1), "--personal-data", "--purpose", "complaint 7", "--tz", "UTC", *target
    )
    assert code == 0 and "Subscriber 2, RESIDENT_ID_CARD" in out and "personal data erased" in out
    assert "Subscriber 1" not in out and "Times in UTC." in out
    # The read is recorded, by the person's login (a server without --auth records the actor named).
    code, out, _ = people(capsys, "history", number(1), "--json", *target)
    reads = [r["event"] for r in json.loads(out) if r["event"]["type"] == "AccessLogPersonalDataRead"]
    assert code == 0 and [(r["actor"], r["data"]["purpose"]) for r in reads] == [(getpass.getuser(), "complaint 7")]

    code, out, _ = people(capsys, "check", number(1), *target)
    assert code == 0 and f"{number(1)} since {datetime.now(UTC).date()} (UTC): NOT_CHANGED" in out
    since = (datetime.now(UTC) - timedelta(days=29)).date().isoformat()
    code, out, _ = people(capsys, "check", number(1), "--since", since, *target)
    assert code == 0 and ": CHANGED" in out and "CLEARED" in out
    code, out, _ = people(capsys, "check", number(1), "--since", since, "--json", *target)
    rpc = stubs.recycling.CheckNumber(rpb.CheckNumberRequest(number=number(1), since_date=since))
    assert code == 0 and json.loads(out) == json_format.MessageToDict(rpc)

    code, out, _ = people(capsys, "simswap", number(1), "--max-age", "24", *target)
    assert code == 0 and "SIM changed within the last 24 hours: no" in out and "latest SIM change" in out
    code, out, _ = people(capsys, "simswap", number(1), "--max-age", "2400", *target)
    assert code == 0 and "SIM changed within the last 2400 hours: YES" in out
    code, out, _ = people(capsys, "simswap", number(1), "--max-age", "24", "--json", *target)
    rpc = stubs.recycling.CheckSimSwap(rpb.CheckSimSwapRequest(number=number(1), max_age_hours=24))
    assert code == 0 and json.loads(out) == json_format.MessageToDict(rpc)
    code, out, _ = people(capsys, "simswap", number(1), "--json", *target)
    rpc = stubs.recycling.GetSimSwap(rpb.GetSimSwapRequest(number=number(1)))
    assert code == 0 and json.loads(out) == json_format.MessageToDict(rpc)

    code, out, _ = people(capsys, "status", *target)
    head = app.reader.max_position()
    assert code == 0 and out.startswith("OK: every read model serving")
    assert f"position {head}" in out and "store        sqlite:///" in out
    for view in ("numbers", "sim_swaps", "compliance", "erasure"):
        assert f"{view}" in out
    code, out, _ = people(capsys, "status", "--json", *target)
    shown = json.loads(out)
    rpc_status = json_format.MessageToDict(stubs.history.GetStatus(hpb.GetStatusRequest()))
    assert code == 0 and shown["headPosition"] == rpc_status["headPosition"] == str(head)
    assert shown["views"] == rpc_status["views"] and shown["policy"] == rpc_status["policy"]

    code, out, _ = people(capsys, "verify", *target)
    assert code == 0 and out.startswith("ok: the whole ledger verifies") and f"position {head}" in out
    code, out, _ = people(capsys, "verify", "--number", number(1), "--json", *target)
    rpc = stubs.history.VerifyIntegrity(hpb.VerifyIntegrityRequest(number=number(1)))
    assert code == 0 and json.loads(out) == json_format.MessageToDict(rpc)

    code, out, _ = people(capsys, "trace", "swap-1", *target)
    assert code == 0 and out.startswith("Request swap-1: 1 event at position ") and "SIM SWAP" in out
    code, out, _ = people(capsys, "trace", "swap-1", "--json", *target)
    rpc = list(stubs.history.TraceRequest(hpb.TraceRequestRequest(request_id="swap-1")))
    assert code == 0 and json.loads(out) == [json_format.MessageToDict(r) for r in rpc]


def test_refusals_in_words_and_exit_codes(server, clock, capsys) -> None:
    stubs, _ = server
    stubs.onboard(number(1), seq=1)
    target = ("--target", stubs.target)
    code, out, err = people(capsys, "history", number(9), *target)
    assert code == 1 and out == ""
    assert err.splitlines()[0] == f"ledger history: refused: NOT_FOUND: number {number(9)} not found"
    assert "  reason: NUMBER_NOT_FOUND" in err and "what to do: check the number" in err
    code, _, err = people(capsys, "check", "12345", "--since", "2026-01-01", *target)
    assert code == 1 and "refused: INVALID_ARGUMENT" in err and "  field number: " in err
    assert "what to do: correct the values named above" in err
    code, _, err = people(capsys, "check", number(1), "--since", "2099-01-01", *target)
    assert code == 1 and "reason: OUT_OF_RANGE" in err and "field since_date: is after today" in err
    code, _, err = people(capsys, "trace", "never-sent", *target)
    assert code == 1 and "reason: REQUEST_NOT_FOUND" in err
    # Usage: 2, before any call.
    for argv in (
        ["check"],
        ["history", number(1), "--personal-data"],
        ["check", number(1), "--since", "yesterday"],
        ["simswap", number(1), "--max-age", "0"],
        ["status", "--tz", "Mars/Olympus"],
        ["status", "--tls-cert", "client.crt"],
    ):
        code, _, err = people(capsys, *argv, *target)
        assert code == 2, (argv, err)
        assert "Traceback" not in err
    # No server there: 3.
    code, _, err = people(capsys, "status", "--target", f"127.0.0.1:{free_port()}")
    assert code == 3 and "no ledger server answers at 127.0.0.1:" in err and "what to do: start one" in err


def test_exit_codes_of_the_command_itself(server) -> None:
    stubs, _ = server
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}

    def ledger(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ledger", *argv], env=env, capture_output=True, text=True, timeout=60
        )

    answered = ledger("status", "--target", stubs.target)
    assert answered.returncode == 0 and answered.stdout.startswith(("OK: ", "ATTENTION: ")), answered.stderr
    assert ledger("history", "--target", stubs.target, number(5)).returncode == 1
    assert ledger("check", "--target", stubs.target).returncode == 2
    assert ledger("status", "--target", f"127.0.0.1:{free_port()}").returncode == 3


def test_tokens_and_roles(settings, clock, tokens, capsys) -> None:  # noqa: F811
    path, issued = tokens
    for stubs, _ in running_server(dataclasses.replace(settings, auth_file=path), clock):
        metadata = (("authorization", f"Bearer {issued['operator']}"),)
        stubs.lifecycle.ProvisionNumbers(
            lpb.ProvisionNumbersRequest(request_id="p", numbers=[number(1)]), metadata=metadata
        )
        clock.t = datetime.now(UTC)
        target = ("--target", stubs.target)
        code, out, err = people(capsys, "status", *target)
        assert code == 1 and "refused: UNAUTHENTICATED" in err and "--token TOKEN or LEDGER_TOKEN" in err
        code, out, err = people(capsys, "status", "--token", issued["checker"], *target)
        assert code == 1 and "refused: PERMISSION_DENIED" in err and "lacks the compliance role" in err
        code, out, err = people(capsys, "status", "--token", issued["compliance"], *target)
        assert code == 0, err
        code, out, err = people(capsys, "trace", "p", "--token", issued["admin"], *target)
        assert code == 0 and "PROVISIONED" in out, err
        # A checker may check; the status (and so the policy's zone) is not its to read: times in UTC.
        code, out, err = people(capsys, "check", number(1), "--token", issued["checker"], *target)
        assert code == 0 and "(UTC): " in out, err
        code, out, err = people(capsys, "history", number(1), "--token", issued["checker"], *target)
        assert code == 1 and "PERMISSION_DENIED" in err


def test_over_mutual_tls(settings, clock, tokens, tmp_path: Path, capsys) -> None:  # noqa: F811
    path, issued = tokens
    c = _certificates(tmp_path)
    mutual = dataclasses.replace(
        settings, auth_file=path, tls_cert=c["server.crt"], tls_key=c["server.key"], tls_client_ca=c["ca.crt"]
    )
    client = grpc.ssl_channel_credentials(
        root_certificates=c["ca.crt"].read_bytes(),
        private_key=c["client.key"].read_bytes(),
        certificate_chain=c["client.crt"].read_bytes(),
    )
    for stubs, _ in running_server(mutual, clock, client):
        base = ("--target", stubs.target, "--token", issued["compliance"])
        tls = ("--tls-ca", str(c["ca.crt"]), "--tls-cert", str(c["client.crt"]), "--tls-key", str(c["client.key"]))
        code, out, err = people(capsys, "status", *base, *tls)
        assert code == 0 and out.startswith(("OK: ", "ATTENTION: ")), err
        code, out, err = people(capsys, "verify", *base, *tls)
        assert code == 0 and out.startswith("ok: "), err
        # Plaintext to a TLS server, or TLS without the client certificate it asks for: nobody answers.
        code, _, err = people(capsys, "status", *base)
        assert code == 3 and "--tls-ca" in err
        code, _, err = people(capsys, "status", *base, "--tls-ca", str(c["ca.crt"]))
        assert code == 3


def test_status_says_what_needs_attention_and_check_says_it_is_behind(tmp_path: Path, capsys) -> None:
    from tests.procs import Serve

    server = Serve(f"sqlite:///{tmp_path}/ledger.db", extra=("--no-projections",))
    try:
        numbers = [f"+86138001{i:05d}" for i in range(1500)]
        server.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id="many", numbers=numbers), timeout=60)
        target = ("--target", server.target)
        code, out, err = people(capsys, "status", *target)
        assert code == 0, err
        lines = out.splitlines()
        assert lines[0] == "ATTENTION:"
        for n, view in enumerate(("numbers", "sim_swaps", "compliance", "erasure"), 1):
            assert lines[n] == f"  - read model {view} is 1501 events behind (is its projector running?)"
        # The server learns the head by polling (twice a second): wait until its answers know it.
        check = rpb.CheckNumberRequest(number=numbers[0], since_date=datetime.now(UTC).date().isoformat())
        deadline = time.monotonic() + 30
        while server.recycling.CheckNumber(check, timeout=10).result.head_position < 1501:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        code, out, err = people(capsys, "check", numbers[0], *target)
        assert code == 0 and ": NO_DATA" in out, err
        assert out.splitlines()[-1] == "note: the read model was 1501 events behind the head; `ledger status` shows why"
        # A reader that stops reading ends the command quietly.
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
        piped = subprocess.run(
            ["bash", "-c", f"{sys.executable} -m ledger trace many --target {server.target} | head -1"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert piped.stdout == "Request many: 1500 events at position 1-1500\n" and piped.stderr == ""
        # One whose reader left before a line was written (the race `head` may win): quiet all the same.
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            gone = subprocess.run(
                [sys.executable, "-m", "ledger", "status", "--target", server.target],
                env=env,
                stdout=write_end,
                stderr=subprocess.PIPE,
                text=True,
                timeout=60,
            )
        finally:
            os.close(write_end)
        assert (gone.returncode, gone.stderr) == (0, "")
    finally:
        assert server.stop() == 0


def test_verify_is_not_ok_on_a_changed_event(server, settings, capsys) -> None:
    from ledger.domain.number import Number
    from tests.e2e.tamper import Store

    stubs, _ = server
    stubs.onboard(number(1), seq=1)
    store = Store(settings)
    try:
        changed = store.positions(Number.create_id(number(1)))[-1]
        store.set_state(changed, store.row(changed)[3].replace(b"}", b',"note":"forged"}', 1))
    finally:
        store.close()
    code, out, _ = people(capsys, "verify", "--target", stubs.target)
    assert code == 1 and out.startswith("NOT OK: the whole ledger does not verify")
    assert f"  first bad position  {changed}" in out and "what to do: keep the store as it is" in out
    code, out, _ = people(capsys, "verify", "--number", number(1), "--json", "--target", stubs.target)
    shown = json.loads(out)
    assert code == 1 and "ok" not in shown and shown["firstBadPosition"] == str(changed)


def test_a_time_without_offset_is_in_the_policys_zone(settings, clock, capsys) -> None:
    shanghai = dataclasses.replace(settings, policy=dataclasses.replace(settings.policy, timezone="Asia/Shanghai"))
    for stubs, _ in running_server(shanghai, clock):
        # Provisioned at 09:00 UTC, 17:00 in Shanghai.
        stubs.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id="p", numbers=[number(1)]))
        target = ("--target", stubs.target)
        for as_of, events in (("2026-01-05T16:00", 0), ("2026-01-05T10:00Z", 1), ("2026-01-04", 0), ("2026-01-05", 1)):
            code, out, _ = people(capsys, "history", number(1), "--as-of", as_of, "--json", *target)
            assert code == 0 and len(json.loads(out)) == events, as_of
            code, out, _ = people(capsys, "history", number(1), "--as-of", as_of, *target)
            assert code == 0 and f"History of {number(1)}: {events} event" in out, (as_of, out)
        code, out, _ = people(capsys, "history", number(1), *target)
        assert "1   2026-01-05 17:00:00 01-05 09:00" in out and "Times in Asia/Shanghai (WHEN) and in UTC." in out
