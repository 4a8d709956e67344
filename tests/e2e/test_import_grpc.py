"""ImportCommands over a real server: same rules and same history as one call per command."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, timedelta

import grpc
import pytest
from google.protobuf.json_format import MessageToDict

from ledger.application.commands import ProvisionNumbers, SuspendNumber
from ledger.application.pipeline import execute
from ledger.domain.subscriber import Subscriber
from ledger.server.importer import Importer
from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import lifecycle_service_pb2 as lpb
from scripts import generate_dataset
from scripts.dataset.histories import number_of
from tests.conftest import imsi_for, new_iccid, number, resident_id, running_server

# Every test here runs on both stores.
STORES = ("sqlite", "postgres")


def cmd(**kwargs) -> lpb.ImportCommand:
    return lpb.ImportCommand(**kwargs)


def register(rid: str, seq: int) -> lpb.ImportCommand:
    return cmd(
        register_subscriber=lpb.RegisterSubscriberRequest(
            request_id=rid, full_name=f"Person {seq}", id_type=1, id_number=resident_id(seq)
        )
    )


def verify(rid: str, sid: str) -> lpb.ImportCommand:
    return cmd(
        verify_identity=lpb.VerifyIdentityRequest(
            request_id=rid, subscriber_id=sid, method=1, channel="retail", agent_id="a1", evidence_ref="ev"
        )
    )


def activate(rid: str, msisdn: str, sid: str, iccid: str | None = None) -> lpb.ImportCommand:
    iccid = iccid or new_iccid()
    return cmd(
        activate_sim=lpb.ActivateSimRequest(
            request_id=rid,
            number=msisdn,
            subscriber_id=sid,
            iccid=iccid,
            imsi=imsi_for(iccid) if iccid.isdigit() else "460001234567890",
            channel="retail",
            agent_id="a1",
        )
    )


def history(stubs, msisdn: str) -> list:
    return [r.event for r in stubs.history.GetNumberHistory(hpb.GetNumberHistoryRequest(number=msisdn))]


def test_each_command_gets_its_own_result_and_refusals_change_nothing(server, clock) -> None:
    stubs, app = server
    numbers = [number(i) for i in range(1, 8)]
    alice = str(Subscriber.id_for_request("reg-alice"))
    bob = str(Subscriber.id_for_request("reg-bob"))
    first = [
        cmd(provision_numbers=lpb.ProvisionNumbersRequest(request_id="prov", numbers=numbers)),
        register("reg-alice", 1),
        verify("ver-alice", alice),
        *[activate(f"act-alice-{k}", numbers[k], alice) for k in range(5)],
        activate("act-alice-5", numbers[5], alice),  # over the cap: refused after the number was changed
        register("reg-bob", 2),
        verify("ver-bob", bob),
        activate("act-bob", numbers[5], bob),  # the refused activation left the number AVAILABLE
        activate("act-bad", numbers[6], bob, iccid="123"),
        lpb.ImportCommand(),
        verify("ver-alice", alice),  # a retry of an earlier command in the same request
        verify("ver-alice", bob),  # the same request id with other content
    ]
    second = [
        cmd(suspend_number=lpb.SuspendNumberRequest(request_id="sus", number=numbers[0], reason=1)),
        cmd(suspend_number=lpb.SuspendNumberRequest(request_id="sus-again", number=numbers[0], reason=1)),
        cmd(disconnect_number=lpb.DisconnectNumberRequest(request_id="disc", number=numbers[1], reason=1)),
    ]
    responses = list(
        stubs.lifecycle.ImportCommands(
            iter([lpb.ImportCommandsRequest(commands=first), lpb.ImportCommandsRequest(commands=second)])
        )
    )
    assert len(responses) == 2
    results = [*responses[0].results, *responses[1].results]
    assert [r.index for r in results] == list(range(len(first) + len(second)))
    errors = {r.index: (r.error.code, r.error.reason) for r in results if r.HasField("error")}
    assert errors == {
        8: (grpc.StatusCode.FAILED_PRECONDITION.value[0], "IDENTITY_NUMBER_CAP"),
        12: (grpc.StatusCode.INVALID_ARGUMENT.value[0], "INVALID_ARGUMENT"),
        13: (grpc.StatusCode.INVALID_ARGUMENT.value[0], "INVALID_ARGUMENT"),
        15: (grpc.StatusCode.ALREADY_EXISTS.value[0], "REQUEST_ID_REUSED"),
        17: (grpc.StatusCode.FAILED_PRECONDITION.value[0], "NUMBER_NOT_ACTIVE"),
    }
    assert {v.field for v in results[12].error.field_violations} == {"iccid"}
    assert results[1].register_subscriber.subscriber_id == alice
    assert results[14].replayed and results[14].verify_identity.position == results[2].verify_identity.position
    assert results[11].activate_sim.tenure_id
    quarantine_until = results[18].disconnect_number.quarantine_until.ToDatetime(tzinfo=UTC)
    assert quarantine_until == clock.now() + timedelta(days=90)
    # Positions are those of the recorded events, increasing in command order.
    positions = [
        getattr(r, r.WhichOneof("response")).position for r in results if not r.HasField("error") and not r.replayed
    ]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert positions[-1] == app.reader.max_position()
    # The number refused to Alice went to Bob and to nobody else.
    activations = [e for e in history(stubs, numbers[5]) if e.type == "NumberActivated"]
    assert [e.subscriber_id for e in activations] == [bob]
    assert history(stubs, numbers[6])[-1].type == "NumberProvisioned"
    state = [e.type for e in history(stubs, numbers[0])]
    assert state.count("NumberSuspended") == 1
    assert stubs.history.VerifyIntegrity(hpb.VerifyIntegrityRequest()).ok


def test_import_records_the_same_history_as_one_call_per_command(server, settings, clock, request) -> None:
    stubs, _ = server
    if settings.store.kind == "postgres":
        from ledger.config import StoreConfig
        from tests.pgserver import new_database

        other = replace(settings, store=StoreConfig.from_url(new_database(request.getfixturevalue("pg_admin_url"))))
    else:
        tmp = request.getfixturevalue("tmp_path") / "unary"
        tmp.mkdir()
        from ledger.config import StoreConfig

        other = replace(settings, store=StoreConfig.from_url(f"sqlite:///{tmp}/ledger.db"))
    end = clock.now().date().isoformat()
    args = ["--numbers", "30", "--years", "4", "--seed", "11", "--end", end, "--no-progress", "--batch", "97"]
    assert generate_dataset.main(["--target", stubs.target, *args]) == 0
    unary_server = running_server(other, clock)
    unary_stubs, _ = next(unary_server)
    try:
        assert generate_dataset.main(["--target", unary_stubs.target, "--unary", *args]) == 0
        for i in range(30):
            msisdn = number_of(i, 11)  # a number ported in comes from another operator's range
            imported = [_comparable(e) for e in history(stubs, msisdn)]
            called = [_comparable(e) for e in history(unary_stubs, msisdn)]
            assert imported == called, msisdn
            assert len(imported) > 3
        assert stubs.history.VerifyIntegrity(hpb.VerifyIntegrityRequest()).ok
    finally:
        next(unary_server, None)


def _comparable(event) -> dict:
    d = MessageToDict(event)
    for key in ("position", "recordedAt", "actor"):  # the actor is the caller's address here
        d.pop(key, None)
    return d


def test_a_concurrent_writer_makes_the_segment_apply_one_by_one(app) -> None:
    msisdn, other = number(1), number(2)
    sid = str(Subscriber.id_for_request("reg"))
    execute(app, ProvisionNumbers(numbers=[msisdn, other]), request_id="prov", actor="t")
    setup = lpb.ImportCommandsRequest(
        commands=[register("reg", 1), verify("ver", sid), activate("act", msisdn, sid), activate("act2", other, sid)]
    )
    importer = Importer(app, "importer")
    interfered = []

    def flush_after_a_concurrent_suspension():
        if not interfered and importer.staging.events:
            interfered.append(True)
            # Another caller (another thread, not staging) suspends the number first.
            worker = threading.Thread(
                target=lambda: execute(
                    app, SuspendNumber(number=msisdn, reason="FRAUD", note=""), request_id="desk", actor="fraud"
                )
            )
            worker.start()
            worker.join()
        return original()

    with importer:
        assert not any(r.HasField("error") for r in importer.run(setup).results)
        original = importer.staging.flush
        importer.staging.flush = flush_after_a_concurrent_suspension
        response = importer.run(
            lpb.ImportCommandsRequest(
                commands=[
                    cmd(suspend_number=lpb.SuspendNumberRequest(request_id="s1", number=msisdn, reason=2)),
                    cmd(suspend_number=lpb.SuspendNumberRequest(request_id="s2", number=other, reason=2)),
                ]
            )
        )
    assert interfered
    # Decided again against the saved state: the first number was already suspended by the fraud desk.
    assert response.results[0].error.reason == "NUMBER_NOT_ACTIVE"
    assert response.results[1].suspend_number.position > 0
    assert app.get_number(msisdn).status.value == "SUSPENDED"
    assert app.get_number(other).status.value == "SUSPENDED"


def test_too_many_commands_in_one_request_is_refused(server) -> None:
    stubs, _ = server
    request = lpb.ImportCommandsRequest(commands=[lpb.ImportCommand()] * 10_001)
    with pytest.raises(grpc.RpcError) as e:
        list(stubs.lifecycle.ImportCommands(iter([request])))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
