"""The lifecycle commands on the wire: how each RPC's request is validated into the command's fields, and
how its result becomes a response; ``run`` builds the command from the application's table
(``handlers.COMMANDS``, by RPC name) and executes it. Shared by the unary RPCs and ImportCommands."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ledger.application.handlers import COMMANDS
from ledger.application.pipeline import execute
from ledger.server import tracing
from ledger.server.convert import (
    CLEARANCE_VALUES,
    DISCONNECT_REASONS,
    ID_TYPES,
    METHODS,
    SUSPENSION_REASONS,
    SWAP_REASONS,
)
from ledger.server.validation import Fields
from ledger.v1 import lifecycle_service_pb2 as pb

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from ledger.application import CommandResult, LedgerApplication, StagedUnitOfWork
    from ledger.application.commands import Command

MAX_NUMBERS_PER_PROVISION = 10_000


def _provision_numbers(request: pb.ProvisionNumbersRequest) -> dict[str, Any]:
    f = Fields()
    request_id = f.request_id(request.request_id)
    if not request.numbers:
        f.add("numbers", "at least one number is required")
    if len(request.numbers) > MAX_NUMBERS_PER_PROVISION:
        f.add("numbers", f"at most {MAX_NUMBERS_PER_PROVISION} numbers per request")
    numbers = [f.msisdn(f"numbers[{i}]", n) for i, n in enumerate(request.numbers[:MAX_NUMBERS_PER_PROVISION])]
    occurred_at = f.timestamp(request, "occurred_at")
    f.done()
    return {"request_id": request_id, "numbers": numbers, "occurred_at": occurred_at}


def _register_subscriber(request: pb.RegisterSubscriberRequest) -> dict[str, Any]:
    f = Fields()
    request_id = f.request_id(request.request_id)
    full_name = f.text("full_name", request.full_name, 200)
    id_type = f.enum("id_type", request.id_type, ID_TYPES) or None
    id_number = f.id_number("id_number", id_type, request.id_number)
    birth = f.date("date_of_birth", request.date_of_birth, required=False)
    occurred_at = f.timestamp(request, "occurred_at")
    if (
        birth is not None
        and id_type == "RESIDENT_ID_CARD"
        and len(id_number) == 18
        and (id_number[6:14] != birth.strftime("%Y%m%d"))
    ):
        f.add("date_of_birth", "does not match the birth date in id_number")
    f.done()
    return {
        "request_id": request_id,
        "full_name": full_name,
        "id_type": id_type or "",
        "id_number": id_number,
        "date_of_birth": birth.isoformat() if birth else "",
        "occurred_at": occurred_at,
    }


def _verify_identity(request: pb.VerifyIdentityRequest) -> dict[str, Any]:
    f = Fields()
    kwargs = {
        "request_id": f.request_id(request.request_id),
        "subscriber_id": f.uuid("subscriber_id", request.subscriber_id),
        "method": f.enum("method", request.method, METHODS),
        "channel": f.channel("channel", request.channel),
        "agent_id": f.text("agent_id", request.agent_id, 128, required=False),
        "evidence_ref": f.text("evidence_ref", request.evidence_ref, 256),
        "occurred_at": f.timestamp(request, "occurred_at"),
    }
    f.done()
    return kwargs


def _activate_sim(request: pb.ActivateSimRequest) -> dict[str, Any]:
    f = Fields()
    kwargs = {
        "request_id": f.request_id(request.request_id),
        "number": f.msisdn("number", request.number),
        "subscriber_id": f.uuid("subscriber_id", request.subscriber_id),
        "iccid": f.iccid("iccid", request.iccid),
        "imsi": f.imsi("imsi", request.imsi),
        "channel": f.channel("channel", request.channel),
        "agent_id": f.text("agent_id", request.agent_id, 128, required=False),
        "occurred_at": f.timestamp(request, "occurred_at"),
    }
    f.done()
    return kwargs


def _swap_sim(request: pb.SwapSimRequest) -> dict[str, Any]:
    f = Fields()
    kwargs = {
        "request_id": f.request_id(request.request_id),
        "number": f.msisdn("number", request.number),
        "new_iccid": f.iccid("new_iccid", request.new_iccid),
        "new_imsi": f.imsi("new_imsi", request.new_imsi),
        "reason": f.enum("reason", request.reason, SWAP_REASONS),
        "channel": f.channel("channel", request.channel),
        "agent_id": f.text("agent_id", request.agent_id, 128, required=False),
        "occurred_at": f.timestamp(request, "occurred_at"),
    }
    f.done()
    return kwargs


def _suspend_number(request: pb.SuspendNumberRequest) -> dict[str, Any]:
    f = Fields()
    kwargs = {
        "request_id": f.request_id(request.request_id),
        "number": f.msisdn("number", request.number),
        "reason": f.enum("reason", request.reason, SUSPENSION_REASONS),
        "note": f.text("note", request.note, 1000, required=False, multiline=True),
        "occurred_at": f.timestamp(request, "occurred_at"),
    }
    f.done()
    return kwargs


def _resume_number(request: pb.ResumeNumberRequest) -> dict[str, Any]:
    f = Fields()
    kwargs = {
        "request_id": f.request_id(request.request_id),
        "number": f.msisdn("number", request.number),
        "note": f.text("note", request.note, 1000, required=False, multiline=True),
        "occurred_at": f.timestamp(request, "occurred_at"),
    }
    f.done()
    return kwargs


def _disconnect_number(request: pb.DisconnectNumberRequest) -> dict[str, Any]:
    f = Fields()
    kwargs = {
        "request_id": f.request_id(request.request_id),
        "number": f.msisdn("number", request.number),
        "reason": f.enum("reason", request.reason, DISCONNECT_REASONS),
        "occurred_at": f.timestamp(request, "occurred_at"),
    }
    f.done()
    return kwargs


def _confirm_data_cleared(request: pb.ConfirmDataClearedRequest) -> dict[str, Any]:
    f = Fields()
    kwargs = {
        "request_id": f.request_id(request.request_id),
        "number": f.msisdn("number", request.number),
        "tenure_id": f.uuid("tenure_id", request.tenure_id),
        "holder": f.holder("holder", request.holder),
        "evidence_ref": f.text("evidence_ref", request.evidence_ref, 256),
        "occurred_at": f.timestamp(request, "occurred_at"),
    }
    f.done()
    return kwargs


def _release_number(request: pb.ReleaseNumberRequest) -> dict[str, Any]:
    f = Fields()
    kwargs = {
        "request_id": f.request_id(request.request_id),
        "number": f.msisdn("number", request.number),
        "override_reason": f.text("override_reason", request.override_reason, 500, required=False),
        "occurred_at": f.timestamp(request, "occurred_at"),
    }
    f.done()
    return kwargs


def _erase_response(result: CommandResult) -> pb.EraseSubscriberDataResponse:
    response = pb.EraseSubscriberDataResponse(position=result.position)
    if result.data.get("erasure_due_at"):
        response.erasure_due_at.FromDatetime(datetime.fromisoformat(result.data["erasure_due_at"]))
    return response


def _erase_subscriber_data(request: pb.EraseSubscriberDataRequest) -> dict[str, Any]:
    f = Fields()
    kwargs = {
        "request_id": f.request_id(request.request_id),
        "subscriber_id": f.uuid("subscriber_id", request.subscriber_id),
        "legal_basis": f.text("legal_basis", request.legal_basis, 256),
        "occurred_at": f.timestamp(request, "occurred_at"),
    }
    f.done()
    return kwargs


def _port(request: pb.PortOutNumberRequest | pb.PortInNumberRequest, operator: str, value: str) -> dict[str, Any]:
    """A port's fields: the number and the other operator, in the field named ``operator``."""
    f = Fields()
    kwargs = {
        "request_id": f.request_id(request.request_id),
        "number": f.msisdn("number", request.number),
        operator: f.channel(operator, value),
        "occurred_at": f.timestamp(request, "occurred_at"),
    }
    f.done()
    return kwargs


def _port_out_number(request: pb.PortOutNumberRequest) -> dict[str, Any]:
    return _port(request, "recipient_operator", request.recipient_operator)


def _port_in_number(request: pb.PortInNumberRequest) -> dict[str, Any]:
    return _port(request, "donor_operator", request.donor_operator)


def _return_number(request: pb.ReturnNumberRequest) -> dict[str, Any]:
    f = Fields()
    kwargs = {
        "request_id": f.request_id(request.request_id),
        "number": f.msisdn("number", request.number),
        "disconnected_at": f.timestamp(request, "disconnected_at", required=True),
        "occurred_at": f.timestamp(request, "occurred_at"),
    }
    f.done()
    return kwargs


def _record_disconnection_report(request: pb.RecordDisconnectionReportRequest) -> dict[str, Any]:
    f = Fields()
    kwargs = {
        "request_id": f.request_id(request.request_id),
        "jurisdiction": f.calling_code("jurisdiction", request.jurisdiction),
        "month": f.month("month", request.month),
        "from_position": f.position("from_position", request.from_position),
        "to_position": f.position("to_position", request.to_position, minimum=0),
        "period_end": f.timestamp(request, "period_end", required=True),
        "carry_from": f.position("carry_from", request.carry_from, minimum=0),
        "rows": f.position("rows", request.rows, minimum=0),
        "digest": f.digest("digest", request.digest),
        "occurred_at": f.timestamp(request, "occurred_at"),
    }
    f.done()
    return kwargs


def _return_response(result: CommandResult) -> pb.ReturnNumberResponse:
    response = pb.ReturnNumberResponse(position=result.position)
    response.quarantine_until.FromDatetime(datetime.fromisoformat(result.data["quarantine_until"]))
    return response


def _disconnect_response(result: CommandResult) -> pb.DisconnectNumberResponse:
    response = pb.DisconnectNumberResponse(tenure_id=result.data["tenure_id"], position=result.position)
    response.quarantine_until.FromDatetime(datetime.fromisoformat(result.data["quarantine_until"]))
    return response


@dataclass(frozen=True)
class Rpc:
    """One lifecycle RPC on the wire: ``parse`` validates its request into the command's fields (and its
    ``request_id`` and ``occurred_at``), ``respond`` makes its response of the command's result."""

    parse: Callable[[Any], dict[str, Any]]
    respond: Callable[[CommandResult], Message]


# Keyed by the RPC's name, as ``handlers.COMMANDS``.
RPCS: dict[str, Rpc] = {
    "ProvisionNumbers": Rpc(
        _provision_numbers,
        lambda r: pb.ProvisionNumbersResponse(
            provisioned_count=r.data["provisioned_count"],
            already_provisioned=r.data["already_provisioned"],
            position=r.position,
        ),
    ),
    "RegisterSubscriber": Rpc(
        _register_subscriber,
        lambda r: pb.RegisterSubscriberResponse(subscriber_id=r.data["subscriber_id"], position=r.position),
    ),
    "VerifyIdentity": Rpc(_verify_identity, lambda r: pb.VerifyIdentityResponse(position=r.position)),
    "ActivateSim": Rpc(
        _activate_sim, lambda r: pb.ActivateSimResponse(tenure_id=r.data["tenure_id"], position=r.position)
    ),
    "SwapSim": Rpc(_swap_sim, lambda r: pb.SwapSimResponse(position=r.position)),
    "SuspendNumber": Rpc(_suspend_number, lambda r: pb.SuspendNumberResponse(position=r.position)),
    "ResumeNumber": Rpc(_resume_number, lambda r: pb.ResumeNumberResponse(position=r.position)),
    "DisconnectNumber": Rpc(_disconnect_number, _disconnect_response),
    "ConfirmDataCleared": Rpc(
        _confirm_data_cleared,
        lambda r: pb.ConfirmDataClearedResponse(
            clearance=CLEARANCE_VALUES[r.data["clearance"]],
            position=r.position,
        ),
    ),
    "ReleaseNumber": Rpc(_release_number, lambda r: pb.ReleaseNumberResponse(position=r.position)),
    "EraseSubscriberData": Rpc(_erase_subscriber_data, _erase_response),
    "PortOutNumber": Rpc(
        _port_out_number, lambda r: pb.PortOutNumberResponse(tenure_id=r.data["tenure_id"], position=r.position)
    ),
    "PortInNumber": Rpc(_port_in_number, lambda r: pb.PortInNumberResponse(position=r.position)),
    "ReturnNumber": Rpc(_return_number, _return_response),
    "RecordDisconnectionReport": Rpc(
        _record_disconnection_report, lambda r: pb.RecordDisconnectionReportResponse(position=r.position)
    ),
}


def run(
    app: LedgerApplication, rpc: str, request: Any, actor: str, unit: StagedUnitOfWork | None = None
) -> CommandResult:
    """Validate an RPC's request and execute its command, saved at once or held by a staged ``unit``
    (raises the command's errors)."""
    fields = RPCS[rpc].parse(request)
    request_id, occurred_at = fields.pop("request_id"), fields.pop("occurred_at")
    command: Command = COMMANDS[rpc].command(**fields)
    if tracing.tracer is not None:  # tracing on: the command in a child span of the call's
        return tracing.command(
            tracing.tracer,
            rpc,
            request_id,
            execute,
            app,
            command,
            request_id=request_id,
            actor=actor,
            occurred_at=occurred_at,
            unit=unit,
        )
    return execute(app, command, request_id=request_id, actor=actor, occurred_at=occurred_at, unit=unit)


def run_command(app: LedgerApplication, rpc: str, request: Any, actor: str) -> Message:
    """Validate an RPC's request, execute its command and build its response (raises the command's errors)."""
    return RPCS[rpc].respond(run(app, rpc, request, actor))
