"""KYC Match v0.4 over ``IdentityService.MatchIdentity``: its body as the RPC's request, the RPC's results as
its ``<field>Match`` answer, and the schemas ``/openapi.json`` publishes for it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ledger.application.identity import MAX_ID_NUMBER_LENGTH, MAX_NAME_LENGTH, MAX_NAME_SCORE, ONLY_NUMBER
from ledger.domain import errors
from ledger.domain.rules import IdType
from ledger.server.convert import ID_TYPE_VALUES
from ledger.server.http.bodies import PHONE_NUMBER_SCHEMA, phone_number
from ledger.v1 import identity_service_pb2 as ipb

# KYC Match r1.2's request fields besides phoneNumber. The ledger holds the ID document (type and number, as
# one identity key), the full name and the date of birth; every other field is answered "not_available".
KYC_FIELDS = (
    "idDocument",
    "idDocumentType",
    "idDocumentExpiryDate",
    "name",
    "givenName",
    "familyName",
    "nameKanaHankaku",
    "nameKanaZenkaku",
    "middleNames",
    "familyNameAtBirth",
    "address",
    "streetName",
    "streetNumber",
    "postalCode",
    "region",
    "locality",
    "country",
    "houseNumberExtension",
    "birthdate",
    "email",
    "gender",
    "cityOfBirth",
    "countryOfBirth",
    "nationality",
)
# CAMARA's document types the ledger registers (DESIGN); any other cannot be the holder's document here.
KYC_ID_TYPES = {"national_id_card": IdType.RESIDENT_ID_CARD, "passport": IdType.PASSPORT}
KYC_ID_TYPE_ENUM = ["passport", "national_id_card", "residence_permit", "diplomatic_id", "driver_licence"]
KYC_ID_TYPE_ENUM += ["social_security_id", "other"]
INVALID_PARAM_COMBINATION = "KNOW_YOUR_CUSTOMER.INVALID_PARAM_COMBINATION"
_KYC_RESULTS = {
    ipb.MATCH_RESULT_TRUE: "true",
    ipb.MATCH_RESULT_FALSE: "false",
    ipb.MATCH_RESULT_NOT_AVAILABLE: "not_available",
}


def _kyc_id_type(body: Mapping[str, Any]) -> IdType | None:
    """The ID document type the ledger compares, when ``idDocument`` is sent with a type it registers."""
    return KYC_ID_TYPES.get(body.get("idDocumentType", "")) if "idDocument" in body else None


def kyc_match_request(body: dict[str, Any]) -> ipb.MatchIdentityRequest:
    """KYC Match's body as ``MatchIdentity``'s request: ``name`` is the full name, ``idDocument`` with a
    registered ``idDocumentType`` the ID document, ``birthdate`` the date of birth; givenName and familyName
    pass on (MatchIdentity answers them NOT_AVAILABLE). Only ``phoneNumber`` passes on as it is (MatchIdentity
    refuses it: INVALID_PARAM_COMBINATION, one refusal for both protocols)."""
    if "phoneNumber" not in body and not any(name in body for name in KYC_FIELDS):
        raise errors.InvalidArgument([("body", "names no field to compare (CAMARA: an empty body is invalid)")])
    request = ipb.MatchIdentityRequest(number=phone_number(body))
    kind = _kyc_id_type(body)
    if kind is not None:
        request.id_type = ID_TYPE_VALUES[kind]  # type: ignore[assignment]
        request.id_number = body["idDocument"]
    for name, target in (("name", "full_name"), ("givenName", "given_name"), ("familyName", "family_name")):
        if name in body:
            setattr(request, target, body[name])
    if "birthdate" in body:
        request.date_of_birth = body["birthdate"]
    compared = ("id_number", "full_name", "given_name", "family_name", "date_of_birth")
    if any(name in body for name in KYC_FIELDS) and not any(request.HasField(f) for f in compared):
        # Every field sent is one the ledger cannot compare (an address, an email, an ID number without a
        # type it registers): nothing to ask MatchIdentity, and no guess at a type.
        text = "sends no field this operator compares: idDocument with idDocumentType, name, givenName, familyName"
        raise errors.InvalidArgument([("body", f"{text} or birthdate")], ONLY_NUMBER)
    return request


def kyc_match_response(body: dict[str, Any], response: ipb.MatchIdentityResponse) -> dict[str, Any]:
    """``MatchIdentity``'s results as KYC Match's ``<field>Match`` for each field sent, in the order of the
    request's schema; the ID document's one result answers both idDocument and idDocumentType (the ledger
    compares them together), and what the ledger does not hold is "not_available"."""
    answered = {
        "name": response.name_match,
        "givenName": response.given_name_match,
        "familyName": response.family_name_match,
        "birthdate": response.birthdate_match,
    }
    if _kyc_id_type(body) is not None:
        answered["idDocument"] = answered["idDocumentType"] = response.id_document_match
    out: dict[str, Any] = {}
    for name in KYC_FIELDS:
        if name not in body:
            continue
        result = answered.get(name)
        out[f"{name}Match"] = _KYC_RESULTS[result] if result is not None else "not_available"
        if name == "name" and response.HasField("name_match_score"):
            out["nameMatchScore"] = response.name_match_score
    return out


def kyc_request_schema() -> dict[str, Any]:
    """KYC Match's request schema: every field of r1.2, with what the ledger compares of each."""
    text: dict[str, Any] = {"type": "string", "minLength": 1}
    properties: dict[str, Any] = {"phoneNumber": PHONE_NUMBER_SCHEMA}
    for name in KYC_FIELDS:
        properties[name] = {**text, "description": "Not held by this operator: answered not_available."}
    properties["idDocument"] = {
        **text,
        "maxLength": MAX_ID_NUMBER_LENGTH,
        "description": "The ID document's number; compared with idDocumentType national_id_card or passport only.",
    }
    properties["idDocumentType"] = {
        "type": "string",
        "enum": KYC_ID_TYPE_ENUM,
        "description": "The ID document's type; national_id_card and passport are compared (with idDocument).",
    }
    properties["name"] = {
        **text,
        "maxLength": MAX_NAME_LENGTH,
        "description": "The complete name, compared after NFKC, case folding and removing whitespace and punctuation.",
    }
    for name in ("givenName", "familyName"):
        properties[name] = {**text, "maxLength": MAX_NAME_LENGTH, "description": "Answered not_available."}
    properties["birthdate"] = {"type": "string", "format": "date", "description": "YYYY-MM-DD."}
    properties["idDocumentExpiryDate"] = {"type": "string", "format": "date", "description": "Answered not_available."}
    properties["email"] = {"type": "string", "format": "email", "description": "Answered not_available."}
    properties["gender"] = {
        "type": "string",
        "enum": ["MALE", "FEMALE", "OTHER"],
        "description": "Answered not_available.",
    }
    return {"type": "object", "properties": properties, "additionalProperties": False}


def kyc_response_schema() -> dict[str, Any]:
    """KYC Match's response schema: a ``<field>Match`` per field, and ``nameMatchScore``."""
    result = {"type": "string", "enum": ["true", "false", "not_available"]}
    properties: dict[str, Any] = {f"{name}Match": result for name in KYC_FIELDS}
    properties["nameMatchScore"] = {
        "type": "integer",
        "minimum": 0,
        "maximum": MAX_NAME_SCORE,
        "description": "Jaro-Winkler similarity of the normalised names, only when nameMatch is false.",
    }
    return {"type": "object", "properties": properties, "additionalProperties": False}
