"""The CAMARA SIM Swap answers, pure functions of a number's row in the ``sim_swaps`` view and a moment.
Tested without a database; servicers call them, never re-implement them.

A SIM change is a SIM swap or the activation of a SIM for a new subscription. The SIM Swap API v2 (as in
CAMARA release r3.3) counts a new subscription as a SIM swap (the number, perhaps used by someone else
before, is paired with a SIM it was not paired with) and its retrieve-date answer falls back to the SIM's
activation when no swap happened; the early v0 definitions spoke of swaps only. The ledger follows v2."""

from __future__ import annotations

from typing import NamedTuple

# CAMARA SIM Swap check: maxAge in hours, 1 to 2400, 240 when not given.
MIN_AGE_HOURS, MAX_AGE_HOURS, DEFAULT_AGE_HOURS = 1, 2400, 240
HOUR_US = 3_600_000_000


class SimSwapRow(NamedTuple):
    """What the ``sim_swaps`` view holds of one number."""

    monitored_since_us: int
    activated_us: int | None
    ported_out_us: int | None
    swapped_us: int | None


# The row of a number whose SIM row failed its keyed hash or was deleted (see ``projections.seal``): nothing
# is answered from it (UNAVAILABLE READ_MODEL_MISMATCH; in a batch, SIM_SWAP_ANSWER_READ_MODEL_MISMATCH).
UNTRUSTED = SimSwapRow(0, None, None, None)


def latest_sim_change(row: SimSwapRow) -> int | None:
    """When the number's SIM last changed (a swap, or a SIM activated for a new subscription) since its
    records began; None when none is on record."""
    changes = [t for t in (row.swapped_us, row.activated_us) if t is not None and t >= row.monitored_since_us]
    return max(changes, default=None)


def swapped_within(row: SimSwapRow, now_us: int, max_age_hours: int) -> bool:
    """Whether the SIM changed in the last ``max_age_hours`` before ``now_us``."""
    latest = latest_sim_change(row)
    return latest is not None and latest >= now_us - max_age_hours * HOUR_US


# Whether a number's SIM swap question is answered, or why not (the API's SimSwapAnswer, by name).
ANSWERED, UNKNOWN_NUMBER, PORTED_OUT, READ_MODEL_MISMATCH = (
    "ANSWERED",
    "UNKNOWN_NUMBER",
    "PORTED_OUT",
    "READ_MODEL_MISMATCH",
)


class SimSwapAnswer(NamedTuple):
    """The SIM swap answers for one number (``answer``): when its SIM last changed and whether within the
    hours asked; with ``answer`` other than ANSWERED (unknown, ported out, a row that does not authenticate)
    nothing else is told."""

    answer: str  # ANSWERED, UNKNOWN_NUMBER, PORTED_OUT or READ_MODEL_MISMATCH
    swapped: bool  # the SIM changed within the hours asked
    latest_sim_change_us: int | None  # when it last changed (None when no change is on record)
    monitored_since_us: int | None  # when the records of it begin here (provisioned or ported in)


_UNKNOWN = SimSwapAnswer(UNKNOWN_NUMBER, False, None, None)
_MISMATCH = SimSwapAnswer(READ_MODEL_MISMATCH, False, None, None)
_PORTED = SimSwapAnswer(PORTED_OUT, False, None, None)


def answer(row: SimSwapRow | None, now_us: int, max_age_hours: int) -> SimSwapAnswer:
    """The answers for a number's row (None: unknown) at ``now_us``, for a SIM change within
    ``max_age_hours``. A ported-out number's SIM is the recipient operator's: nothing is told of it."""
    if row is None:
        return _UNKNOWN
    if row is UNTRUSTED:
        return _MISMATCH
    if row.ported_out_us is not None:
        return _PORTED
    latest = latest_sim_change(row)
    swapped = latest is not None and latest >= now_us - max_age_hours * HOUR_US
    return SimSwapAnswer(ANSWERED, swapped, latest, row.monitored_since_us)
