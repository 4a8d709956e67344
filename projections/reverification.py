"""Re-verification campaigns (the real-name rectification campaigns): which holders a campaign's rule
finds, its request ids, and its progress by channel and agent. The rule is one pure function, so the job
that runs a campaign (``scripts.reverification``) and the compliance report agree on who is due."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

from projections.views import us

CAMPAIGN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
REQUEST_PREFIX = "reverification:"


@dataclass(frozen=True, slots=True)
class Rule:
    """A campaign's rule: a holder is due when their latest verification is before ``verified_before`` (the
    start of that day, UTC) or by a method not in ``methods`` (either rule, or both; never verified: due)."""

    verified_before: date | None
    methods: frozenset[str] | None

    def reason(self, verified_us: int | None, method: str | None) -> str:
        """Why a holder verified then, so, is due; empty when they are not."""
        if verified_us is None:
            return "never verified"
        if self.verified_before is not None and verified_us < before_us(self.verified_before):
            return f"verified before {self.verified_before.isoformat()}"
        if self.methods is not None and method not in self.methods:
            return f"method {method} not accepted"
        return ""


def before_us(day: date) -> int:
    """The start of a day (UTC) in microseconds since the epoch."""
    return us(datetime(day.year, day.month, day.day, tzinfo=UTC))


def request_id(campaign: str, tenure_id: str) -> str:
    """The request id of a campaign's suspension of one tenure: a re-run sends the same one."""
    return f"{REQUEST_PREFIX}{campaign}:{tenure_id}"


def campaign_of(request: str) -> str:
    """The campaign a suspension's request id names; empty for other requests."""
    if not request.startswith(REQUEST_PREFIX):
        return ""
    return request[len(REQUEST_PREFIX) :].rsplit(":", 1)[0]


class OpenTenure(NamedTuple):
    """An open tenure as the compliance view holds it, with its holder's latest verification."""

    number: str
    tenure_id: str
    subscriber_id: str
    channel: str
    agent_id: str
    activated_us: int
    suspended: bool
    unverified_suspension: str
    unverified_suspended_us: int | None
    verified_us: int | None
    method: str | None


OPEN_TENURES_SQL = (
    "SELECT n.number, t.tenure_id, t.subscriber_id, t.channel, t.agent_id, t.activated_us, t.suspended, "
    "t.unverified_suspension, t.unverified_suspended_us, s.latest_verified_us, s.latest_method "
    "FROM rm_cmp_tenures t JOIN rm_cmp_numbers n ON n.number_id = t.number_id "
    "JOIN rm_cmp_subscribers s ON s.subscriber_id = t.subscriber_id WHERE t.open = 1 ORDER BY n.number"
)
VERIFICATIONS_SQL = "SELECT subscriber_id, verified_us, method FROM rm_cmp_verifications ORDER BY position"


def open_tenures(rows: Iterable[Sequence[Any]]) -> list[OpenTenure]:
    """Rows of ``OPEN_TENURES_SQL`` as values."""
    return [
        OpenTenure(r[0], r[1], r[2], r[3], r[4], int(r[5]), bool(r[6]), r[7] or "", r[8], r[9], r[10]) for r in rows
    ]


def progress(
    campaign: str, rule: Rule, tenures: Sequence[OpenTenure], verifications: Iterable[Sequence[Any]]
) -> dict[tuple[str, str], dict[str, int]]:
    """Per (channel, agent) of the open tenures not suspended for another reason: how many the campaign found
    (the holder was due by the rule at some time during the tenure: by the verification in force at
    activation or a later one), how many of
    those have re-verified since (due no longer), how many the campaign suspended, and how many are still due."""
    history: dict[str, list[tuple[int, str]]] = {}
    for subscriber_id, verified_us, method in verifications:
        history.setdefault(subscriber_id, []).append((int(verified_us), method))
    found: dict[tuple[str, str], dict[str, int]] = {}
    for t in tenures:
        mine = history.get(t.subscriber_id, [])
        in_force = [v for v in mine if v[0] <= t.activated_us][-1:] + [v for v in mine if v[0] > t.activated_us]
        due_once = not in_force or any(rule.reason(v, m) for v, m in in_force)
        suspended = campaign_of(t.unverified_suspension) == campaign
        if not (due_once or suspended) or (t.suspended and not suspended):
            continue  # never due, or barred for another reason (a campaign looks at ACTIVE numbers)
        row = found.setdefault((t.channel, t.agent_id), dict.fromkeys(("found", "re-verified", "suspended", "due"), 0))
        row["found"] += 1
        due_now = bool(rule.reason(t.verified_us, t.method))
        row["re-verified"] += int(not due_now)
        row["suspended"] += int(suspended)
        row["due"] += int(due_now and not t.suspended)
    return dict(sorted(found.items()))


def suspensions_by_campaign(tenures: Sequence[OpenTenure]) -> dict[str, dict[str, int]]:
    """Per campaign named in a suspension's request id: the open tenures it suspended, those still
    suspended, and those whose holder verified again after the suspension."""
    found: dict[str, dict[str, int]] = {}
    for t in tenures:
        name = campaign_of(t.unverified_suspension)
        if not name:
            continue
        row = found.setdefault(name, dict.fromkeys(("suspended", "still suspended", "re-verified since"), 0))
        row["suspended"] += 1
        row["still suspended"] += int(t.suspended)
        since = t.unverified_suspended_us or 0
        row["re-verified since"] += int(t.verified_us is not None and t.verified_us > since)
    return dict(sorted(found.items()))
