"""LifecycleService: translates requests into application commands and results into responses."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import grpc

from ledger.server.auth import current_caller
from ledger.server.validation import Fields, enum_names
from ledger.v1 import ledger_pb2, lifecycle_service_pb2_grpc
from ledger.v1 import lifecycle_service_pb2 as pb

if TYPE_CHECKING:
    from ledger.application import CommandResult, LedgerApplication

MAX_NUMBERS_PER_PROVISION = 10_000
ACTOR_KEY = "x-ledger-actor"

ID_TYPES = enum_names(ledger_pb2.IdType, "ID_TYPE_")
METHODS = enum_names(ledger_pb2.VerificationMethod, "VERIFICATION_METHOD_")
SUSPENSION_REASONS = enum_names(ledger_pb2.SuspensionReason, "SUSPENSION_REASON_")
DISCONNECT_REASONS = enum_names(ledger_pb2.DisconnectReason, "DISCONNECT_REASON_")
SWAP_REASONS = enum_names(ledger_pb2.SimSwapReason, "SIM_SWAP_REASON_")
CLEARANCE_VALUES: dict[str, Any] = {
    name: number for number, name in enum_names(ledger_pb2.Clearance, "CLEARANCE_").items()
}


def actor_of(context: grpc.ServicerContext) -> str:
    """Who is calling: the authenticated actor; without credentials configured, the ``x-ledger-actor``
    metadata when given, else the peer address."""
    caller = current_caller()
    if caller is not None:
        return caller.actor
    for key, value in context.invocation_metadata() or ():
        if key == ACTOR_KEY and isinstance(value, str) and 0 < len(value) <= 128 and value.isprintable():
            return value
    return f"anonymous@{context.peer()}"


class LifecycleServicer(lifecycle_service_pb2_grpc.LifecycleServiceServicer):
    """The operator-facing command API."""

    def __init__(self, app: LedgerApplication) -> None:
        self.app = app

    def ProvisionNumbers(
        self, request: pb.ProvisionNumbersRequest, context: grpc.ServicerContext
    ) -> pb.ProvisionNumbersResponse:
        """Provision numbers as AVAILABLE."""
        f = Fields()
        request_id = f.request_id(request.request_id)
        if not request.numbers:
            f.add("numbers", "at least one number is required")
        if len(request.numbers) > MAX_NUMBERS_PER_PROVISION:
            f.add("numbers", f"at most {MAX_NUMBERS_PER_PROVISION} numbers per request")
        numbers = [f.msisdn(f"numbers[{i}]", n) for i, n in enumerate(request.numbers[:MAX_NUMBERS_PER_PROVISION])]
        occurred_at = f.timestamp(request, "occurred_at")
        f.done()
        result = self.app.provision_numbers(
            request_id=request_id, actor=actor_of(context), numbers=numbers, occurred_at=occurred_at
        )
        return pb.ProvisionNumbersResponse(
            provisioned_count=result.data["provisioned_count"],
            already_provisioned=result.data["already_provisioned"],
            position=result.position,
        )

    def RegisterSubscriber(
        self, request: pb.RegisterSubscriberRequest, context: grpc.ServicerContext
    ) -> pb.RegisterSubscriberResponse:
        """Register a subscriber with encrypted personal data."""
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
        result = self.app.register_subscriber(
            request_id=request_id,
            actor=actor_of(context),
            full_name=full_name,
            id_type=id_type or "",
            id_number=id_number,
            date_of_birth=birth.isoformat() if birth else "",
            occurred_at=occurred_at,
        )
        return pb.RegisterSubscriberResponse(subscriber_id=result.data["subscriber_id"], position=result.position)

    def VerifyIdentity(
        self, request: pb.VerifyIdentityRequest, context: grpc.ServicerContext
    ) -> pb.VerifyIdentityResponse:
        """Record an identity verification."""
        f = Fields()
        kwargs = {
            "request_id": f.request_id(request.request_id),
            "subscriber_id": f.uuid("subscriber_id", request.subscriber_id),
            "method": f.enum("method", request.method, METHODS),
            "channel": f.channel("channel", request.channel),
            "agent_id": f.text("agent_id", request.agent_id, 128),
            "evidence_ref": f.text("evidence_ref", request.evidence_ref, 256),
            "occurred_at": f.timestamp(request, "occurred_at"),
        }
        f.done()
        result = self.app.verify_identity(actor=actor_of(context), **kwargs)  # type: ignore[arg-type]
        return pb.VerifyIdentityResponse(position=result.position)

    def ActivateSim(self, request: pb.ActivateSimRequest, context: grpc.ServicerContext) -> pb.ActivateSimResponse:
        """Start a tenure."""
        f = Fields()
        kwargs = {
            "request_id": f.request_id(request.request_id),
            "number": f.msisdn("number", request.number),
            "subscriber_id": f.uuid("subscriber_id", request.subscriber_id),
            "iccid": f.iccid("iccid", request.iccid),
            "imsi": f.imsi("imsi", request.imsi),
            "channel": f.channel("channel", request.channel),
            "agent_id": f.text("agent_id", request.agent_id, 128),
            "occurred_at": f.timestamp(request, "occurred_at"),
        }
        f.done()
        result = self.app.activate_sim(actor=actor_of(context), **kwargs)  # type: ignore[arg-type]
        return pb.ActivateSimResponse(tenure_id=result.data["tenure_id"], position=result.position)

    def SwapSim(self, request: pb.SwapSimRequest, context: grpc.ServicerContext) -> pb.SwapSimResponse:
        """Move a number to a new SIM."""
        f = Fields()
        kwargs = {
            "request_id": f.request_id(request.request_id),
            "number": f.msisdn("number", request.number),
            "new_iccid": f.iccid("new_iccid", request.new_iccid),
            "new_imsi": f.imsi("new_imsi", request.new_imsi),
            "reason": f.enum("reason", request.reason, SWAP_REASONS),
            "channel": f.channel("channel", request.channel),
            "agent_id": f.text("agent_id", request.agent_id, 128),
            "occurred_at": f.timestamp(request, "occurred_at"),
        }
        f.done()
        result = self.app.swap_sim(actor=actor_of(context), **kwargs)  # type: ignore[arg-type]
        return pb.SwapSimResponse(position=result.position)

    def SuspendNumber(
        self, request: pb.SuspendNumberRequest, context: grpc.ServicerContext
    ) -> pb.SuspendNumberResponse:
        """Suspend an active number."""
        f = Fields()
        kwargs = {
            "request_id": f.request_id(request.request_id),
            "number": f.msisdn("number", request.number),
            "reason": f.enum("reason", request.reason, SUSPENSION_REASONS),
            "note": f.text("note", request.note, 1000, required=False, multiline=True),
            "occurred_at": f.timestamp(request, "occurred_at"),
        }
        f.done()
        result = self.app.suspend_number(actor=actor_of(context), **kwargs)  # type: ignore[arg-type]
        return pb.SuspendNumberResponse(position=result.position)

    def ResumeNumber(self, request: pb.ResumeNumberRequest, context: grpc.ServicerContext) -> pb.ResumeNumberResponse:
        """Resume a suspended number."""
        f = Fields()
        kwargs = {
            "request_id": f.request_id(request.request_id),
            "number": f.msisdn("number", request.number),
            "note": f.text("note", request.note, 1000, required=False, multiline=True),
            "occurred_at": f.timestamp(request, "occurred_at"),
        }
        f.done()
        result = self.app.resume_number(actor=actor_of(context), **kwargs)  # type: ignore[arg-type]
        return pb.ResumeNumberResponse(position=result.position)

    def DisconnectNumber(
        self, request: pb.DisconnectNumberRequest, context: grpc.ServicerContext
    ) -> pb.DisconnectNumberResponse:
        """Close a tenure and start quarantine."""
        f = Fields()
        kwargs = {
            "request_id": f.request_id(request.request_id),
            "number": f.msisdn("number", request.number),
            "reason": f.enum("reason", request.reason, DISCONNECT_REASONS),
            "occurred_at": f.timestamp(request, "occurred_at"),
        }
        f.done()
        result = self.app.disconnect_number(actor=actor_of(context), **kwargs)  # type: ignore[arg-type]
        response = pb.DisconnectNumberResponse(tenure_id=result.data["tenure_id"], position=result.position)
        response.quarantine_until.FromDatetime(datetime.fromisoformat(result.data["quarantine_until"]))
        return response

    def ConfirmDataCleared(
        self, request: pb.ConfirmDataClearedRequest, context: grpc.ServicerContext
    ) -> pb.ConfirmDataClearedResponse:
        """Record a holder's clearance of a closed tenure."""
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
        result = self.app.confirm_data_cleared(actor=actor_of(context), **kwargs)  # type: ignore[arg-type]
        return pb.ConfirmDataClearedResponse(
            clearance=CLEARANCE_VALUES[result.data["clearance"]],
            position=result.position,  # type: ignore[arg-type]
        )

    def ReleaseNumber(
        self, request: pb.ReleaseNumberRequest, context: grpc.ServicerContext
    ) -> pb.ReleaseNumberResponse:
        """Release a quarantined number."""
        f = Fields()
        kwargs = {
            "request_id": f.request_id(request.request_id),
            "number": f.msisdn("number", request.number),
            "override_reason": f.text("override_reason", request.override_reason, 500, required=False),
            "occurred_at": f.timestamp(request, "occurred_at"),
        }
        f.done()
        result = self.app.release_number(actor=actor_of(context), **kwargs)  # type: ignore[arg-type]
        return pb.ReleaseNumberResponse(position=result.position)

    def EraseSubscriberData(
        self, request: pb.EraseSubscriberDataRequest, context: grpc.ServicerContext
    ) -> pb.EraseSubscriberDataResponse:
        """Erase a subscriber's personal data by destroying their key."""
        f = Fields()
        kwargs = {
            "request_id": f.request_id(request.request_id),
            "subscriber_id": f.uuid("subscriber_id", request.subscriber_id),
            "legal_basis": f.text("legal_basis", request.legal_basis, 256),
            "occurred_at": f.timestamp(request, "occurred_at"),
        }
        f.done()
        result: CommandResult = self.app.erase_subscriber_data(actor=actor_of(context), **kwargs)  # type: ignore[arg-type]
        return pb.EraseSubscriberDataResponse(position=result.position)
