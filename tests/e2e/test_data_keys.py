"""Data keys on the wire, on both stores: a registration the key store fails is refused without the
store's message and taken on a retry once it mends; a registration left without its key is reported by
VerifyIntegrity (``keyless_registrations``) and named in the log when a server starts, with no personal
data. The races, the restarts and the offline verifier are in tests/integration/test_data_keys.py."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest

from ledger.config import Settings
from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import lifecycle_service_pb2 as lpb
from tests.conftest import Stubs, resident_id
from tests.e2e.test_proofs import db_url
from tests.integration.test_data_keys import FAULT, break_key_store, delete_key_row, mend_key_store
from tests.procs import Serve

STORES = ("sqlite", "postgres")


def register(stubs: Stubs | Serve, request_id: str, seq: int) -> lpb.RegisterSubscriberResponse:
    return stubs.lifecycle.RegisterSubscriber(
        lpb.RegisterSubscriberRequest(
            request_id=request_id, full_name=f"Keyed Person {seq}", id_type=1, id_number=resident_id(seq)
        ),
        timeout=60,
    )


def test_a_failing_key_store_refuses_the_registration_without_its_message(server, settings: Settings) -> None:
    stubs, _app = server
    register(stubs, "before", 400)
    break_key_store(settings)
    with pytest.raises(grpc.RpcError) as refused:
        register(stubs, "r-401", 401)
    # A fault of the server's own store, not the caller's: INTERNAL, its message kept in the server's log.
    assert refused.value.code() == grpc.StatusCode.INTERNAL
    assert FAULT not in (refused.value.details() or "")
    mend_key_store(settings)
    assert register(stubs, "r-401", 401).subscriber_id


def test_a_registration_without_its_key_is_reported_by_verify_and_logged_at_start(
    settings: Settings, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("[policy]\nidentity_retention_days = 0\n")
    url, first_log, second_log = db_url(settings), tmp_path / "first.log", tmp_path / "second.log"
    srv = Serve(url, ("--policy", str(policy)), log=first_log)
    try:
        kept, lost, erased = (register(srv, f"k-{seq}", seq).subscriber_id for seq in (500, 501, 502))
        srv.lifecycle.EraseSubscriberData(
            lpb.EraseSubscriberDataRequest(request_id="erase", subscriber_id=erased, legal_basis="PIPL art. 47")
        )
        assert srv.history.VerifyIntegrity(hpb.VerifyIntegrityRequest(), timeout=60).ok  # a tombstone is no loss
        delete_key_row(settings, lost)
        report = srv.history.VerifyIntegrity(hpb.VerifyIntegrityRequest(), timeout=60)
        (keyless,) = report.keyless_registrations
        assert keyless.subscriber_id == lost and not report.ok and report.first_bad_position == keyless.position
        assert "neither a stored data key nor a tombstone" in report.problem
        assert srv.stop() == 0
        srv = Serve(url, ("--policy", str(policy)), log=second_log)
        named = f"the registration at position {keyless.position} (subscriber {lost}) has neither a stored data key"
        deadline = time.monotonic() + 60
        while named not in second_log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        text = second_log.read_text()
        assert named in text and kept not in text and erased not in text
        assert "Keyed Person" not in text and resident_id(501) not in text  # no personal data in the log
        assert srv.stop() == 0
    finally:
        srv.kill()
