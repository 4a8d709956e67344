"""Stored names never change: for every lifecycle command, the method name its request record stores and
the idempotency fingerprint of one fixed request, as computed by the code of b8c8949. A ledger written
before keeps answering its retries as replays only while both stay byte-identical."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ledger.adapters.memory import memory_env
from ledger.application import LedgerApplication
from ledger.application.handlers import COMMANDS
from ledger.application.pipeline import execute
from ledger.domain.indexes import RequestRecord
from ledger.domain.number import Number
from ledger.domain.subscriber import Subscriber
from ledger.keys.crypto import MasterKey
from ledger.keys.stores import MemoryKeyStore
from ledger.keys.vault import PersonalDataVault
from ledger.policy import Policy
from ledger.server.importer import Importer
from ledger.v1 import lifecycle_service_pb2 as lpb
from tests.conftest import RESIDENT_DOB, RESIDENT_ID, FakeClock

N1, N2, N3, N4 = "+8613800138000", "+8613800138001", "+8613800138002", "+8613800138003"
ICCID_1, ICCID_2, ICCID_3 = "8986000000000000010", "8986000000000000028", "8986000000000000036"
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
SID = Subscriber.id_for_request("reg-1")
AGENT = {"channel": "retail", "agent_id": "agent-7"}

# (RPC, request id, occurred_at, the command's fields): one successful run of every command, in order.
# The clock moves a minute before each; ``None`` occurred_at means the clock's (null in the fingerprint).
REQUESTS: list[tuple[str, str, datetime | None, dict[str, Any]]] = [
    ("ProvisionNumbers", "prov-1", START + timedelta(seconds=30), {"numbers": [N1, N2, N1, N3]}),
    (
        "RegisterSubscriber",
        "reg-1",
        None,
        {
            "full_name": "Zhang San",
            "id_type": "RESIDENT_ID_CARD",
            "id_number": RESIDENT_ID,
            "date_of_birth": RESIDENT_DOB,
        },
    ),
    (
        "VerifyIdentity",
        "ver-1",
        START + timedelta(minutes=2, seconds=30),
        {"subscriber_id": SID, "method": "ID_CARD_READER", "evidence_ref": "scan-1", **AGENT},
    ),
    (
        "ActivateSim",
        "act-1",
        START + timedelta(minutes=3, seconds=30),
        {"number": N1, "subscriber_id": SID, "iccid": ICCID_1, "imsi": "460001234567890", **AGENT},
    ),
    (
        "SwapSim",
        "swap-1",
        None,
        {"number": N1, "new_iccid": ICCID_2, "new_imsi": "460001234567891", "reason": "LOST_OR_STOLEN", **AGENT},
    ),
    ("SuspendNumber", "susp-1", None, {"number": N1, "reason": "FRAUD", "note": "reported"}),
    ("ResumeNumber", "res-1", START + timedelta(minutes=6, seconds=30), {"number": N1, "note": "cleared"}),
    ("DisconnectNumber", "disc-1", None, {"number": N1, "reason": "SUBSCRIBER_REQUEST"}),
    (
        "ConfirmDataCleared",
        "clear-1",
        None,
        {"number": N1, "tenure_id": Number.tenure_id_for(N1, 1), "holder": "crm", "evidence_ref": "ticket-9"},
    ),
    ("ReleaseNumber", "rel-1", None, {"number": N1, "override_reason": "court order 12"}),
    (
        "ActivateSim",
        "act-2",
        None,
        {"number": N2, "subscriber_id": SID, "iccid": ICCID_3, "imsi": "460001234567892", **AGENT},
    ),
    (
        "PortOutNumber",
        "out-1",
        START + timedelta(minutes=11, seconds=30),
        {"number": N2, "recipient_operator": "other-mno"},
    ),
    (
        "ReturnNumber",
        "ret-1",
        START + timedelta(minutes=12, seconds=30),
        {"number": N2, "disconnected_at": START + timedelta(minutes=12)},
    ),
    ("PortInNumber", "in-1", None, {"number": N4, "donor_operator": "donor-mno"}),
    ("EraseSubscriberData", "erase-1", None, {"subscriber_id": SID, "legal_basis": "PIPL art. 47"}),
    (
        "RecordDisconnectionReport",
        "report-1",
        None,
        {
            "jurisdiction": "+86",
            "month": "2026-01",
            "from_position": 1,
            "to_position": 20,
            "period_end": datetime(2026, 2, 1, tzinfo=UTC),
            "carry_from": 0,
            "rows": 1,
            "digest": "ab" * 32,
        },
    ),
]

# request id -> (stored method, fingerprint), computed on b8c8949 (report-1 when RecordDisconnectionReport was
# added): never edit these to make a change pass.
PINNED = {
    "prov-1": ("ProvisionNumbers", "584dfb896f1b28adb2dd04a08b98d31abba4727e356bb15595d2c4c5c2a1a7d5"),
    "reg-1": ("RegisterSubscriber", "fa838d0043283b93aaa671e6ad29a51f08d5dfd59827f2422f18f2a052766590"),
    "ver-1": ("VerifyIdentity", "496174cedf9cf69c99bca4356f7d880a3ec7bf5b52ac55315c6e8d16d22ebe6e"),
    "act-1": ("ActivateSim", "848b431109bbeb6072f7c2824e36bd6580f33b4b81fe0b2a86c2376eb737694f"),
    "swap-1": ("SwapSim", "ec85717fbff619929b33bfe036407700ac553a4dc46e262e4934d98460eb18cb"),
    "susp-1": ("SuspendNumber", "7e3a81c84ab2287ac020d082061c0e2ed324a65e166d57ac60c429acaa61fc9c"),
    "res-1": ("ResumeNumber", "8ebaf8566b14fc8ea35b6938e015fe99a0be13afddf792e6635cde956ae030db"),
    "disc-1": ("DisconnectNumber", "3cfee0993ab86380804ded656e9d0bb6a0108ec9b66fb1de199eee48df4d026c"),
    "clear-1": ("ConfirmDataCleared", "55fcb03e5fa971b4d7d482251451dcb06a6331d8649851cb12502fa4ffc70070"),
    "rel-1": ("ReleaseNumber", "dcaea05e73439b52584734008d1f3805c68a7a7f6237a2c600d8355d8ae255da"),
    "act-2": ("ActivateSim", "47bd7929d2b7b8b4881d39916dd841f22b35188ffffd514d8fd4819ecdb749a4"),
    "out-1": ("PortOutNumber", "af85823fa0baa7a4df23d52d2fd9cb236176112898c908ebf521ea049e6a4dc4"),
    "ret-1": ("ReturnNumber", "3e2111cf66a4a0b2ba68a0dccf0387eb78553944691eec6975a66795a0fe2123"),
    "in-1": ("PortInNumber", "a15dbe3f4fcc8e6a035ecef1fbccae3979ee8815f73de535f413923f2bca6b8c"),
    "erase-1": ("EraseSubscriberData", "1f0ed883ff290e2182ab95ec5c79539927247fecc65e4b7c151eae6a2404067d"),
    "report-1": ("RecordDisconnectionReport", "35995e7ee33688e9e2674b88ca1d1a17f77c52e9f09760d99f73ae6e8621afc3"),
    f"erase-due/{SID}": ("CompleteErasure", "4c64fa60e8796e27aed36c88ac4447adf2c7c240721cd91422974788c3f353af"),
}


@pytest.fixture
def ledger():
    vault = PersonalDataVault(MasterKey(bytes(range(32))), MemoryKeyStore())
    policy = Policy(identity_retention_days=30)
    app = LedgerApplication(env=memory_env(), vault=vault, policy=policy, clock=FakeClock(START), group_commit=False)
    yield app
    app.close()


def run(
    app: LedgerApplication, rpc: str, request_id: str, occurred_at: datetime | None, fields: dict[str, Any]
) -> None:
    execute(app, COMMANDS[rpc].command(**fields), request_id=request_id, actor="pin", occurred_at=occurred_at)


def snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def message(rpc: str, request_id: str, occurred_at: datetime | None, fields: dict[str, Any]) -> lpb.ImportCommand:
    """The request as a client sends it: enum values by name, ids as text, times as Timestamps."""
    request = getattr(lpb, f"{rpc}Request")(request_id=request_id)
    if occurred_at is not None:
        request.occurred_at.FromDatetime(occurred_at)
    for name, value in fields.items():
        field = request.DESCRIPTOR.fields_by_name[name]
        if field.enum_type is not None:
            prefix = snake(field.enum_type.name).upper()
            setattr(request, name, field.enum_type.values_by_name[f"{prefix}_{value}"].number)
        elif isinstance(value, datetime):
            getattr(request, name).FromDatetime(value)
        elif isinstance(value, list):
            getattr(request, name).extend(value)
        elif isinstance(value, int):
            setattr(request, name, value)
        else:
            setattr(request, name, str(value))
    return lpb.ImportCommand(**{snake(rpc): request})


def stored_records(app: LedgerApplication) -> dict[str, tuple[str, str]]:
    app.clock.advance(days=31)  # type: ignore[attr-defined]  # the held erasure's retention period ends
    assert app.complete_erasure(subscriber_id=SID, actor="erasure-pass")
    stored = {}
    for request_id in PINNED:
        record: RequestRecord = app.repository.get(RequestRecord.create_id(request_id))
        stored[request_id] = (record.method, record.fingerprint)
    return stored


def test_every_command_stores_its_method_name_and_fingerprint_unchanged(ledger) -> None:
    for rpc, request_id, occurred_at, fields in REQUESTS:
        ledger.clock.advance(minutes=1)
        run(ledger, rpc, request_id, occurred_at, fields)
    assert stored_records(ledger) == PINNED


def test_the_same_requests_over_the_wire_store_the_same_names_and_fingerprints(ledger) -> None:
    with Importer(ledger, "pin") as importer:
        for rpc, request_id, occurred_at, fields in REQUESTS:
            ledger.clock.advance(minutes=1)
            response = importer.run(lpb.ImportCommandsRequest(commands=[message(rpc, request_id, occurred_at, fields)]))
            assert not response.results[0].HasField("error"), response.results[0].error
    assert stored_records(ledger) == PINNED
