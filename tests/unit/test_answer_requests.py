"""The recycling and SIM swap requests' fields, as the edge validates them (``validation.Fields``) and as
the one interceptor writes their refusal (``to_status``): a since_date after today and a maxAge outside
1 to 2400 hours are OUT_OF_RANGE, on the field and as the ErrorInfo reason when nothing else is wrong.
One call of each goes over a real server in tests/e2e/test_porting_grpc.py."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from google.rpc import error_details_pb2

from ledger.domain.errors import InvalidArgument
from ledger.server.errors import to_status
from ledger.server.validation import Fields
from ledger.server.wire import SIM_SWAP_ANSWERS
from ledger.v1 import recycling_service_pb2 as rpb
from projections import simswap

TODAY = date(2026, 1, 5)


def refusal(validate) -> InvalidArgument:
    f = Fields()
    validate(f)
    with pytest.raises(InvalidArgument) as caught:
        f.done()
    return caught.value


def on_the_wire(invalid: InvalidArgument) -> tuple[str, dict[str, str]]:
    """(ErrorInfo reason, {field: field violation reason}) of the status the interceptor writes."""
    status = to_status(invalid)
    assert status is not None
    reason, fields = "", {}
    for detail in status.details:
        info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
        if detail.Unpack(info):
            reason = info.reason
        elif detail.Unpack(bad):
            fields = {v.field: v.reason for v in bad.field_violations}
    return reason, fields


@pytest.mark.parametrize("since", ["2026-01-06", (TODAY + timedelta(days=365 * 900)).isoformat(), "9999-12-31"])
def test_a_since_date_after_today_is_out_of_range(since: str) -> None:
    """Moved from tests/e2e/test_porting_grpc.py (test_since_date_after_today_is_out_of_range, each offset)."""
    invalid = refusal(lambda f: f.past_day("since_date", since, TODAY))
    assert invalid.reason == "OUT_OF_RANGE" and [field for field, _ in invalid.violations] == ["since_date"]
    assert on_the_wire(invalid) == ("OUT_OF_RANGE", {"since_date": "OUT_OF_RANGE"})


def test_an_out_of_range_date_beside_another_violation_is_invalid_argument() -> None:
    def validate(f: Fields) -> None:
        f.msisdn("number", "12")
        f.past_day("since_date", "9999-12-31", TODAY)

    invalid = refusal(validate)
    assert on_the_wire(invalid) == ("INVALID_ARGUMENT", {"number": "", "since_date": "OUT_OF_RANGE"})


def test_today_and_earlier_days_are_answered() -> None:
    f = Fields()
    assert f.past_day("since_date", TODAY.isoformat(), TODAY) == TODAY
    assert f.past_day("since_date", date.min.isoformat(), TODAY) == date.min
    f.done()


@pytest.mark.parametrize("hours", [-1, 2401, 2**31 - 1])
def test_a_max_age_outside_1_to_2400_hours_is_out_of_range(hours: int) -> None:
    """Moved from tests/e2e/test_porting_grpc.py (test_sim_swap_refusals, each value)."""
    invalid = refusal(lambda f: f.max_age_hours("max_age_hours", hours))
    assert invalid.violations == [("max_age_hours", "must be 1 to 2400 hours")]
    assert on_the_wire(invalid) == ("OUT_OF_RANGE", {"max_age_hours": "OUT_OF_RANGE"})


def test_max_age_is_240_hours_when_unset_and_its_bounds_are_answered() -> None:
    f = Fields()
    assert [f.max_age_hours("max_age_hours", h) for h in (0, 1, 2400)] == [240, 1, 2400]
    f.done()


def test_a_number_that_is_none_is_named() -> None:
    """Moved from tests/e2e/test_porting_grpc.py (test_sim_swap_refusals: GetSimSwap of "12")."""
    invalid = refusal(lambda f: f.msisdn("number", "12"))
    assert invalid.reason == "INVALID_ARGUMENT" and [field for field, _ in invalid.violations] == ["number"]


def test_each_sim_swap_answer_has_its_own_value_on_the_wire() -> None:
    """Moved from tests/e2e/test_porting_grpc.py (test_batch_check_sim_swap_answers_each_number_in_order): what
    BatchCheckSimSwap writes for each answer its composition gives (tests/integration/test_answers.py)."""
    assert SIM_SWAP_ANSWERS == {
        simswap.ANSWERED: rpb.SIM_SWAP_ANSWER_ANSWERED,
        simswap.UNKNOWN_NUMBER: rpb.SIM_SWAP_ANSWER_UNKNOWN_NUMBER,
        simswap.PORTED_OUT: rpb.SIM_SWAP_ANSWER_PORTED_OUT,
        simswap.READ_MODEL_MISMATCH: rpb.SIM_SWAP_ANSWER_READ_MODEL_MISMATCH,
    }
    assert len(set(SIM_SWAP_ANSWERS.values())) == len(rpb.SimSwapAnswer.values()) - 1  # all but UNSPECIFIED
