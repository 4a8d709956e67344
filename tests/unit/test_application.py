"""The application on the in-memory adapter: every command's rules and the events it records, narrated,
in milliseconds and without a server or a database file."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest

from ledger.adapters.memory import memory_env
from ledger.application import LedgerApplication
from ledger.application.commands import (
    ActivateSim,
    ConfirmDataCleared,
    DisconnectNumber,
    EraseSubscriberData,
    ProvisionNumbers,
    RegisterSubscriber,
    ReleaseNumber,
    ResumeNumber,
    SuspendNumber,
    SwapSim,
    VerifyIdentity,
)
from ledger.application.pipeline import execute
from ledger.application.reads import number_history
from ledger.application.unit_of_work import ImmediateUnitOfWork
from ledger.application.verification import verify_integrity
from ledger.domain import errors
from ledger.domain.indexes import IdentityHoldings, RequestRecord, SimCard
from ledger.domain.number import Number
from ledger.keys.crypto import MasterKey
from ledger.keys.stores import MemoryKeyStore
from ledger.keys.vault import PersonalDataVault
from ledger.policy import Policy
from tests.conftest import RESIDENT_DOB, RESIDENT_ID, FakeClock, new_iccid, resident_id

NUMBER, OTHER = "+8613800138000", "+8613800138001"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ledger(clock: FakeClock):
    vault = PersonalDataVault(MasterKey(bytes(range(32))), MemoryKeyStore())
    policy = Policy(max_numbers_per_identity=2, identity_retention_days=0)
    app = LedgerApplication(env=memory_env(), vault=vault, policy=policy, clock=clock, group_commit=False)
    yield app
    app.close()


def topics(app: LedgerApplication, since: int = 0) -> list[str]:
    """The event types recorded after position ``since``, bookkeeping streams included."""
    notifications = app.recorder.select_notifications(start=since + 1, limit=1000)
    return [n.topic.rsplit(":", 1)[1] for n in notifications]


def register(app: LedgerApplication, request_id: str = "r-1", id_number: str = RESIDENT_ID) -> UUID:
    result = execute(
        app,
        RegisterSubscriber(
            full_name="Zhang San", id_type="RESIDENT_ID_CARD", id_number=id_number, date_of_birth=RESIDENT_DOB
        ),
        request_id=request_id,
        actor="shop",
    )
    return UUID(result.data["subscriber_id"])


def verified(app: LedgerApplication, request_id: str = "r-1", id_number: str = RESIDENT_ID) -> UUID:
    sid = register(app, request_id, id_number)
    execute(
        app,
        VerifyIdentity(
            subscriber_id=sid, method="ID_CARD_READER", channel="retail", agent_id="agent-7", evidence_ref="scan"
        ),
        request_id=f"v-{request_id}",
        actor="shop",
    )
    return sid


def activate(app: LedgerApplication, sid: UUID, number: str = NUMBER, request_id: str = "a-1", iccid: str = ""):
    return execute(
        app,
        ActivateSim(
            number=number,
            subscriber_id=sid,
            iccid=iccid or new_iccid(),
            imsi="460001234567890",
            channel="retail",
            agent_id="agent-7",
        ),
        request_id=request_id,
        actor="shop",
    )


def swap(app: LedgerApplication, request_id: str, iccid: str):
    return execute(
        app,
        SwapSim(
            number=NUMBER,
            new_iccid=iccid,
            new_imsi="460001234567891",
            reason="LOST_OR_STOLEN",
            channel="retail",
            agent_id="agent-7",
        ),
        request_id=request_id,
        actor="shop",
    )


def disconnect(app: LedgerApplication, number: str = NUMBER, request_id: str = "d-1"):
    return execute(
        app, DisconnectNumber(number=number, reason="SUBSCRIBER_REQUEST"), request_id=request_id, actor="shop"
    )


def test_provisioning_records_each_new_number_once(ledger) -> None:
    first = execute(ledger, ProvisionNumbers(numbers=[NUMBER, NUMBER, OTHER]), request_id="p-1", actor="ops")
    assert first.data == {"provisioned_count": 2, "already_provisioned": []}
    assert topics(ledger) == ["Number.Provisioned", "Number.Provisioned", "RequestRecord.Recorded"]
    again = execute(ledger, ProvisionNumbers(numbers=[OTHER]), request_id="p-2", actor="ops")
    assert again.data == {"provisioned_count": 0, "already_provisioned": [OTHER]}
    assert ledger.get_number(NUMBER).status == "AVAILABLE"


def test_a_retry_returns_the_first_result_and_other_content_is_refused(ledger) -> None:
    first = execute(ledger, ProvisionNumbers(numbers=[NUMBER]), request_id="p-1", actor="ops")
    retry = execute(ledger, ProvisionNumbers(numbers=[NUMBER]), request_id="p-1", actor="ops")
    assert (retry.position, retry.data, retry.replayed) == (first.position, first.data, True)
    assert ledger.reader.max_position() == first.position
    with pytest.raises(errors.RequestIdReused):
        execute(ledger, ProvisionNumbers(numbers=[OTHER]), request_id="p-1", actor="ops")


def test_registration_seals_personal_data_under_the_subscribers_own_key(ledger) -> None:
    sid = register(ledger)
    subscriber = ledger.get_subscriber(sid)
    assert "Zhang" not in subscriber.personal_data
    assert ledger.vault.open(sid, subscriber.personal_data)["full_name"] == "Zhang San"
    assert topics(ledger) == ["Subscriber.Registered", "RequestRecord.Recorded"]


def test_activation_needs_a_verified_identity_an_available_number_and_a_free_sim(ledger) -> None:
    execute(ledger, ProvisionNumbers(numbers=[NUMBER, OTHER]), request_id="p-1", actor="ops")
    sid = register(ledger)
    with pytest.raises(errors.IdentityNotVerified):
        activate(ledger, sid)
    sid = verified(ledger, "r-2", resident_id(2))
    with pytest.raises(errors.NumberNotFound):
        activate(ledger, sid, "+8613800138999")
    before = ledger.reader.max_position()
    iccid = new_iccid()
    result = activate(ledger, sid, iccid=iccid)
    assert UUID(result.data["tenure_id"]) == Number.tenure_id_for(NUMBER, 1)
    assert topics(ledger, before) == [
        "Number.Activated",
        "IdentityHoldings.Opened",
        "IdentityHoldings.TenureOpened",
        "SimCard.Registered",
        "SimCard.Assigned",
        "RequestRecord.Recorded",
    ]
    with pytest.raises(errors.NumberNotAvailable):
        activate(ledger, sid, request_id="a-2")
    with pytest.raises(errors.IccidInUse):
        activate(ledger, sid, OTHER, request_id="a-3", iccid=iccid)
    assert ledger.reader.max_position() == result.position  # a refused command records nothing


def test_the_identity_cap_counts_numbers_in_service(ledger) -> None:
    numbers = [f"+86138001380{i:02d}" for i in range(3)]
    execute(ledger, ProvisionNumbers(numbers=numbers), request_id="p-1", actor="ops")
    sid = verified(ledger)
    activate(ledger, sid, numbers[0], "a-0")
    activate(ledger, sid, numbers[1], "a-1")
    with pytest.raises(errors.IdentityNumberCap):
        activate(ledger, sid, numbers[2], "a-2")
    disconnect(ledger, numbers[0])
    activate(ledger, sid, numbers[2], "a-3")
    holdings = ledger.repository.get(IdentityHoldings.create_id(ledger.get_subscriber(sid).identity_key))
    assert len(holdings.open_tenures) == 2


def test_a_sim_swap_moves_the_number_and_frees_the_old_sim(ledger) -> None:
    execute(ledger, ProvisionNumbers(numbers=[NUMBER]), request_id="p-1", actor="ops")
    old, new = new_iccid(), new_iccid()
    activate(ledger, verified(ledger), iccid=old)
    with pytest.raises(errors.SameIccid):
        swap(ledger, "s-0", old)
    before = ledger.reader.max_position()
    swap(ledger, "s-1", new)
    assert topics(ledger, before) == [
        "Number.SimSwapped",
        "SimCard.Unassigned",
        "SimCard.Registered",
        "SimCard.Assigned",
        "RequestRecord.Recorded",
    ]
    assert ledger.repository.get(SimCard.create_id(old)).tenure_id is None
    assert ledger.get_number(NUMBER).tenures[-1].iccid == new


def test_suspend_and_resume_only_from_active_and_suspended(ledger) -> None:
    execute(ledger, ProvisionNumbers(numbers=[NUMBER]), request_id="p-1", actor="ops")
    with pytest.raises(errors.NumberNotActive):
        execute(ledger, SuspendNumber(number=NUMBER, reason="FRAUD", note=""), request_id="s-0", actor="noc")
    activate(ledger, verified(ledger))
    with pytest.raises(errors.NumberNotSuspended):
        execute(ledger, ResumeNumber(number=NUMBER, note=""), request_id="u-0", actor="noc")
    execute(ledger, SuspendNumber(number=NUMBER, reason="FRAUD", note="reported"), request_id="s-1", actor="noc")
    assert (ledger.get_number(NUMBER).status, ledger.get_number(NUMBER).suspension_reason) == ("SUSPENDED", "FRAUD")
    execute(ledger, ResumeNumber(number=NUMBER, note="cleared"), request_id="u-1", actor="noc")
    assert ledger.get_number(NUMBER).status == "ACTIVE"
    recorded = ["Number.Suspended", "RequestRecord.Recorded", "Number.Resumed", "RequestRecord.Recorded"]
    assert topics(ledger)[-4:] == recorded


def test_disconnection_starts_quarantine_and_clearance_and_release_waits_for_both(ledger, clock) -> None:
    execute(ledger, ProvisionNumbers(numbers=[NUMBER]), request_id="p-1", actor="ops")
    activate(ledger, verified(ledger))
    before = ledger.reader.max_position()
    result = disconnect(ledger)
    assert topics(ledger, before) == [
        "Number.Disconnected",
        "IdentityHoldings.TenureClosed",
        "SimCard.Unassigned",
        "RequestRecord.Recorded",
    ]
    tenure_id = UUID(result.data["tenure_id"])
    assert result.data["quarantine_until"] == (clock.now() + timedelta(days=90)).isoformat()
    with pytest.raises(errors.QuarantineNotElapsed):
        execute(ledger, ReleaseNumber(number=NUMBER, override_reason=""), request_id="rel-0", actor="ops")
    clock.advance(days=91)
    with pytest.raises(errors.ClearancePending):
        execute(ledger, ReleaseNumber(number=NUMBER, override_reason=""), request_id="rel-1", actor="ops")
    cleared = []
    for holder in ("crm", "billing", "voicemail"):
        confirm = execute(
            ledger,
            ConfirmDataCleared(number=NUMBER, tenure_id=tenure_id, holder=holder, evidence_ref="j"),
            request_id=f"c-{holder}",
            actor=holder,
        )
        cleared.append(confirm.data["clearance"])
    assert cleared == ["PENDING", "PENDING", "CLEARED"]
    with pytest.raises(errors.HolderAlreadyConfirmed):
        execute(
            ledger,
            ConfirmDataCleared(number=NUMBER, tenure_id=tenure_id, holder="crm", evidence_ref="j"),
            request_id="c-again",
            actor="crm",
        )
    execute(ledger, ReleaseNumber(number=NUMBER, override_reason=""), request_id="rel-2", actor="ops")
    assert ledger.get_number(NUMBER).status == "AVAILABLE"
    with pytest.raises(errors.NumberNotQuarantined):
        execute(ledger, ReleaseNumber(number=NUMBER, override_reason=""), request_id="rel-3", actor="ops")


def test_an_override_releases_early_and_the_tenure_reads_as_a_violation(ledger) -> None:
    execute(ledger, ProvisionNumbers(numbers=[NUMBER]), request_id="p-1", actor="ops")
    activate(ledger, verified(ledger))
    with pytest.raises(errors.TenureNotClosed):
        execute(
            ledger,
            ConfirmDataCleared(
                number=NUMBER, tenure_id=Number.tenure_id_for(NUMBER, 1), holder="crm", evidence_ref="j"
            ),
            request_id="c-0",
            actor="crm",
        )
    disconnect(ledger)
    execute(ledger, ReleaseNumber(number=NUMBER, override_reason="court order 12"), request_id="rel-1", actor="ops")
    assert str(ledger.get_number(NUMBER).tenures[0].clearance) == "VIOLATION"


def test_erasure_destroys_the_key_and_keeps_the_history_verifiable(ledger) -> None:
    execute(ledger, ProvisionNumbers(numbers=[NUMBER]), request_id="p-1", actor="ops")
    sid = verified(ledger)
    activate(ledger, sid)
    with pytest.raises(errors.SubscriberHasOpenTenure):
        execute(
            ledger, EraseSubscriberData(subscriber_id=sid, legal_basis="GDPR art. 17"), request_id="e-0", actor="dpo"
        )
    disconnect(ledger)
    before = ledger.reader.max_position()
    execute(ledger, EraseSubscriberData(subscriber_id=sid, legal_basis="GDPR art. 17"), request_id="e-1", actor="dpo")
    assert topics(ledger, before) == [
        "Subscriber.PersonalDataErased",
        "IdentityHoldings.SubscriberErased",
        "RequestRecord.Recorded",
    ]
    assert not ledger.vault.has_key(sid)
    assert ledger.vault.store.pending_erasures() == []
    with pytest.raises(errors.SubscriberErased):
        activate(ledger, sid, request_id="a-2")
    items = number_history(ledger, NUMBER, include_personal_data=True, actor="auditor", purpose="court order")
    assert [i.personal_state for i in items if i.type_name == "SubscriberRegistered"] == ["ERASED"]
    report = verify_integrity(ledger, None)
    assert (report.ok, report.events_checked) == (True, ledger.reader.max_position())


def test_occurred_at_may_not_go_back_nor_run_ahead_of_the_clock(ledger, clock) -> None:
    execute(ledger, ProvisionNumbers(numbers=[NUMBER]), request_id="p-1", actor="ops")
    with pytest.raises(errors.OccurredAtOutOfOrder):
        activate_at = clock.now() - timedelta(hours=1)
        execute(
            ledger,
            SuspendNumber(number=NUMBER, reason="FRAUD", note=""),
            request_id="s-0",
            actor="noc",
            occurred_at=activate_at,
        )
    with pytest.raises(errors.InvalidArgument) as e:
        execute(
            ledger,
            ProvisionNumbers(numbers=[OTHER]),
            request_id="p-2",
            actor="ops",
            occurred_at=clock.now() + timedelta(hours=1),
        )
    assert e.value.reason == "OCCURRED_AT_IN_FUTURE"


def test_a_staged_unit_of_work_holds_events_until_its_flush(ledger) -> None:
    unit = ledger.staged()
    execute(ledger, ProvisionNumbers(numbers=[NUMBER]), request_id="p-1", actor="ops", unit=unit)
    staged = execute(ledger, ProvisionNumbers(numbers=[NUMBER, OTHER]), request_id="p-2", actor="ops", unit=unit)
    assert staged.data == {"provisioned_count": 1, "already_provisioned": [NUMBER]}  # sees the earlier command
    assert (staged.position, staged.staged_at) == (0, 3)
    assert ledger.reader.max_position() == 0
    recordings = unit.flush()
    assert [r.notification.id for r in recordings] == [1, 2, 3, 4]
    assert unit.events == [] and ledger.get_number(OTHER).status == "AVAILABLE"
    assert ledger.reader.position_of(RequestRecord.create_id("p-2"), 1) == 4


def test_the_in_memory_log_keeps_the_hash_chains(ledger) -> None:
    execute(ledger, ProvisionNumbers(numbers=[NUMBER, OTHER]), request_id="p-1", actor="ops")
    report = verify_integrity(ledger, None)
    assert (report.ok, report.events_checked) == (True, 3)
    assert ledger.reader.chain_hashes([3]) == {3: bytes.fromhex(report.head_digest)}


def test_personal_data_reads_are_recorded_before_disclosure(ledger) -> None:
    execute(ledger, ProvisionNumbers(numbers=[NUMBER]), request_id="p-1", actor="ops")
    activate(ledger, verified(ledger))
    before = ledger.reader.max_position()
    items = number_history(ledger, NUMBER, include_personal_data=True, actor="auditor", purpose="court order")
    registered = [i for i in items if i.type_name == "SubscriberRegistered"]
    assert registered[0].personal_data["id_number"] == RESIDENT_ID
    assert topics(ledger, before) == ["AccessLog.Opened", "AccessLog.PersonalDataRead"]


def test_verification_is_recorded_on_the_subscriber_and_unknown_ids_are_not_found(ledger) -> None:
    sid = register(ledger)
    before = ledger.reader.max_position()
    verified_sid = verified(ledger, "r-2", resident_id(3))
    assert topics(ledger, before)[-2:] == ["Subscriber.IdentityVerified", "RequestRecord.Recorded"]
    assert ledger.get_subscriber(verified_sid).is_verified_at(ledger.clock.now())
    assert not ledger.get_subscriber(sid).is_verified_at(ledger.clock.now())
    unknown = UUID(int=7)
    with pytest.raises(errors.SubscriberNotFound):
        execute(
            ledger,
            VerifyIdentity(
                subscriber_id=unknown, method="ID_CARD_READER", channel="retail", agent_id="a-1", evidence_ref="scan"
            ),
            request_id="v-x",
            actor="shop",
        )
    with pytest.raises(errors.SubscriberNotFound):
        execute(ledger, EraseSubscriberData(subscriber_id=unknown, legal_basis="GDPR"), request_id="e-x", actor="dpo")


def test_a_number_out_of_service_cannot_be_swapped_or_disconnected(ledger) -> None:
    execute(ledger, ProvisionNumbers(numbers=[NUMBER]), request_id="p-1", actor="ops")
    with pytest.raises(errors.NumberNotInService):
        disconnect(ledger)
    with pytest.raises(errors.NumberNotInService):
        swap(ledger, "s-1", new_iccid())
    with pytest.raises(errors.TenureNotFound):
        execute(
            ledger,
            ConfirmDataCleared(number=NUMBER, tenure_id=UUID(int=1), holder="crm", evidence_ref="j"),
            request_id="c-1",
            actor="crm",
        )
    assert topics(ledger) == ["Number.Provisioned", "RequestRecord.Recorded"]


def test_a_staged_registration_is_not_saved_under_a_key_another_writer_stored_first(ledger) -> None:
    from ledger.application.unit_of_work import KeyConflictError
    from ledger.domain.subscriber import Subscriber

    staged = ledger.staged()
    staged.expect_new_requests(["r-staged"])
    command = RegisterSubscriber(
        full_name="Staged", id_type="RESIDENT_ID_CARD", id_number=RESIDENT_ID, date_of_birth=""
    )
    execute(ledger, command, request_id="r-staged", actor="t", unit=staged)
    sid = Subscriber.id_for_request("r-staged")
    ledger.vault.create_key(sid)  # another writer (a command that then failed) stored its key first
    with pytest.raises(KeyConflictError):
        staged.flush()
    assert not ledger.reader.existing([sid])
    # Run again (as the import does, one by one): sealed under the stored key, it opens.
    execute(ledger, command, request_id="r-staged", actor="t")
    subscriber = ledger.get_subscriber(sid)
    assert ledger.vault.open(sid, subscriber.personal_data)["full_name"] == "Staged"


def test_a_trace_gives_the_events_of_one_request_and_nothing_around_them(ledger: LedgerApplication) -> None:
    from ledger.application.trace import request_events

    execute(ledger, ProvisionNumbers(numbers=[NUMBER, OTHER]), request_id="p-1", actor="crm")
    sid = verified(ledger)
    activate(ledger, sid)
    provisioned = request_events(ledger, "p-1")
    assert provisioned is not None
    assert [(i.type_name, i.number) for i in provisioned] == [
        ("NumberProvisioned", NUMBER),
        ("NumberProvisioned", OTHER),
    ]
    activated = request_events(ledger, "a-1")
    assert activated is not None
    # The number's event; the SIM's and the identity's bookkeeping streams are the ledger's own.
    assert [(i.type_name, i.number, i.subscriber_id) for i in activated] == [("NumberActivated", NUMBER, sid)]
    # A retry records nothing new and traces the same.
    execute(ledger, ProvisionNumbers(numbers=[NUMBER, OTHER]), request_id="p-1", actor="crm")
    assert request_events(ledger, "p-1") == provisioned
    assert request_events(ledger, "never-sent") is None  # the server answers errors.RequestNotFound


class _PrefetchMisses(ImmediateUnitOfWork):
    """A unit of work that notes each stream its command loaded outside the one query read before it."""

    def __init__(self, app: LedgerApplication) -> None:
        super().__init__(app)
        self.misses: list[UUID] = []

    def load(self, aggregate_id: UUID):
        if aggregate_id not in self._prefetched:
            self.misses.append(aggregate_id)
        return super().load(aggregate_id)


def test_an_activation_reads_the_identitys_holdings_in_its_one_query(ledger) -> None:
    execute(ledger, ProvisionNumbers(numbers=[NUMBER, OTHER]), request_id="p-1", actor="ops")
    sid = verified(ledger)
    unit = _PrefetchMisses(ledger)
    command = ActivateSim(NUMBER, sid, new_iccid(), "460001234567890", "retail", "agent-7")
    execute(ledger, command, request_id="a-1", actor="shop", unit=unit)
    assert unit.misses == []
    # The holdings were read fresh in that query: the cap still counts the tenure just opened.
    ledger.policy = Policy(max_numbers_per_identity=1, identity_retention_days=0)
    with pytest.raises(errors.IdentityNumberCap):
        activate(ledger, sid, number=OTHER, request_id="a-2")
