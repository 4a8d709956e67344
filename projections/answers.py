"""The answers every edge gives, composed once: recycling checks (``check_numbers``) and SIM swap answers
(``sim_swap_answers``), read from the read models in one snapshot and decided by the pure functions of
``projections.recycling`` and ``projections.simswap``.

An edge (the gRPC servicer; the HTTP routes) validates its input, calls one of these, and translates the
result to its wire: it neither reads rows nor decides. Every row is authenticated by ``ReadModels``
before it is decided from (a row that is not answers READ_MODEL_MISMATCH).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from typing import TYPE_CHECKING, NamedTuple
from zoneinfo import ZoneInfo

from projections import simswap
from projections.recycling import Decision, day_bounds, decide
from projections.simswap import SimSwapAnswer

if TYPE_CHECKING:
    from projections.queries import ReadModels


class Checks(NamedTuple):
    """Recycling checks answered: the ledger position they reflect and, in the order asked, each number
    (as looked up: canonical) and its decision."""

    as_of_position: int
    numbers: list[str]
    decisions: list[Decision]


class SimSwapAnswers(NamedTuple):
    """SIM swap questions answered: the position of the sim_swaps view they reflect and, in the order asked,
    each number and its answers."""

    as_of_position: int
    numbers: list[str]
    answers: list[SimSwapAnswer]


def check_numbers(
    read_models: ReadModels,
    numbers: Sequence[str],
    dates: Sequence[date],
    zone: ZoneInfo,
    canonical: Callable[[int, str], str] | None = None,
) -> Checks:
    """CAMARA Number Recycling: did ``numbers[i]`` change hands since ``dates[i]`` (a day in ``zone``, the
    ledger's business time zone; not after today there: the edge refuses such a date).

    Numbers are looked up as given. ``canonical(i, number)`` is called for each number the views do not
    hold as given (numbers the ledger holds were validated when provisioned, so only the others cost a
    parse): it returns the number's canonical E.164 form (an edge validates there, recording a violation
    for a number that is none) and a number whose form differs is looked up again. Without it, numbers
    are taken as given (an edge that validated them already). Raises ``ReadModelRebuilding`` while the
    numbers view has no generation that can serve."""
    asked = list(numbers)
    position, rows = read_models.check_rows(asked)
    if canonical is not None:
        again: list[int] = []
        for i, row in enumerate(rows):
            if row is None:
                parsed = canonical(i, asked[i])
                if parsed != asked[i]:
                    asked[i] = parsed
                    again.append(i)
        if again:
            _, more = read_models.check_rows([asked[i] for i in again])
            for i, row in zip(again, more, strict=True):
                rows[i] = row
    if len(rows) != len(dates):
        raise ValueError(f"{len(rows)} numbers and {len(dates)} dates")
    if dates and dates.count(dates[0]) == len(dates):  # the common batch: one date for every number
        one = day_bounds(dates[0], zone)
        return Checks(position, asked, [decide(row, one) for row in rows])
    bounds: dict[date, tuple[int, int]] = {}
    decisions: list[Decision] = []
    for day, row in zip(dates, rows, strict=True):
        day_bound = bounds.get(day)
        if day_bound is None:
            day_bound = bounds[day] = day_bounds(day, zone)
        decisions.append(decide(row, day_bound))
    return Checks(position, asked, decisions)


def sim_swap_answers(
    read_models: ReadModels, numbers: Sequence[str], max_ages_hours: Sequence[int], now_us: int
) -> SimSwapAnswers:
    """CAMARA SIM Swap: when the SIM of ``numbers[i]`` last changed, and whether within the last
    ``max_ages_hours[i]`` hours before ``now_us`` (numbers canonical, hours 1 to 2400: the edge validated
    them). Raises ``ReadModelRebuilding`` while the sim_swaps view has no generation that can serve."""
    position, rows = read_models.sim_swap_rows(numbers)
    answers = [simswap.answer(rows.get(n), now_us, h) for n, h in zip(numbers, max_ages_hours, strict=True)]
    return SimSwapAnswers(position, list(numbers), answers)
