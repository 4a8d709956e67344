"""VerifyIntegrity on the wire: an untouched ledger's report (events checked, head position and digest),
and a changed stored event's position and count, for the whole ledger and for one number. The chains'
cases (changed, deleted, swapped events; published digests; exports; the offline verifier) are in
tests/integration/test_tamper_evidence.py."""

from __future__ import annotations

from ledger.domain.number import Number
from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import lifecycle_service_pb2 as lpb
from tests.conftest import number
from tests.e2e.tamper import Store


def build_history(stubs) -> None:
    for i in range(3):
        msisdn = number(i)
        stubs.onboard(msisdn, seq=i)
        stubs.lifecycle.SuspendNumber(lpb.SuspendNumberRequest(request_id=f"s{i}", number=msisdn, reason=2))
    stubs.lifecycle.ResumeNumber(lpb.ResumeNumberRequest(request_id="r0", number=number(0)))


def verify(stubs, msisdn: str = "", up_to: int = 0) -> hpb.VerifyIntegrityResponse:
    return stubs.history.VerifyIntegrity(hpb.VerifyIntegrityRequest(number=msisdn, up_to_position=up_to))


def test_verify_integrity_reports_the_head_and_the_first_bad_position(server, settings) -> None:
    stubs, app = server
    build_history(stubs)
    whole = verify(stubs)
    head = app.reader.max_position()
    assert whole.ok and whole.events_checked == head and whole.head_position == head and whole.first_bad_position == 0
    assert len(whole.head_digest) == 64 and not whole.problem
    one = verify(stubs, number(0))
    assert one.ok and one.events_checked > 5
    assert verify(stubs, up_to=head - 1).head_position == head - 1

    store = Store(settings)
    try:
        activated = store.positions(Number.create_id(number(1)))[1]
        store.set_state(activated, store.row(activated)[3].replace(b"retail", b"retaiL"))
    finally:
        store.close()
    report = verify(stubs)
    assert not report.ok and report.first_bad_position == activated and report.problem
    assert report.events_checked == activated - 1
    assert not verify(stubs, number(1)).ok
    assert verify(stubs, number(2)).ok  # other numbers still verify on their own
