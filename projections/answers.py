"""What a recycling or SIM swap check answers, composed once for every protocol: the read models' answer,
the ledger head it stands beside, and the refusals of answers the ledger does not support (views
rebuilding, beyond the head, or older than the policy allows). The gRPC servicers and the HTTP routes
call these functions, so an answer cannot differ by protocol."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Protocol, TypeVar

from ledger.domain import errors
from projections import simswap
from projections.errors import ReadModelBehind, ReadModelMismatch, ReadModelRebuilding

if TYPE_CHECKING:
    from ledger.policy import Policy
    from projections.queries import ReadModels
    from projections.recycling import CheckAnswer

T = TypeVar("T")

_ROW_MISMATCH = (
    "this number's read model row does not authenticate (edited or deleted behind the server's back); it is "
    "answered again once `ledger audit-views --repair` rewrites it"
)


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
    """Recycling and SIM swap answers from the read models, each checked against the ledger's head."""

    def __init__(
        self, read_models: ReadModels, policy: Policy, standing: Standing, now: Callable[[], datetime]
    ) -> None:
        self.read_models, self.policy, self.standing, self.now = read_models, policy, standing, now
        # Told the status of every recycling answer composed, here and by BatchCheck (the server's metrics).
        self.counted: Callable[[list[str]], None] = _ignore

    def today(self) -> date:
        """Today in the business time zone (what a since date is compared with)."""
        return self.now().astimezone(self.policy.zone).date()

    def check(self, queries: Sequence[tuple[str, date]]) -> tuple[int, list[CheckAnswer]]:
        """The ledger head the answers stand beside, and one recycling answer per (number, date) asked."""
        answers = self.read(lambda: self.read_models.check(queries, self.policy.zone))
        self.counted([a.status for a in answers])
        return (self.head_for(answers[0].as_of_position) if answers else self.standing.head), answers

    def check_one(self, number: str, since: date) -> tuple[int, CheckAnswer]:
        """One number's recycling answer and the head it stands beside; ReadModelMismatch when a row it
        stands on does not authenticate (edited or deleted behind the server's back)."""
        head, (answer,) = self.check([(number, since)])
        if answer.no_data_reason == "READ_MODEL_MISMATCH":
            raise ReadModelMismatch(_ROW_MISMATCH)
        return head, answer

    def sim_swap(self, number: str, min_position: int = 0) -> tuple[int, simswap.SimSwapRow]:
        """The position and the sim_swaps row of a number this operator serves now; NumberNotFound for a
        number unknown here, NumberPortedOut for one served by another operator."""
        position, row = self.read(lambda: self.read_models.sim_swap_row(number))
        self.head_for(position)
        if position < min_position:  # a wait follows the numbers view; this answer is the sim_swaps view's
            raise ReadModelBehind(min_position, position)
        if row is None:
            raise errors.NumberNotFound(number)
        if row is simswap.UNTRUSTED:
            raise ReadModelMismatch(_ROW_MISMATCH)
        if row.ported_out_us is not None:  # the SIM is the recipient operator's now
            raise errors.NumberPortedOut(f"number {number} was ported out: its SIM is served by another operator")
        return position, row

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
