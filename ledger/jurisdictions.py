"""Policy per country calling code: quarantine and per-identity cap for the numbers of a jurisdiction, checked
against the legal minimum quarantine where a rule sets one."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# The shortest quarantine (aging) a country's rules allow, by calling code, and the rule that says so. Only
# minimums whose text was read are listed. The US: FCC 18-177 (Second Report and Order, CG Docket 17-59,
# 84 FR 11226, 26 March 2019) "sets a minimum aging period of 45 days before a permanently disconnected
# number may be reassigned", codified in 47 CFR 52.15(f)(1)(ii). India has none here: the 90 days often
# quoted are TRAI's minimum non-usage before a prepaid connection may be deactivated (Telecom Consumers
# Protection (Sixth Amendment) Regulations 2013), not an aging period after disconnection.
LEGAL_MINIMUM_QUARANTINE: dict[str, tuple[int, str]] = {
    "+1": (45, "US FCC 47 CFR 52.15(f)(1)(ii): disconnected numbers are aged at least 45 days"),
}
# Channels where a person acts for the operator, so an agent_id is required (self-service has none).
DEFAULT_AGENT_CHANNELS = ("retail", "retail_store", "shop", "dealer", "call_center", "agent")
_CALLING_CODE = re.compile(r"^\+[1-9][0-9]{0,3}$")
_JURISDICTION_KEYS = ("quarantine_days", "max_numbers_per_identity")


@dataclass(frozen=True)
class Jurisdiction:
    """Policy values for the numbers of one country calling code (those not given fall back to the policy's)."""

    calling_code: str
    quarantine_days: int | None = None
    max_numbers_per_identity: int | None = None


def parse_jurisdictions(value: Any) -> tuple[Jurisdiction, ...]:
    """The policy file's ``jurisdictions`` tables as values (ValueError names what is wrong)."""
    if not isinstance(value, dict):
        raise ValueError('jurisdictions must be a table: [jurisdictions."+1"] quarantine_days = 45')
    found = []
    for code, table in value.items():
        if not isinstance(table, dict):
            raise ValueError(f"jurisdictions.{code!r} must be a table")
        unknown = sorted(set(table) - set(_JURISDICTION_KEYS))
        if unknown:
            raise ValueError(f"unknown keys in jurisdictions.{code!r}: {', '.join(unknown)}")
        for key, v in table.items():
            if not isinstance(v, int) or isinstance(v, bool):
                raise ValueError(f"jurisdictions.{code!r}.{key} must be an integer")
        found.append(Jurisdiction(code, **table))
    return tuple(found)


def check_jurisdiction(j: Jurisdiction) -> None:
    """Refuse values out of range, and a quarantine under the jurisdiction's legal minimum, naming the rule."""
    if not _CALLING_CODE.match(j.calling_code):
        raise ValueError(f'jurisdiction {j.calling_code!r} is not a country calling code such as "+1"')
    if j.quarantine_days is not None:
        if not 0 <= j.quarantine_days <= 3650:
            raise ValueError(f"jurisdictions.{j.calling_code!r}.quarantine_days must be between 0 and 3650")
        minimum = LEGAL_MINIMUM_QUARANTINE.get(j.calling_code)
        if minimum is not None and j.quarantine_days < minimum[0]:
            raise ValueError(
                f"jurisdictions.{j.calling_code!r}.quarantine_days {j.quarantine_days} is under the legal "
                f"minimum of {minimum[0]} days ({minimum[1]})"
            )
    if j.max_numbers_per_identity is not None and not 1 <= j.max_numbers_per_identity <= 1000:
        raise ValueError(f"jurisdictions.{j.calling_code!r}.max_numbers_per_identity must be between 1 and 1000")


def check_jurisdictions(jurisdictions: tuple[Jurisdiction, ...], quarantine_days: int) -> None:
    """``check_jurisdiction`` for each, no calling code twice, and the policy's own ``quarantine_days`` not
    under the legal minimum of a jurisdiction that takes it (one that sets no quarantine of its own)."""
    for j in jurisdictions:
        check_jurisdiction(j)
        minimum = LEGAL_MINIMUM_QUARANTINE.get(j.calling_code)
        if j.quarantine_days is None and minimum is not None and quarantine_days < minimum[0]:
            raise ValueError(
                f"quarantine_days {quarantine_days}, which jurisdictions.{j.calling_code!r} takes, is under the "
                f"legal minimum of {minimum[0]} days ({minimum[1]}); set jurisdictions.{j.calling_code!r}."
                "quarantine_days or raise quarantine_days"
            )
    if len({j.calling_code for j in jurisdictions}) != len(jurisdictions):
        raise ValueError("jurisdictions has duplicate calling codes")


def value_for(jurisdictions: tuple[Jurisdiction, ...], number: str, key: str, default: int) -> int:
    """The value of ``key`` for the jurisdiction whose calling code begins the number (the longest such),
    else ``default``."""
    found = [j for j in jurisdictions if number.startswith(j.calling_code)]
    chosen = max(found, key=lambda j: len(j.calling_code), default=None)
    value = None if chosen is None else getattr(chosen, key)
    return default if value is None else int(value)
