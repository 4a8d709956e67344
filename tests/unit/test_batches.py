"""Batch authentication on the in-memory store: every committed batch carries a MAC under a key derived
from the master key; an event slipped in by someone without that key is found at its position by the
whole-ledger and the per-number verification, and writes are refused after it."""

from __future__ import annotations

import orjson
import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.popo import POPOApplicationRecorder

from ledger.adapters.memory import ChainedMemoryRecorder, memory_env
from ledger.application import LedgerApplication
from ledger.application.commands import ProvisionNumbers, ResumeNumber, SuspendNumber
from ledger.application.pipeline import execute
from ledger.application.verification import verify_integrity
from ledger.domain.number import Number
from ledger.integrity import GENESIS, chain_rows
from ledger.keys.crypto import MasterKey
from ledger.keys.stores import MemoryKeyStore
from ledger.keys.vault import PersonalDataVault
from ledger.policy import Policy
from ledger.proofs.batches import MACS_FROM, BatchKey, LedgerTampered
from ledger.proofs.merkle import event_leaf_hash
from tests.conftest import FakeClock
from tests.unit.test_application import NUMBER, activate, verified


@pytest.fixture
def ledger():
    vault = PersonalDataVault(MasterKey(bytes(range(32))), MemoryKeyStore())
    app = LedgerApplication(env=memory_env(), vault=vault, policy=Policy(), clock=FakeClock(), group_commit=False)
    yield app
    app.close()


def suspend_and_resume(app: LedgerApplication, n: int) -> None:
    if n == 1:
        activate(app, verified(app))
    execute(app, SuspendNumber(number=NUMBER, reason="FRAUD", note=""), request_id=f"s-{n}", actor="noc")
    execute(app, ResumeNumber(number=NUMBER, note=""), request_id=f"u-{n}", actor="noc")


def forge(recorder: ChainedMemoryRecorder, event: StoredEvent) -> int:
    """Append an event the way someone without the key would: the event and its chain row, no MAC."""
    POPOApplicationRecorder._update_table(recorder, [event])
    position = len(recorder._stored_events)
    previous = recorder.chain[position - 1][1] if position > 1 else GENESIS
    rows = chain_rows([event], [position], previous, recorder._stream_head)
    recorder.chain[position] = rows[0][1:]
    return position


def forged_resume(app: LedgerApplication) -> StoredEvent:
    stream = app.reader.stream_events([Number.create_id(NUMBER)])[Number.create_id(NUMBER)]
    resumed = [e for e in stream if e.topic.endswith(":Number.Resumed")][-1]
    state = orjson.loads(resumed.state)
    state["actor"] = "regulator-forged"
    return StoredEvent(resumed.originator_id, stream[-1].originator_version + 1, resumed.topic, orjson.dumps(state))


def test_every_batch_is_sealed_under_the_key_from_the_master_key(ledger) -> None:
    execute(ledger, ProvisionNumbers(numbers=[NUMBER]), request_id="p-1", actor="ops")
    suspend_and_resume(ledger, 1)
    recorder: ChainedMemoryRecorder = ledger.recorder  # type: ignore[assignment]
    assert recorder.marks()[MACS_FROM].position == 1
    covered = [p for b in recorder.batch_rows for p in range(b.first, b.last + 1)]
    assert covered == list(range(1, ledger.reader.max_position() + 1))
    assert verify_integrity(ledger, None).ok and verify_integrity(ledger, NUMBER).ok
    # Under another master key the same batches do not verify.
    other = BatchKey.from_master(MasterKey(bytes(32)))
    batch = recorder.batch_rows[0]
    leaves = [e for e in ledger.reader.chained() if batch.first <= e.position <= batch.last]
    digests = [event_leaf_hash(e.position, e.stream_id, e.version, e.topic, e.state) for e in leaves]
    assert ledger.batch_key.seal(batch.first, batch.last, digests) == batch.mac
    assert other.seal(batch.first, batch.last, digests) != batch.mac


def test_an_event_no_server_wrote_is_found_at_its_position_and_stops_writes(ledger) -> None:
    execute(ledger, ProvisionNumbers(numbers=[NUMBER]), request_id="p-1", actor="ops")
    suspend_and_resume(ledger, 1)
    position = forge(ledger.recorder, forged_resume(ledger))  # type: ignore[arg-type]
    whole = verify_integrity(ledger, None)
    assert not whole.ok and whole.first_bad_position == position and "no ledger server wrote" in whole.problem
    one = verify_integrity(ledger, NUMBER)
    assert not one.ok and one.first_bad_position == position
    with pytest.raises(LedgerTampered):
        execute(ledger, ProvisionNumbers(numbers=["+8613800138001"]), request_id="p-2", actor="ops")


def test_an_edited_batch_fails_its_mac_even_with_the_chains_rehashed(ledger) -> None:
    execute(ledger, ProvisionNumbers(numbers=[NUMBER]), request_id="p-1", actor="ops")
    suspend_and_resume(ledger, 1)
    recorder: ChainedMemoryRecorder = ledger.recorder  # type: ignore[assignment]
    last = recorder.batch_rows[-1]
    index = last.last - 1
    stored = recorder._stored_events[index]
    recorder._stored_events[index] = StoredEvent(
        stored.originator_id, stored.originator_version, stored.topic, stored.state.replace(b"noc", b"noz")
    )
    # Rehash both chains from the start over the edited log.
    recorder.chain.clear()
    for p, event in enumerate(list(recorder._stored_events), start=1):
        previous = recorder.chain[p - 1][1] if p > 1 else GENESIS
        recorder.chain[p] = chain_rows([event], [p], previous, recorder._stream_head)[0][1:]
    report = verify_integrity(ledger, None)
    assert not report.ok and report.first_bad_position == last.first and "MAC" in report.problem
