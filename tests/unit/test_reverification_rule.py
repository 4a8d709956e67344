"""The re-verification rule and a campaign's progress, as pure functions of the compliance view's rows."""

from __future__ import annotations

from datetime import UTC, date, datetime

from projections.reverification import OpenTenure, Rule, campaign_of, progress, request_id, suspensions_by_campaign
from projections.views import us

JAN, MAR = us(datetime(2026, 1, 5, tzinfo=UTC)), us(datetime(2026, 3, 5, tzinfo=UTC))
BEFORE_FEB = Rule(date(2026, 2, 1), None)


def tenure(sid: str, verified: int | None, method: str | None = "ID_CARD_READER", **kw: object) -> OpenTenure:
    fields = {
        "number": "+8613800000001",
        "tenure_id": f"t{sid}",
        "subscriber_id": sid,
        "channel": "retail",
        "agent_id": "a1",
        "activated_us": JAN,
        "suspended": False,
        "unverified_suspension": "",
        "unverified_suspended_us": None,
        "verified_us": verified,
        "method": method,
    }
    fields.update(kw)
    return OpenTenure(**fields)  # type: ignore[arg-type]


def test_either_rule_or_both_finds_a_holder() -> None:
    assert BEFORE_FEB.reason(JAN, "ID_CARD_READER") == "verified before 2026-02-01"
    assert BEFORE_FEB.reason(MAR, "ID_CARD_READER") == ""
    assert BEFORE_FEB.reason(None, None) == "never verified"
    methods = Rule(None, frozenset({"PASSPORT_CHECK"}))
    assert methods.reason(MAR, "ID_CARD_READER") == "method ID_CARD_READER not accepted"
    assert methods.reason(JAN, "PASSPORT_CHECK") == ""
    both = Rule(date(2026, 2, 1), frozenset({"PASSPORT_CHECK"}))
    assert (
        both.reason(JAN, "PASSPORT_CHECK")
        and both.reason(MAR, "ID_CARD_READER")
        and not both.reason(MAR, "PASSPORT_CHECK")
    )


def test_request_ids_name_the_campaign_and_the_tenure() -> None:
    rid = request_id("spring.thunder-2", "ab" * 16)
    assert rid == "reverification:spring.thunder-2:" + "ab" * 16 and len(rid) <= 128
    assert campaign_of(rid) == "spring.thunder-2" and campaign_of("susp-1") == ""


def test_progress_counts_found_reverified_suspended_and_due() -> None:
    suspended = request_id("c", "t3")
    tenures = [
        tenure("1", JAN),  # still due
        tenure("2", MAR),  # re-verified
        tenure("3", JAN, suspended=True, unverified_suspension=suspended, unverified_suspended_us=MAR),
        tenure("4", JAN, suspended=True),  # barred for another reason: not the campaign's
        tenure("5", MAR, activated_us=MAR + 1),  # verified after February before it began: never due
    ]
    history = [("1", JAN, "ID_CARD_READER"), ("2", JAN, "ID_CARD_READER"), ("2", MAR, "PASSPORT_CHECK")]
    history += [("3", JAN, "ID_CARD_READER"), ("4", JAN, "ID_CARD_READER"), ("5", MAR, "PASSPORT_CHECK")]
    assert progress("c", BEFORE_FEB, tenures, history) == {
        ("retail", "a1"): {"found": 3, "re-verified": 1, "suspended": 1, "due": 1}
    }
    assert suspensions_by_campaign(tenures) == {"c": {"suspended": 1, "still suspended": 1, "re-verified since": 0}}
