"""CAMARA SIM Swap answers over the sim_swaps view's row: a new subscription's SIM activation counts as a
SIM change (SIM Swap v2), nothing before the records is counted, and maxAge is in hours."""

from __future__ import annotations

from projections.simswap import HOUR_US, SimSwapRow, latest_sim_change, swapped_within

T0 = 1_760_000_000_000_000  # the records begin


def test_no_sim_change_on_record_for_a_number_never_activated() -> None:
    row = SimSwapRow(T0, None, None, None)
    assert latest_sim_change(row) is None
    assert not swapped_within(row, T0 + HOUR_US, 240)


def test_the_first_sims_activation_counts_as_a_sim_change() -> None:
    row = SimSwapRow(T0, T0 + 5 * HOUR_US, None, None)
    assert latest_sim_change(row) == T0 + 5 * HOUR_US
    assert swapped_within(row, T0 + 6 * HOUR_US, 1)
    assert not swapped_within(row, T0 + 7 * HOUR_US, 1)


def test_the_latest_of_a_swap_and_an_activation_wins() -> None:
    assert latest_sim_change(SimSwapRow(T0, T0 + 1, None, T0 + 9)) == T0 + 9
    assert latest_sim_change(SimSwapRow(T0, T0 + 9, None, T0 + 1)) == T0 + 9


def test_changes_before_the_records_began_again_are_not_counted() -> None:
    # A number ported back in: the swap from before it left is not a change within these records.
    row = SimSwapRow(T0, None, None, T0 - HOUR_US)
    assert latest_sim_change(row) is None


def test_max_age_boundary_is_inclusive() -> None:
    row = SimSwapRow(T0, None, None, T0 + 10 * HOUR_US)
    assert swapped_within(row, T0 + 34 * HOUR_US, 24)
    assert not swapped_within(row, T0 + 34 * HOUR_US + 1, 24)
