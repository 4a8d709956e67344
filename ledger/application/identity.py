"""Identity questions: is the person in front of a bank the registered holder of a number (MatchIdentity,
CAMARA KYC Match), and which numbers did this ledger register under one ID document (ListNumbersByIdentity,
MIIT's one-ID lookup).

Both answer from keyed hashes and sealed data without ever returning a stored value, and both record who
asked in the access logs of the subscribers concerned before they answer. The edges (gRPC, HTTP) call these
two functions and only translate: every rule, normalisation and refusal is here.

An ID document is compared through its identity key (``keys.identity.find_identity_key``): the HMAC of
(type, canonical number) under the identity's salt, so the stored ID number is never decrypted, and an ID
whose every record was erased has no key left to find (its salt is gone). Names and dates of birth are
compared after opening the holder's sealed data; the answer is true or false, never the value.
"""

from __future__ import annotations

import hmac
import math
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar
from uuid import UUID, uuid4

from rapidfuzz.distance import JaroWinkler

from ledger.application.pipeline import retrying
from ledger.application.unit_of_work import UnitOfWork
from ledger.domain import errors, identifiers
from ledger.domain.context import Context
from ledger.domain.indexes import IdentityHoldings
from ledger.domain.rules import IdType, MatchResult, NumberStatus
from ledger.keys.identity import find_identity_key

if TYPE_CHECKING:
    from ledger.application.app import LedgerApplication
    from ledger.domain.access import AccessLog
    from ledger.domain.subscriber import Subscriber

# The recorded purpose of a ListNumbersByIdentity disclosure starts so (a history tells it from a read).
IDENTITY_LOOKUP_PREFIX = "numbers by identity: "
MAX_NAME_LENGTH = 200
MAX_ID_NUMBER_LENGTH = 64
MAX_PURPOSE_LENGTH = 500
# The reason of the refusal when only the number was sent (CAMARA's INVALID_PARAM_COMBINATION).
ONLY_NUMBER = "INVALID_PARAM_COMBINATION"
T = TypeVar("T")
# A name that does not match scores at most this (100 would read as a match).
MAX_NAME_SCORE = 99


@dataclass(frozen=True)
class MatchOutcome:
    """One result per field sent (None for a field not sent), the name's Jaro-Winkler score 0-99 when it
    did not match, and the ledger position the answer reflects."""

    id_document: MatchResult | None
    name: MatchResult | None
    name_score: int | None
    given_name: MatchResult | None
    family_name: MatchResult | None
    birthdate: MatchResult | None
    as_of_position: int

    def results(self) -> dict[str, str]:
        """The results by field, as recorded in the access log (fields not sent are left out)."""
        named = {
            "id_document": self.id_document,
            "name": self.name,
            "given_name": self.given_name,
            "family_name": self.family_name,
            "birthdate": self.birthdate,
        }
        return {field: str(result) for field, result in named.items() if result is not None}


@dataclass(frozen=True)
class IdentityTenure:
    """One tenure registered under an identity: the number, whether the tenure is open, the number's state
    now, when the tenure began and ended, its channel and the verification method in force at activation."""

    number: str
    tenure_open: bool
    state: str
    activated_at: datetime
    ended_at: datetime | None
    channel: str
    verification_method: str


def normalise_name(text: str) -> str:
    """A name as compared: Unicode NFKC, case folded, without whitespace, punctuation or control characters
    ("  O'Brien-Smith " and "obriensmith" are the same name; "張 三" and "张三" are not)."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return "".join(ch for ch in folded if unicodedata.category(ch)[0] not in "PZC")


def name_score(sent: str, held: str) -> int:
    """Jaro-Winkler similarity of two normalised names, 0-99 (floored; a match is not scored)."""
    similarity = JaroWinkler.normalized_similarity(sent, held)
    return min(MAX_NAME_SCORE, math.floor(similarity * 100))


def match_identity(
    app: LedgerApplication,
    actor: str,
    number: str,
    *,
    id_type: str | None = None,
    id_number: str | None = None,
    full_name: str | None = None,
    given_name: str | None = None,
    family_name: str | None = None,
    date_of_birth: str | None = None,
) -> MatchOutcome:
    """Compare what was sent (None or empty: not sent) with the registered data of the number's holder now
    (the subscriber of its open tenure, active or suspended), recording the call in the holder's access log
    before answering.

    ``id_type`` is an ``IdType`` value; the ID document matches only when type and number both match. A
    holder whose erasure is held (restricted) or done is compared with nothing: every field sent is
    NOT_AVAILABLE. given and family names are NOT_AVAILABLE (the ledger holds the full name only).
    Refusals: InvalidArgument (only the number sent, or a malformed field), NumberNotFound, HolderNotFound
    (available, quarantined or ported out)."""
    violations: list[tuple[str, str]] = []
    e164 = _parse(violations, "number", number, identifiers.parse_msisdn)
    sent: dict[str, str | None] = {
        "id_type": id_type,
        "id_number": id_number,
        "full_name": full_name,
        "given_name": given_name,
        "family_name": family_name,
        "date_of_birth": date_of_birth,
    }
    if not any(sent.values()):
        text = "is the only field sent: send id_type with id_number, a name or date_of_birth to compare"
        raise errors.InvalidArgument([*violations, ("number", text)], None if violations else ONLY_NUMBER)
    if bool(id_type) != bool(id_number):
        missing = "id_number" if id_type else "id_type"
        violations.append((missing, "is required with the other half of the ID document (type and number)"))
    if id_type and id_type not in IdType.__members__:
        violations.append(("id_type", "is not a known ID document type"))
    for field in ("full_name", "given_name", "family_name"):
        _check_text(violations, field, sent[field], MAX_NAME_LENGTH)
    _check_text(violations, "id_number", id_number, MAX_ID_NUMBER_LENGTH)
    sent_name = normalise_name(full_name) if full_name else ""
    if full_name and not sent_name:
        violations.append(("full_name", "has no letters once whitespace and punctuation are removed"))
    birth = _parse(violations, "date_of_birth", date_of_birth, identifiers.parse_date) if date_of_birth else None
    if violations or e164 is None:
        raise errors.InvalidArgument(violations)
    as_of = app.reader.max_position()
    num = app.get_number(e164)
    tenure = num.current_tenure
    if tenure is None or num.status not in (NumberStatus.ACTIVE, NumberStatus.SUSPENDED):
        raise errors.HolderNotFound(e164, str(num.status))
    holder = app.get_subscriber(tenure.subscriber_id)
    held = None if holder.is_erased or holder.is_restricted else app.vault.open(holder.id, holder.personal_data)

    id_document = name = birthdate = None
    score = None
    if id_type and id_number:
        id_document = _id_document(app, holder, held is not None, id_type, id_number)
    if full_name:
        held_name = normalise_name(held.get("full_name", "")) if held is not None else ""
        if not held_name:
            name = MatchResult.NOT_AVAILABLE
        elif hmac.compare_digest(sent_name.encode(), held_name.encode()):
            name = MatchResult.TRUE
        else:
            name, score = MatchResult.FALSE, name_score(sent_name, held_name)
    if birth is not None:
        held_birth = held.get("date_of_birth", "") if held is not None else ""
        if not held_birth:
            birthdate = MatchResult.NOT_AVAILABLE
        else:
            birthdate = MatchResult.TRUE if held_birth == birth.isoformat() else MatchResult.FALSE
    outcome = MatchOutcome(
        id_document=id_document,
        name=name,
        name_score=score,
        given_name=MatchResult.NOT_AVAILABLE if given_name else None,
        family_name=MatchResult.NOT_AVAILABLE if family_name else None,
        birthdate=birthdate,
        as_of_position=as_of,
    )
    _record(app, actor, "match", lambda uow, ctx: _matched(uow, ctx, holder.id, e164, outcome))
    return outcome


def _id_document(
    app: LedgerApplication, holder: Subscriber, available: bool, id_type: str, id_number: str
) -> MatchResult:
    """Whether the ID document sent is the holder's, by identity key (the stored ID number stays sealed)."""
    if not available:
        return MatchResult.NOT_AVAILABLE
    try:
        canonical = identifiers.normalise_id_number(id_type, id_number)
    except identifiers.InvalidValue:
        return MatchResult.FALSE  # the registered number was validated: an invalid one cannot be it
    if id_type != holder.id_type:
        return MatchResult.FALSE
    key = find_identity_key(app.vault, id_type, canonical)
    if key is None:
        return MatchResult.FALSE
    return MatchResult.TRUE if hmac.compare_digest(key, holder.identity_key) else MatchResult.FALSE


def _matched(uow: UnitOfWork, ctx: Context, subscriber_id: UUID, number: str, outcome: MatchOutcome) -> list[AccessLog]:
    access_log = uow.access_log(subscriber_id, ctx)
    access_log.record_match(number, outcome.results(), outcome.name_score, ctx)
    return [access_log]


def list_numbers_by_identity(
    app: LedgerApplication, actor: str, id_type: str, id_number: str, purpose: str
) -> list[IdentityTenure]:
    """Every tenure this ledger registered under one ID document, past and present, oldest first; each
    number listed records the disclosure (``actor``, ``purpose``) in its holder's access log before the
    answer. Found through the identity's holdings stream (keyed by its identity key), never by reading
    personal data. A subscriber whose erasure is done or held is left out: an erased identity finds
    nothing. Refusals: InvalidArgument (type, number or purpose missing or malformed)."""
    violations: list[tuple[str, str]] = []
    if id_type not in IdType.__members__:
        violations.append(("id_type", "is required: " + ", ".join(IdType)))
    canonical: str | None = ""
    if not id_number:
        violations.append(("id_number", "is required"))
    elif id_type in IdType.__members__:
        canonical = _parse(violations, "id_number", id_number, lambda v: identifiers.normalise_id_number(id_type, v))
    purpose = purpose.strip()
    if not purpose:
        violations.append(("purpose", "is required: why the numbers are looked up (recorded with the disclosure)"))
    _check_text(violations, "purpose", purpose, MAX_PURPOSE_LENGTH)
    if violations or not canonical:
        raise errors.InvalidArgument(violations)
    key = find_identity_key(app.vault, id_type, canonical)
    if key is None:
        return []
    events = [app.mapper.to_domain_event(p.stored) for p in app.reader.read_streams([IdentityHoldings.create_id(key)])]
    opened = [ev for ev in events if isinstance(ev, IdentityHoldings.TenureOpened)]
    subscribers: dict[UUID, Subscriber] = {}
    found: list[tuple[UUID, IdentityTenure]] = []
    for ev in opened:
        sid: UUID = ev.subscriber_id
        if sid not in subscribers:
            subscribers[sid] = app.get_subscriber(sid)
        subscriber = subscribers[sid]
        if subscriber.is_erased or subscriber.is_restricted:
            continue
        num = app.get_number(ev.number)
        tenure = num.tenure(ev.tenure_id)
        found.append(
            (
                sid,
                IdentityTenure(
                    number=num.number,
                    tenure_open=tenure.is_open,
                    state=str(num.status),
                    activated_at=tenure.activated_at,
                    ended_at=tenure.disconnected_at,
                    channel=tenure.channel,
                    verification_method=_method_at(subscriber, tenure.activated_at),
                ),
            )
        )
    found.sort(key=lambda item: (item[1].activated_at, item[1].number))
    if found:
        reads = list(dict.fromkeys((sid, item.number) for sid, item in found))
        text = f"{IDENTITY_LOOKUP_PREFIX}{purpose}"
        _record(app, actor, "list", lambda uow, ctx: _disclosed(uow, ctx, reads, text))
    return [item for _, item in found]


def _method_at(subscriber: Subscriber, moment: datetime) -> str:
    """The method of the subscriber's latest verification at ``moment`` ("" when none)."""
    method = ""
    for verification in subscriber.verifications:
        if verification.verified_at <= moment:
            method = verification.method
    return method


def _disclosed(uow: UnitOfWork, ctx: Context, reads: list[tuple[UUID, str]], purpose: str) -> list[AccessLog]:
    logs: dict[UUID, AccessLog] = {}
    for sid, number in reads:
        access_log = logs.get(sid) or uow.access_log(sid, ctx)
        logs[sid] = access_log
        access_log.record_read(number, purpose, ctx)
    return list(logs.values())


def _record(
    app: LedgerApplication, actor: str, kind: str, write: Callable[[UnitOfWork, Context], list[AccessLog]]
) -> int:
    """Commit access log events atomically (retried on a concurrent writer); the position of the last."""
    request_id = f"{kind}-{uuid4()}"

    def attempt() -> int:
        ctx = Context(actor=actor, request_id=request_id, occurred_at=app.clock.now())
        logs = write(UnitOfWork(app), ctx)
        position: int = app.commit(list(logs))[-1].notification.id
        app.published(position)
        return position

    return retrying(attempt, "recording the identity question")


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _check_text(violations: list[tuple[str, str]], field: str, value: str | None, max_len: int) -> None:
    if not value:
        return
    if len(value) > max_len:
        violations.append((field, f"is longer than {max_len} characters"))
    elif _CONTROL.search(value):
        violations.append((field, "contains control characters"))


def _parse(violations: list[tuple[str, str]], field: str, value: str, parse: Callable[[str], T]) -> T | None:
    try:
        return parse(value)
    except identifiers.InvalidValue as e:
        violations.append((field, str(e)))
        return None
