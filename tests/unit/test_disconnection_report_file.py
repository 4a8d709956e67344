"""A disconnection report's file: dates in the policy's time zone, months bounded there, rows by number."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from ledger.v1 import history_service_pb2 as hpb
from scripts.disconnections.report import Drawn, month_bounds, render

SHANGHAI = ZoneInfo("Asia/Shanghai")


def disconnection(number: str, at: datetime, position: int) -> hpb.Disconnection:
    d = hpb.Disconnection(number=number, position=position)
    d.occurred_at.FromDatetime(at)
    return d


def test_dates_and_months_are_those_of_the_policys_time_zone() -> None:
    start, following = month_bounds("2026-01", SHANGHAI)
    assert start == datetime(2026, 1, 1, tzinfo=SHANGHAI)
    assert following.astimezone(UTC) == datetime(2026, 1, 31, 16, 0, tzinfo=UTC)
    assert month_bounds("2026-12", SHANGHAI)[1] == datetime(2027, 1, 1, tzinfo=SHANGHAI)
    late = datetime(2026, 1, 31, 15, 59, tzinfo=UTC)  # 23:59 in Shanghai: still January there
    drawn = Drawn(rows={"+8613900000002": disconnection("+8613900000002", late, 9)})
    drawn.rows["+8613900000001"] = disconnection("+8613900000001", datetime(2026, 1, 2, tzinfo=UTC), 3)
    assert render(drawn, SHANGHAI).decode().splitlines() == [
        "number,disconnection_date",
        "+8613900000001,2026-01-02",
        "+8613900000002,2026-01-31",
    ]
    past_midnight = datetime(2026, 1, 31, 16, 30, tzinfo=UTC)  # 00:30 on 1 February in Shanghai
    drawn.rows["+8613900000003"] = disconnection("+8613900000003", past_midnight, 12)
    assert render(drawn, SHANGHAI).decode().splitlines()[3] == "+8613900000003,2026-02-01"
    assert render(drawn, UTC).decode().splitlines()[3] == "+8613900000003,2026-01-31"
    assert render(Drawn(), UTC) == b"number,disconnection_date\n"
