"""Held erasures and erasure epochs over real servers on loopback, on both stores.

A held erasure answers ``erasure_due_at``, withholds the data from every read but a legal hold (which is
recorded), and ``scripts.erase_due`` completes it once the period has ended. Two server processes (two
"hosts", each with its own epoch key file) share one store: the epochs they end on schedule, and one
ended by ``ledger keys rotate``, are followed by both, and each reads what the other sealed.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from ledger.config import Settings
from ledger.keys.epoch import EpochFile
from ledger.policy import Policy
from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import ledger_pb2
from ledger.v1 import lifecycle_service_pb2 as lpb
from scripts import erase_due
from tests.conftest import TEST_MASTER_KEY, FakeClock, Stubs, number, running_server
from tests.procs import ENV, Serve

STORES = ("sqlite", "postgres")


def history(stubs: Stubs, msisdn: str, legal_hold: bool = False) -> list:
    request = hpb.GetNumberHistoryRequest(
        number=msisdn, include_personal_data=True, purpose="court order 7", legal_hold=legal_hold
    )
    return [r.event for r in stubs.history.GetNumberHistory(request)]


def registered_state(events: list) -> int:
    return next(e.personal_data_state for e in events if e.type == "SubscriberRegistered")


def test_a_held_erasure_answers_its_due_time_restricts_reads_and_erase_due_completes_it(
    settings: Settings, clock: FakeClock, store_kind: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    # 300 days: held in the server's (fake) January 2026, due by the real clock that erase_due reads.
    settings = dataclasses.replace(settings, policy=Policy(identity_retention_days=300))
    url = f"sqlite:///{settings.store.sqlite_path}" if store_kind == "sqlite" else db_url(settings)
    monkeypatch.setenv("LEDGER_MASTER_KEY", TEST_MASTER_KEY if store_kind == "postgres" else "")
    for stubs, _app in running_server(settings, clock):
        msisdn = number(71)
        sid, _tenure, _iccid = stubs.onboard(msisdn, 71)
        stubs.lifecycle.DisconnectNumber(
            lpb.DisconnectNumberRequest(
                request_id="d", number=msisdn, reason=ledger_pb2.DISCONNECT_REASON_SUBSCRIBER_REQUEST
            )
        )
        ended = clock.now()
        clock.advance(days=3)
        answer = stubs.lifecycle.EraseSubscriberData(
            lpb.EraseSubscriberDataRequest(request_id="e", subscriber_id=sid, legal_basis="PIPL art. 47")
        )
        assert answer.HasField("erasure_due_at")
        assert answer.erasure_due_at.ToDatetime(tzinfo=ended.tzinfo) == ended + timedelta(days=300)

        withheld = history(stubs, msisdn)
        assert registered_state(withheld) == 2  # PERSONAL_DATA_STATE_WITHHELD
        assert not [e for e in withheld if e.type == "AccessLogPersonalDataRead"]
        held = history(stubs, msisdn, legal_hold=True)
        assert registered_state(held) == 3  # DISCLOSED, for the legal hold only
        reads = [e for e in history(stubs, msisdn) if e.type == "AccessLogPersonalDataRead"]
        assert len(reads) == 1 and "legal hold: court order 7" in str(reads[0])

        assert erase_due.main(["--db", url, "--dry-run", "--no-progress"]) == 0
        assert f"due {sid}" in capsys.readouterr().out
        assert registered_state(history(stubs, msisdn, legal_hold=True)) == 3  # a dry run erases nothing

        assert erase_due.main(["--db", url, "--no-progress"]) == 0
        out = capsys.readouterr()
        assert f"erased {sid}" in out.out and "1 erased" in out.err
        events = history(stubs, msisdn, legal_hold=True)
        assert registered_state(events) == 4  # ERASED
        assert [e.actor for e in events if e.type == "SubscriberPersonalDataErased"] == ["erase_due"]

        assert erase_due.main(["--db", url, "--no-progress"]) == 0
        assert "0 erased" in capsys.readouterr().err
        assert len([e for e in history(stubs, msisdn) if e.type == "SubscriberPersonalDataErased"]) == 1


def db_url(settings: Settings) -> str:
    pg = settings.store.postgres
    return f"postgresql://{pg['user']}@{pg['host']}:{pg['port']}/{pg['dbname']}"


def epoch_of(path: Path) -> int:
    held = EpochFile(path).read()
    return -1 if held is None else held[0]


def wait_for(predicate, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_two_servers_with_their_own_epoch_files_share_one_store_across_epochs(
    settings: Settings, tmp_path: Path, store_kind: str
) -> None:
    url = f"sqlite:///{settings.store.sqlite_path}" if store_kind == "sqlite" else db_url(settings)
    policy = tmp_path / "policy.toml"
    policy.write_text("[policy]\nidentity_retention_days = 0\nerasure_epoch_seconds = 3\n")
    files = {name: tmp_path / f"host-{name}.epoch.key" for name in "abc"}
    common = {"LEDGER_KEY_POLL_SECONDS": "0.5", "LEDGER_KEY_BUCKETS": "16"}
    a = Serve(url, ("--policy", str(policy)), env={**common, "LEDGER_EPOCH_KEY_FILE": str(files["a"])})
    b = None
    try:
        shutil.copy(files["a"], files["b"])  # host b is given the current epoch file once, when set up
        b = Serve(url, ("--policy", str(policy)), env={**common, "LEDGER_EPOCH_KEY_FILE": str(files["b"])})
        sa, sb = Stubs(a.channel), Stubs(b.channel)
        sb._ids = itertools.count(10_000)
        msisdn_a, msisdn_b = number(81), number(82)
        sa.onboard(msisdn_a, 81)
        sid_b, _t, _i = sb.onboard(msisdn_b, 82)
        # An erasure through b marks a bucket; the servers end epochs every 3 s and both files follow.
        sb.lifecycle.DisconnectNumber(
            lpb.DisconnectNumberRequest(
                request_id="d-b", number=msisdn_b, reason=ledger_pb2.DISCONNECT_REASON_SUBSCRIBER_REQUEST
            )
        )
        sb.lifecycle.EraseSubscriberData(
            lpb.EraseSubscriberDataRequest(request_id="e-b", subscriber_id=sid_b, legal_basis="PIPL")
        )
        wait_for(lambda: min(epoch_of(files["a"]), epoch_of(files["b"])) >= 2, "both hosts followed the epochs")
        # `ledger keys rotate` from a third host ends one more epoch now; both servers follow it.
        shutil.copy(files["a"], files["c"])
        rotate = subprocess.run(
            [sys.executable, "-m", "ledger", "keys", "rotate", "--db", url],
            env={**ENV, "LEDGER_EPOCH_KEY_FILE": str(files["c"]), **({"HOME": os.environ.get("HOME", "")})},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert rotate.returncode == 0, rotate.stderr
        rotated = epoch_of(files["c"])
        wait_for(lambda: min(epoch_of(files["a"]), epoch_of(files["b"])) >= rotated, "both followed the rotation")
        # Each reads what the other sealed, across all those epochs.
        msisdn_late = number(83)
        sa.onboard(msisdn_late, 83)
        for stubs in (sa, sb):
            assert registered_state(history(stubs, msisdn_a)) == 3
            assert registered_state(history(stubs, msisdn_late)) == 3
            assert registered_state(history(stubs, msisdn_b)) == 4
    finally:
        a.stop()
        if b is not None:
            b.stop()
