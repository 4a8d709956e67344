"""The lifecycle RPCs' requests on the in-memory application: each request validated into its command,
executed and answered by ``lifecycle_commands.run_command`` (what the gRPC servicer and ImportCommands
call), the reads answered as the history servicer's messages. Refusals are asserted as the domain's error
class and reason; how each error family reaches the wire is ``test_error_mapping.py``, and one call of
each family goes over a real server in ``tests/e2e/test_lifecycle_grpc.py``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from ledger.adapters.memory import memory_env
from ledger.application import LedgerApplication
from ledger.application.disconnections import permanent_disconnections
from ledger.application.feed import Feed
from ledger.application.reads import number_history, number_state
from ledger.domain import errors
from ledger.domain.indexes import ReportOutOfOrder
from ledger.keys.crypto import MasterKey
from ledger.keys.stores import MemoryKeyStore
from ledger.keys.vault import PersonalDataVault
from ledger.policy import Policy
from ledger.server.convert import ledger_event, number_state_message
from ledger.server.importer import Importer
from ledger.server.lifecycle_commands import run_command
from ledger.v1 import ledger_pb2
from ledger.v1 import lifecycle_service_pb2 as lpb
from tests.conftest import RESIDENT_DOB, RESIDENT_ID, FakeClock, imsi_for, new_iccid, number, resident_id


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ledger(clock: FakeClock):
    """The application with the server's default policy (a cap of 5, 90 days' quarantine, three holders)."""
    vault = PersonalDataVault(MasterKey(bytes(range(32))), MemoryKeyStore())
    app = LedgerApplication(
        env=memory_env(), vault=vault, policy=Policy(identity_retention_days=0), clock=clock, group_commit=False
    )
    yield app
    app.close()


def call(app: LedgerApplication, rpc: str, **fields):
    """An RPC's request through validation, its command and its response."""
    return run_command(app, rpc, getattr(lpb, f"{rpc}Request")(**fields), actor="shop")


def refused(app: LedgerApplication, error: type[errors.LedgerError], rpc: str, **fields) -> errors.LedgerError:
    """The request is refused with ``error`` and records nothing."""
    before = app.reader.max_position()
    with pytest.raises(error) as caught:
        call(app, rpc, **fields)
    assert app.reader.max_position() == before
    return caught.value


def ts(dt: datetime) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(dt)
    return t


def history(app: LedgerApplication, msisdn: str, purpose: str = "") -> list[ledger_pb2.LedgerEvent]:
    """GetNumberHistory's events (personal data disclosed only with a purpose)."""
    items = number_history(app, msisdn, include_personal_data=bool(purpose), actor="auditor", purpose=purpose)
    return [ledger_event(i) for i in items]


def state(app: LedgerApplication, msisdn: str, as_of: datetime | None = None) -> ledger_pb2.NumberState:
    return number_state_message(number_state(app, msisdn, as_of))


def person(app: LedgerApplication, rid: str, seq: int, name: str = "") -> str:
    sid = call(
        app, "RegisterSubscriber", request_id=rid, full_name=name or f"P {seq}", id_type=1, id_number=resident_id(seq)
    ).subscriber_id
    verify(app, f"v-{rid}", sid)
    return sid


def verify(app: LedgerApplication, rid: str, sid: str, **fields) -> None:
    fields = {"method": 1, "channel": "retail", "agent_id": "a", "evidence_ref": "e", **fields}
    call(app, "VerifyIdentity", request_id=rid, subscriber_id=sid, **fields)


def activation(rid: str, msisdn: str, sid: str, iccid: str = "", **fields) -> dict:
    iccid = iccid or new_iccid()
    return {
        "request_id": rid,
        "number": msisdn,
        "subscriber_id": sid,
        "iccid": iccid,
        "imsi": imsi_for(iccid),
        "channel": "retail",
        "agent_id": "agent-7",
        **fields,
    }


def test_the_whole_lifecycle_with_every_refusal(ledger, clock) -> None:
    """Moved from tests/e2e/test_lifecycle_grpc.py (test_full_lifecycle_with_every_refusal)."""
    msisdn = number(1)
    call(ledger, "ProvisionNumbers", request_id="prov", numbers=[msisdn, number(2)])
    alice = call(
        ledger,
        "RegisterSubscriber",
        request_id="reg-alice",
        full_name="Alice Zhang",
        id_type=ledger_pb2.ID_TYPE_RESIDENT_ID_CARD,
        id_number=RESIDENT_ID,
        date_of_birth=RESIDENT_DOB,
    ).subscriber_id
    activate = activation("act-1", msisdn, alice)
    assert refused(ledger, errors.IdentityNotVerified, "ActivateSim", **activate).reason == "IDENTITY_NOT_VERIFIED"
    verify(ledger, "ver-alice", alice, agent_id="agent-7", evidence_ref="scan-1")
    tenure1 = call(ledger, "ActivateSim", **activate).tenure_id
    again = {**activate, "request_id": "act-again"}
    assert refused(ledger, errors.NumberNotAvailable, "ActivateSim", **again).reason == "NUMBER_NOT_AVAILABLE"
    # The same SIM cannot serve a second number.
    other = {**activate, "request_id": "act-2", "number": number(2)}
    assert refused(ledger, errors.IccidInUse, "ActivateSim", **other).reason == "ICCID_IN_USE"

    clock.advance(days=1)
    resume = {"request_id": "res-0", "number": msisdn}
    assert refused(ledger, errors.NumberNotSuspended, "ResumeNumber", **resume).reason == "NUMBER_NOT_SUSPENDED"
    call(ledger, "SuspendNumber", request_id="sus-1", number=msisdn, reason=ledger_pb2.SUSPENSION_REASON_LOST_SIM)
    suspend = {"request_id": "sus-2", "number": msisdn, "reason": ledger_pb2.SUSPENSION_REASON_FRAUD}
    assert refused(ledger, errors.NumberNotActive, "SuspendNumber", **suspend).reason == "NUMBER_NOT_ACTIVE"
    new_sim = new_iccid()
    call(
        ledger,
        "SwapSim",
        request_id="swap-1",
        number=msisdn,
        new_iccid=new_sim,
        new_imsi=imsi_for(new_sim),
        reason=ledger_pb2.SIM_SWAP_REASON_LOST_OR_STOLEN,
        channel="retail",
        agent_id="agent-7",
    )
    call(ledger, "ResumeNumber", request_id="res-1", number=msisdn, note="new SIM")
    now = state(ledger, msisdn)
    assert now.state == ledger_pb2.NUMBER_STATUS_ACTIVE and now.current_tenure.iccid == new_sim
    assert now.subscriber_id == alice and now.verified

    # Erasure is refused while the subscriber still holds the number.
    erase = {"request_id": "erase-0", "subscriber_id": alice, "legal_basis": "PIPL art. 47"}
    refusal = refused(ledger, errors.SubscriberHasOpenTenure, "EraseSubscriberData", **erase)
    assert refusal.reason == "SUBSCRIBER_HAS_OPEN_TENURE"

    clock.advance(days=30)
    disc = call(
        ledger,
        "DisconnectNumber",
        request_id="disc-1",
        number=msisdn,
        reason=ledger_pb2.DISCONNECT_REASON_SUBSCRIBER_REQUEST,
    )
    assert disc.tenure_id == tenure1
    assert disc.quarantine_until.ToDatetime(tzinfo=UTC) == datetime(2026, 5, 6, 9, 0, tzinfo=UTC)
    release = {"request_id": "rel-1", "number": msisdn}
    assert refused(ledger, errors.QuarantineNotElapsed, "ReleaseNumber", **release).reason == "QUARANTINE_NOT_ELAPSED"
    clock.advance(days=90)
    release = {"request_id": "rel-2", "number": msisdn}
    assert refused(ledger, errors.ClearancePending, "ReleaseNumber", **release).reason == "CLEARANCE_PENDING"
    clearances = [
        call(
            ledger,
            "ConfirmDataCleared",
            request_id=f"clr-{holder}",
            number=msisdn,
            tenure_id=tenure1,
            holder=holder,
            evidence_ref=f"{holder}-ticket",
        ).clearance
        for holder in ("crm", "billing", "voicemail")
    ]
    assert clearances == [ledger_pb2.CLEARANCE_PENDING, ledger_pb2.CLEARANCE_PENDING, ledger_pb2.CLEARANCE_CLEARED]
    confirm = {"request_id": "clr-crm-2", "number": msisdn, "tenure_id": tenure1, "holder": "crm", "evidence_ref": "x"}
    refusal = refused(ledger, errors.HolderAlreadyConfirmed, "ConfirmDataCleared", **confirm)
    assert refusal.reason == "HOLDER_ALREADY_CONFIRMED"
    call(ledger, "ReleaseNumber", request_id="rel-3", number=msisdn)
    release = {"request_id": "rel-4", "number": msisdn}
    assert refused(ledger, errors.NumberNotQuarantined, "ReleaseNumber", **release).reason == "NUMBER_NOT_QUARANTINED"

    # Recycled to a new subscriber, verified by passport online.
    bob = call(
        ledger,
        "RegisterSubscriber",
        request_id="reg-bob",
        full_name="Bob Li",
        id_type=ledger_pb2.ID_TYPE_PASSPORT,
        id_number="E12345678",
    ).subscriber_id
    verify(
        ledger,
        "ver-bob",
        bob,
        method=ledger_pb2.VERIFICATION_METHOD_PASSPORT_CHECK,
        channel="online",
        agent_id="kyc-bot",
        evidence_ref="liveness-9",
    )
    tenure2 = call(ledger, "ActivateSim", **activation("act-bob", msisdn, bob, channel="online", agent_id="kyc-bot"))
    assert tenure2.tenure_id != tenure1
    call(ledger, "EraseSubscriberData", request_id="erase-1", subscriber_id=alice, legal_basis="PIPL art. 47")
    erase = {"request_id": "erase-2", "subscriber_id": alice, "legal_basis": "again"}
    assert refused(ledger, errors.SubscriberErased, "EraseSubscriberData", **erase).reason == "SUBSCRIBER_ERASED"

    events = history(ledger, msisdn, purpose="court order 2026/88")
    types = [e.type for e in events]
    assert types[0] == "NumberProvisioned"
    assert types.count("NumberActivated") == 2 and "SubscriberPersonalDataErased" in types
    positions = [e.position for e in events]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    by_subscriber = {e.subscriber_id: e for e in events if e.type == "SubscriberRegistered"}
    assert by_subscriber[alice].personal_data_state == ledger_pb2.PERSONAL_DATA_STATE_ERASED
    assert by_subscriber[alice].personal_data.full_name == ""
    assert by_subscriber[bob].personal_data_state == ledger_pb2.PERSONAL_DATA_STATE_DISCLOSED
    assert by_subscriber[bob].personal_data.full_name == "Bob Li"
    assert all(e.actor for e in events) and all(e.request_id for e in events)
    disconnected = next(e for e in events if e.type == "NumberDisconnected")
    assert disconnected.subscriber_id == alice
    assert disconnected.data["required_holders"] == ["crm", "billing", "voicemail"]

    # The disclosure of Bob's data (Alice's is erased) was itself recorded, with its purpose.
    plain = history(ledger, msisdn)
    reads = [e for e in plain if e.type == "AccessLogPersonalDataRead"]
    assert len(reads) == 1 and reads[0].data["purpose"] == "court order 2026/88"
    assert reads[0].stream_type == ledger_pb2.STREAM_TYPE_ACCESS_LOG and reads[0].actor
    # Without asking, personal data is withheld, and nothing more is recorded.
    assert {e.personal_data_state for e in plain if e.type == "SubscriberRegistered"} == {
        ledger_pb2.PERSONAL_DATA_STATE_ERASED,
        ledger_pb2.PERSONAL_DATA_STATE_WITHHELD,
    }
    assert len([e for e in history(ledger, msisdn) if e.type == "AccessLogPersonalDataRead"]) == 1

    # Who held it on a past day.
    past = state(ledger, msisdn, datetime(2026, 1, 20, tzinfo=UTC))
    assert past.subscriber_id == alice and past.state == ledger_pb2.NUMBER_STATUS_ACTIVE
    quarantined = state(ledger, msisdn, datetime(2026, 3, 1, tzinfo=UTC))
    assert quarantined.state == ledger_pb2.NUMBER_STATUS_QUARANTINED and quarantined.subscriber_id == ""
    now = state(ledger, msisdn)
    assert now.subscriber_id == bob and now.tenure_count == 2


def test_the_identity_cap_counts_every_registration_of_one_person(ledger) -> None:
    """Moved from tests/e2e/test_lifecycle_grpc.py (test_identity_number_cap): the default cap of 5."""
    numbers = [number(100 + i) for i in range(6)]
    call(ledger, "ProvisionNumbers", request_id="p", numbers=numbers)
    sid = person(ledger, "r", 3, "Cap Test")
    for i, msisdn in enumerate(numbers[:5]):
        call(ledger, "ActivateSim", **activation(f"a{i}", msisdn, sid))
    cap = refused(ledger, errors.IdentityNumberCap, "ActivateSim", **activation("a5", numbers[5], sid))
    assert cap.reason == "IDENTITY_NUMBER_CAP"
    # A second registration of the same person counts against the same cap.
    twin = person(ledger, "r2", 3, "Cap Test")
    request = activation("a-twin", numbers[5], twin)
    assert refused(ledger, errors.IdentityNumberCap, "ActivateSim", **request).reason == "IDENTITY_NUMBER_CAP"
    call(ledger, "DisconnectNumber", request_id="d", number=numbers[0], reason=1)
    call(ledger, "ActivateSim", **request)


@pytest.mark.parametrize(
    ("rpc", "fields", "named"),
    [
        (
            "ActivateSim",
            {
                "request_id": "",
                "number": "13800138000",
                "subscriber_id": "not-a-uuid",
                "iccid": "8986001234567890123",
                "imsi": "46000123",
                "channel": "",
                "agent_id": "",
            },
            # agent_id may be empty: whether a channel needs one is policy, decided once the rest is valid
            ["request_id", "number", "subscriber_id", "iccid", "imsi", "channel"],
        ),
        (
            "RegisterSubscriber",
            {"request_id": "r", "full_name": "X", "id_type": 1, "id_number": "110105194912310021"},
            ["id_number"],
        ),
        (
            "RegisterSubscriber",
            {
                "request_id": "r",
                "full_name": "X",
                "id_type": 1,
                "id_number": RESIDENT_ID,
                "date_of_birth": "1950-01-01",
            },
            ["date_of_birth"],
        ),
        ("SuspendNumber", {"request_id": "s", "number": number(1)}, ["reason"]),
        ("PortOutNumber", {"request_id": "", "number": "1", "recipient_operator": ""}, None),
        ("ReturnNumber", {"request_id": "r", "number": number(10)}, ["disconnected_at"]),
    ],
)
def test_bad_input_names_every_field_and_records_nothing(ledger, rpc: str, fields: dict, named) -> None:
    """Moved from tests/e2e/test_lifecycle_grpc.py (test_bad_input_names_every_field_and_records_nothing) and
    tests/e2e/test_porting_grpc.py (test_port_commands_refuse_bad_input_and_wrong_states)."""
    invalid = refused(ledger, errors.InvalidArgument, rpc, **fields)
    assert isinstance(invalid, errors.InvalidArgument) and invalid.reason == "INVALID_ARGUMENT"
    found = [field for field, _ in invalid.violations]
    if named is None:  # every field of the port at once
        assert set(found) == {"request_id", "number", "recipient_operator"}
    else:
        assert sorted(found) == sorted(named)
    if rpc == "ReturnNumber":
        assert invalid.violations == [("disconnected_at", "is required")]


def test_row8_a_port_out_by_disconnection_is_refused_naming_port_out(ledger) -> None:
    """Moved from tests/e2e/test_porting_grpc.py (row 8): the wire's DISCONNECT_REASON_PORTED_OUT."""
    call(ledger, "ProvisionNumbers", request_id="p", numbers=[number(8)])
    call(ledger, "ActivateSim", **activation("a", number(8), person(ledger, "r", 8)))
    invalid = refused(
        ledger,
        errors.InvalidArgument,
        "DisconnectNumber",
        request_id="d",
        number=number(8),
        reason=ledger_pb2.DISCONNECT_REASON_PORTED_OUT,
    )
    assert invalid.reason == "INVALID_ARGUMENT"
    assert invalid.violations == [("reason", "a port-out is recorded with PortOutNumber, not DisconnectNumber")]


def test_port_commands_refuse_the_wrong_states_and_unknown_numbers(ledger) -> None:
    """Moved from tests/e2e/test_porting_grpc.py (test_port_commands_refuse_bad_input_and_wrong_states)."""
    call(ledger, "ProvisionNumbers", request_id="p", numbers=[number(10)])
    call(ledger, "ActivateSim", **activation("a", number(10), person(ledger, "r", 10)))
    back = {"request_id": "ret", "number": number(10), "disconnected_at": Timestamp(seconds=1_700_000_000)}
    assert refused(ledger, errors.NumberNotPortedOut, "ReturnNumber", **back).reason == "NUMBER_NOT_PORTED_OUT"
    port_in = {"request_id": "pi", "number": number(10), "donor_operator": "d"}
    assert refused(ledger, errors.NumberNotPortedOut, "PortInNumber", **port_in).reason == "NUMBER_NOT_PORTED_OUT"
    refused(ledger, errors.NumberNotFound, "PortOutNumber", request_id="po", number=number(11), recipient_operator="x")


def test_row7_a_ported_out_number_is_never_released(ledger, clock) -> None:
    """Moved from tests/e2e/test_porting_grpc.py (row 7), with or without an override."""
    call(ledger, "ProvisionNumbers", request_id="p", numbers=[number(7)])
    call(ledger, "ActivateSim", **activation("a", number(7), person(ledger, "r", 7)))
    call(ledger, "PortOutNumber", request_id="po", number=number(7), recipient_operator="other-mno")
    clock.advance(days=400)
    for override in ("", "ops"):
        release = {"request_id": f"rel-{override}", "number": number(7), "override_reason": override}
        assert refused(ledger, errors.NumberPortedOut, "ReleaseNumber", **release).reason == "NUMBER_PORTED_OUT"


def test_port_commands_are_imported_like_their_rpcs(ledger) -> None:
    """Moved from tests/e2e/test_porting_grpc.py: ImportCommands' importer on the same requests."""
    msisdn = number(12)
    call(ledger, "ProvisionNumbers", request_id="p", numbers=[msisdn])
    call(ledger, "ActivateSim", **activation("a", msisdn, person(ledger, "r", 12)))
    at = Timestamp()
    at.FromDatetime(datetime(2020, 1, 1, tzinfo=UTC))
    commands = [
        lpb.ImportCommand(
            port_out_number=lpb.PortOutNumberRequest(request_id="i1", number=msisdn, recipient_operator="r")
        ),
        lpb.ImportCommand(return_number=lpb.ReturnNumberRequest(request_id="i2", number=msisdn, disconnected_at=at)),
        lpb.ImportCommand(
            port_in_number=lpb.PortInNumberRequest(request_id="i3", number=number(13), donor_operator="d")
        ),
    ]
    with Importer(ledger, "importer") as importer:
        results = list(importer.run(lpb.ImportCommandsRequest(commands=commands)).results)
    assert results[0].WhichOneof("response") == "port_out_number" and results[0].port_out_number.tenure_id
    assert results[1].error.reason == "INVALID_ARGUMENT"  # the recipient disconnected it before the port
    assert results[2].WhichOneof("response") == "port_in_number"


def test_unknown_numbers_and_subscribers_are_not_found(ledger) -> None:
    """Moved from tests/e2e/test_lifecycle_grpc.py (test_unknown_number_and_subscriber_are_not_found)."""
    refused(ledger, errors.NumberNotFound, "SuspendNumber", request_id="s", number=number(55), reason=1)
    unknown = "6f1c2a52-4f55-4a43-9a4d-7d0b8e1f0a11"
    refused(
        ledger,
        errors.SubscriberNotFound,
        "VerifyIdentity",
        request_id="v",
        subscriber_id=unknown,
        method=1,
        channel="retail",
        agent_id="a",
        evidence_ref="e",
    )
    with pytest.raises(errors.NumberNotFound):
        history(ledger, number(55))


def test_occurred_at_may_not_go_back_nor_run_ahead_and_is_recorded_as_given(ledger, clock) -> None:
    """Moved from tests/e2e/test_lifecycle_grpc.py (test_occurred_at_rules)."""
    msisdn = number(7)
    call(ledger, "ProvisionNumbers", request_id="p", numbers=[msisdn])
    call(ledger, "ActivateSim", **activation("a", msisdn, person(ledger, "r", 7)))
    early = {"request_id": "s1", "number": msisdn, "reason": 1, "occurred_at": ts(datetime(2025, 1, 1, tzinfo=UTC))}
    out_of_order = refused(ledger, errors.OccurredAtOutOfOrder, "SuspendNumber", **early)
    assert out_of_order.reason == "OCCURRED_AT_OUT_OF_ORDER" and out_of_order.violations[0][0] == "occurred_at"
    late = {"request_id": "s2", "number": msisdn, "reason": 1, "occurred_at": ts(datetime(2027, 1, 1, tzinfo=UTC))}
    assert refused(ledger, errors.InvalidArgument, "SuspendNumber", **late).reason == "OCCURRED_AT_IN_FUTURE"
    when = clock.advance(hours=2)
    call(ledger, "SuspendNumber", request_id="s3", number=msisdn, reason=1, occurred_at=ts(when))
    last = history(ledger, msisdn)[-1]
    assert last.type == "NumberSuspended" and last.occurred_at.ToDatetime(tzinfo=UTC) == when


def test_a_retry_answers_the_first_response_and_other_content_is_refused(ledger) -> None:
    """Moved from tests/e2e/test_lifecycle_grpc.py (test_request_id_retry_returns_the_first_result_...)."""
    same = {"request_id": "same", "full_name": "Wang Wu", "id_type": 3, "id_number": "X-1"}
    first = call(ledger, "RegisterSubscriber", **same)
    before = ledger.reader.max_position()
    assert call(ledger, "RegisterSubscriber", **same) == first
    assert ledger.reader.max_position() == before
    other_name = {**same, "full_name": "Wang Liu"}
    refused(ledger, errors.RequestIdReused, "RegisterSubscriber", **other_name)
    other_rpc = {"request_id": "same", "numbers": [number(9)]}
    refused(ledger, errors.RequestIdReused, "ProvisionNumbers", **other_rpc)


def test_provisioning_answers_the_numbers_it_skipped(ledger) -> None:
    """Moved from tests/e2e/test_lifecycle_grpc.py (test_provisioning_skips_known_numbers)."""
    first = call(ledger, "ProvisionNumbers", request_id="p1", numbers=[number(1), number(2)])
    assert first.provisioned_count == 2
    second = call(ledger, "ProvisionNumbers", request_id="p2", numbers=[number(2), number(3), number(3)])
    assert second.provisioned_count == 1 and list(second.already_provisioned) == [number(2)]
    assert second.position > first.position


def test_an_override_release_is_recorded_as_a_violation(ledger) -> None:
    """Moved from tests/e2e/test_lifecycle_grpc.py (test_override_release_records_a_violation)."""
    msisdn = number(8)
    call(ledger, "ProvisionNumbers", request_id="p", numbers=[msisdn])
    tenure = call(ledger, "ActivateSim", **activation("a", msisdn, person(ledger, "r", 8))).tenure_id
    call(ledger, "DisconnectNumber", request_id="d", number=msisdn, reason=3)
    call(ledger, "ReleaseNumber", request_id="rel", number=msisdn, override_reason="regulator order 2026/17")
    released = history(ledger, msisdn)[-1]
    assert released.type == "NumberReleased"
    assert released.data["override_reason"] == "regulator order 2026/17"
    assert released.data["clearance_overridden"] is True
    assert released.data["tenure_id"] == tenure


def test_self_service_needs_no_agent_and_a_store_does(ledger) -> None:
    """Moved from tests/e2e/test_porting_grpc.py (test_self_service_needs_no_agent_and_the_store_does); the
    read models' side is tests/integration/test_answers.py."""
    sid = call(
        ledger, "RegisterSubscriber", request_id="r", full_name="Self Service", id_type=1, id_number=resident_id(40)
    ).subscriber_id
    verify(
        ledger,
        "v",
        sid,
        method=ledger_pb2.VERIFICATION_METHOD_ONLINE_PHOTO_LIVENESS,
        channel="app",
        agent_id="",
        evidence_ref="liveness-1",
    )
    call(ledger, "ProvisionNumbers", request_id="p", numbers=[number(40), number(41)])
    call(ledger, "ActivateSim", **activation("a1", number(40), sid, channel="app", agent_id=""))
    retail = activation("a2", number(41), sid, channel="retail", agent_id="")
    invalid = refused(ledger, errors.InvalidArgument, "ActivateSim", **retail)
    assert invalid.violations == [("agent_id", "is required on channel 'retail' (policy agent_channels)")]


def test_a_disconnection_report_must_follow_the_last_one(ledger) -> None:
    """Moved from tests/e2e/test_disconnection_report.py (test_the_server_refuses_a_report_that_does_not_...)."""
    report = lpb.RecordDisconnectionReportRequest(
        request_id="r1", jurisdiction="+86", month="2026-01", from_position=1, to_position=5, rows=0, digest="0" * 64
    )
    report.period_end.FromDatetime(datetime(2026, 1, 5, tzinfo=UTC))
    run_command(ledger, "RecordDisconnectionReport", report, actor="reports")
    report.request_id, report.month, report.from_position = "r2", "2026-02", 3
    with pytest.raises(ReportOutOfOrder):
        run_command(ledger, "RecordDisconnectionReport", report, actor="reports")
    report.digest = "nothex"
    with pytest.raises(errors.InvalidArgument) as invalid:
        run_command(ledger, "RecordDisconnectionReport", report, actor="reports")
    assert [field for field, _ in invalid.value.violations] == ["digest"]


def test_a_held_erasure_answers_when_it_is_due(clock) -> None:
    """Moved from tests/e2e/test_erasure_holds_and_epochs.py: EraseSubscriberDataResponse.erasure_due_at."""
    vault = PersonalDataVault(MasterKey(bytes(range(32))), MemoryKeyStore())
    app = LedgerApplication(
        env=memory_env(), vault=vault, policy=Policy(identity_retention_days=300), clock=clock, group_commit=False
    )
    try:
        call(app, "ProvisionNumbers", request_id="p", numbers=[number(71)])
        sid = person(app, "r", 71)
        call(app, "ActivateSim", **activation("a", number(71), sid))
        call(app, "DisconnectNumber", request_id="d", number=number(71), reason=1)
        ended = clock.now()
        clock.advance(days=3)
        answer = call(app, "EraseSubscriberData", request_id="e", subscriber_id=sid, legal_basis="PIPL art. 47")
        assert answer.erasure_due_at.ToDatetime(tzinfo=UTC) == ended + timedelta(days=300)
    finally:
        app.close()


def test_a_report_counts_permanent_disconnections_of_its_jurisdiction_only(ledger, clock) -> None:
    """Moved from tests/e2e/test_disconnection_report.py (test_two_months_with_a_back_dated_...): port-outs,
    returns and suspensions are not permanent disconnections; a number ported in is reported; each
    jurisdiction reports its own numbers."""
    us_number = "+12015550123"
    call(ledger, "ProvisionNumbers", request_id="p", numbers=[number(1), number(2), number(3), us_number])
    call(ledger, "PortInNumber", request_id="pi", number=number(7), donor_operator="d")
    for i, msisdn in enumerate((number(1), number(2), number(3), number(7), us_number)):
        call(ledger, "ActivateSim", **activation(f"a{i}", msisdn, person(ledger, f"r{i}", 10 + i)))
    clock.advance(days=5)
    start = ledger.reader.max_position() + 1
    for msisdn in (number(1), number(7), us_number):
        call(ledger, "DisconnectNumber", request_id=f"d{msisdn}", number=msisdn, reason=1)
    call(ledger, "PortOutNumber", request_id="po", number=number(2), recipient_operator="r")
    call(ledger, "SuspendNumber", request_id="s", number=number(3), reason=1)
    clock.advance(days=2)
    call(
        ledger, "ReturnNumber", request_id="ret", number=number(2), disconnected_at=ts(clock.now() - timedelta(days=1))
    )
    head = ledger.reader.max_position()
    found, read_to = permanent_disconnections(ledger, "+86", start, head)
    assert [(d.number, d.reason) for d in found] == [
        (number(1), "SUBSCRIBER_REQUEST"),
        (number(7), "SUBSCRIBER_REQUEST"),
    ]
    assert read_to == head and all(d.occurred_at == datetime(2026, 1, 10, 9, tzinfo=UTC) for d in found)
    assert [d.number for d in permanent_disconnections(ledger, "+1", 1, head)[0]] == [us_number]
    assert permanent_disconnections(ledger, "+86", 1, start - 1)[0] == []  # nothing before


def test_a_port_out_is_read_as_the_history_state_and_feed_answer_it(ledger) -> None:
    """Moved from tests/e2e/test_porting_grpc.py (row 1): GetNumberState, GetNumberHistory and StreamEvents."""
    msisdn = number(1)
    call(ledger, "ProvisionNumbers", request_id="p", numbers=[msisdn])
    sid = person(ledger, "r", 1)
    call(ledger, "ActivateSim", **activation("a", msisdn, sid))
    call(ledger, "PortOutNumber", request_id="po", number=msisdn, recipient_operator="other-mno")
    assert state(ledger, msisdn).state == ledger_pb2.NUMBER_STATUS_PORTED_OUT
    ported = [e for e in history(ledger, msisdn) if e.type == "NumberPortedOut"]
    assert [(e.data["recipient_operator"], e.subscriber_id) for e in ported] == [("other-mno", sid)]
    _, items = Feed(ledger).batch(0)
    (fed,) = [ledger_event(i) for i in items if i.type_name == "NumberPortedOut"]
    assert fed.number == msisdn and fed.position == ported[0].position
