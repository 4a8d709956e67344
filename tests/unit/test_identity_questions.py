"""Identity questions on the in-memory application: MatchIdentity's comparisons, normalisation, scores,
refusals and access records; ListNumbersByIdentity across tenures, recycling and erasure."""

from __future__ import annotations

from uuid import UUID

import pytest

from ledger.application.commands import (
    EraseSubscriberData,
    ProvisionNumbers,
    RegisterSubscriber,
    ReleaseNumber,
    SuspendNumber,
    VerifyIdentity,
)
from ledger.application.identity import (
    IDENTITY_LOOKUP_PREFIX,
    list_numbers_by_identity,
    match_identity,
    name_score,
    normalise_name,
)
from ledger.application.pipeline import execute
from ledger.application.reads import number_history
from ledger.domain import errors
from ledger.domain.rules import MatchResult
from tests.conftest import RESIDENT_DOB, RESIDENT_ID, resident_id
from tests.unit.test_application import NUMBER, OTHER, activate, disconnect, ledger, verified  # noqa: F401

TRUE, FALSE, NA = MatchResult.TRUE, MatchResult.FALSE, MatchResult.NOT_AVAILABLE
THIRD = "+8613800138002"
BORN = "1990-01-03"  # resident_id(2)'s birth date


@pytest.fixture
def held(ledger):  # noqa: F811
    """NUMBER held by Zhang San (RESIDENT_ID, born RESIDENT_DOB)."""
    execute(ledger, ProvisionNumbers(numbers=(NUMBER, OTHER, THIRD)), request_id="p", actor="shop")
    sid = verified(ledger)
    activate(ledger, sid)
    return ledger, sid


def match(app, **fields):
    return match_identity(app, "bank-1", fields.pop("number", NUMBER), **fields)


def test_the_registered_data_matches_field_by_field(held) -> None:
    app, _ = held
    outcome = match(
        app, id_type="RESIDENT_ID_CARD", id_number=RESIDENT_ID, full_name="Zhang San", date_of_birth=RESIDENT_DOB
    )
    assert (outcome.id_document, outcome.name, outcome.birthdate) == (TRUE, TRUE, TRUE)
    assert outcome.name_score is None
    assert (outcome.given_name, outcome.family_name) == (None, None)  # not sent: no result
    assert outcome.as_of_position > 0


def test_names_and_id_numbers_are_compared_after_normalisation(held) -> None:
    app, _ = held
    full_width = "\uff3a\uff28\uff21\uff2e\uff27\u3000\uff33\uff21\uff2e"
    for name in ("  zhang-san ", full_width, "Zhang.San", "ZHANG\u00a0SAN"):
        assert match(app, full_name=name).name == TRUE, name
    spaced = f"{RESIDENT_ID[:6]} {RESIDENT_ID[6:-1]}{RESIDENT_ID[-1].lower()}"
    assert match(app, id_type="RESIDENT_ID_CARD", id_number=spaced).id_document == TRUE
    assert normalise_name(" O'Brien-Smith ") == "obriensmith"


def test_a_near_name_is_false_with_a_jaro_winkler_score(held) -> None:
    app, _ = held
    near = match(app, full_name="Zhang Shan")
    far = match(app, full_name="Li Si")
    assert near.name == FALSE and far.name == FALSE
    assert near.name_score is not None and far.name_score is not None
    assert 90 <= near.name_score <= 99 and far.name_score < 60
    assert near.name_score == name_score("zhangshan", "zhangsan")
    assert name_score("abcdefghij", "abcdefghik") == 96  # floored, never rounded up


def test_wrong_id_number_or_type_is_false(held) -> None:
    app, _ = held
    assert match(app, id_type="RESIDENT_ID_CARD", id_number=resident_id(5)).id_document == FALSE
    assert match(app, id_type="PASSPORT", id_number=RESIDENT_ID).id_document == FALSE
    assert match(app, id_type="RESIDENT_ID_CARD", id_number="110105194912310021").id_document == FALSE  # bad check


def test_birthdate_and_fields_the_ledger_does_not_hold(held) -> None:
    app, _ = held
    assert match(app, date_of_birth="1950-01-01").birthdate == FALSE
    outcome = match(app, given_name="San", family_name="Zhang")
    assert (outcome.given_name, outcome.family_name, outcome.name) == (NA, NA, None)


def test_only_the_number_or_half_an_id_document_is_refused(held) -> None:
    app, _ = held
    with pytest.raises(errors.InvalidArgument) as caught:
        match(app)
    assert caught.value.reason == "INVALID_PARAM_COMBINATION"
    assert [f for f, _ in caught.value.violations] == ["number"]
    with pytest.raises(errors.InvalidArgument) as caught:
        match(app, id_number=RESIDENT_ID)
    assert [f for f, _ in caught.value.violations] == ["id_type"]
    with pytest.raises(errors.InvalidArgument) as caught:
        match(app, date_of_birth="31/12/1949", full_name="...")
    assert {f for f, _ in caught.value.violations} == {"date_of_birth", "full_name"}
    assert "Zhang" not in str(caught.value) and "31/12" not in str(caught.value)


def test_a_suspended_holder_is_compared(held) -> None:
    app, _ = held
    execute(app, SuspendNumber(number=NUMBER, reason="FRAUD", note=""), request_id="s", actor="ops")
    assert match(app, full_name="Zhang San").name == TRUE


def test_no_holder_now_or_an_unknown_number_is_not_found(held) -> None:
    app, _ = held
    with pytest.raises(errors.HolderNotFound):
        match(app, number=OTHER, full_name="Zhang San")  # available
    disconnect(app)
    with pytest.raises(errors.HolderNotFound) as caught:
        match(app, full_name="Zhang San")  # quarantined
    assert "QUARANTINED" in str(caught.value) and "Zhang" not in str(caught.value)
    with pytest.raises(errors.NumberNotFound):
        match(app, number="+8613900139000", full_name="Zhang San")


def test_a_recycled_number_matches_its_new_holder_only(held, clock) -> None:
    app, first = held
    disconnect(app)
    execute(app, EraseSubscriberData(subscriber_id=first, legal_basis="PIPL art. 47"), request_id="e", actor="dpo")
    clock.advance(days=200)
    execute(app, ReleaseNumber(number=NUMBER, override_reason="test"), request_id="rel", actor="ops")
    second = person(app, "Li Si", resident_id(2))
    activate(app, second, request_id="a-2")
    former = match(
        app, id_type="RESIDENT_ID_CARD", id_number=RESIDENT_ID, full_name="Zhang San", date_of_birth=RESIDENT_DOB
    )
    assert (former.id_document, former.name, former.birthdate) == (FALSE, FALSE, FALSE)
    new = match(app, id_type="RESIDENT_ID_CARD", id_number=resident_id(2), full_name="li si", date_of_birth=BORN)
    assert (new.id_document, new.name, new.birthdate) == (TRUE, TRUE, TRUE)


def test_each_match_is_recorded_in_the_history_without_a_value(held) -> None:
    app, sid = held
    match(app, id_type="RESIDENT_ID_CARD", id_number=RESIDENT_ID, full_name="Zhang Shan", given_name="San")
    records = [i for i in number_history(app, NUMBER, False) if i.type_name == "AccessLogIdentityMatched"]
    assert len(records) == 1
    record = records[0]
    assert record.subscriber_id == sid and record.event.actor == "bank-1"
    data = record.data()
    assert data["number"] == NUMBER
    assert data["results"] == {"id_document": "TRUE", "name": "FALSE", "given_name": "NOT_AVAILABLE"}
    assert 90 <= data["name_match_score"] <= 99
    text = repr(vars(record.event))
    for value in ("Zhang", "zhang", RESIDENT_ID, "San", RESIDENT_DOB):
        assert value not in text


def test_a_refused_match_records_nothing(held) -> None:
    app, _ = held
    before = app.reader.max_position()
    with pytest.raises(errors.HolderNotFound):
        match(app, number=OTHER, full_name="Zhang San")
    assert app.reader.max_position() == before


def lookup(app, id_number: str = RESIDENT_ID, purpose: str = "complaint 42"):
    return list_numbers_by_identity(app, "dpo", "RESIDENT_ID_CARD", id_number, purpose)


def test_every_tenure_of_an_identity_past_and_present_across_recycling(held, clock) -> None:
    app, first = held
    disconnect(app)
    activate(app, first, number=OTHER, request_id="a-other")
    clock.advance(days=200)
    execute(app, ReleaseNumber(number=NUMBER, override_reason="test"), request_id="rel", actor="ops")
    someone = person(app, "Li Si", resident_id(2))
    activate(app, someone, request_id="a-2")
    # A second subscriber record of the same person (a new registration) holds a third number.
    again = verified(app, "r-3")
    activate(app, again, number=THIRD, request_id="a-3")

    found = lookup(app)
    assert [(t.number, t.tenure_open, t.state) for t in found] == [
        (NUMBER, False, "ACTIVE"),  # ended, and held by someone else now
        (OTHER, True, "ACTIVE"),
        (THIRD, True, "ACTIVE"),
    ]
    assert found[0].ended_at is not None and found[1].ended_at is None
    assert {t.channel for t in found} == {"retail"} and {t.verification_method for t in found} == {"ID_CARD_READER"}
    assert [t.number for t in lookup(app, resident_id(2))] == [NUMBER]
    reads = [
        i
        for i in number_history(app, OTHER, False)
        if i.type_name == "AccessLogPersonalDataRead" and i.data()["number"] == OTHER
    ]
    assert [r.data()["purpose"] for r in reads] == [f"{IDENTITY_LOOKUP_PREFIX}complaint 42"]
    assert reads[0].event.actor == "dpo"


def test_an_erased_identity_finds_nothing(held) -> None:
    app, sid = held
    disconnect(app)
    execute(app, EraseSubscriberData(subscriber_id=sid, legal_basis="PIPL art. 47"), request_id="e", actor="dpo")
    before = app.reader.max_position()
    assert lookup(app) == []
    assert lookup(app, resident_id(9)) == []  # never registered
    assert app.reader.max_position() == before  # nothing disclosed, nothing recorded


def test_a_purpose_and_a_valid_id_document_are_required(held) -> None:
    app, _ = held
    with pytest.raises(errors.InvalidArgument) as caught:
        lookup(app, purpose="  ")
    assert [f for f, _ in caught.value.violations] == ["purpose"]
    with pytest.raises(errors.InvalidArgument) as caught:
        list_numbers_by_identity(app, "dpo", "", "", "x")
    assert {f for f, _ in caught.value.violations} == {"id_type", "id_number"}


def person(app, full_name: str, id_number: str) -> UUID:
    """A verified subscriber with their own name and birth date (the one in their ID number)."""
    sid = UUID(
        execute(
            app,
            RegisterSubscriber(
                full_name=full_name, id_type="RESIDENT_ID_CARD", id_number=id_number, date_of_birth=BORN
            ),
            request_id=f"r-{id_number}",
            actor="shop",
        ).data["subscriber_id"]
    )
    execute(
        app,
        VerifyIdentity(subscriber_id=sid, method="ONLINE_PHOTO_LIVENESS", channel="app", agent_id="", evidence_ref="e"),
        request_id=f"v-{id_number}",
        actor="shop",
    )
    return sid


def test_a_holder_whose_data_cannot_be_opened_is_compared_with_nothing(held) -> None:
    app, sid = held
    app.vault.destroy(sid)  # a lost data key: the sealed data no longer opens
    outcome = match(
        app, id_type="RESIDENT_ID_CARD", id_number=RESIDENT_ID, full_name="Zhang San", date_of_birth=RESIDENT_DOB
    )
    assert (outcome.id_document, outcome.name, outcome.birthdate) == (NA, NA, NA)
    assert outcome.name_score is None


def test_an_erased_record_of_an_identity_is_left_out_while_another_lives(held) -> None:
    app, first = held
    disconnect(app)
    again = verified(app, "r-3")  # the same person registered again
    activate(app, again, number=OTHER, request_id="a-3")
    execute(app, EraseSubscriberData(subscriber_id=first, legal_basis="PIPL art. 47"), request_id="e", actor="dpo")
    assert [(t.number, t.tenure_open) for t in lookup(app)] == [(OTHER, True)]


def test_the_listing_agrees_with_the_cap(held) -> None:
    app, sid = held
    activate(app, sid, number=OTHER, request_id="a-2")
    with pytest.raises(errors.IdentityNumberCap):  # the cap of 2 counts the same open tenures
        activate(app, sid, number=THIRD, request_id="a-3")
    assert [(t.number, t.tenure_open) for t in lookup(app)] == [(NUMBER, True), (OTHER, True)]
