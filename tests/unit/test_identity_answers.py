"""MatchIdentity's outcome as the API's response (``identity.match_response``: each result's enum, a field
not sent left UNSPECIFIED, the score only for a name that is false), the access record as the history
serves it, and a ported-out number with no holder here. The comparisons themselves are
test_identity_questions.py; one call of each RPC goes over a real server in tests/e2e/test_identity_grpc.py."""

from __future__ import annotations

import pytest

from ledger.application.commands import PortOutNumber, SuspendNumber
from ledger.application.identity import match_identity
from ledger.application.pipeline import execute
from ledger.application.reads import number_history
from ledger.domain import errors
from ledger.server.convert import ledger_event
from ledger.server.identity import match_response
from ledger.v1 import identity_service_pb2 as ipb
from tests.conftest import RESIDENT_DOB, RESIDENT_ID, resident_id
from tests.unit.test_application import NUMBER, OTHER, activate, ledger, verified  # noqa: F401
from tests.unit.test_identity_questions import held  # noqa: F401

TRUE, FALSE, NA, UNSENT = (
    ipb.MATCH_RESULT_TRUE,
    ipb.MATCH_RESULT_FALSE,
    ipb.MATCH_RESULT_NOT_AVAILABLE,
    ipb.MATCH_RESULT_UNSPECIFIED,
)


def answer(app, **fields) -> ipb.MatchIdentityResponse:
    return match_response(match_identity(app, "bank-1", fields.pop("number", NUMBER), **fields))


def test_match_identity_answers_per_field_on_the_wire(held) -> None:  # noqa: F811
    """Moved from tests/e2e/test_identity_grpc.py (test_match_identity_answers_per_field_and_records_the_call)."""
    app, _ = held
    exact = answer(
        app, id_type="RESIDENT_ID_CARD", id_number=RESIDENT_ID, full_name="Zhang San", date_of_birth=RESIDENT_DOB
    )
    assert (exact.id_document_match, exact.name_match, exact.birthdate_match) == (TRUE, TRUE, TRUE)
    assert not exact.HasField("name_match_score") and exact.given_name_match == UNSENT
    assert exact.family_name_match == UNSENT and exact.as_of_position > 0
    near = answer(
        app,
        id_type="PASSPORT",
        id_number=RESIDENT_ID,
        full_name=" zhang  san ",  # normalised: a match
        given_name="San",
        date_of_birth="1949-12-30",
    )
    assert (near.id_document_match, near.name_match, near.birthdate_match) == (FALSE, TRUE, FALSE)
    assert near.given_name_match == NA and near.family_name_match == UNSENT
    scored = answer(app, full_name="Zhang Shan")
    assert scored.name_match == FALSE and 90 <= scored.name_match_score <= 99
    wrong_id = answer(app, id_type="RESIDENT_ID_CARD", id_number=resident_id(3))
    assert wrong_id.id_document_match == FALSE
    execute(app, SuspendNumber(number=NUMBER, reason="FRAUD", note=""), request_id="s", actor="ops")
    assert answer(app, full_name="ZHANG SAN").name_match == TRUE

    events = [ledger_event(i) for i in number_history(app, NUMBER, False) if i.type_name == "AccessLogIdentityMatched"]
    assert len(events) == 5  # one per answered call
    assert dict(events[1].data["results"]) == {
        "id_document": "FALSE",
        "name": "TRUE",
        "given_name": "NOT_AVAILABLE",
        "birthdate": "FALSE",
    }
    assert events[2].data["name_match_score"] == scored.name_match_score
    recorded = b"".join(e.SerializeToString() for e in events)
    for value in (b"Zhang", b"zhang", b"San", RESIDENT_ID.encode(), resident_id(3).encode(), b"1949-12"):
        assert value not in recorded


def test_a_ported_out_number_has_no_holder_here(held) -> None:  # noqa: F811
    """Moved from tests/e2e/test_identity_grpc.py (test_a_recycled_number_matches_its_new_holder_and_no_...)."""
    app, _ = held
    execute(app, PortOutNumber(number=NUMBER, recipient_operator="other-mno"), request_id="po", actor="ops")
    before = app.reader.max_position()
    with pytest.raises(errors.HolderNotFound) as refused:
        answer(app, full_name="Zhang San")
    assert refused.value.kind == "holder" and "PORTED_OUT" in str(refused.value)
    assert app.reader.max_position() == before
