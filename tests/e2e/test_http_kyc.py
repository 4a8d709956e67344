"""CAMARA KYC Match v0.4 (``POST /kyc-match/v0.4/match``) over a real server and a real HTTP client, on both
stores: the scenarios of the public KYC Match test definitions the ledger can express (status, code,
x-correlator), the same answers as IdentityService.MatchIdentity over gRPC, and both calls in the number's
history."""

from __future__ import annotations

import dataclasses

import httpx
import pytest

from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import identity_service_pb2 as ipb
from ledger.v1 import ledger_pb2
from tests.conftest import number, resident_id, running_server
from tests.e2e.test_auth_tls import tokens  # noqa: F401 - a fixture
from tests.e2e.test_http_camara import NOW, post, refused
from tests.e2e.test_identity_grpc import activate, identity, person, provision

STORES = ("sqlite", "postgres")
KYC = "/kyc-match/v0.4/match"
SEQ, DOB = 2, "1990-01-03"  # resident_id(2)'s birth date
RESULTS = {
    ipb.MATCH_RESULT_TRUE: "true",
    ipb.MATCH_RESULT_FALSE: "false",
    ipb.MATCH_RESULT_NOT_AVAILABLE: "not_available",
}


@pytest.fixture
def held(settings, clock):
    """A server with its HTTP port; number(401) held by Wang Xiaoming (resident ID card, born 1990-01-03),
    number(402) provisioned and held by no one. Yields (stubs, client, held number, free number)."""
    clock.t = NOW
    for stubs, _ in running_server(dataclasses.replace(settings, http_listen="127.0.0.1:0"), clock):
        msisdn, free = number(401), number(402)
        provision(stubs, msisdn, free)
        activate(stubs, msisdn, person(stubs, "Wang Xiaoming", SEQ, DOB))
        with httpx.Client(base_url=stubs.http, timeout=10) as client:
            yield stubs, client, msisdn, free


def test_kyc_match_success_scenarios(held) -> None:
    _, client, msisdn, _ = held
    # KYC_Match_1 / _2 / perfect match: each field sent comes back as its <field>Match, nothing else.
    r = post(
        client,
        KYC,
        {
            "phoneNumber": msisdn,
            "idDocument": resident_id(SEQ),
            "idDocumentType": "national_id_card",
            "name": "Wang Xiaoming",
            "birthdate": DOB,
        },
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "idDocumentMatch": "true",
        "idDocumentTypeMatch": "true",
        "nameMatch": "true",
        "birthdateMatch": "true",
    }
    # Normalised names match (NFKC, case, whitespace and punctuation).
    r = post(client, KYC, {"phoneNumber": msisdn, "name": "  WANG xiao-ming "})
    assert r.status_code == 200 and r.json() == {"nameMatch": "true"}
    # False with a score 0-99 for the name; false without a score for the rest.
    r = post(client, KYC, {"phoneNumber": msisdn, "name": "Wang Xiaomin", "birthdate": "1990-01-04"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["nameMatch"], body["birthdateMatch"]) == ("false", "false")
    assert 90 <= body["nameMatchScore"] <= 99 and set(body) == {"nameMatch", "nameMatchScore", "birthdateMatch"}
    # The document matches only when type and number both match: a passport with the ID card's number is not it.
    r = post(client, KYC, {"phoneNumber": msisdn, "idDocument": resident_id(SEQ), "idDocumentType": "passport"})
    assert r.status_code == 200 and r.json() == {"idDocumentMatch": "false", "idDocumentTypeMatch": "false"}
    r = post(client, KYC, {"phoneNumber": msisdn, "idDocument": resident_id(3), "idDocumentType": "national_id_card"})
    assert r.status_code == 200 and r.json() == {"idDocumentMatch": "false", "idDocumentTypeMatch": "false"}
    # What the ledger does not hold is not_available; an ID number without a type the ledger registers is not
    # guessed at (not_available), nor a type without its number.
    sent = {
        "name": "Wang Xiaoming",
        "givenName": "Xiaoming",
        "familyName": "Wang",
        "address": "1 Chang'an Avenue",
        "email": "wang@example.com",
        "gender": "MALE",
        "nationality": "CN",
        "idDocumentExpiryDate": "2030-01-01",
        "idDocument": resident_id(SEQ),
    }
    r = post(client, KYC, {"phoneNumber": msisdn, **sent})
    assert r.status_code == 200, r.text
    assert r.json() == {f"{k}Match": "true" if k == "name" else "not_available" for k in sent}
    r = post(
        client,
        KYC,
        {
            "phoneNumber": msisdn,
            "idDocument": resident_id(SEQ),
            "idDocumentType": "driver_licence",
            "name": "Wang Xiaoming",
        },
    )
    assert r.json() == {"idDocumentMatch": "not_available", "idDocumentTypeMatch": "not_available", "nameMatch": "true"}
    r = post(client, KYC, {"phoneNumber": msisdn, "idDocumentType": "national_id_card", "birthdate": DOB})
    assert r.json() == {"idDocumentTypeMatch": "not_available", "birthdateMatch": "true"}


def test_kyc_match_error_scenarios(held) -> None:
    _, client, msisdn, free = held
    # KYC_Match_10: only the phone number, or only fields no one here can compare.
    refused(post(client, KYC, {"phoneNumber": msisdn}), 400, "KNOW_YOUR_CUSTOMER.INVALID_PARAM_COMBINATION")
    only_unheld = {"phoneNumber": msisdn, "address": "x", "idDocument": resident_id(SEQ)}
    refused(post(client, KYC, only_unheld), 400, "KNOW_YOUR_CUSTOMER.INVALID_PARAM_COMBINATION")
    # 400.1-400.3: no body, an empty object, a body not compliant with the schema (an unknown property, a
    # type not in the enum, a bad phone number, an empty name, a bad date).
    r = client.post(KYC, content=b"", headers={"x-correlator": "c-1"})
    assert r.headers["x-correlator"] == "c-1"
    refused(r, 400, "INVALID_ARGUMENT")
    refused(post(client, KYC, {}), 400, "INVALID_ARGUMENT")
    for bad in (
        {"phoneNumber": msisdn, "name": "Wang Xiaoming", "nickname": "Xiao"},
        {"phoneNumber": msisdn, "idDocument": "1", "idDocumentType": "library_card"},
        {"phoneNumber": "8613800000401", "name": "Wang Xiaoming"},
        {"phoneNumber": msisdn, "name": ""},
        {"phoneNumber": msisdn, "name": 7},
        {"phoneNumber": msisdn, "birthdate": "1990-02-30"},
        {"phoneNumber": msisdn, "email": "not-an-email"},
        {"name": "Wang Xiaoming", "nickname": "Xiao"},  # a bad body is 400 before the identifier rule
    ):
        refused(post(client, KYC, bad), 400, "INVALID_ARGUMENT")
    # 404: a number unknown here, or held by no one now.
    refused(post(client, KYC, {"phoneNumber": number(499), "name": "Wang Xiaoming"}), 404, "IDENTIFIER_NOT_FOUND")
    refused(post(client, KYC, {"phoneNumber": free, "name": "Wang Xiaoming"}), 404, "IDENTIFIER_NOT_FOUND")
    # 422: no phone number (2-legged access only).
    refused(post(client, KYC, {"name": "Wang Xiaoming"}), 422, "MISSING_IDENTIFIER")


def test_kyc_match_answers_as_match_identity_and_both_calls_are_recorded(held) -> None:
    stubs, client, msisdn, _ = held
    r = post(client, KYC, {"phoneNumber": msisdn, "idDocument": resident_id(SEQ), "idDocumentType": "national_id_card",
                           "name": "Wang Xiaomin", "givenName": "Xiaomin", "birthdate": DOB})  # fmt: skip
    assert r.status_code == 200, r.text
    grpc_answer = identity(stubs).MatchIdentity(
        ipb.MatchIdentityRequest(
            number=msisdn,
            id_type=ledger_pb2.ID_TYPE_RESIDENT_ID_CARD,
            id_number=resident_id(SEQ),
            full_name="Wang Xiaomin",
            given_name="Xiaomin",
            date_of_birth=DOB,
        )
    )
    body = r.json()
    assert body == {
        "idDocumentMatch": RESULTS[grpc_answer.id_document_match],
        "idDocumentTypeMatch": RESULTS[grpc_answer.id_document_match],
        "nameMatch": RESULTS[grpc_answer.name_match],
        "nameMatchScore": grpc_answer.name_match_score,
        "givenNameMatch": RESULTS[grpc_answer.given_name_match],
        "birthdateMatch": RESULTS[grpc_answer.birthdate_match],
    }
    assert (body["idDocumentMatch"], body["nameMatch"], body["givenNameMatch"]) == ("true", "false", "not_available")
    events = [
        r.event
        for r in stubs.history.GetNumberHistory(hpb.GetNumberHistoryRequest(number=msisdn))
        if r.event.type == "AccessLogIdentityMatched"
    ]
    assert len(events) == 2  # the HTTP call and the gRPC call, recorded alike
    assert (
        dict(events[0].data["results"])
        == dict(events[1].data["results"])
        == {
            "id_document": "TRUE",
            "name": "FALSE",
            "given_name": "NOT_AVAILABLE",
            "birthdate": "TRUE",
        }
    )
    assert events[0].data["name_match_score"] == events[1].data["name_match_score"] == body["nameMatchScore"]
    recorded = b"".join(e.SerializeToString() for e in events)
    for value in (b"Wang", b"Xiaomin", resident_id(SEQ).encode(), DOB.encode()):
        assert value not in recorded
    # A refused call compared nothing and records nothing.
    refused(post(client, KYC, {"phoneNumber": msisdn}), 400, "KNOW_YOUR_CUSTOMER.INVALID_PARAM_COMBINATION")
    after = stubs.history.GetNumberHistory(hpb.GetNumberHistoryRequest(number=msisdn))
    assert sum(r.event.type == "AccessLogIdentityMatched" for r in after) == 2


def test_kyc_match_is_published_in_openapi(held) -> None:
    _, client, _, _ = held
    spec = client.get("/openapi.json").json()
    operation = spec["paths"][KYC]["post"]
    assert operation["operationId"] == "KYC_Match"
    text = str(operation)
    assert "KNOW_YOUR_CUSTOMER.INVALID_PARAM_COMBINATION" in text and "MISSING_IDENTIFIER" in text


def test_kyc_match_needs_the_checker_role(settings, clock, tokens) -> None:  # noqa: F811
    path, issued = tokens
    clock.t = NOW
    for stubs, _ in running_server(dataclasses.replace(settings, auth_file=path, http_listen="127.0.0.1:0"), clock):
        with httpx.Client(base_url=stubs.http, timeout=10) as client:
            body = {"phoneNumber": number(499), "name": "Wang Xiaoming"}
            for token, status, code in (
                (None, 401, "UNAUTHENTICATED"),
                ("not-a-token", 401, "UNAUTHENTICATED"),
                (issued["operator"], 403, "PERMISSION_DENIED"),
                (issued["compliance"], 403, "PERMISSION_DENIED"),
                (issued["checker"], 404, "IDENTIFIER_NOT_FOUND"),  # let in: the number is unknown here
            ):
                headers = {"x-correlator": f"auth-{status}"} | ({"authorization": f"Bearer {token}"} if token else {})
                r = client.post(KYC, json=body, headers=headers)
                assert r.headers["x-correlator"] == f"auth-{status}"
                refused(r, status, code)
            # The token is checked before the body: a bad body without a token is 401, not 400.
            assert client.post(KYC, content=b"{bad").status_code == 401
