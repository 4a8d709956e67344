"""Erasure epochs over real server processes, on both stores: two servers (two "hosts", each with its own
epoch key file) share one store; the epochs they end on schedule, and one ended by ``ledger keys rotate``,
are followed by both, and each reads what the other sealed. A held erasure completed by
``scripts.erase_due`` is tests/integration/test_erase_due.py.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ledger.config import Settings
from ledger.keys.epoch import EpochFile
from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import ledger_pb2
from ledger.v1 import lifecycle_service_pb2 as lpb
from tests.conftest import Stubs, number
from tests.procs import ENV, Serve

STORES = ("sqlite", "postgres")


def history(stubs: Stubs, msisdn: str, legal_hold: bool = False) -> list:
    request = hpb.GetNumberHistoryRequest(
        number=msisdn, include_personal_data=True, purpose="court order 7", legal_hold=legal_hold
    )
    return [r.event for r in stubs.history.GetNumberHistory(request)]


def registered_state(events: list) -> int:
    return next(e.personal_data_state for e in events if e.type == "SubscriberRegistered")


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
