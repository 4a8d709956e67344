"""The answers every edge gives, composed once: recycling checks (``check_numbers``) and SIM swap answers
(``sim_swap_answers``), read from the read models in one snapshot and decided by the pure functions of
``projections.recycling`` and ``projections.simswap``; and ``Answers``, what every answer stands on (the
ledger's head beside it, and the refusals of answers the ledger does not support: views rebuilding, beyond
the head, or older than the policy allows; rows that do not authenticate; numbers unknown or ported out).

An edge (the gRPC servicer; the HTTP routes) validates its input, calls ``Answers``, and translates the
result to its wire: it neither reads rows nor decides, so an answer cannot differ by protocol. Every row
is authenticated by ``ReadModels`` before it is decided from (a row that is not answers READ_MODEL_MISMATCH).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, NamedTuple, Protocol, TypeVar
from zoneinfo import ZoneInfo

from ledger.domain import errors
from projections import simswap
from projections.errors import ReadModelBehind, ReadModelMismatch, ReadModelRebuilding
from projections.recycling import Decision, day_bounds, decide
from projections.simswap import SimSwapAnswer
from projections.views import us

if TYPE_CHECKING:
    from ledger.policy import Policy
    from projections.queries import ReadModels

T = TypeVar("T")

_ROW_MISMATCH = (
    "this number's read model row does not authenticate (edited or deleted behind the server's back); it is "
    "answered again once `ledger audit-views --repair` rewrites it"
)


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
    read_models: ReadModels,
    numbers: Sequence[str],
    max_ages_hours: Sequence[int],
    now_us: int,
    canonical: Callable[[int, str], str] | None = None,
) -> SimSwapAnswers:
    """CAMARA SIM Swap: when the SIM of ``numbers[i]`` last changed, and whether within the last
    ``max_ages_hours[i]`` hours before ``now_us`` (hours 1 to 2400: the edge validated them). Numbers are
    looked up as given; ``canonical`` is called for those the view does not hold as given, as in
    ``check_numbers``. Raises ``ReadModelRebuilding`` while the sim_swaps view has no generation that can
    serve."""
    asked = list(numbers)
    position, rows = read_models.sim_swap_rows(asked)
    if canonical is not None:
        again: list[str] = []
        for i, number in enumerate(asked):
            if number not in rows:
                parsed = canonical(i, number)
                if parsed != number:
                    asked[i] = parsed
                    again.append(parsed)
        if again:
            rows.update(read_models.sim_swap_rows(again)[1])
    answers = [simswap.answer(rows.get(n), now_us, h) for n, h in zip(asked, max_ages_hours, strict=True)]
    return SimSwapAnswers(position, asked, answers)


class Standing(Protocol):
    """The ledger's head as the server knows it, and how far an answer lags behind it."""

    head: int

    def refresh_head(self) -> int:
        """Read the ledger's head now; returns it."""
        ...

    def lag_seconds(self, as_of: int) -> float:
        """How long the ledger has held an event an answer at ``as_of`` does not reflect."""
        ...


class Answers:
    """Recycling and SIM swap answers (``check_numbers``, ``sim_swap_answers``), each checked against the
    ledger's head: what the gRPC servicer and the HTTP routes both call."""

    def __init__(
        self, read_models: ReadModels, policy: Policy, standing: Standing, now: Callable[[], datetime]
    ) -> None:
        self.read_models, self.policy, self.standing, self.now = read_models, policy, standing, now
        # Told the status of every recycling answer composed, here and by BatchCheck (the server's metrics).
        self.counted: Callable[[list[str]], None] = _ignore

    def today(self) -> date:
        """Today in the business time zone (what a since date is compared with)."""
        return self.now().astimezone(self.policy.zone).date()

    def check_one(self, number: str, since: date) -> tuple[int, int, Decision]:
        """One number's recycling answer: the head it stands beside, the position it reflects and the
        decision; ReadModelMismatch when a row it stands on does not authenticate (edited or deleted behind
        the server's back)."""
        checks = self.read(lambda: check_numbers(self.read_models, [number], [since], self.policy.zone))
        (decision,) = checks.decisions
        self.counted([decision.status])
        if decision.no_data_reason == "READ_MODEL_MISMATCH":
            raise ReadModelMismatch(_ROW_MISMATCH)
        return self.head_for(checks.as_of_position), checks.as_of_position, decision

    def sim_swaps(self, numbers: Sequence[str], max_ages_hours: Sequence[int]) -> SimSwapAnswers:
        """The SIM swap answers of many numbers now (see ``sim_swap_answers``), standing beside the head."""
        answers = self.read(lambda: sim_swap_answers(self.read_models, numbers, max_ages_hours, us(self.now())))
        self.head_for(answers.as_of_position)
        return answers

    def sim_swap(
        self, number: str, max_age_hours: int = simswap.DEFAULT_AGE_HOURS, min_position: int = 0
    ) -> tuple[int, SimSwapAnswer]:
        """The position and the SIM swap answers of a number this operator serves now; NumberNotFound for a
        number unknown here, NumberPortedOut for one served by another operator, ReadModelMismatch for a row
        that does not authenticate."""
        answers = self.sim_swaps([number], [max_age_hours])
        position, found = answers.as_of_position, answers.answers[0]
        if position < min_position:  # a wait follows the numbers view; this answer is the sim_swaps view's
            raise ReadModelBehind(min_position, position)
        if found.answer == simswap.UNKNOWN_NUMBER:
            raise errors.NumberNotFound(number)
        if found.answer == simswap.READ_MODEL_MISMATCH:
            raise ReadModelMismatch(_ROW_MISMATCH)
        if found.answer == simswap.PORTED_OUT:  # the SIM is the recipient operator's now
            raise errors.NumberPortedOut(f"number {number} was ported out: its SIM is served by another operator")
        return position, found

    def read(self, read: Callable[[], T]) -> T:
        """``read()``, with the ledger's head on a ReadModelRebuilding it raises."""
        try:
            return read()
        except ReadModelRebuilding as e:
            e.head = self.standing.head
            raise

    def head_for(self, as_of: int) -> int:
        """The head an answer at ``as_of`` stands beside; refuses answers the ledger does not support:
        views beyond the ledger's head (a restored ledger), or older than the policy allows."""
        head = self.standing.head
        if as_of > head:
            head = self.standing.refresh_head()
            if as_of > head:
                raise ReadModelMismatch(
                    f"the read models are at position {as_of}, beyond the ledger's head {head} (a restored or "
                    "another ledger); rebuild them with `ledger project --rebuild`"
                )
        limit = self.policy.max_check_lag_seconds
        if limit:
            lag = self.standing.lag_seconds(as_of)
            if lag > limit:
                raise ReadModelBehind(
                    head,
                    as_of,
                    f"the read model is {lag:.1f}s behind the ledger (position {as_of} of {head}; policy "
                    f"max_check_lag_seconds {limit}); retry",
                )
        return head


def _ignore(_statuses: list[str]) -> None:
    """Nobody counts."""
