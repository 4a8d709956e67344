"""IdentityService: a translation of ``application.identity`` onto the wire, nothing more (the HTTP KYC
route calls the same functions)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

from ledger.application.identity import MatchOutcome, list_numbers_by_identity, match_identity
from ledger.domain.rules import MatchResult
from ledger.server.auth import actor_of
from ledger.server.convert import ID_TYPES, METHOD_VALUES, STATUS_VALUES
from ledger.v1 import identity_service_pb2 as pb
from ledger.v1 import identity_service_pb2_grpc

if TYPE_CHECKING:
    from ledger.application import LedgerApplication

MATCH_RESULTS = {
    MatchResult.TRUE: pb.MATCH_RESULT_TRUE,
    MatchResult.FALSE: pb.MATCH_RESULT_FALSE,
    MatchResult.NOT_AVAILABLE: pb.MATCH_RESULT_NOT_AVAILABLE,
}


def _result(result: MatchResult | None) -> pb.MatchResult:
    return MATCH_RESULTS[result] if result is not None else pb.MATCH_RESULT_UNSPECIFIED


def match_response(outcome: MatchOutcome) -> pb.MatchIdentityResponse:
    """A match's outcome as the API's response."""
    response = pb.MatchIdentityResponse(
        id_document_match=_result(outcome.id_document),
        name_match=_result(outcome.name),
        given_name_match=_result(outcome.given_name),
        family_name_match=_result(outcome.family_name),
        birthdate_match=_result(outcome.birthdate),
        as_of_position=outcome.as_of_position,
    )
    if outcome.name_score is not None:
        response.name_match_score = outcome.name_score
    return response


class IdentityServicer(identity_service_pb2_grpc.IdentityServiceServicer):
    """Identity questions (plain methods: they run on the pool through the bridge)."""

    def __init__(self, app: LedgerApplication) -> None:
        self.app = app

    def MatchIdentity(
        self, request: pb.MatchIdentityRequest, context: grpc.ServicerContext
    ) -> pb.MatchIdentityResponse:
        """Compare the fields sent with the number's holder now."""
        outcome = match_identity(
            self.app,
            actor_of(context),
            request.number,
            # An unknown enum value is sent as a type no document has, refused by the application.
            id_type=ID_TYPES.get(request.id_type, "?") if request.id_type else None,
            id_number=request.id_number if request.HasField("id_number") else None,
            full_name=request.full_name if request.HasField("full_name") else None,
            given_name=request.given_name if request.HasField("given_name") else None,
            family_name=request.family_name if request.HasField("family_name") else None,
            date_of_birth=request.date_of_birth if request.HasField("date_of_birth") else None,
        )
        return match_response(outcome)

    def ListNumbersByIdentity(
        self, request: pb.ListNumbersByIdentityRequest, context: grpc.ServicerContext
    ) -> pb.ListNumbersByIdentityResponse:
        """Every tenure registered under one ID document."""
        tenures = list_numbers_by_identity(
            self.app, actor_of(context), ID_TYPES.get(request.id_type, ""), request.id_number, request.purpose
        )
        response = pb.ListNumbersByIdentityResponse()
        for tenure in tenures:
            item = response.numbers.add(
                number=tenure.number,
                tenure_open=tenure.tenure_open,
                state=STATUS_VALUES[tenure.state],  # type: ignore[arg-type]
                channel=tenure.channel,
                verification_method=METHOD_VALUES.get(tenure.verification_method, 0),  # type: ignore[arg-type]
            )
            item.activated_at.FromDatetime(tenure.activated_at)
            if tenure.ended_at is not None:
                item.ended_at.FromDatetime(tenure.ended_at)
        return response
