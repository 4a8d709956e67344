"""CAMARA Number Recycling decisions over tenures, including the business time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from ledger.domain.rules import Clearance
from projections.recycling import UNTRUSTED, Decision, NumberRow, TenureRow, day_bounds, decide, twice_code
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


def answer(r: NumberRow | None, since: date, zone: ZoneInfo = UTC_ZONE) -> Decision:
    row = None if r is None else r.check_row()
    return decide(row, day_bounds(since, zone))


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
    assert status(row(tenure("2025-02-01T10:00:00+00:00")), "2024-12-31") == "NO_DATA"
    assert answer(row(tenure("2025-02-01T10:00:00+00:00")), date(2024, 12, 31)).no_data_reason == "RECORDS_BEGIN_LATER"
    assert answer(None, date(2025, 3, 1)).no_data_reason == "UNKNOWN_NUMBER"
    assert answer(HISTORY, date(2025, 3, 1)).no_data_reason == ""


def test_row6_a_disconnection_on_record_after_the_date_is_changed_even_before_the_records() -> None:
    # Issue 18: provisioned 2023-03-01, disconnected 2024-05-10, a new holder from 2024-08-01.
    r = row(
        tenure("2023-03-01T09:00:00+00:00", "2024-05-10T09:00:00+00:00"),
        tenure("2024-08-01T09:00:00+00:00"),
        provisioned="2023-03-01T08:00:00+00:00",
    )
    found = answer(r, date(2023, 1, 1))
    assert found.status == "CHANGED" and found.last_disconnected_at == datetime(2024, 5, 10, 9, tzinfo=UTC)
    assert found.clearance == Clearance.CLEARED
    assert status(HISTORY, "2024-12-31") == "CHANGED"  # HISTORY's first tenure ended 2025-06-01


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
    assert found.phone_number_changed
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


# -- porting (docs/api.md "Porting": each row of its table is a test here and end to end) -----------------


def ported(start: str, end: str, returned: str | None = None) -> TenureRow:
    t = tenure(start, end, outstanding=("crm",))
    rd = us(datetime.fromisoformat(returned)) if returned else None
    return TenureRow(**{**vars(t), "ported_to": "other-mno", "recipient_disconnected_us": rd})


def numbered(status_: str, *tenures: TenureRow, provisioned: str = "2023-01-01T00:00:00+00:00") -> NumberRow:
    return NumberRow("+8613800000001", status_, us(datetime.fromisoformat(provisioned)), list(tenures))


PORTED = numbered("PORTED_OUT", ported("2023-01-10T09:00:00+00:00", "2024-05-01T09:00:00+00:00"))


def test_row1_a_ported_out_number_is_no_data_with_the_port_time_not_a_change() -> None:
    found = answer(PORTED, date(2023, 6, 1))
    assert (found.status, found.no_data_reason) == ("NO_DATA", "PORTED_OUT")
    assert found.ported_out_us == us(datetime(2024, 5, 1, 9, tzinfo=UTC))
    assert found.last_disconnected_at is None  # the port is no disconnection
    assert answer(PORTED, date(2024, 6, 1)).no_data_reason == "PORTED_OUT"  # a date after the port too


def test_row2_a_disconnection_while_served_here_is_still_changed_after_a_port_out() -> None:
    r = numbered(
        "PORTED_OUT",
        tenure("2023-01-10T09:00:00+00:00", "2023-03-01T09:00:00+00:00"),
        ported("2023-06-01T09:00:00+00:00", "2024-05-01T09:00:00+00:00"),
    )
    found = answer(r, date(2023, 2, 1))
    assert found.status == "CHANGED" and found.last_disconnected_at == datetime(2023, 3, 1, 9, tzinfo=UTC)
    assert found.ported_out_us is not None and found.no_data_reason == ""
    assert answer(r, date(2023, 7, 1)).status == "NO_DATA"  # nothing on record after that date says so


def test_row3_a_returned_number_changed_at_the_recipients_disconnection() -> None:
    r = numbered(
        "QUARANTINED", ported("2023-01-10T09:00:00+00:00", "2024-05-01T09:00:00+00:00", "2024-09-01T00:00:00+00:00")
    )
    found = answer(r, date(2023, 6, 1))
    assert found.status == "CHANGED" and found.last_disconnected_at == datetime(2024, 9, 1, tzinfo=UTC)
    assert found.ported_out_us is None
    assert found.clearance == Clearance.PENDING  # the ported tenure's clearance, opened at the port-out
    assert status(r, "2024-10-01") == "CHANGED"  # after the return nobody holds it: a gap


def test_row4_a_ported_in_number_has_no_data_before_the_port_in() -> None:
    r = numbered("ACTIVE", tenure("2024-03-01T10:00:00+00:00"), provisioned="2024-03-01T09:00:00+00:00")
    assert status(r, "2024-03-01") == "NOT_CHANGED"
    assert answer(r, date(2024, 2, 1)).no_data_reason == "RECORDS_BEGIN_LATER"


def test_row5_a_number_ported_back_in_starts_its_records_again() -> None:
    r = numbered(
        "ACTIVE",
        ported("2023-01-10T09:00:00+00:00", "2024-05-01T09:00:00+00:00"),
        tenure("2024-07-01T10:00:00+00:00"),
        provisioned="2024-07-01T09:00:00+00:00",
    )
    assert status(r, "2024-07-01") == "NOT_CHANGED"
    assert answer(r, date(2023, 6, 1)).no_data_reason == "RECORDS_BEGIN_LATER"  # held elsewhere meanwhile


def test_the_last_and_first_dates_a_date_can_name_have_bounds() -> None:
    for zone in (UTC_ZONE, SHANGHAI, ZoneInfo("Pacific/Kiritimati"), ZoneInfo("Etc/GMT+12")):
        start, end = day_bounds(date.max, zone)
        assert end - start == 86_400_000_000
        first = day_bounds(date.min, zone)
        assert first[1] - first[0] == 86_400_000_000
        assert decide(HISTORY.check_row(), (start, end))[0] == "NOT_CHANGED"  # still held by the second holder


# -- held_now and the recycled-number dialect ("twice"), for every row of the tables above -----------------

SUSPENDED = numbered("SUSPENDED", tenure("2024-03-01T10:00:00+00:00"))
RETURNED = numbered(
    "QUARANTINED", ported("2023-01-10T09:00:00+00:00", "2024-05-01T09:00:00+00:00", "2024-09-01T00:00:00+00:00")
)
CASES = [
    # (the case, the number's row, the date asked, status, held now, twice code)
    ("held since the contract date", HISTORY, "2025-09-01", "NOT_CHANGED", True, 2),
    ("a new holder since the date", HISTORY, "2025-03-01", "CHANGED", True, 1),
    ("a gap on the date, held now", HISTORY, "2025-07-15", "CHANGED", True, 1),
    ("never held", row(), "2025-03-01", "CHANGED", False, 3),
    ("disconnected, nobody since", row(tenure("2025-02-01T10:00:00+00:00", "2025-06-01T10:00:00+00:00")), "2025-05-01",
     "CHANGED", False, 3),
    ("records begin later", row(tenure("2025-02-01T10:00:00+00:00")), "2024-12-31", "NO_DATA", True, 0),
    ("unknown number", None, "2025-03-01", "NO_DATA", False, 0),
    ("suspended: still held", SUSPENDED, "2024-06-01", "NOT_CHANGED", True, 2),
    ("row 1: ported out", PORTED, "2023-06-01", "NO_DATA", False, 0),
    ("row 2: disconnected, then ported out", numbered(
        "PORTED_OUT",
        tenure("2023-01-10T09:00:00+00:00", "2023-03-01T09:00:00+00:00"),
        ported("2023-06-01T09:00:00+00:00", "2024-05-01T09:00:00+00:00"),
    ), "2023-02-01", "CHANGED", False, 3),
    ("row 3: returned by the recipient", RETURNED, "2023-06-01", "CHANGED", False, 3),
    ("row 4: ported in", numbered(
        "ACTIVE", tenure("2024-03-01T10:00:00+00:00"), provisioned="2024-03-01T09:00:00+00:00"
    ), "2024-03-01", "NOT_CHANGED", True, 2),
    ("row 5: ported back in, before", numbered(
        "ACTIVE",
        ported("2023-01-10T09:00:00+00:00", "2024-05-01T09:00:00+00:00"),
        tenure("2024-07-01T10:00:00+00:00"),
        provisioned="2024-07-01T09:00:00+00:00",
    ), "2023-06-01", "NO_DATA", True, 0),
    ("row 6: disconnected after the date, held again", row(
        tenure("2023-03-01T09:00:00+00:00", "2024-05-10T09:00:00+00:00"),
        tenure("2024-08-01T09:00:00+00:00"),
        provisioned="2023-03-01T08:00:00+00:00",
    ), "2023-01-01", "CHANGED", True, 1),
]  # fmt: skip


def test_held_now_and_the_twice_code_of_every_case() -> None:
    for case, number_row, since, expected_status, held, code in CASES:
        found = answer(number_row, date.fromisoformat(since))
        assert (found.status, found.held_now, twice_code(found.status, found.held_now)) == (
            expected_status,
            held,
            code,
        ), case


def test_an_untrusted_row_is_not_held_and_cannot_tell() -> None:
    found = decide(UNTRUSTED, day_bounds(date(2025, 1, 1), UTC_ZONE))
    assert (found.held_now, twice_code(found.status, found.held_now)) == (False, 0)
