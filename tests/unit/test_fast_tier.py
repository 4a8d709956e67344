"""The fast tier (``./dev test --fast``, this folder) covers every command's rules and every answer's decision,
so a developer changing a rule learns in seconds what broke: each refusal a command can give is raised in a
unit test by name, and each outcome a recycling check can give is decided in a unit test."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from ledger.domain import errors

HERE = Path(__file__).resolve().parent


def unit_sources() -> str:
    return "\n".join(p.read_text() for p in sorted(HERE.glob("test_*.py")) if p.name != Path(__file__).name)


def refusals() -> list[type[errors.LedgerError]]:
    """Every rule violation and not-found a command can answer with (the domain's own refusals)."""
    bases = (errors.RuleViolation, errors.NotFound)
    return [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if cls.__module__ == errors.__name__ and issubclass(cls, bases) and cls not in bases
    ]


def test_every_refusal_of_a_command_is_raised_in_the_fast_tier() -> None:
    text = unit_sources()
    missing = [cls.__name__ for cls in refusals() if not re.search(rf"\berrors\.{cls.__name__}\b", text)]
    assert refusals(), "no refusals found: the errors module moved?"
    assert missing == []


def test_every_check_outcome_is_decided_in_the_fast_tier() -> None:
    text = unit_sources()
    for outcome in ("NOT_CHANGED", "CHANGED", "NO_DATA", "UNKNOWN_NUMBER", "RECORDS_BEGIN_LATER", "PORTED_OUT"):
        assert re.search(rf"[\"']{outcome}[\"']", text), outcome
    for clearance in ("CLEARED", "PENDING", "VIOLATION", "NOT_APPLICABLE"):
        assert re.search(rf"Clearance\.{clearance}\b|[\"']{clearance}[\"']", text), clearance
