"""CAMARA Number Recycling decisions over tenures, including the business time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from ledger.domain.base import Clearance
from projections.queries import CheckAnswer, NumberRow, TenureRow, day_bounds, decide
from projections.views import us

UTC_ZONE = ZoneInfo("UTC")
SHANGHAI = ZoneInfo("Asia/Shanghai")


def tenure(start: str, end: str | None = None, outstanding: tuple[str, ...] = (), violation: bool = False) -> TenureRow:
    return TenureRow(
        tenure_id="t" + start,
        subscriber_id="s" + start,
        activated_us=us(datetime.fromisoformat(start)),
        disconnected_us=us(datetime.fromisoformat(end)) if end else None,
        quarantine_until_us=None,
        required_holders=["crm"],
        outstanding_holders=list(outstanding),
        confirmations=[],
        released_us=None,
        override_reason="",
        violation=violation,
    )


def row(*tenures: TenureRow, provisioned: str = "2025-01-01T00:00:00+00:00") -> NumberRow:
    return NumberRow("+8613800000001", "ACTIVE", us(datetime.fromisoformat(provisioned)), list(tenures))


HISTORY = row(
    tenure("2025-02-01T10:00:00+00:00", "2025-06-01T10:00:00+00:00", outstanding=("crm",)),
    tenure("2025-09-01T10:00:00+00:00"),
)


def answer(r: NumberRow | None, since: date, zone: ZoneInfo = UTC_ZONE, position: int = 9) -> CheckAnswer:
    row = None if r is None else r.check_row()
    return CheckAnswer("+8613800000001", *decide(row, day_bounds(since, zone)), position)


def status(r: NumberRow | None, since: str, zone: ZoneInfo = UTC_ZONE) -> str:
    return answer(r, date.fromisoformat(since), zone).status


def test_contract_date_and_later_are_not_changed() -> None:
    assert status(HISTORY, "2025-09-01") == "NOT_CHANGED"
    assert status(HISTORY, "2025-12-31") == "NOT_CHANGED"


def test_gap_and_earlier_tenure_are_changed() -> None:
    assert status(HISTORY, "2025-07-15") == "CHANGED"
    assert status(HISTORY, "2025-03-01") == "CHANGED"
    assert status(HISTORY, "2025-06-01") == "CHANGED"  # the day the first tenure ended


def test_no_data_before_records_or_for_unknown_numbers() -> None:
    assert status(HISTORY, "2024-12-31") == "NO_DATA"
    assert status(None, "2025-03-01") == "NO_DATA"


def test_never_held_number_is_changed_gap() -> None:
    assert status(row(), "2025-03-01") == "CHANGED"


def test_disconnected_number_is_changed_even_without_a_new_holder() -> None:
    r = row(tenure("2025-02-01T10:00:00+00:00", "2025-06-01T10:00:00+00:00"))
    assert status(r, "2025-05-01") == "CHANGED"
    assert status(r, "2025-07-01") == "CHANGED"  # in the gap after the tenure


def test_clearance_of_tenures_closed_since_the_date() -> None:
    found = answer(HISTORY, date(2025, 3, 1))
    assert found.clearance == Clearance.PENDING and found.outstanding_holders == ("crm",)
    assert found.last_disconnected_at == datetime(2025, 6, 1, 10, tzinfo=UTC)
    assert found.phone_number_changed and found.as_of_position == 9
    assert answer(HISTORY, date(2025, 9, 1)).clearance == Clearance.NOT_APPLICABLE
    worst = row(
        tenure("2025-02-01T10:00:00+00:00", "2025-03-01T10:00:00+00:00", violation=True),
        tenure("2025-04-01T10:00:00+00:00", "2025-05-01T10:00:00+00:00", outstanding=("crm",)),
    )
    assert answer(worst, date(2025, 1, 1)).clearance == Clearance.VIOLATION


def test_dates_are_read_in_the_business_time_zone() -> None:
    # Activated 2025-09-01 20:00 UTC, which is 2025-09-02 04:00 in Shanghai.
    r = row(tenure("2025-09-01T20:00:00+00:00"))
    assert status(r, "2025-09-01", UTC_ZONE) == "NOT_CHANGED"
    assert status(r, "2025-09-01", SHANGHAI) == "CHANGED"
    assert status(r, "2025-09-02", SHANGHAI) == "NOT_CHANGED"
